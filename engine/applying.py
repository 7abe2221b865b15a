"""Execute a Plan: the only module that changes the world.

Order: containers and blobs, then pool, then jobs, then tasks, deletes before adds
within each; independent work in parallel. Every step is idempotent (creates tolerate
"exists" with the same content, deletes tolerate "not found", being-deleted codes are
waited out), so an interrupted apply leaves nothing the next apply cannot converge.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from bspec.model import (
    Action,
    BlobSpec,
    Change,
    ContainerSpec,
    DesiredState,
    JobSpec,
    Kind,
    Plan,
    PoolSpec,
    TaskSpec,
    WhenIdle,
)
from bspec.planning import LOGS_KEY, POOL_RESIZE_FIELDS, container_names
from bspec.providers.storage import DEFAULT_SAS_TTL
from bspec.reporting import note, progress
from bspec.targets import Target

T = TypeVar("T")


@dataclass
class ApplyOptions:
    sas_ttl: timedelta = DEFAULT_SAS_TTL
    parallel_uploads: bool = True
    quiet: bool = False


@dataclass
class ApplyResult:
    bytes_uploaded: int = 0
    blobs_uploaded: int = 0
    tasks_submitted: int = 0
    tasks_deleted: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "bytesUploaded": self.bytes_uploaded,
            "blobsUploaded": self.blobs_uploaded,
            "tasksSubmitted": self.tasks_submitted,
            "tasksDeleted": self.tasks_deleted,
        }


def _parallel(fn: Callable[[T], Any], items: Sequence[T], workers: int = 8) -> None:
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        list(pool.map(fn, items))


class _Sas:
    """Fresh least-privilege SAS URLs for this apply, made once per (container, blob, perm)."""

    def __init__(self, target: Target, desired: DesiredState, ttl: timedelta) -> None:
        self.target = target
        self.names = container_names(desired)
        self.ttl = ttl
        self.cache: dict[tuple[str, str | None, str], str] = {}
        self.lock = threading.Lock()

    def __call__(self, key: str, blob: str | None, perm: str) -> str:
        k = (key, blob, perm)
        with self.lock:
            if k not in self.cache:
                self.cache[k] = self.target.storage.sas_url(
                    self.names.get(key, key), blob, perm, self.ttl
                )
            return self.cache[k]


def apply(
    plan: Plan, desired: DesiredState, target: Target, options: ApplyOptions | None = None
) -> ApplyResult:
    """Carry out `plan` (made from `desired`) against `target`."""
    opts = options or ApplyOptions()
    result = ApplyResult()
    sas = _Sas(target, desired, opts.sas_ttl)
    by_kind: dict[Kind, list[Change]] = defaultdict(list)
    for c in plan.pending():
        by_kind[c.address.kind].append(c)
    say = (lambda _t: None) if opts.quiet else note

    _containers(by_kind[Kind.CONTAINER], target)
    _blobs(by_kind[Kind.BLOB], desired, target, opts, result, say)
    _pools(by_kind[Kind.POOL], target, sas, say)
    _jobs(by_kind[Kind.JOB], target, say)
    _tasks(by_kind[Kind.TASK], by_kind[Kind.JOB], target, sas, result, say)
    return result


def _containers(changes: list[Change], target: Target) -> None:
    ensure = [c.after for c in changes if c.action in (Action.CREATE, Action.UPDATE)]
    _parallel(
        lambda spec: target.storage.ensure_container(spec.name),
        [s for s in ensure if isinstance(s, ContainerSpec)],
    )


def _blobs(
    changes: list[Change],
    desired: DesiredState,
    target: Target,
    opts: ApplyOptions,
    result: ApplyResult,
    say: Callable[[str], None],
) -> None:
    names = container_names(desired)
    deletes: dict[str, list[str]] = defaultdict(list)
    for c in changes:
        if c.action is Action.DELETE:
            key, name = c.address.parts
            deletes[names.get(key, key)].append(name)
    for container, blob_names in deletes.items():
        target.storage.delete_blobs(container, blob_names)
    uploads = [
        c.after
        for c in changes
        if c.action in (Action.CREATE, Action.UPDATE) and isinstance(c.after, BlobSpec)
    ]
    if not uploads:
        return
    items = [(names[b.container], b.name, b.path, b.md5) for b in uploads]
    total = sum(b.size for b in uploads)
    noun = "file" if len(items) == 1 else "files"
    with progress(f"Uploading {len(items):,} {noun}", total, "bytes") as advance:
        result.bytes_uploaded += target.storage.upload_many(
            items, progress=advance, parallel=opts.parallel_uploads
        )
    result.blobs_uploaded += len(items)


def _pools(changes: list[Change], target: Target, sas: _Sas, say: Callable[[str], None]) -> None:
    batch = target.batch
    gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    if gone:
        _parallel(batch.delete_pool, gone)
        say(f"Waiting for pool{'s' if len(gone) > 1 else ''} {', '.join(gone)} to be deleted")
        batch.wait_gone("pool", gone)
    for c in changes:
        spec = c.after
        if not isinstance(spec, PoolSpec):
            continue
        if c.action in (Action.CREATE, Action.REPLACE):
            batch.create_pool(spec, sas)
        elif c.action is Action.UPDATE:
            patch = [f for f in c.fields if f not in POOL_RESIZE_FIELDS]
            if patch:
                batch.patch_pool(spec, patch, sas)
            if any(f in c.fields for f in POOL_RESIZE_FIELDS):
                batch.resize_pool(
                    spec.id, spec.target_dedicated_nodes, spec.target_low_priority_nodes
                )


def _jobs(changes: list[Change], target: Target, say: Callable[[str], None]) -> None:
    batch = target.batch
    gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    if gone:
        _parallel(batch.delete_job, gone)
        say(f"Waiting for job{'s' if len(gone) > 1 else ''} {', '.join(gone)} to be deleted")
        batch.wait_gone("job", gone)
    creates = [c.after for c in changes if c.action in (Action.CREATE, Action.REPLACE)]
    _parallel(batch.create_job, [j for j in creates if isinstance(j, JobSpec)])
    updates = [c.after for c in changes if c.action is Action.UPDATE]
    _parallel(batch.update_job, [j for j in updates if isinstance(j, JobSpec)])


def _tasks(
    changes: list[Change],
    job_changes: list[Change],
    target: Target,
    sas: _Sas,
    result: ApplyResult,
    say: Callable[[str], None],
) -> None:
    batch = target.batch
    fresh_jobs = {
        c.address.parts[0] for c in job_changes if c.action in (Action.CREATE, Action.REPLACE)
    }
    # Deletes first: tasks gone from the spec, and the old runs of replaced tasks (a
    # replaced job already took its tasks with it).
    deletes = [
        c.address.parts
        for c in changes
        if c.action is Action.DELETE
        or (c.action is Action.REPLACE and c.address.parts[0] not in fresh_jobs)
    ]
    _parallel(lambda p: batch.delete_task(p[0], p[1]), deletes)
    result.tasks_deleted += len(deletes)
    updates = [c.after for c in changes if c.action is Action.UPDATE]
    _parallel(batch.update_task_constraints, [t for t in updates if isinstance(t, TaskSpec)])
    adds: dict[str, list[TaskSpec]] = defaultdict(list)
    for c in changes:
        if c.action in (Action.CREATE, Action.REPLACE) and isinstance(c.after, TaskSpec):
            adds[c.after.job_id].append(c.after)
    total = sum(len(v) for v in adds.values())
    if not total:
        return
    noun = "task" if total == 1 else "tasks"
    with progress(f"Submitting {total:,} {noun}", total) as advance:
        for job_id, tasks in adds.items():
            for wave in _waves(tasks):
                bodies = [batch.task_body(t, sas, LOGS_KEY) for t in wave]
                batch.add_tasks(job_id, bodies)
                advance(len(wave))
    result.tasks_submitted += total


def _waves(tasks: list[TaskSpec]) -> list[list[TaskSpec]]:
    """Tasks in submission waves: a task goes after the tasks it depends on that are being
    submitted too, so Batch never sees a dependency on a task it has not been given."""
    ids = {t.id for t in tasks}
    level: dict[str, int] = {}
    by_id = {t.id: t for t in tasks}

    def depth(t: TaskSpec, seen: frozenset[str] = frozenset()) -> int:
        if t.id in level:
            return level[t.id]
        deps = [d for d in _deps(t) if d in ids and d not in seen and d != t.id]
        lv = 0 if not deps else 1 + max(depth(by_id[d], seen | {t.id}) for d in deps)
        level[t.id] = lv
        return lv

    waves: dict[int, list[TaskSpec]] = defaultdict(list)
    for t in tasks:
        waves[depth(t)].append(t)
    return [waves[k] for k in sorted(waves)]


def _deps(t: TaskSpec) -> list[str]:
    out = list(t.depends_on)
    for a, b in t.depends_on_ranges:
        if b - a <= 100_000:
            out.extend(str(i) for i in range(a, b + 1))
    return out


def destroy(plan: Plan, target: Target, say: Callable[[str], None] = note) -> None:
    """Delete what `plan_destroy` listed: jobs, then pools, then containers (logs last)."""
    batch, storage = target.batch, target.storage
    jobs = [c.address.parts[0] for c in plan.pending() if c.address.kind is Kind.JOB]
    pools = [c.address.parts[0] for c in plan.pending() if c.address.kind is Kind.POOL]
    containers = [c for c in plan.pending() if c.address.kind is Kind.CONTAINER]
    if jobs:
        _parallel(batch.delete_job, jobs)
    if pools:
        _parallel(batch.delete_pool, pools)
    if jobs or pools:
        say("Waiting for deletes to finish")
        batch.wait_gone("job", jobs)
        batch.wait_gone("pool", pools)
    names = [
        str(c.before.props.get("name"))
        for c in containers
        if c.before is not None and c.address.parts[0] != LOGS_KEY
    ]
    _parallel(storage.delete_container, names)
    for c in containers:
        if c.address.parts[0] == LOGS_KEY and c.before is not None:
            storage.delete_container(str(c.before.props.get("name")))


def when_idle(desired: DesiredState, target: Target, say: Callable[[str], None] = note) -> str:
    """Once the spec's tasks have completed: what `pool.whenIdle` asks (scale the pool to
    zero, or delete it). The planner does not count the state this leaves as drift."""
    pool = desired.pool
    if pool is None or pool.when_idle is WhenIdle.KEEP:
        return "kept"
    current = {r.address.parts[0]: r for r in target.batch.read_pools()}
    r = current.get(pool.id)
    if r is None or r.state == "deleting" or r.owner != desired.stack:
        return "none"
    if pool.when_idle is WhenIdle.DELETE:
        say(f"All tasks completed: deleting pool {pool.id} (whenIdle: delete)")
        target.batch.delete_pool(pool.id)
        return "deleted"
    if r.props.get("targetDedicatedNodes") or r.props.get("targetLowPriorityNodes"):
        say(f"All tasks completed: scaling pool {pool.id} to zero (whenIdle: scaleToZero)")
        target.batch.resize_pool(pool.id, 0, 0)
        return "scaledToZero"
    return "none"
