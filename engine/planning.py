"""Diff the desired state against the actual state into a Plan. Pure: no I/O at all.

The providers reduce what the services report to `Resource.props` in exactly the shapes
the `desired_*_props` functions below produce, so that a diff is a dict comparison:

    container  {"name"}
    blob       {"md5"}                                   owner = blob metadata bspec_stack
    pool       {"vmSize", "image", "taskSlotsPerNode", "targetDedicatedNodes",
                "targetLowPriorityNodes", "startTask", "metadata"}
               info: currentDedicatedNodes, currentLowPriorityNodes, allocationState
    job        {"poolId", "priority", "maxWallClockTime", "maxTaskRetryCount",
                "usesTaskDependencies", "metadata"}      state: active|completed|deleting|...
    task       {"fingerprint", "maxWallClockTime", "retentionTime", "maxTaskRetryCount"}
               owner = the job's owner when the task carries BSPEC_FINGERPRINT, else None

Durations are seconds (float) with Batch's defaults filled in (`None` is unlimited), and
resource files are `<container name>[/<blob>]` references: SAS tokens are never compared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bspec.errors import OwnershipError
from bspec.model import (
    Action,
    ActualState,
    Address,
    BlobSpec,
    Change,
    ContainerSpec,
    DesiredState,
    JobSpec,
    Kind,
    Plan,
    PoolSpec,
    Resource,
    ResourceFileSpec,
    StartTaskSpec,
    TaskSpec,
    WhenIdle,
)

LOGS_KEY = "_bspec"
DEFAULT_RETENTION_SECONDS = 7 * 24 * 3600.0  # Batch's default task retentionTime
UNLIMITED_SECONDS = 100 * 365 * 24 * 3600.0  # at or above this, a duration means "unlimited"

# Pool properties Batch changes on a live pool (PATCH) and ones it changes only when empty.
POOL_LIVE_FIELDS = ("startTask", "metadata")
POOL_EMPTY_ONLY_FIELDS = ("vmSize", "image", "taskSlotsPerNode")
POOL_RESIZE_FIELDS = ("targetDedicatedNodes", "targetLowPriorityNodes")
JOB_UPDATE_FIELDS = ("priority", "maxWallClockTime", "maxTaskRetryCount", "metadata")
TASK_CONSTRAINT_FIELDS = ("maxWallClockTime", "retentionTime", "maxTaskRetryCount")


@dataclass(frozen=True)
class PlanOptions:
    target: str = "local"
    adopt: bool = False


# --------------------------------------------------------------------------- normal forms


def seconds(value: timedelta | float | None, default: float | None = None) -> float | None:
    """A duration as seconds, `default` when absent, None when effectively unlimited."""
    if value is None:
        return default
    secs = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if secs >= UNLIMITED_SECONDS:
        return None
    return round(secs, 3)


def resource_file_ref(rf: ResourceFileSpec, container_names: Mapping[str, str]) -> dict[str, Any]:
    """A resource file as compared: where it reads from, never with what SAS."""
    name = container_names.get(rf.container, rf.container)
    source = f"{name}/{rf.blob}" if rf.blob else name
    return {
        "source": source,
        "prefix": rf.prefix,
        # A blob lands under its own name unless the spec says otherwise.
        "filePath": rf.file_path if rf.blob is None else (rf.file_path or rf.blob),
        "fileMode": rf.file_mode,
    }


def start_task_props(st: StartTaskSpec | None, names: Mapping[str, str]) -> dict[str, Any] | None:
    if st is None:
        return None
    return {
        "commandLine": st.command_line,
        "resourceFiles": [resource_file_ref(rf, names) for rf in st.resource_files],
        "environment": dict(st.environment),
        "elevated": st.elevated,
        "waitForSuccess": st.wait_for_success,
        "maxTaskRetryCount": st.max_task_retry_count,
    }


def container_names(desired: DesiredState) -> dict[str, str]:
    names = {c.key: c.name for c in desired.containers}
    names[LOGS_KEY] = desired.logs_container.name
    return names


def desired_pool_props(pool: PoolSpec, desired: DesiredState) -> dict[str, Any]:
    img = pool.image
    return {
        "vmSize": pool.vm_size.lower(),
        "image": {
            "publisher": img.publisher,
            "offer": img.offer,
            "sku": img.sku,
            "version": img.version,
            "nodeAgentSku": img.node_agent_sku,
        },
        "taskSlotsPerNode": pool.task_slots_per_node,
        "targetDedicatedNodes": pool.target_dedicated_nodes,
        "targetLowPriorityNodes": pool.target_low_priority_nodes,
        "startTask": start_task_props(pool.start_task, container_names(desired)),
        "metadata": dict(pool.metadata),
    }


def desired_job_props(job: JobSpec) -> dict[str, Any]:
    return {
        "poolId": job.pool_id,
        "priority": job.priority,
        "maxWallClockTime": seconds(job.constraints.max_wall_clock_time),
        "maxTaskRetryCount": job.constraints.max_task_retry_count,
        "usesTaskDependencies": job.uses_task_dependencies,
        "metadata": dict(job.metadata),
    }


def desired_task_props(task: TaskSpec) -> dict[str, Any]:
    c = task.constraints
    return {
        "fingerprint": task.fingerprint,
        "maxWallClockTime": seconds(c.max_wall_clock_time),
        "retentionTime": seconds(c.retention_time, DEFAULT_RETENTION_SECONDS),
        "maxTaskRetryCount": c.max_task_retry_count,
    }


def _diff(desired: Mapping[str, Any], actual: Mapping[str, Any], keys: Iterable[str]) -> list[str]:
    return [k for k in keys if desired.get(k) != actual.get(k)]


def _absent(r: Resource | None) -> bool:
    """Gone, or on its way out: either way the next thing to do is create it."""
    return r is None or r.state == "deleting"


# --------------------------------------------------------------------------- the planner


class _Planner:
    def __init__(self, desired: DesiredState, actual: ActualState, options: PlanOptions) -> None:
        self.d = desired
        self.a = actual
        self.o = options
        self.stack = desired.stack
        self.unowned: list[str] = []
        self.warnings: list[str] = []
        self.changed_blobs: set[tuple[str, str]] = set()
        self.changed_containers: set[str] = set()

    # ownership ----------------------------------------------------------------
    def _check_owner(self, r: Resource, what: str) -> bool:
        """True when `r` is ours or adopted; otherwise record a refusal."""
        if r.owner == self.stack:
            return True
        if self.o.adopt:
            return True
        holder = f"stack {r.owner!r}" if r.owner else "no bspec stack"
        self.unowned.append(f"{r.address} ({what}) exists and belongs to {holder}")
        return False

    # containers and blobs -----------------------------------------------------
    def containers(self) -> list[Change]:
        changes: list[Change] = []
        wanted = [*self.d.containers, self.d.logs_container]
        for spec in wanted:
            addr = Address.container(spec.key)
            before = self.a.get(addr)
            if _absent(before):
                changes.append(Change(Action.CREATE, addr, before, spec, reason="new container"))
                self.changed_containers.add(spec.key)
                continue
            assert before is not None
            self._check_owner(before, "container")
            if before.owner != self.stack:
                changes.append(
                    Change(
                        Action.UPDATE,
                        addr,
                        before,
                        spec,
                        fields=("owner",),
                        reason=f"adopted into stack {self.stack}",
                    )
                )
            else:
                changes.append(Change(Action.NOOP, addr, before, spec))
        return changes

    def blobs(self) -> list[Change]:
        changes: list[Change] = []
        desired_addrs = {b.address for b in self.d.blobs}
        for r in sorted(self.a.of_kind(Kind.BLOB), key=lambda r: r.address):
            if r.address in desired_addrs or r.owner != self.stack:
                continue  # not uploaded by this stack (task outputs): never pruned
            changes.append(
                Change(Action.DELETE, r.address, r, None, reason="no longer in the spec")
            )
            self.changed_blobs.add(r.address.parts)  # type: ignore[arg-type]
        for b in self.d.blobs:
            changes.append(self._blob(b))
        return changes

    def _blob(self, b: BlobSpec) -> Change:
        before = self.a.get(b.address)
        if before is None:
            self.changed_blobs.add((b.container, b.name))
            return Change(Action.CREATE, b.address, None, b, reason="new file")
        if before.props.get("md5") != b.md5:
            self.changed_blobs.add((b.container, b.name))
            return Change(
                Action.UPDATE, b.address, before, b, fields=("md5",), reason="content changed"
            )
        return Change(Action.NOOP, b.address, before, b)

    # pool -----------------------------------------------------------------------
    def pool(self, work_to_run: bool) -> list[Change]:
        changes: list[Change] = []
        spec = self.d.pool
        for r in sorted(self.a.of_kind(Kind.POOL), key=lambda r: r.address):
            if (
                r.owner == self.stack
                and r.state != "deleting"
                and (spec is None or r.address != Address.pool(spec.id))
            ):
                changes.append(
                    Change(
                        Action.DELETE,
                        r.address,
                        r,
                        None,
                        reason="no longer in the spec" + _destroys(r),
                    )
                )
        if spec is None:
            return changes
        addr = Address.pool(spec.id)
        before = self.a.get(addr)
        want = desired_pool_props(spec, self.d)
        if _absent(before):
            if spec.when_idle is WhenIdle.DELETE and not work_to_run:
                changes.append(
                    Change(
                        Action.NOOP, addr, None, spec, reason="deleted when idle; no work to run"
                    )
                )
            else:
                changes.append(Change(Action.CREATE, addr, before, spec, reason="new pool"))
            return changes
        assert before is not None
        self._check_owner(before, "pool")
        have = before.props
        if (
            spec.when_idle is not WhenIdle.KEEP
            and not work_to_run
            and have.get("targetDedicatedNodes") == 0
            and have.get("targetLowPriorityNodes") == 0
        ):
            # Scaled to zero by whenIdle: not drift until there is work again.
            want = {**want, "targetDedicatedNodes": 0, "targetLowPriorityNodes": 0}
        fields = _diff(
            want, have, (*POOL_EMPTY_ONLY_FIELDS, *POOL_LIVE_FIELDS, *POOL_RESIZE_FIELDS)
        )
        if before.owner != self.stack:
            fields.append("owner")
        if not fields:
            changes.append(Change(Action.NOOP, addr, before, spec))
            return changes
        fixed = tuple(f for f in POOL_EMPTY_ONLY_FIELDS if f in fields)
        nodes = _node_count(before)
        if fixed and nodes > 0:
            changes.append(
                Change(
                    Action.REPLACE,
                    addr,
                    before,
                    spec,
                    fields=tuple(fields),
                    forced_by=fixed,
                    reason=f"replaces pool: {', '.join(fixed)} can only change on an empty pool;"
                    f" destroys {nodes} node{'s' if nodes != 1 else ''},"
                    " requeues running tasks",
                )
            )
            return changes
        reasons = []
        if fixed:
            reasons.append(f"{', '.join(fixed)} changed in place (the pool has no nodes)")
        if "startTask" in fields:
            reasons.append("start task changed; it reaches existing nodes when they restart")
        if "metadata" in fields:
            reasons.append("metadata changed")
        resize = [f for f in POOL_RESIZE_FIELDS if f in fields]
        if resize:
            old = (have.get("targetDedicatedNodes", 0), have.get("targetLowPriorityNodes", 0))
            new = (want["targetDedicatedNodes"], want["targetLowPriorityNodes"])
            reasons.append(f"resize from {_nodes(old)} to {_nodes(new)}")
        if "owner" in fields:
            reasons.append(f"adopted into stack {self.stack}")
        changes.append(
            Change(
                Action.UPDATE, addr, before, spec, fields=tuple(fields), reason="; ".join(reasons)
            )
        )
        return changes

    # jobs -------------------------------------------------------------------------
    def jobs(self) -> tuple[list[Change], set[str]]:
        """Job changes, and the ids of jobs whose tasks all start over (created/replaced)."""
        changes: list[Change] = []
        fresh: set[str] = set()
        wanted = {j.id for j in self.d.jobs}
        for r in sorted(self.a.of_kind(Kind.JOB), key=lambda r: r.address):
            if r.owner == self.stack and r.state != "deleting" and r.address.parts[0] not in wanted:
                n = int(r.info.get("taskCount", 0) or 0)
                changes.append(
                    Change(
                        Action.DELETE,
                        r.address,
                        r,
                        None,
                        reason="no longer in the spec" + (f"; deletes its {n} tasks" if n else ""),
                    )
                )
        for spec in self.d.jobs:
            addr = Address.job(spec.id)
            before = self.a.get(addr)
            if _absent(before):
                fresh.add(spec.id)
                changes.append(Change(Action.CREATE, addr, before, spec, reason="new job"))
                continue
            assert before is not None
            self._check_owner(before, "job")
            want = desired_job_props(spec)
            have = before.props
            fields = _diff(want, have, ("poolId", "usesTaskDependencies", *JOB_UPDATE_FIELDS))
            if "usesTaskDependencies" in fields and not want["usesTaskDependencies"]:
                fields.remove("usesTaskDependencies")  # harmless: dependencies stay allowed
            forced: list[str] = [f for f in ("poolId", "usesTaskDependencies") if f in fields]
            if before.state in ("completed", "terminating"):
                forced.append("state")
            if before.owner != self.stack:
                fields.append("owner")
            if forced:
                fresh.add(spec.id)
                n = sum(1 for _ in self.d.tasks_of(spec.id))
                why = {
                    "poolId": "the pool it runs on changed",
                    "usesTaskDependencies": "task dependencies switched on",
                    "state": f"the job was {before.state} outside bspec",
                }
                changes.append(
                    Change(
                        Action.REPLACE,
                        addr,
                        before,
                        spec,
                        fields=tuple(dict.fromkeys([*fields, *forced])),
                        forced_by=tuple(forced),
                        reason=f"job replaced ({'; '.join(why[f] for f in forced)}):"
                        f" {n} task{'s' if n != 1 else ''} rerun",
                    )
                )
            elif fields:
                changes.append(
                    Change(
                        Action.UPDATE,
                        addr,
                        before,
                        spec,
                        fields=tuple(fields),
                        reason=_job_reason(fields, self.stack),
                    )
                )
            else:
                changes.append(Change(Action.NOOP, addr, before, spec))
        return changes, fresh

    # tasks ------------------------------------------------------------------------
    def tasks(self, fresh_jobs: set[str]) -> list[Change]:
        changes: list[Change] = []
        desired_addrs = {t.address for t in self.d.tasks}
        wanted_jobs = {j.id for j in self.d.jobs}
        # Owned tasks the spec no longer has; foreign ones are reported and left alone.
        for r in sorted(self.a.of_kind(Kind.TASK), key=lambda r: r.address):
            job_id = r.address.parts[0]
            if r.address in desired_addrs or job_id not in wanted_jobs or job_id in fresh_jobs:
                continue
            if r.owner == self.stack:
                changes.append(
                    Change(Action.DELETE, r.address, r, None, reason="no longer in the spec")
                )
            else:
                self.warnings.append(f"{r.address} was not created by bspec; left alone")
        replaced: set[str] = set()  # task ids (per job) whose runs start over
        for t in self.d.tasks:
            before = self.a.get(t.address)
            if t.job_id in fresh_jobs:
                replaced.add(f"{t.job_id}/{t.id}")
                if _absent(self.a.get(Address.job(t.job_id))) or before is None:
                    changes.append(Change(Action.CREATE, t.address, None, t, reason="new task"))
                else:
                    changes.append(_task_replace(t, before, "job", "its job is replaced"))
                continue
            if before is None:
                replaced.add(f"{t.job_id}/{t.id}")
                changes.append(Change(Action.CREATE, t.address, None, t, reason="new task"))
                continue
            if before.owner != self.stack:
                if not self._check_owner(before, "task"):
                    continue
                replaced.add(f"{t.job_id}/{t.id}")
                changes.append(
                    _task_replace(
                        t, before, "fingerprint", "adopted: not created by bspec, runs again"
                    )
                )
                continue
            want = desired_task_props(t)
            if before.props.get("fingerprint") != t.fingerprint:
                replaced.add(f"{t.job_id}/{t.id}")
                changes.append(
                    _task_replace(t, before, "fingerprint", self._task_reason(t, replaced))
                )
                continue
            fields = _diff(want, before.props, TASK_CONSTRAINT_FIELDS)
            if fields:
                changes.append(
                    Change(
                        Action.UPDATE,
                        t.address,
                        before,
                        t,
                        fields=tuple(fields),
                        reason="constraints changed: " + ", ".join(fields),
                    )
                )
            else:
                changes.append(Change(Action.NOOP, t.address, before, t))
        return changes

    def _task_reason(self, t: TaskSpec, replaced: set[str]) -> str:
        for rf in t.resource_files:
            if rf.blob is not None and (rf.container, rf.blob) in self.changed_blobs:
                return f"input blob {rf.container}/{rf.blob} changed"
            if rf.blob is None and (
                rf.container in self.changed_containers
                or any(c == rf.container for c, _ in self.changed_blobs)
            ):
                return f"input container {rf.container} changed"
        for dep in _dependencies(t):
            if f"{t.job_id}/{dep}" in replaced:
                return f"depends on task {dep}, which runs again"
        return "task definition changed"

    def work_to_run(self, task_changes: list[Change]) -> bool:
        """Whether any of the spec's tasks has to run (again): the pool is needed."""
        for c in task_changes:
            if c.action in (Action.CREATE, Action.REPLACE):
                return True
            if (
                c.action in (Action.NOOP, Action.UPDATE)
                and c.before is not None
                and c.before.state != "completed"
            ):
                return True
        return False


