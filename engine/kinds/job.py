"""The spec's jobs. Props (both sides):

    {"poolId", "priority", "maxWallClockTime" (seconds; None unlimited), "maxTaskRetryCount",
     "usesTaskDependencies", "metadata": {user metadata}}

state: active|completed|terminating|deleting|...; info: taskCount when known.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bspec.common import durations
from bspec.kinds.base import (
    KindDef,
    PlanContext,
    Rule,
    Words,
    absent,
    count,
    desired,
    gone,
    seconds,
    stale,
)
from bspec.model import (
    STACK_METADATA,
    Action,
    Address,
    Change,
    JobSpec,
    Kind,
    Reason,
    Resource,
    reason,
)

SCHEDULE_METADATA = "bspec-schedule"  # on a schedule's runs (`kinds.schedule`)

FIELDS = {
    "poolId": Rule.REPLACE,
    "usesTaskDependencies": Rule.REPLACE,  # only when switched on: off is harmless
    "priority": Rule.UPDATE,
    "maxWallClockTime": Rule.UPDATE,
    "maxTaskRetryCount": Rule.UPDATE,
    "metadata": Rule.UPDATE,
}


def props_of(job: JobSpec) -> dict[str, Any]:
    return {
        "poolId": job.pool_id,
        "priority": job.priority,
        "maxWallClockTime": seconds(job.constraints.max_wall_clock_time),
        "maxTaskRetryCount": job.constraints.max_task_retry_count,
        "usesTaskDependencies": job.uses_task_dependencies,
        "metadata": dict(job.metadata),
    }


def from_spec(job: JobSpec, stack: str) -> Resource:
    return desired(Address.job(job.id), props_of(job), stack)


def iso_seconds(text: Any, default: float | None = None) -> float | None:
    """An ISO 8601 duration as Batch writes it, in the normal form (seconds, None unlimited)."""
    if not text:
        return default
    try:
        return seconds(durations.parse(str(text)), default)
    except ValueError:
        return default


def from_rest(j: Mapping[str, Any]) -> Resource:
    """A job as Batch's REST JSON lists it."""
    meta = {m.get("name"): m.get("value") for m in j.get("metadata") or ()}
    owner = meta.pop(STACK_METADATA, None)
    schedule = meta.pop(SCHEDULE_METADATA, None)
    c = j.get("constraints") or {}
    props = {
        "poolId": (j.get("poolInfo") or {}).get("poolId"),
        "priority": j.get("priority") or 0,
        "maxWallClockTime": iso_seconds(c.get("maxWallClockTime")),
        "maxTaskRetryCount": c.get("maxTaskRetryCount") or 0,
        "usesTaskDependencies": bool(j.get("usesTaskDependencies")),
        "metadata": meta,
    }
    state = j.get("state")
    return Resource(
        Address.job(str(j["id"])),
        props,
        owner=owner,
        state=str(state).lower() if state else None,
        info={"schedule": schedule} if schedule else {},
    )


def of_schedule(r: Resource) -> bool:
    """A run of a job schedule (`<schedule>:job-<n>`): the schedule's, never a stray job."""
    return bool(r.info.get("schedule")) or ":" in r.address.parts[0]


def deletes_tasks(r: Resource) -> tuple[Reason, ...]:
    n = int(r.info.get("taskCount", 0) or 0)
    return (reason("deletesTasks", tasks=n),) if n else ()


def plan(ctx: PlanContext) -> list[Change]:
    wanted = {Address.job(j.id) for j in ctx.desired.jobs}
    strays = [r for r in stale(ctx, Kind.JOB, wanted) if not of_schedule(r)]
    changes = [gone(r, *deletes_tasks(r)) for r in strays]
    for spec in ctx.desired.jobs:
        after = from_spec(spec, ctx.stack)
        addr = after.address
        before = ctx.actual.get(addr)
        if absent(before):
            changes.append(
                Change(Action.CREATE, addr, before, after, reasons=(reason("new", noun="job"),))
            )
            continue
        assert before is not None
        ctx.check_owner(before, "job")
        want = after.props
        fields = DEF.diff(want, before.props)
        if "usesTaskDependencies" in fields and not want["usesTaskDependencies"]:
            fields.remove("usesTaskDependencies")  # harmless: dependencies stay allowed
        forced = list(DEF.with_rule(fields, Rule.REPLACE))
        if before.state in ("completed", "terminating"):
            forced.append("state")
        if before.owner != ctx.stack:
            fields.append("owner")
        if forced:
            n = sum(1 for _ in ctx.desired.tasks_of(spec.id))
            why = reason("jobReplaced", forced=forced, state=before.state, tasks=n)
            changes.append(
                Change(
                    Action.REPLACE,
                    addr,
                    before,
                    after,
                    fields=tuple(dict.fromkeys([*fields, *forced])),
                    forced_by=tuple(forced),
                    reasons=(why,),
                )
            )
        elif fields:
            reasons: list[Reason] = []
            if "priority" in fields:
                reasons.append(reason("priorityChanged"))
            if "maxWallClockTime" in fields or "maxTaskRetryCount" in fields:
                reasons.append(reason("constraintsChanged"))
            if "metadata" in fields:
                reasons.append(reason("metadataChanged"))
            if "owner" in fields:
                reasons.append(reason("adopted", stack=ctx.stack))
            changes.append(
                Change(Action.UPDATE, addr, before, after, tuple(fields), reasons=tuple(reasons))
            )
        else:
            changes.append(Change(Action.NOOP, addr, before, after))
    return changes


_REPLACED_BY: dict[str, Words] = {
    "poolId": lambda v: "the pool it runs on changed",
    "usesTaskDependencies": lambda v: "task dependencies switched on",
    "state": lambda v: f"the job was {v['state']} outside bspec",
}


def fresh(changes: list[Change]) -> set[str]:
    """Ids of the jobs whose tasks all start over: created or replaced."""
    return {c.address.parts[0] for c in changes if c.action in (Action.CREATE, Action.REPLACE)}


DEF = KindDef(
    kind=Kind.JOB,
    heading="Jobs",
    noun="job",
    nouns="jobs",
    fields=FIELDS,
    plan=plan,
    destroyed=True,
    destroy_reasons=deletes_tasks,
    words={
        "deletesTasks": lambda v: f"deletes its {v['tasks']} tasks",
        "jobReplaced": lambda v: (
            "job replaced ("
            + "; ".join(_REPLACED_BY[f](v) for f in v["forced"])
            + f"): {count(v['tasks'], 'task')} rerun"
        ),
        "priorityChanged": lambda v: "priority changed",
        "constraintsChanged": lambda v: "constraints changed",
    },
)
