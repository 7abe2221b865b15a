"""The spec's tasks. Props (both sides; the service lists only the compared ones):

    compared  {"fingerprint", "maxWallClockTime", "retentionTime", "maxTaskRetryCount"}
    for add   {"commandLine", "resourceFiles", "outputFiles", "environment", "dependsOn",
               "displayName", "elevated", "requiredSlots", "logsContainer",
               "exitConditions" (Batch's, from the task's onExit and its job's onTaskFailure)}
              and, only when the task has them, "container" ({"image", "runOptions",
              "workingDirectory"}) and "secretEnvironment" (names: the values are read
              from the environment when the request is built, never kept)

A planned task that is added (create, replace) holds the whole normal form; one kept or
updated in place holds the compared fields only, as a listed one does (its update needs no
more). Durations are seconds (None unlimited; retention defaults to 7 days). A listed task's owner
is its job's owner when it carries BSPEC_FINGERPRINT, else None. Batch tasks are immutable:
any change but the constraints is a delete and add.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Any

from bspec.kinds.base import (
    DEFAULT_RETENTION_SECONDS,
    KindDef,
    PlanContext,
    Rule,
    absent,
    container_names,
    resource_file_ref,
    seconds,
)
from bspec.kinds.job import fresh
from bspec.kinds.jobparts import exit_conditions, iso_seconds
from bspec.kinds.pool import container_props
from bspec.model import (
    FINGERPRINT_ENV,
    ON_TASK_FAILURE_PERFORM,
    Action,
    Address,
    Change,
    DesiredState,
    Kind,
    Reason,
    Resource,
    TaskSpec,
    reason,
)

FIELDS = {
    "fingerprint": Rule.REPLACE,
    "maxWallClockTime": Rule.UPDATE,
    "retentionTime": Rule.UPDATE,
    "maxTaskRetryCount": Rule.UPDATE,
    **{
        f: Rule.IGNORE  # all in the fingerprint, or bspec's own
        for f in (
            "commandLine",
            "resourceFiles",
            "outputFiles",
            "environment",
            "dependsOn",
            "displayName",
            "elevated",
            "requiredSlots",
            "logsContainer",
            "container",
            "secretEnvironment",
            "exitConditions",
        )
    },
}


def compared_props(t: TaskSpec) -> dict[str, Any]:
    """The compared fields only: what a listed task has, and all a kept task's plan needs."""
    c = t.constraints
    return {
        "fingerprint": t.fingerprint,
        "maxWallClockTime": seconds(c.max_wall_clock_time),
        "retentionTime": seconds(c.retention_time, DEFAULT_RETENTION_SECONDS),
        "maxTaskRetryCount": c.max_task_retry_count,
    }


def props_of(
    t: TaskSpec, names: Mapping[str, str], logs: str, job_actions: bool = False
) -> dict[str, Any]:
    """The whole normal form: the compared fields and what adding the task needs.
    `job_actions`: the task's job acts on exit rules (onTaskFailure)."""
    props = {
        **compared_props(t),
        "commandLine": t.command_line,
        "resourceFiles": [resource_file_ref(rf, names) for rf in t.resource_files],
        "outputFiles": [
            {
                "pattern": o.pattern,
                "container": names.get(o.container, o.container),
                "path": o.path,
                "when": o.when.value,
            }
            for o in t.output_files
        ],
        "environment": dict(t.environment),
        "dependsOn": {"taskIds": list(t.depends_on), "taskIdRanges": list(t.depends_on_ranges)}
        if t.depends_on or t.depends_on_ranges
        else None,
        "displayName": t.display_name,
        "elevated": t.elevated,
        "requiredSlots": t.required_slots,
        "logsContainer": logs,
        "exitConditions": exit_conditions(t.on_exit, job_actions),
    }
    if t.container is not None:
        props["container"] = container_props(t.container)
    if t.secret_environment:
        props["secretEnvironment"] = list(t.secret_environment)
    return props


def acting_jobs(d: DesiredState) -> set[str]:
    """Ids of the jobs whose onTaskFailure acts on exit rules."""
    return {j.id for j in d.jobs if j.on_task_failure == ON_TASK_FAILURE_PERFORM}


def from_spec(t: TaskSpec, d: DesiredState) -> Resource:
    """The desired task (e.g. to build its body outside a plan)."""
    props = props_of(t, container_names(d), d.logs_container.name, t.job_id in acting_jobs(d))
    return Resource(t.address, props, owner=d.stack)