def _task_replace(t: TaskSpec, before: Resource, field: str, reason: str) -> Change:
    """A task runs again: Batch tasks are immutable, so any forced change is delete + add."""
    return Change(
        Action.REPLACE, t.address, before, t, fields=(field,), forced_by=(field,), reason=reason
    )


def _dependencies(t: TaskSpec) -> list[str]:
    deps = list(t.depends_on)
    for start, end in t.depends_on_ranges:
        deps.extend(str(i) for i in range(start, end + 1))
    return deps


def _node_count(r: Resource) -> int:
    return int(r.info.get("currentDedicatedNodes", 0) or 0) + int(
        r.info.get("currentLowPriorityNodes", 0) or 0
    )


def _nodes(pair: tuple[Any, Any]) -> str:
    dedicated, low = pair
    text = f"{dedicated} node{'s' if dedicated != 1 else ''}"
    if low:
        text += f" + {low} low-priority"
    return text


def _destroys(r: Resource) -> str:
    n = _node_count(r)
    return f"; destroys {n} node{'s' if n != 1 else ''}" if n else ""


def _job_reason(fields: list[str], stack: str) -> str:
    parts = []
    if "priority" in fields:
        parts.append("priority changed")
    if "maxWallClockTime" in fields or "maxTaskRetryCount" in fields:
        parts.append("constraints changed")
    if "metadata" in fields:
        parts.append("metadata changed")
    if "owner" in fields:
        parts.append(f"adopted into stack {stack}")
    return "; ".join(parts)


