"""What is running right now: task runs, node runtimes, the process cap, node folders.

In memory only (the rows in the store are the truth after a restart). The resource modules
read it to stop what runs on a node, a pool or a job; the scheduler adds to it. It imports
no resource module, so every one of them can use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from . import agent
from .settings import Settings
from .store import Row
from .tokens import JobTokens

log = logging.getLogger("bspec.localbatch.runs")

BOOT_STEP = 0.05  # seconds per node state on the way up (creating, starting): real time


@dataclass
class Running:
    """A task run in flight; `disposition` says who stopped it and what its row became."""

    run: agent.TaskRun
    pool: str
    node: str
    slots: int
    job: str = ""
    task: str = ""
    job_id: str = ""
    task_id: str = ""
    pid: int | None = None
    disposition: str = ""  # "" | requeue | terminate | delete | shutdown
    prepared: bool = False  # nothing to download: shown as running from dispatch on
    aio: asyncio.Task[None] | None = None
    deadline: Any = None  # the clock's Timer for maxWallClockTime, if any
    exclusive: bool = False  # a job manager task with runExclusive: its node runs nothing else


@dataclass
class NodeRuntime:
    """What is happening on a node besides its tasks: booting, its start task, leaving."""

    boot: asyncio.Task[None] | None = None
    start_run: agent.TaskRun | None = None
    leaving: bool = False
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    job_runs: set[agent.TaskRun] = field(default_factory=set)  # preparation, release

    def halt(self) -> None:
        """Stop booting and kill the start task and the jobs' preparation and release tasks."""
        if self.start_run:
            self.start_run.kill()
        for run in list(self.job_runs):
            run.kill()
        if self.boot and not self.boot.done():
            self.boot.cancel()


class Runtime:
    """The service's live process state, shared by the resource modules and the scheduler."""

    def __init__(self, nodes_root: Path, account: str, settings: Settings) -> None:
        self.nodes_root = nodes_root
        self.account = account
        self.settings = settings
        self.base_url = "http://127.0.0.1"
        self.running: dict[tuple[str, str], Running] = {}
        self.nodes: dict[tuple[str, str], NodeRuntime] = {}
        self.processes = asyncio.Semaphore(settings.max_processes)
        self.process_cap = settings.max_processes
        self.stopping = False
        self.http: aiohttp.ClientSession | None = None
        self.wake: Callable[[], None] = lambda: None  # the scheduler's, once it runs
        self._background: set[asyncio.Task[Any]] = set()
        self.tokens = JobTokens()  # tasks' authentication tokens, by job

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    @property
    def background(self) -> set[asyncio.Task[Any]]:
        return self._background

    def node_runtime(self, pool_key: str, node_key: str) -> NodeRuntime:
        return self.nodes.setdefault((pool_key, node_key), NodeRuntime())

    def on_node(self, pool_key: str, node_key: str) -> list[Running]:
        return [e for e in self.running.values() if e.pool == pool_key and e.node == node_key]

    def in_pool(self, pool_key: str) -> list[Running]:
        return [e for e in self.running.values() if e.pool == pool_key]

    def in_job(self, job_key: str) -> list[Running]:
        return [e for e in self.running.values() if e.job == job_key]

    # ------------------------------------------------------------------ folders

    def node_dir(self, pool: str, node: str) -> Path:
        return self.nodes_root / pool / node

    def env_node(self, pool: Row, node: Row) -> dict[str, str]:
        """The AZ_BATCH_* variables every task and start task on NODE gets."""
        root = self.node_dir(pool.key, node.key)
        return {
            "AZ_BATCH_ACCOUNT_NAME": self.account,
            "AZ_BATCH_ACCOUNT_URL": self.base_url,
            "AZ_BATCH_POOL_ID": pool.body["id"],
            "AZ_BATCH_NODE_ID": node.body["id"],
            "AZ_BATCH_NODE_IS_DEDICATED": str(node.body.get("isDedicated", True)).lower(),
            "AZ_BATCH_NODE_ROOT_DIR": str(root),
            "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
            "AZ_BATCH_NODE_STARTUP_DIR": str(root / "startup"),
            "AZ_BATCH_NODE_MOUNTS_DIR": str(root / "fsmounts"),
            "AZ_BATCH_TASK_USER": "_azbatch",
            "AZ_BATCH_TASK_USER_IDENTITY": "PoolNonAdmin",
        }


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())
