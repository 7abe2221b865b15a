"""Job schedules: a job with `schedule:` (see spec/schedules.py). Props (both sides):

    compared  {"schedule": {"recurrenceInterval", "startWindow" (seconds or None),
                            "doNotRunUntil", "doNotRunAfter" (ISO UTC, seconds precision)},
               "job": the job each run is, in `kinds.job`'s normal form (read back from the
                      job specification with `job.from_rest`; poolId None with a pool per
                      run), so whatever the job kind knows of a job, a run has too,
               "runSpec" (a hash of what each run gets: its tasks, its pool per run, the job
               manager's version; carried on the manager task as BSPEC_RUN_SPEC)}
    for create {"jobBody": the job's whole normal form (also the fields in MANAGED),
               "tasks": [task props, `kinds.task`'s whole form, with "id"],
               "autoPool": pool props or None, "logsContainer"}

info: "sasExpiry" (ISO; when the SAS URLs of the schedule's job specification run out),
"plannedAt" (desired side: when the spec was rendered), "nextRunTime", "recentJob".

Batch lets every property of a live schedule change (PATCH: schedule, jobSpecification,
metadata; the id is all it fixes), and a change reaches only the runs that start after it.
A completed (or terminating) schedule takes no change: a change to it plans a replace. The
jobs a schedule makes (`<id>:job-<n>`) carry `bspec-schedule` and belong to it: the job
kind never plans them as strays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from bspec.common import durations
from bspec.kinds import job as job_kind
from bspec.kinds import pool as pool_kind
from bspec.kinds import task as task_kind
from bspec.kinds.base import (
    KindDef,
    PlanContext,
    Rule,
    absent,
    container_names,
    desired,
    gone,
    seconds,
    stale,
)
from bspec.model import (
    ON_TASK_FAILURE_PERFORM,
    STACK_METADATA,
    Action,
    Address,
    Change,
    DesiredState,
    Kind,
    Reason,
    Resource,
    ScheduleSpec,
    reason,
)

SCHEDULE = Kind.register("schedule")  # registered in model.py, between pools and jobs
RUN_SPEC_ENV = "BSPEC_RUN_SPEC"  # on the job manager task: the runSpec hash
MANAGER_ID = "bspec-manager"  # the job manager task's id in each run
SAS_LIFETIME = timedelta(days=7)  # the storage provider's default SAS lifetime (--sas-ttl)
SAS_REFRESH = timedelta(days=2)  # apply refreshes tokens this close to running out
FINISHED = ("completed", "terminating")

# Job fields the job manager sets on each run, not the job specification: not compared.
MANAGED = frozenset({"onAllTasksComplete"})

FIELDS = {
    "schedule": Rule.UPDATE,
    "job": Rule.UPDATE,
    "runSpec": Rule.UPDATE,
    **{f: Rule.IGNORE for f in ("jobBody", "tasks", "autoPool", "logsContainer")},
}


def _compared_job(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k not in MANAGED}


def address(schedule_id: str) -> Address:
    return Address(SCHEDULE, (schedule_id,))


def utc_text(value: datetime | str | None) -> str | None:
    """A time in the normal form: ISO UTC to the second, `2026-12-02T02:00:00Z`."""
    when = _when(value) if isinstance(value, str) else value
    if when is None:
        return value if isinstance(value, str) and value else None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(text: Any) -> datetime | None:
    """An ISO time as Batch or the spec writes it (any fraction of a second), aware."""
    if not text:
        return None
    if isinstance(text, datetime):
        return text if text.tzinfo else text.replace(tzinfo=UTC)
    t = str(text).strip().replace("Z", "+00:00")
    head, dot, rest = t.partition(".")
    if dot:  # drop the fraction (Batch writes 7 digits), keep the offset
        digits = len(rest) - len(rest.lstrip("0123456789"))
        t = head + rest[digits:]
    try:
        value = datetime.fromisoformat(t)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _secs(text: Any) -> float | None:
    if not text:
        return None
    try:
        return seconds(durations.parse(str(text)))
    except ValueError:
        return None


def props_of(s: ScheduleSpec, d: DesiredState) -> dict[str, Any]:
    names = container_names(d)
    logs = d.logs_container.name
    auto_pool = pool_kind.props_of(s.pool, names) if s.auto_pool and s.pool else None
    job = {**job_kind.props_of(s.job, names), **({"poolId": None} if s.auto_pool else {})}
    acts = s.job.on_task_failure == ON_TASK_FAILURE_PERFORM  # exit rules act on the run
    return {
        "schedule": {
            "recurrenceInterval": seconds(s.recurrence_interval),
            "doNotRunUntil": utc_text(s.do_not_run_until),
            "doNotRunAfter": utc_text(s.do_not_run_after),
            "startWindow": seconds(s.start_window),
        },
        "job": _compared_job(job),
        "jobBody": job,  # the job kind's whole form, to create each run's job from
        "runSpec": s.run_spec,
        "tasks": [{"id": t.id, **task_kind.props_of(t, names, logs, acts)} for t in s.tasks],
        "autoPool": auto_pool,
        "logsContainer": logs,
    }


def from_spec(s: ScheduleSpec, d: DesiredState) -> Resource:
    """The desired schedule (its `plannedAt` in info, to measure SAS lifetimes from)."""
    r = desired(address(s.id), props_of(s, d), d.stack)
    planned = utc_text(s.planned_at)
    return Resource(r.address, r.props, owner=r.owner, info={"plannedAt": planned})


def from_rest(
    s: Mapping[str, Any],
    sas_expiry: str | None = None,
    source_of: Callable[[str], str] = str,
) -> Resource:
    """A job schedule as Batch's REST JSON lists it; `sas_expiry` is the earliest expiry
    of the SAS URLs in its job specification (the provider reads it from the URLs);
    `source_of` reads a resource file URL back as `<container>[/<blob>]`."""
    meta = {m.get("name"): m.get("value") for m in s.get("metadata") or ()}
    owner = meta.pop(STACK_METADATA, None)
    sched = s.get("schedule") or {}
    spec = s.get("jobSpecification") or {}
    manager = spec.get("jobManagerTask") or {}
    env = {e.get("name"): e.get("value") for e in manager.get("environmentSettings") or ()}
    props = {
        "schedule": {
            "recurrenceInterval": _secs(sched.get("recurrenceInterval")),
            "doNotRunUntil": utc_text(sched.get("doNotRunUntil")),
            "doNotRunAfter": utc_text(sched.get("doNotRunAfter")),
            "startWindow": _secs(sched.get("startWindow")),
        },
        # the job kind reads a job specification as it reads a job (same field names)
        "job": _compared_job(job_kind.from_rest({**spec, "id": s["id"]}, source_of).props),
        "runSpec": env.get(RUN_SPEC_ENV),
    }
    info_in = s.get("executionInfo") or {}
    info: dict[str, Any] = {
        "sasExpiry": sas_expiry,
        "nextRunTime": utc_text(info_in.get("nextRunTime")),
        "recentJob": (info_in.get("recentJob") or {}).get("id"),
    }
    state = s.get("state")
    return Resource(
        address(str(s["id"])),
        props,
        owner=owner,
        state=str(state).lower() if state else None,
        info=info,
    )


def sas_expiry_after(before: Resource | None, after: Resource, change: Action) -> datetime | None:
    """When the SAS tokens a schedule's runs read with run out after this plan is applied."""
    if change in (Action.CREATE, Action.REPLACE, Action.UPDATE) or before is None:
        planned = _when(after.info.get("plannedAt"))
        return None if planned is None else planned + SAS_LIFETIME
    return _when(before.info.get("sasExpiry"))


