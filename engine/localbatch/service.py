"""The local Batch service without HTTP: its store, clock, resource modules and scheduler.

Built bottom-up so that no module imports one above it: tasks know nothing of jobs (a job
hears of completions through a hook), nodes nothing of pools (the same), and the scheduler
only asks the resource modules to change rows. The HTTP layer (`rest/`) calls into this.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from . import processes
from .autopools import AutoPools
from .autoscaling import AutoScaling
from .clock import Clock
from .containers import Containers
from .files import Files
from .jobs import Jobs
from .jobschedules import JobSchedules
from .leftovers import Journal, recover
from .nodes import Nodes
from .pools import Pools
from .preemption import Preemption
from .processes import Recorder
from .runs import Runtime
from .scheduler import Scheduler
from .settings import Settings
from .store import Store
from .tasks import Tasks


class Batch:
    """One account's Batch service: resources, their state machines, the processes."""

    def __init__(self, home: Path, account: str, settings: Settings) -> None:
        self.home = home
        self.account = account
        self.settings = settings
        self.clock = Clock(settings.clock)
        self.store = Store(home / "batch" / "batch.sqlite")
        self.runtime = Runtime(home / "batch" / "nodes", account, settings)
        self.tasks = Tasks(self.store, self.clock, self.runtime)
        self.jobs = Jobs(self.store, self.clock, self.runtime, self.tasks, settings)
        self.nodes = Nodes(self.store, self.clock, self.runtime, self.tasks)
        self.pools = Pools(self.store, self.clock, self.runtime, self.nodes, settings)
        self.autoscaling = AutoScaling(self.store, self.clock, self.pools, self.jobs, self.tasks)
        self.files = Files(self.runtime)
        self.autopools = AutoPools(self.pools)
        self.jobs.auto_pool = self.autopools.create
        self.jobs.listeners.append(self.autopools.job_changed)
        self.jobschedules = JobSchedules(
            self.store, self.clock, self.runtime, self.jobs, self.autopools, settings
        )
        self.scheduler = Scheduler(
            self.store,
            self.clock,
            self.runtime,
            settings,
            self.pools,
            self.nodes,
            self.jobs,
            self.tasks,
        )
        self.containers = Containers(home)
        self.pools.containers = self.nodes.containers = self.scheduler.containers = self.containers
        self.preemption = Preemption(self.store, self.clock, self.runtime, self.nodes, settings)
        self.journal: Journal | None = None
        self.recovered: list[int] = []  # PIDs of what a dead predecessor left, killed at start

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.store.commit_later(lambda commit: loop.call_later(0.005, commit))
        await self.clock.start()
        # What a predecessor that died left running goes before any task is requeued.
        journal, self.recovered = await asyncio.to_thread(recover, self.home / "batch")
        self.journal = journal
        recorder: Recorder = journal
        processes.recorder = recorder
        await self.containers.start()
        await self.scheduler.start()
        self.autoscaling.recover()
        self.jobschedules.recover()
        self.preemption.start()

    async def stop(self) -> None:
        self.preemption.stop()
        await self.scheduler.stop()
        await self.clock.stop()
        self.store.close()
        if self.journal is not None:
            if processes.recorder is self.journal:
                processes.recorder = None
            self.journal.close()
