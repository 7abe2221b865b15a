"""Providers: the SDK-facing side of the engine. `read_actual` gathers the actual state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bspec.model import ActualState, Address, DesiredState, Kind, Resource

if TYPE_CHECKING:
    from bspec.providers.batch import BatchProvider
    from bspec.providers.storage import StorageProvider


def read_actual(
    desired: DesiredState,
    batch: BatchProvider,
    storage: StorageProvider,
    *,
    tasks: bool = True,
    blobs: bool = True,
    schedules: bool = False,
    evaluate: bool = False,
) -> ActualState:
    """Everything the planner needs, in a handful of list calls made in parallel, through
    each kind's adapter (`providers.adapters.ADAPTERS`): containers (1), blobs (1 per spec
    container), pools (1), jobs (1), tasks (1 page of 1,000 per spec job that exists), job
    schedules (1, only when the spec has scheduled jobs or `schedules`: destroy); with
    `evaluate`, one evaluate-autoscale per existing autoscale pool of the spec."""
    from bspec import kinds
    from bspec.providers.adapters import ADAPTERS, ReadRun

    skip = {k for k, wanted in ((Kind.TASK, tasks), (Kind.BLOB, blobs)) if not wanted}
    resources: dict[Address, Resource] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        run = ReadRun(desired, batch, storage, pool, schedules=schedules, evaluate=evaluate)
        # Every kind starts its reads, in dependency order; then each is collected in the
        # same order, so a kind's collect sees what the kinds before it read.
        started = [(k.kind, ADAPTERS[k.kind].read(run)) for k in kinds.KINDS if k.kind not in skip]
        for kind, collect in started:
            run.read[kind] = collect()
            for r in run.read[kind]:
                resources[r.address] = r
    return ActualState(resources)


__all__ = ["Kind", "read_actual"]
