"""The spec's jobs. Props (both sides):

    {"poolId", "priority", "maxWallClockTime" (seconds; None unlimited), "maxTaskRetryCount",
     "usesTaskDependencies", "metadata": {user metadata},
     "preparation", "release" (kinds.jobparts; None when absent),
     "onAllTasksComplete": noaction|terminatejob, "onTaskFailure":
     noaction|performexitoptionsjobaction, "maxParallelTasks" (-1: no limit)}

state: active|completed|terminating|deleting|...; info: taskCount when known, terminateReason
(why a completed job ended).

Batch fixes the preparation, the release and onTaskFailure when it creates a job, and lets
onAllTasksComplete go from noaction to terminatejob only: changing any of them otherwise
replaces the job. bspec creates every job with noaction and switches it after adding the
tasks (a job without tasks would complete at once), so a desired terminatejob against an
actual noaction is an in-place update, also when an earlier apply stopped in between.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bspec.kinds.base import (
    KindDef,
    PlanContext,
    Rule,
    Words,
    absent,
    container_names,
    count,
    desired,
    gone,
    seconds,
    stale,
)
from bspec.kinds.jobparts import iso_seconds, job_task_from_rest, job_task_props
from bspec.model import (
    ON_TASK_FAILURE_PERFORM,
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
    "preparation": Rule.REPLACE,  # Batch cannot change either on a live job
    "release": Rule.REPLACE,
    "onTaskFailure": Rule.REPLACE,  # fixed at creation
    "maxParallelTasks": Rule.UPDATE,
    "onAllTasksComplete": Rule.UPDATE,  # noaction -> terminatejob only; the reverse replaces
}
NOACTION, TERMINATEJOB = "noaction", "terminatejob"


def props_of(job: JobSpec, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`names`: container key -> real name, for the preparation's and release's files."""
    names = names or {}
    return {
        "poolId": job.pool_id,
        "priority": job.priority,
        "maxWallClockTime": seconds(job.constraints.max_wall_clock_time),
        "maxTaskRetryCount": job.constraints.max_task_retry_count,
        "usesTaskDependencies": job.uses_task_dependencies,
        "metadata": dict(job.metadata),
        "preparation": job_task_props(job.preparation, names),
        "release": job_task_props(job.release, names, release=True),
        "onAllTasksComplete": job.on_all_tasks_complete,
        "onTaskFailure": job.on_task_failure,
        "maxParallelTasks": job.max_parallel_tasks,
    }


def from_spec(job: JobSpec, stack: str, names: Mapping[str, str] | None = None) -> Resource:
    return desired(Address.job(job.id), props_of(job, names), stack)


def from_rest(j: Mapping[str, Any], source_of: Callable[[str], str] = str) -> Resource:
    """A job as Batch's REST JSON lists it; `source_of` reads a resource file URL back as
    `<container>[/<blob>]`."""
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
        "preparation": job_task_from_rest(j.get("jobPreparationTask"), source_of),
        "release": job_task_from_rest(j.get("jobReleaseTask"), source_of, release=True),
        "onAllTasksComplete": str(j.get("onAllTasksComplete") or NOACTION).lower(),
        "onTaskFailure": str(j.get("onTaskFailure") or NOACTION).lower(),
        "maxParallelTasks": int(j.get("maxParallelTasks") or -1),
    }
    state = j.get("state")
    ended = (j.get("executionInfo") or {}).get("terminateReason")
    return Resource(
        Address.job(str(j["id"])),
        props,
        owner=owner,
        state=str(state).lower() if state else None,
        info={k: v for k, v in (("terminateReason", ended), ("schedule", schedule)) if v},
    )


def of_schedule(r: Resource) -> bool:
    """A run of a job schedule (`<schedule>:job-<n>`): the schedule's, never a stray job."""
    return bool(r.info.get("schedule")) or ":" in r.address.parts[0]


def deletes_tasks(r: Resource) -> tuple[Reason, ...]:
    n = int(r.info.get("taskCount", 0) or 0)
    return (reason("deletesTasks", tasks=n),) if n else ()


def ended_by_spec(before: Resource) -> str | None:
    """Why a completed (or terminating) job ended when the job's own settings ended it:
    all its tasks done under terminatejob, or a task's exit rule under
    performexitoptionsjobaction. None when it ended otherwise (by hand, by its wall clock)."""
    ended = before.info.get("terminateReason")
    have = before.props
    if ended == "AllTasksComplete" and have.get("onAllTasksComplete") == TERMINATEJOB:
        return str(ended)
    if ended == "TaskFailed" and have.get("onTaskFailure") == ON_TASK_FAILURE_PERFORM:
        return str(ended)
    return None


