"""The plan's warnings: the reads they need, then `bspec.preflight` decides (pure).

Reads only, and only when the plan needs them: Batch's supported images (one paged list,
counted in `requests`) when a pool is created, replaced or re-imaged; on the local target,
the account's quotas from the service's own `/_local/settings` path (not a Batch request,
so not counted: the azure target, whose data plane has no quotas, makes none) when a pool
is created or grows. A read that fails becomes a warning, never a failed plan.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from bspec import preflight
from bspec.errors import BspecError
from bspec.model import ActualState, DesiredState, Kind, Plan
from bspec.preflight import Compute, Facts, PlanWarning, SupportedImage

__all__ = ["Compute", "Facts", "PlanWarning", "SupportedImage"]
from bspec.targets import Target

QUOTA_KEYS = ("dedicatedCoreQuota", "lowPriorityCoreQuota", "dedicatedCoreQuotaPerVMFamily")


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def facts(
    tgt: Target,
    actual: ActualState,
    plan: Plan,
    *,
    today: Callable[[], dt.date] = _today,
) -> Facts:
    """What the warnings need, read only when the plan needs it."""
    unread: list[str] = []
    images = None
    if preflight.needs_images(plan):
        try:
            images = [
                SupportedImage(
                    i["publisher"],
                    i["offer"],
                    i["sku"],
                    i["nodeAgentSku"],
                    i["endOfLife"],
                    tuple(i.get("capabilities") or ()),
                )
                for i in tgt.batch.supported_images()
            ]
        except BspecError as err:
            unread.append(f"Batch's supported images ({err.message})")
    quotas = None
    if tgt.local_url is not None and preflight.needs_quotas(plan):
        quotas = _local_quotas(tgt.local_url, unread)
    return Facts(
        today=today(),
        images=images,
        quotas=quotas,
        pools=tuple(actual.of_kind(Kind.POOL)),
        unread=tuple(unread),
    )


def _local_quotas(url: str, unread: list[str]) -> dict[str, Any] | None:
    from bspec import local as services

    try:
        settings = services.http_json("GET", f"{url}/_local/settings")
    except (OSError, ValueError) as exc:
        unread.append(f"the local service's quotas ({exc})")
        return None
    if not isinstance(settings, dict):
        return None
    return {k: settings[k] for k in QUOTA_KEYS if k in settings}


def warnings(
    tgt: Target, desired: DesiredState, actual: ActualState, plan: Plan
) -> list[PlanWarning]:
    """The plan's preflight warnings: the planner's own notes first, then the checks."""
    return preflight.legacy(plan) + preflight.check(plan, desired, facts(tgt, actual, plan))


def show(found: list[PlanWarning], compute: Compute) -> tuple[list[str], str | None]:
    """The lines above the plan (the preflight warnings; the planner's own notes stay where
    they were, below it) and the compute line beside its summary."""
    lines = [
        f"Warning: {w.address + ': ' if w.address else ''}{w.message}"
        for w in found
        if w.code != "foreignTask"
    ]
    if lines:
        lines.append("")
    return lines, compute.line()


def compute(plan: Plan) -> Compute:
    """The compute the plan's created or resized pools run (`bspec.preflight.compute`)."""
    return preflight.compute(plan)


def to_json(found: list[PlanWarning]) -> list[dict[str, Any]]:
    return [w.to_json() for w in found]
