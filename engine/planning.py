"""Diff the desired state against the actual state into a Plan. Pure: no I/O at all.

The planner loops over the kinds (`bspec.kinds.KINDS`) in dependency order: each kind's
module holds its props in one normal form (the providers read the services into the same
form), its field rules and how it plans. A diff is a dict comparison of compared fields.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import bspec.kinds as kinds
from bspec.errors import OwnershipError
from bspec.kinds import KindDef, PlanContext
from bspec.kinds import job as job_kind
from bspec.kinds import pool as pool_kind
from bspec.kinds import task as task_kind
from bspec.kinds.base import container_names, seconds
from bspec.model import (
    LOGS_KEY,
    Action,
    ActualState,
    Address,
    Change,
    ContainerSpec,
    DesiredState,
    JobSpec,
    Kind,
    Plan,
    PoolSpec,
    TaskSpec,
    reason,
)


@dataclass(frozen=True)
class PlanOptions:
    target: str = "local"
    adopt: bool = False
    rerun_failed: bool = False  # jobs an exit rule terminated are replaced (their tasks rerun)


def desired_pool_props(pool: PoolSpec, desired: DesiredState) -> dict[str, Any]:
    return pool_kind.props_of(pool, container_names(desired))


def desired_job_props(job: JobSpec) -> dict[str, Any]:
    return job_kind.props_of(job)


def desired_task_props(task: TaskSpec, desired: DesiredState | None = None) -> dict[str, Any]:
    names = container_names(desired) if desired is not None else {}
    logs = desired.logs_container.name if desired is not None else ""
    return task_kind.props_of(task, names, logs)


def _plan_order(kinds: Iterable[KindDef]) -> list[KindDef]:
    """The kinds in an order where each plans after the kinds it reads."""
    pending, done, out = list(kinds), set(), []
    while pending:
        ready = next(k for k in pending if all(r in done for r in k.reads))
        pending.remove(ready)
        done.add(ready.kind)
        out.append(ready)
    return out


def plan(desired: DesiredState, actual: ActualState, options: PlanOptions | None = None) -> Plan:
    """The changes that take `actual` to `desired`, no-ops included, in apply order.

    Raises OwnershipError when a resource the spec names exists and is not the stack's
    (unless `options.adopt`).
    """
    options = options or PlanOptions()
    ctx = PlanContext(desired, actual, options.adopt, rerun_failed=options.rerun_failed)
    for k in _plan_order(kinds.KINDS):
        ctx.changes[k.kind] = k.plan(ctx)
    if ctx.unowned:
        raise OwnershipError(
            "refusing to take over resources this stack does not own:\n  "
            + "\n  ".join(ctx.unowned),
            hint="rename them in the spec, or pass --adopt to take them over",
        )
    ordered = [c for k in kinds.KINDS for c in _deletes_first(ctx.changes[k.kind])]
    return Plan(
        desired.stack,
        options.target,
        tuple(ordered),
        tuple(ctx.warnings),
        autoscale=tuple(ctx.autoscale),
    )


def _deletes_first(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.action is Action.DELETE] + [
        c for c in changes if c.action is not Action.DELETE
    ]


def plan_destroy(desired: DesiredState, actual: ActualState, target: str = "local") -> Plan:
    """Delete everything that carries the stack's tag, in reverse order: jobs, pool,
    containers (the logs container last). Tasks and blobs go with what holds them."""
    stack = desired.stack
    changes: list[Change] = []
    for k in reversed(kinds.KINDS):
        if not k.destroyed:
            continue
        rs = sorted(
            (r for r in actual.of_kind(k.kind) if r.owner == stack and r.state != "deleting"),
            key=lambda r: (r.address.parts[0] == LOGS_KEY, r.address),
        )
        for r in rs:
            why = (reason("owned", stack=stack), *k.destroy_reasons(r))
            changes.append(Change(Action.DELETE, r.address, r, None, reasons=why))
    return Plan(stack, target, tuple(changes))


def basis(actual: ActualState, only: Iterable[Address] | None = None) -> dict[str, Any]:
    """What a saved plan was based on: the diffed fields and owner of the resources a plan
    covers (`only`), without the state of running tasks or the logs container (taking the
    lock creates it). Two equal bases plan the same changes."""
    keep = None if only is None else set(only)
    out: dict[str, Any] = {}
    for addr, r in sorted(actual.resources.items()):
        if (keep is not None and addr not in keep) or addr == Address.container(LOGS_KEY):
            continue
        props = pool_kind.steady_props(r.props) if addr.kind is Kind.POOL else dict(r.props)
        entry: dict[str, Any] = {"props": props, "owner": r.owner}
        if addr.kind is Kind.JOB or r.state == "deleting":
            entry["state"] = r.state
        out[str(addr)] = entry
    return out


def covered(p: Plan) -> set[Address]:
    """The addresses a plan covers, no-ops included."""
    return {c.address for c in p.changes}


__all__ = [
    "LOGS_KEY",
    "ContainerSpec",
    "PlanOptions",
    "basis",
    "covered",
    "desired_job_props",
    "desired_pool_props",
    "desired_task_props",
    "plan",
    "plan_destroy",
    "seconds",
]