def tasks_to_add(ctx: PlanContext, job_id: str) -> int:
    """How many of the job's tasks the spec has that the job lacks or holds changed."""
    a, n = ctx.actual, 0
    for t in ctx.desired.tasks_of(job_id):
        r = a.get(t.address)
        if r is None or r.owner != ctx.stack or r.props.get("fingerprint") != t.fingerprint:
            n += 1
    return n


def plan(ctx: PlanContext) -> list[Change]:
    wanted = {Address.job(j.id) for j in ctx.desired.jobs}
    strays = [r for r in stale(ctx, Kind.JOB, wanted) if not of_schedule(r)]
    changes = [gone(r, *deletes_tasks(r)) for r in strays]
    names = container_names(ctx.desired)
    for spec in ctx.desired.jobs:
        after = from_spec(spec, ctx.stack, names)
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
        if "onAllTasksComplete" in fields and want["onAllTasksComplete"] == NOACTION:
            forced.append("onAllTasksComplete")  # Batch cannot switch terminatejob back
        more: dict[str, Any] = {}
        if before.state in ("completed", "terminating"):
            ended = ended_by_spec(before)
            adding = tasks_to_add(ctx, spec.id) if ended else 0
            if ended is None:
                forced.append("state")
            elif ended == "TaskFailed" and ctx.rerun_failed:
                forced.append("rerunFailed")  # Batch reactivates no task of a completed job
            elif adding or fields:
                forced.append("completed")
                more = {"ended": ended, "adding": adding}
            else:  # it ended as the spec says and has every task: converged
                changes.append(Change(Action.NOOP, addr, before, after))
                continue
        if before.owner != ctx.stack:
            fields.append("owner")
        if forced:
            n = sum(1 for _ in ctx.desired.tasks_of(spec.id))
            why = reason(
                "jobReplaced",
                forced=forced,
                state=before.state,
                tasks=n,
                failure=want["onTaskFailure"],
                **more,
            )
            changes.append(
                Change(
                    Action.REPLACE,
                    addr,
                    before,
                    after,
                    fields=tuple(dict.fromkeys([*fields, *forced])),
                    forced_by=tuple(dict.fromkeys(forced)),
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
            if "maxParallelTasks" in fields:
                reasons.append(
                    reason(
                        "maxParallelTasksChanged",
                        old=before.props.get("maxParallelTasks"),
                        new=want["maxParallelTasks"],
                    )
                )
            if "onAllTasksComplete" in fields:
                reasons.append(reason("completionSwitched"))
            if "owner" in fields:
                reasons.append(reason("adopted", stack=ctx.stack))
            changes.append(
                Change(Action.UPDATE, addr, before, after, tuple(fields), reasons=tuple(reasons))
            )
        else:
            changes.append(Change(Action.NOOP, addr, before, after))
    return changes


_ENDED = {
    "AllTasksComplete": "all its tasks completed under onAllTasksComplete: terminateJob",
    "TaskFailed": "a task's exit rule terminated it",
}
_REPLACED_BY: dict[str, Words] = {
    "poolId": lambda v: "the pool it runs on changed",
    "usesTaskDependencies": lambda v: "task dependencies switched on",
    "state": lambda v: f"the job was {v['state']} outside bspec",
    "preparation": lambda v: (
        "its preparation task changed, which Batch cannot change on a live job"
    ),
    "release": lambda v: "its release task changed, which Batch cannot change on a live job",
    "onTaskFailure": lambda v: (
        "a task's exit rule now has a jobAction, which needs onTaskFailure:"
        " performExitOptionsJobAction, fixed when Batch creates a job"
        if v.get("failure") == ON_TASK_FAILURE_PERFORM
        else "no exit rule has a jobAction any more, and onTaskFailure is fixed when Batch"
        " creates a job"
    ),
    "onAllTasksComplete": lambda v: (
        "onAllTasksComplete went back to noAction, which Batch cannot do on a live job"
    ),
    "rerunFailed": lambda v: (
        "--rerun-failed: a task's exit rule terminated the job, and"
        " Batch reactivates no task of a completed job"
    ),
    "completed": lambda v: (
        f"the job completed ({_ENDED.get(str(v.get('ended')), v.get('ended'))}) and"
        + (
            f" {count(int(v['adding']), 'task')} must be added; Batch adds none to a completed job"
            if v.get("adding")
            else " changed; Batch changes nothing on a completed job"
        )
    ),
}


def _limit(n: Any) -> str:
    return "no limit" if n in (None, -1) else str(n)


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
        "maxParallelTasksChanged": lambda v: (
            f"maxParallelTasks {_limit(v.get('old'))} -> {_limit(v.get('new'))}"
        ),
        "completionSwitched": lambda v: (
            "onAllTasksComplete set to terminateJob (after its tasks are added)"
        ),
    },
)