def from_rest(job_id: str, t: Mapping[str, Any], job_owner: str | None) -> Resource:
    """A task as Batch's REST JSON lists it ($select id, state, environment, constraints)."""
    env = {e.get("name"): e.get("value") for e in t.get("environmentSettings") or ()}
    fp = env.get(FINGERPRINT_ENV)
    c = t.get("constraints") or {}
    props = {
        "fingerprint": fp,
        "maxWallClockTime": _seconds(c.get("maxWallClockTime"), None),
        "retentionTime": _seconds(c.get("retentionTime"), DEFAULT_RETENTION_SECONDS),
        "maxTaskRetryCount": int(c.get("maxTaskRetryCount") or 0),
    }
    state = t.get("state")
    return Resource(
        Address.task(job_id, str(t["id"])),
        props,
        owner=job_owner if fp else None,
        state=str(state).lower() if state else None,
    )


_SECONDS: dict[tuple[str, float | None], float | None] = {}


def _seconds(text: Any, default: float | None) -> float | None:
    """`iso_seconds`, remembered: a listing holds the same few durations 100,000 times."""
    if not isinstance(text, str):
        return iso_seconds(text, default)
    key = (text, default)
    if key not in _SECONDS:
        if len(_SECONDS) > 1024:
            _SECONDS.clear()
        _SECONDS[key] = iso_seconds(text, default)
    return _SECONDS[key]


def dependencies(props: Mapping[str, Any], among: Collection[str]) -> list[str]:
    """The ids a task depends on that are in `among`, in the spec's order. Ranges are
    matched against `among` rather than expanded when that is shorter."""
    dep = props.get("dependsOn")
    if not dep:
        return []
    out = [d for d in dep["taskIds"] if d in among]
    for start, end in dep["taskIdRanges"]:
        if end - start < len(among):
            out.extend(str(i) for i in range(start, end + 1) if str(i) in among)
        else:
            out.extend(
                str(n) for n in sorted(int(i) for i in among if i.isdigit()) if start <= n <= end
            )
    return out


def _unchanged(t: TaskSpec, listed: Mapping[str, Any]) -> bool:
    """`compared_props(t) == listed`, field by field without building the dict: the
    converged plan of 100,000 tasks asks it 100,000 times."""
    c = t.constraints
    try:
        return (
            len(listed) == 4
            and listed["fingerprint"] == t.fingerprint
            and listed["maxTaskRetryCount"] == c.max_task_retry_count
            and listed["maxWallClockTime"] == seconds(c.max_wall_clock_time)
            and listed["retentionTime"] == seconds(c.retention_time, DEFAULT_RETENTION_SECONDS)
        )
    except KeyError:
        return False


def _replace(before: Resource, after: Resource, field: str, why: Reason) -> Change:
    """A task runs again: Batch tasks are immutable, so any forced change is delete + add."""
    return Change(Action.REPLACE, after.address, before, after, (field,), (field,), reasons=(why,))


class _Inputs:
    """What changed among the tasks' inputs, from the container and blob changes."""

    def __init__(self, ctx: PlanContext) -> None:
        pending = [
            c
            for k in (Kind.CONTAINER, Kind.BLOB)
            for c in ctx.changes.get(k, [])
            if c.action is not Action.NOOP
        ]
        self.blobs = {
            (c.address.parts[0], c.address.parts[1]) for c in pending if c.address.kind is Kind.BLOB
        }
        self.containers = {
            c.address.parts[0]
            for c in pending
            if c.address.kind is Kind.CONTAINER and c.action is Action.CREATE
        } | {key for key, _ in self.blobs}

    def why(self, t: TaskSpec, after: Resource, replaced: Collection[str]) -> Reason:
        for rf in t.resource_files:
            if rf.blob is not None and (rf.container, rf.blob) in self.blobs:
                return reason("inputBlobChanged", container=rf.container, blob=rf.blob)
            if rf.blob is None and rf.container in self.containers:
                return reason("inputContainerChanged", container=rf.container)
        for dep in dependencies(after.props, replaced):
            return reason("dependencyRunsAgain", task=dep)
        return reason("definitionChanged")


