"""Resource kinds, one pure module each (props in one normal form, field rules, words, how
it plans); `KINDS` is the one line where they are listed, in dependency order: apply
creates in this order and destroy deletes in reverse. Kinds do no I/O and import no Azure
SDK: the providers turn their changes into requests."""

from __future__ import annotations

from bspec.kinds import blob, container, job, pool, schedule, task
from bspec.kinds.base import KindDef, PlanContext, Rule
from bspec.model import Kind

KINDS: tuple[KindDef, ...] = (
    container.DEF,
    blob.DEF,
    pool.DEF,
    schedule.DEF,
    job.DEF,
    task.DEF,
)


def of(kind: Kind) -> KindDef:
    """The registered kind `kind` (KINDS is read each time: a test may add a kind)."""
    return next(k for k in KINDS if k.kind is kind)


__all__ = ["KINDS", "KindDef", "PlanContext", "Rule", "of"]