def outlives(after: Resource, expiry: datetime) -> bool:
    """Whether the schedule may start a run after `expiry`."""
    sched = after.props["schedule"]
    if sched["recurrenceInterval"] is None:
        first = _when(sched["doNotRunUntil"])
        return first is not None and first > expiry
    last = _when(sched["doNotRunAfter"])
    return last is None or last > expiry


def warnings(changes: list[Change]) -> list[tuple[str, str, str]]:
    """The plan's warnings about schedules, as (code, message, address): a schedule that
    would start runs after its SAS tokens run out."""
    out = []
    for c in changes:
        if c.after is None or c.action is Action.DELETE:
            continue
        if c.before is not None and c.before.state in FINISHED and c.action is Action.NOOP:
            continue
        expiry = sas_expiry_after(c.before, c.after, c.action)
        if expiry is None or not outlives(c.after, expiry):
            continue
        when = expiry.strftime("%Y-%m-%d %H:%M UTC")
        out.append(
            (
                "sasExpiry",
                f"{c.address}: the SAS tokens its runs read their files with run out at {when}, "
                "before its last run; a run after that cannot read them. `bspec apply` "
                f"refreshes them in place once they are within {SAS_REFRESH.days} days of "
                "running out: apply again before then (a daily `bspec apply` does)",
                str(c.address),
            )
        )
    return out


