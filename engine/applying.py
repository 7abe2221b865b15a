"""Execute a Plan: the only module that changes the world.

Order: the kinds' (`kinds.KINDS`): containers and blobs, then pools, then jobs, then tasks,
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
from bspec.model import LOGS_KEY, Change, DesiredState, Kind, Plan, PoolSpec, WhenIdle
from bspec.providers.adapters import ADAPTERS, ApplyResult, ApplyRun
from bspec.providers.adapters import parallel as _parallel
from bspec.providers.batch import BatchProvider
from bspec.providers.schedules import delete_schedule, wait_schedules_gone
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
    # Once every task is in: what waits for them (a job's onAllTasksComplete). A crash
    # before this leaves a difference the next plan shows and this step completes.
    for k in kinds.KINDS:
        finish = getattr(ADAPTERS[k.kind], "finish", None)
        if finish is not None:
            finish(by_kind[k.kind], run)
    return run.result


def reactivate_tasks(batch: BatchProvider, job_id: str, task_ids: Sequence[str]) -> None:
    """Run failed tasks again (`--rerun-failed`): a write, so it lives in the applier."""
    for task_id in task_ids:
        batch.reactivate_task(job_id, task_id)


def terminate_task(batch: BatchProvider, job_id: str, task_id: str) -> None:
    """Stop a running task (the dashboard's terminate): a write, so it lives here."""
    batch.terminate_task(job_id, task_id)


def resize_pool(batch: BatchProvider, pool_id: str, dedicated: int, low: int) -> None:
    """Resize a pool by hand (the dashboard's resize, or to zero): a write, so it lives here."""
    batch.resize_pool(pool_id, dedicated, low)


def destroy(plan: Plan, target: Target, say: Callable[[str], None] = note) -> None:
    """Delete what `plan_destroy` listed: jobs, then pools, then containers (logs last)."""
    batch, storage = target.batch, target.storage
    jobs = [c.address.parts[0] for c in plan.pending() if c.address.kind is Kind.JOB]
    pools = [c.address.parts[0] for c in plan.pending() if c.address.kind is Kind.POOL]
    containers = [c for c in plan.pending() if c.address.kind is Kind.CONTAINER]
    # job schedules (with the jobs of their runs) go before the pools their runs use
    schedules = [c.address.parts[0] for c in plan.pending() if c.address.kind == "schedule"]
    if schedules:
        _parallel(lambda i: delete_schedule(batch, i), schedules)
        wait_schedules_gone(batch, schedules)
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
    zero, or delete it). The planner does not count the state this leaves as drift.
    The one pool's outcome ("kept" without one); `when_idle_pools` does several."""
    pool = desired.pool
    if pool is None:
        return "kept"
    return when_idle_pools(desired, target, [pool], say)[pool.id]


def when_idle_pools(
    desired: DesiredState,
    target: Target,
    pools: Sequence[PoolSpec],
    say: Callable[[str], None] = note,
) -> dict[str, str]:
    """`whenIdle` of `pools`, whose jobs' tasks have all completed: per pool id, what it
    did (kept, scaledToZero, deleted, none). One list request when any pool acts."""
    # an autoscale pool's formula sizes it (Batch refuses a resize): scaleToZero keeps it
    def keeps(p: PoolSpec) -> bool:
        return p.when_idle is WhenIdle.KEEP or (
            p.autoscale is not None and p.when_idle is WhenIdle.SCALE_TO_ZERO
        )

    out = {p.id: "kept" for p in pools if keeps(p)}
    acting = [p for p in pools if not keeps(p)]
    if not acting:
        return out
    current = {r.address.parts[0]: r for r in target.batch.read_pools()}
    for pool in acting:
        done = "All tasks completed"
        if len(desired.pools) > 1:
            done = f"The tasks of the jobs on pool {pool.id} completed"
        r = current.get(pool.id)
        if r is None or r.state == "deleting" or r.owner != desired.stack:
            out[pool.id] = "none"
        elif pool.when_idle is WhenIdle.DELETE:
            say(f"{done}: deleting pool {pool.id} (whenIdle: delete)")
            target.batch.delete_pool(pool.id)
            out[pool.id] = "deleted"
        elif r.props.get("targetDedicatedNodes") or r.props.get("targetLowPriorityNodes"):
            say(f"{done}: scaling pool {pool.id} to zero (whenIdle: scaleToZero)")
            target.batch.resize_pool(pool.id, 0, 0)
            out[pool.id] = "scaledToZero"
        else:
            out[pool.id] = "none"
    return out


__all__ = [
    "ApplyOptions",
    "ApplyResult",
    "apply",
    "destroy",
    "reactivate_tasks",
    "when_idle",
    "when_idle_pools",
]
