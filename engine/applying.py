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

from bspec.kinds import KINDS
from bspec.kinds import task as task_kind
from bspec.model import LOGS_KEY, Action, Change, DesiredState, Kind, Plan, Resource, WhenIdle
from bspec.providers.batch import BatchProvider
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

    def __init__(self, target: Target, ttl: timedelta) -> None:
        self.target = target
        self.ttl = ttl
        self.cache: dict[tuple[str, str | None, str], str] = {}
        self.lock = threading.Lock()

    def __call__(self, container: str, blob: str | None, perm: str) -> str:
        k = (container, blob, perm)
        with self.lock:
            if k not in self.cache:
                self.cache[k] = self.target.storage.sas_url(container, blob, perm, self.ttl)
            return self.cache[k]


@dataclass
class _Run:
    """One apply's state, handed to each kind's step."""

    target: Target
    sas: _Sas
    opts: ApplyOptions
    result: ApplyResult
    say: Callable[[str], None]


def _afters(changes: Sequence[Change], *actions: Action) -> list[Resource]:
    return [c.after for c in changes if c.action in actions and c.after is not None]


def apply(plan: Plan, target: Target, options: ApplyOptions | None = None) -> ApplyResult:
    """Carry out `plan` against `target`: kind by kind in dependency order. The plan holds
    everything needed (each change's `after` props), so nothing else is read."""
    opts = options or ApplyOptions()
    run = _Run(
        target,
        _Sas(target, opts.sas_ttl),
        opts,
        ApplyResult(),
        (lambda _t: None) if opts.quiet else note,
    )
    by_kind: dict[Kind, list[Change]] = defaultdict(list)
    for c in plan.pending():
        by_kind[c.address.kind].append(c)
    for k in KINDS:
        _STEPS[k.kind](by_kind[k.kind], run)
    return run.result


def _containers(changes: list[Change], run: _Run) -> None:
    ensure = _afters(changes, Action.CREATE, Action.UPDATE)
    _parallel(lambda r: run.target.storage.ensure_container(str(r.props["name"])), ensure)


def _blobs(changes: list[Change], run: _Run) -> None:
    storage = run.target.storage
    deletes: dict[str, list[str]] = defaultdict(list)
    for c in changes:
        if c.action is Action.DELETE and c.before is not None:
            key, name = c.address.parts
            deletes[_container_of(c.before, key)].append(name)
    for container, blob_names in deletes.items():
        storage.delete_blobs(container, blob_names)
    uploads = _afters(changes, Action.CREATE, Action.UPDATE)
    if not uploads:
        return
    items = [
        (b.props["container"], b.address.parts[1], b.props["path"], b.props["md5"]) for b in uploads
    ]
    total = sum(int(b.props["size"]) for b in uploads)
    noun = "file" if len(items) == 1 else "files"
    with progress(f"Uploading {len(items):,} {noun}", total, "bytes") as advance:
        run.result.bytes_uploaded += storage.upload_many(
            items, progress=advance, parallel=run.opts.parallel_uploads
        )
    run.result.blobs_uploaded += len(items)


def _container_of(blob: Resource, key: str) -> str:
    """The real container name of a listed blob (its props), else its key."""
    return str(blob.props.get("container") or key)


def _pools(changes: list[Change], run: _Run) -> None:
    batch = run.target.batch
    gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    if gone:
        _parallel(batch.delete_pool, gone)
        run.say(f"Waiting for pool{'s' if len(gone) > 1 else ''} {', '.join(gone)} to be deleted")
        batch.wait_gone("pool", gone)
    for c in changes:
        if c.after is None:
            continue
        if c.action in (Action.CREATE, Action.REPLACE):
            batch.create_pool(c.after, run.sas)
        elif c.action is Action.UPDATE:
            batch.update_pool(c.after, c.fields, run.sas)


def _jobs(changes: list[Change], run: _Run) -> None:
    batch = run.target.batch
    gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    if gone:
        _parallel(batch.delete_job, gone)
        run.say(f"Waiting for job{'s' if len(gone) > 1 else ''} {', '.join(gone)} to be deleted")
        batch.wait_gone("job", gone)
    _parallel(batch.create_job, _afters(changes, Action.CREATE, Action.REPLACE))
    _parallel(batch.update_job, _afters(changes, Action.UPDATE))


def _tasks(changes: list[Change], run: _Run) -> None:
    batch = run.target.batch
    # Deletes first: tasks gone from the spec, and the old runs of replaced tasks (a
    # replaced job already took its tasks with it).
    deletes = [
        c.address.parts
        for c in changes
        if c.action is Action.DELETE
        or (c.action is Action.REPLACE and not task_kind.deleted_with_job(c))
    ]
    _parallel(lambda p: batch.delete_task(p[0], p[1]), deletes)
    run.result.tasks_deleted += len(deletes)
    _parallel(batch.update_task_constraints, _afters(changes, Action.UPDATE))
    adds: dict[str, list[Resource]] = defaultdict(list)
    for t in _afters(changes, Action.CREATE, Action.REPLACE):
        adds[t.address.parts[0]].append(t)
    total = sum(len(v) for v in adds.values())
    if not total:
        return
    noun = "task" if total == 1 else "tasks"
    with progress(f"Submitting {total:,} {noun}", total) as advance:
        for job_id, tasks in adds.items():
            for wave in _waves(tasks):
                batch.add_tasks(job_id, [batch.task_body(t, run.sas) for t in wave])
                advance(len(wave))
    run.result.tasks_submitted += total


_STEPS: dict[Kind, Callable[[list[Change], _Run], None]] = {
    Kind.CONTAINER: _containers,
    Kind.BLOB: _blobs,
    Kind.POOL: _pools,
    Kind.JOB: _jobs,
    Kind.TASK: _tasks,
}


def _waves(tasks: list[Resource]) -> list[list[Resource]]:
    """Tasks in submission waves: a task goes after the tasks it depends on that are being
    submitted too, so Batch never sees a dependency on a task it has not been given."""
    by_id = {t.address.parts[1]: t for t in tasks}
    level: dict[str, int] = {}

    def depth(tid: str, seen: frozenset[str] = frozenset()) -> int:
        if tid in level:
            return level[tid]
        deps = [
            d for d in task_kind.dependencies(by_id[tid].props, by_id) if d not in seen and d != tid
        ]
        lv = 0 if not deps else 1 + max(depth(d, seen | {tid}) for d in deps)
        level[tid] = lv
        return lv

    waves: dict[int, list[Resource]] = defaultdict(list)
    for t in tasks:
        waves[depth(t.address.parts[1])].append(t)
    return [waves[k] for k in sorted(waves)]


def reactivate_tasks(batch: BatchProvider, job_id: str, task_ids: Sequence[str]) -> None:
    """Run failed tasks again (`--rerun-failed`): a write, so it lives in the applier."""
    for task_id in task_ids:
        batch.reactivate_task(job_id, task_id)


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
