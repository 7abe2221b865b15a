"""Providers: the SDK-facing side of the engine. `read_actual` gathers the actual state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from bspec.errors import NotFoundError
from bspec.model import LOGS_KEY, ActualState, Address, DesiredState, Kind, Resource

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
) -> ActualState:
    """Everything the planner needs, in a handful of list calls made in parallel:
    containers (1), blobs (1 per spec container), pools (1), jobs (1), tasks (1 page of
    1,000 per spec job that exists)."""
    names = {c.name: c.key for c in desired.containers}
    names[desired.logs_container.name] = LOGS_KEY
    resources: dict[Address, Resource] = {}
    with ThreadPoolExecutor(max_workers=4) as pool:
        f_containers = pool.submit(storage.read_containers, names)
        f_pools = pool.submit(batch.read_pools)
        f_jobs = pool.submit(batch.read_jobs)
        f_blobs = (
            [pool.submit(storage.read_blobs, c.name, c.key) for c in desired.containers]
            if blobs
            else []
        )
        containers = f_containers.result()
        present = {r.props["name"] for r in containers if r.state != "deleting"}
        for r in containers:
            resources[r.address] = r
        for f in f_blobs:
            try:
                rs = f.result()
            except NotFoundError:
                rs = []  # the container does not exist (yet)
            for r in rs:
                if r.address.parts[0] in {names.get(n) for n in present}:
                    resources[r.address] = r
        for r in f_pools.result():
            resources[r.address] = r
        jobs = f_jobs.result()
        for r in jobs:
            resources[r.address] = r
        if tasks:
            wanted = {j.id for j in desired.jobs}
            f_tasks = [
                pool.submit(batch.read_tasks, r.address.parts[0], r.owner)
                for r in jobs
                if r.address.parts[0] in wanted and r.state != "deleting"
            ]
            for f in f_tasks:
                for r in f.result():
                    resources[r.address] = r
    return ActualState(resources)


__all__ = ["Kind", "read_actual"]
