"""What every resource kind module provides, and the helpers they share. Pure: no I/O.

A kind module (`kinds/pool.py`, ...) holds its props in one normal form used for both
sides: `from_rest` reads the service's REST JSON into a `Resource`, `from_spec` builds the
desired `Resource` from the spec objects. Its `DEF` says which fields update in place,
which replace, which replace only when the pool has nodes and which are ignored, the
words reports use for it, and how it plans (`plan(ctx)`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bspec.model import (
    Action,
    ActualState,
    Address,
    Change,
    DesiredState,
    Kind,
    Reason,
    Resource,
    ResourceFileSpec,
    reason,
)

DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0  # Batch's default task retentionTime
UNLIMITED_SECONDS = 100 * 365 * 24 * 3600.0  # at or above this, a duration means "unlimited"


Words = Callable[[Mapping[str, Any]], str]  # a reason's values -> the words users read


def count(n: int, noun: str) -> str:
    """`1 node`, `3 nodes`."""
    return f"{n} {noun}{'s' if n != 1 else ''}"


class Rule(str, enum.Enum):
    """What a difference in a field does."""

    UPDATE = "update"  # changed in place
    REPLACE = "replace"  # delete and create
    REPLACE_IF_NODES = "replaceIfNodes"  # in place on an empty pool, else replace
    IGNORE = "ignore"  # not compared (creation input, or covered by another field)


@dataclass
class PlanContext:
    """What a kind's `plan` reads: the two states, options, and the changes planned so far
    for the kinds it `reads`. Kinds record refusals in `unowned` and notes in `warnings`."""

    desired: DesiredState
    actual: ActualState
    adopt: bool = False
    unowned: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    changes: dict[Kind, list[Change]] = field(default_factory=dict)
    rerun_failed: bool = False  # `apply --rerun-failed`: jobs an exit rule ended start over
    autoscale: list[dict[str, Any]] = field(default_factory=list)  # formula evaluations

    @property
    def stack(self) -> str:
        return self.desired.stack

    def check_owner(self, r: Resource, what: str) -> bool:
        """True when `r` is ours or adopted; otherwise record a refusal."""
        if r.owner == self.stack or self.adopt:
            return True
        holder = f"stack {r.owner!r}" if r.owner else "no bspec stack"
        self.unowned.append(f"{r.address} ({what}) exists and belongs to {holder}")
        return False


@dataclass(frozen=True)
class KindDef:
    """A resource kind as the planner, the applier and the reports see it."""

    kind: Kind
    heading: str  # "Jobs:" in a rendered plan
    noun: str  # "job"
    nouns: str  # "jobs"
    fields: Mapping[str, Rule]
    plan: Callable[[PlanContext], list[Change]]
    reads: tuple[Kind, ...] = ()  # kinds whose planned changes `plan` reads
    summarized: bool = False  # rendered plans show a few of each action and count the rest
    destroyed: bool = False  # `destroy` deletes it (others go with what holds them)
    destroy_reasons: Callable[[Resource], tuple[Reason, ...]] = lambda _r: ()
    # the words for this kind's own reason codes (`model.Reason`); reports read them here
    words: Mapping[str, Words] = field(default_factory=dict)

    compared: tuple[str, ...] = field(init=False)  # the fields a diff compares, in order

    def __post_init__(self) -> None:
        compared = tuple(f for f, r in self.fields.items() if r is not Rule.IGNORE)
        object.__setattr__(self, "compared", compared)

    def diff(self, want: Mapping[str, Any], have: Mapping[str, Any]) -> list[str]:
        """The compared fields that differ, in the order `fields` lists them."""
        get, had = want.get, have.get
        return [f for f in self.compared if get(f) != had(f)]

    def with_rule(self, fields: Iterable[str], rule: Rule) -> tuple[str, ...]:
        return tuple(f for f in fields if self.fields.get(f) is rule)


# --------------------------------------------------------------------------- shared helpers


def seconds(value: timedelta | float | None, default: float | None = None) -> float | None:
    """A duration as seconds, `default` when absent, None when effectively unlimited."""
    if value is None:
        return default
    secs = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if secs >= UNLIMITED_SECONDS:
        return None
    return round(secs, 3)


def container_names(desired: DesiredState) -> dict[str, str]:
    """Container key -> real name, the logs container included."""
    names = {c.key: c.name for c in desired.containers}
    logs = desired.logs_container
    names[logs.key] = logs.name
    return names


def resource_file_ref(rf: ResourceFileSpec, names: Mapping[str, str]) -> dict[str, Any]:
    """A resource file as compared and created from: where it reads, never with what SAS."""
    name = names.get(rf.container, rf.container)
    source = f"{name}/{rf.blob}" if rf.blob else name
    return {
        "source": source,
        "prefix": rf.prefix,
        # A blob lands under its own name unless the spec says otherwise.
        "filePath": rf.file_path if rf.blob is None else (rf.file_path or rf.blob),
        "fileMode": rf.file_mode,
    }


def absent(r: Resource | None) -> bool:
    """Gone, or on its way out: either way the next thing to do is create it."""
    return r is None or r.state == "deleting"


def stale(ctx: PlanContext, kind: Kind, wanted: Collection[Address]) -> list[Resource]:
    """The stack's resources of `kind` the spec no longer names, in address order."""
    return sorted(
        (
            r
            for r in ctx.actual.of_kind(kind)
            if r.owner == ctx.stack and r.state != "deleting" and r.address not in wanted
        ),
        key=lambda r: r.address,
    )


def gone(r: Resource, *more: Reason) -> Change:
    """A resource the spec no longer has: deleted."""
    return Change(Action.DELETE, r.address, r, None, reasons=(reason("removed"), *more))


def desired(address: Address, props: dict[str, Any], stack: str) -> Resource:
    return Resource(address, props, owner=stack)


__all__ = [
    "KindDef",
    "PlanContext",
    "Rule",
    "Words",
    "absent",
    "container_names",
    "count",
    "resource_file_ref",
    "seconds",
]