def plan(ctx: PlanContext) -> list[Change]:
    changes: list[Change] = []
    d, a = ctx.desired, ctx.actual
    fresh_jobs = fresh(ctx.changes.get(Kind.JOB, []))
    # Keyed by (job id, task id) tuples, which hash faster than addresses; a listed task's
    # address stands for the desired one (equal), so a kept task builds none.
    listed = {r.address.parts: r for r in a.of_kind(Kind.TASK)}
    desired_keys = {(t.job_id, t.id) for t in d.tasks}
    wanted_jobs = {j.id for j in d.jobs}
    # Owned tasks the spec no longer has; foreign ones are reported and left alone.
    # (Filtered before sorting: in a converged stack, nothing is left to sort.)
    leftover = [
        r
        for key, r in listed.items()
        if key not in desired_keys and key[0] in wanted_jobs and key[0] not in fresh_jobs
    ]
    for r in sorted(leftover, key=lambda r: r.address):
        if r.owner == ctx.stack:
            changes.append(Change(Action.DELETE, r.address, r, None, reasons=(reason("removed"),)))
        else:
            ctx.warnings.append(f"{r.address} was not created by bspec; left alone")
    names = container_names(d)
    logs = d.logs_container.name
    inputs = _Inputs(ctx)
    new = (reason("new", noun="task"),)
    replaced: defaultdict[str, set[str]] = defaultdict(set)  # job id -> ids run again
    stack = ctx.stack

    acting = acting_jobs(d)

    def added(t: TaskSpec) -> Resource:
        return Resource(t.address, props_of(t, names, logs, t.job_id in acting), owner=stack)

    for t in d.tasks:
        before = listed.get((t.job_id, t.id))
        addr = t.address if before is None else before.address
        again = replaced[t.job_id]
        if t.job_id in fresh_jobs:
            again.add(t.id)
            if absent(a.get(Address.job(t.job_id))) or before is None:
                changes.append(Change(Action.CREATE, addr, None, added(t), reasons=new))
            else:
                changes.append(_replace(before, added(t), "job", reason("jobReplacesTask")))
            continue
        if before is None:
            again.add(t.id)
            changes.append(Change(Action.CREATE, addr, None, added(t), reasons=new))
            continue
        if before.owner != stack:
            if not ctx.check_owner(before, "task"):
                continue
            again.add(t.id)
            changes.append(_replace(before, added(t), "fingerprint", reason("adoptedRunsAgain")))
            continue
        if before.props.get("fingerprint") != t.fingerprint:
            again.add(t.id)
            after = added(t)
            changes.append(_replace(before, after, "fingerprint", inputs.why(t, after, again)))
            continue
        # Kept or changed in place: the compared fields are all it needs (as a listed task).
        if _unchanged(t, before.props):  # the common case: the listed props serve as is
            changes.append(Change(Action.NOOP, addr, before, Resource(addr, before.props, stack)))
            continue
        kept_props = compared_props(t)
        kept = Resource(addr, kept_props, owner=stack)
        fields = DEF.diff(kept.props, before.props)
        if fields:
            why = (reason("taskConstraintsChanged", fields=fields),)
            changes.append(Change(Action.UPDATE, addr, before, kept, tuple(fields), reasons=why))
        else:
            changes.append(Change(Action.NOOP, addr, before, kept))
    return changes


def deleted_with_job(c: Change) -> bool:
    """A task replaced because its job is: the job's delete already took the old run."""
    return c.action is Action.REPLACE and c.forced_by == ("job",)


DEF = KindDef(
    kind=Kind.TASK,
    heading="Tasks",
    noun="task",
    nouns="tasks",
    fields=FIELDS,
    plan=plan,
    reads=(Kind.CONTAINER, Kind.BLOB, Kind.JOB),
    summarized=True,
    words={
        "taskConstraintsChanged": lambda v: "constraints changed: " + ", ".join(v["fields"]),
        "jobReplacesTask": lambda v: "its job is replaced",
        "adoptedRunsAgain": lambda v: "adopted: not created by bspec, runs again",
        "inputBlobChanged": lambda v: f"input blob {v['container']}/{v['blob']} changed",
        "inputContainerChanged": lambda v: f"input container {v['container']} changed",
        "dependencyRunsAgain": lambda v: f"depends on task {v['task']}, which runs again",
        "definitionChanged": lambda v: "task definition changed",
    },
)