def plan(desired: DesiredState, actual: ActualState, options: PlanOptions | None = None) -> Plan:
    """The changes that take `actual` to `desired`, no-ops included, in apply order.

    Raises OwnershipError when a resource the spec names exists and is not the stack's
    (unless `options.adopt`).
    """
    options = options or PlanOptions()
    p = _Planner(desired, actual, options)
    containers = p.containers()
    blobs = p.blobs()
    jobs, fresh = p.jobs()
    tasks = p.tasks(fresh)
    pool = p.pool(p.work_to_run(tasks))
    if p.unowned:
        raise OwnershipError(
            "refusing to take over resources this stack does not own:\n  " + "\n  ".join(p.unowned),
            hint="rename them in the spec, or pass --adopt to take them over",
        )
    ordered = [
        *_deletes_first(containers),
        *_deletes_first(blobs),
        *_deletes_first(pool),
        *_deletes_first(jobs),
        *_deletes_first(tasks),
    ]
    return Plan(desired.stack, options.target, tuple(ordered), tuple(p.warnings))


def _deletes_first(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.action is Action.DELETE] + [
        c for c in changes if c.action is not Action.DELETE
    ]


def plan_destroy(desired: DesiredState, actual: ActualState, target: str = "local") -> Plan:
    """Delete everything that carries the stack's tag, in reverse order: jobs, pool,
    containers (the logs container last). Tasks go with their jobs."""
    stack = desired.stack
    changes: list[Change] = []
    for kind in (Kind.JOB, Kind.POOL, Kind.CONTAINER):
        rs = sorted(
            (r for r in actual.of_kind(kind) if r.owner == stack and r.state != "deleting"),
            key=lambda r: (r.address.parts[0] == LOGS_KEY, r.address),
        )
        for r in rs:
            reason = "owned by stack " + stack
            if kind is Kind.POOL:
                reason += _destroys(r)
            if kind is Kind.JOB and r.info.get("taskCount"):
                reason += f"; deletes its {r.info['taskCount']} tasks"
            if kind is Kind.CONTAINER:
                reason += "; deletes every blob in it"
            changes.append(Change(Action.DELETE, r.address, r, None, reason=reason))
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
        entry: dict[str, Any] = {"props": dict(r.props), "owner": r.owner}
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
