"""Execute a Plan: the only module that changes the world.

Order: the kinds' (`kinds.KINDS`): containers and blobs, then pool, then jobs, then tasks,
deletes before adds within each; independent work in parallel. What each kind's changes
become is its adapter's (`providers.adapters`). Every step is idempotent (creates tolerate
"exists" with the same content, deletes tolerate "not found", being-deleted codes are
waited out), so an interrupted apply leaves nothing the next apply cannot converge.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from bspec import kinds
from bspec.model import LOGS_KEY, Change, DesiredState, Kind, Plan, WhenIdle
from bspec.providers.adapters import ADAPTERS, ApplyResult, ApplyRun
from bspec.providers.adapters import parallel as _parallel
from bspec.providers.batch import BatchProvider
from bspec.providers.storage import DEFAULT_SAS_TTL
from bspec.reporting import note, progress
from bspec.targets import Target


@dataclass
class ApplyOptions:
    sas_ttl: timedelta = DEFAULT_SAS_TTL
    parallel_uploads: bool = True
    quiet: bool = False


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


def apply(plan: Plan, target: Target, options: ApplyOptions | None = None) -> ApplyResult:
    """Carry out `plan` against `target`: kind by kind in dependency order, each through its
    adapter (`providers.adapters.ADAPTERS`). The plan holds everything needed (each
    change's `after` props), so nothing else is read."""
    opts = options or ApplyOptions()
    run = ApplyRun(
        target.batch,
        target.storage,
        _Sas(target, opts.sas_ttl),
        (lambda _t: None) if opts.quiet else note,
        progress,
        opts.parallel_uploads,
    )
    by_kind: dict[Kind, list[Change]] = defaultdict(list)
    for c in plan.pending():
        by_kind[c.address.kind].append(c)
    for k in kinds.KINDS:
        ADAPTERS[k.kind].apply(by_kind[k.kind], run)
    return run.result


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
    if pool.autoscale is not None and pool.when_idle is WhenIdle.SCALE_TO_ZERO:
        return "kept"  # its formula sizes an autoscale pool (Batch refuses a resize)
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


__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "apply",
    "destroy",
    "reactivate_tasks",
    "when_idle",
]