def _refresh_due(before: Resource, after: Resource) -> str | None:
    """The expiry (ISO) of tokens that are due for a refresh, else None."""
    expiry = _when(before.info.get("sasExpiry"))
    planned = _when(after.info.get("plannedAt"))
    if expiry is None or planned is None or expiry - planned > SAS_REFRESH:
        return None
    return utc_text(expiry)


def plan(ctx: PlanContext) -> list[Change]:
    specs = [from_spec(s, ctx.desired) for s in ctx.desired.of_kind(SCHEDULE)]
    wanted = {r.address for r in specs}
    old = stale(ctx, SCHEDULE, wanted) + unlisted(ctx, wanted)
    changes = [gone(r, reason("scheduleRuns")) for r in old]
    for after in specs:
        addr = after.address
        before = ctx.actual.get(addr)
        if absent(before):
            changes.append(
                Change(
                    Action.CREATE, addr, before, after, reasons=(reason("new", noun="schedule"),)
                )
            )
            continue
        assert before is not None
        ctx.check_owner(before, "job schedule")
        fields = DEF.diff(after.props, before.props)
        if before.owner != ctx.stack:
            fields.append("owner")
        if before.state in FINISHED:
            if fields:
                changes.append(
                    Change(
                        Action.REPLACE,
                        addr,
                        before,
                        after,
                        fields=(*fields, "state"),
                        forced_by=("state",),
                        reasons=(reason("scheduleFinished", state=before.state),),
                    )
                )
            else:
                changes.append(Change(Action.NOOP, addr, before, after))
            continue
        reasons: list[Reason] = []
        if "schedule" in fields:
            reasons.append(reason("scheduleTimesChanged"))
        if "runSpec" in fields:
            reasons.append(reason("scheduleRunsChanged"))
        if "job" in fields:
            jobs = (after.props["job"], before.props["job"])
            changed = sorted(k for k in {*jobs[0], *jobs[1]} if jobs[0].get(k) != jobs[1].get(k))
            reasons.append(reason("scheduleJobChanged", fields=changed))
        if "owner" in fields:
            reasons.append(reason("adopted", stack=ctx.stack))
        expiry = _refresh_due(before, after)
        if expiry is not None:
            fields.append("sas")
            reasons.append(reason("sasRefresh", expiry=expiry))
        if fields:
            changes.append(
                Change(Action.UPDATE, addr, before, after, tuple(fields), reasons=tuple(reasons))
            )
        else:
            changes.append(Change(Action.NOOP, addr, before, after))
    ctx.warnings.extend(message for _code, message, _addr in warnings(changes))
    return changes


def unlisted(ctx: PlanContext, wanted: set[Address]) -> list[Resource]:
    """The stack's schedules known only from the jobs of their runs: schedules are listed
    only for specs that have some (and for destroy), so one gone from the spec is found
    through its runs. (One that never ran is found by destroy.)"""
    named = {
        address(str(r.info["schedule"]))
        for r in ctx.actual.of_kind(Kind.JOB)
        if r.owner == ctx.stack and r.info.get("schedule") and r.state != "deleting"
    }
    return [
        Resource(a, {}, owner=ctx.stack, state="active")
        for a in sorted(named)
        if a not in wanted and ctx.actual.get(a) is None
    ]


def _schedule_words(v: Mapping[str, Any]) -> str:
    return f"the schedule is {v['state']}: Batch cannot change it, so it is created again"


DEF = KindDef(
    kind=SCHEDULE,
    heading="Schedules",
    noun="schedule",
    nouns="schedules",
    fields=FIELDS,
    plan=plan,
    destroyed=True,
    destroy_reasons=lambda _r: (reason("scheduleRuns"),),
    words={
        "scheduleRuns": lambda v: "deletes the jobs of its runs with it",
        "scheduleFinished": _schedule_words,
        "scheduleTimesChanged": lambda v: (
            "schedule times changed (in place; the next run time is worked out again)"
        ),
        "scheduleRunsChanged": lambda v: (
            "what each run does changed (in place: runs that start after this apply get it; "
            "a run in progress keeps its tasks)"
        ),
        "scheduleJobChanged": lambda v: (
            f"each run's job changed ({', '.join(v['fields'])}; in place: runs that start "
            "after this apply)"
        ),
        "sasRefresh": lambda v: f"its SAS tokens run out at {v['expiry']}: new ones in place",
    },
)
