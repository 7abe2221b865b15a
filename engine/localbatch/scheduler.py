"""Nodes, start tasks and task dispatch: what the Batch service does behind the REST API.

Everything runs on the event loop's thread, so a read-modify-write of a row with no `await`
in between is atomic. Process-level work goes through the node agent (`agent.TaskRun`); this
module decides when and where: nodes join (creating -> starting -> waitingforstarttask ->
idle) and leave by their deallocation option, active tasks go to free slots (taskSlotsPerNode,
requiredSlots, dependencies, maxParallelTasks) under a global cap on processes, outcomes become
executionInfo with retries, and completed tasks' folders go after their retention time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import logging
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp

from . import agent
from .resources import duration_seconds, iso, new_etag, parse_iso
from .store import Row, Store

if TYPE_CHECKING:
    from .server import Settings

log = logging.getLogger("bspec.localbatch.scheduler")

BOOT_STEP = 0.05  # seconds per node state on the way up (creating, starting)
NODE_COUNT_STATES = {
    "creating": "creating",
    "idle": "idle",
    "offline": "offline",
    "preempted": "preempted",
    "rebooting": "rebooting",
    "reimaging": "reimaging",
    "running": "running",
    "starting": "starting",
    "starttaskfailed": "startTaskFailed",
    "leavingpool": "leavingPool",
    "unknown": "unknown",
    "unusable": "unusable",
    "waitingforstarttask": "waitingForStartTask",
    "deallocated": "deallocated",
    "deallocating": "deallocating",
    "upgradingos": "upgradingOS",
}
SCHEDULABLE = ("idle", "running")


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


@dataclass
class NodeRuntime:
    """What is happening on a node besides its tasks: booting, its start task, leaving."""

    boot: asyncio.Task[None] | None = None
    start_run: agent.TaskRun | None = None
    leaving: bool = False
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


class Scheduler:
    def __init__(self, store: Store, nodes_root: Path, account: str, settings: Settings) -> None:
        self.store = store
        self.nodes_root = nodes_root
        self.account = account
        self.settings = settings
        self.base_url = "http://127.0.0.1"
        self.running: dict[tuple[str, str], Running] = {}
        self.nodes: dict[tuple[str, str], NodeRuntime] = {}
        self.processes = asyncio.Semaphore(settings.max_processes)
        self._process_cap = settings.max_processes
        self._wake = asyncio.Event()
        self._stopping = False
        self._background: set[asyncio.Task[Any]] = set()
        self._retention: list[tuple[float, str, str]] = []
        self._no_action: dict[str, bool] = {}  # job key -> onAllTasksComplete is noaction
        self._loop_task: asyncio.Task[None] | None = None
        self._janitor_task: asyncio.Task[None] | None = None
        self._ran: dict[tuple[str, str], list[int]] = {}  # node -> [tasks run, succeeded]
        self.http: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the HTTP session, recover from a previous run (as a node reboot would)."""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        self._recover()
        self._loop_task = asyncio.create_task(self._loop())
        self._janitor_task = asyncio.create_task(self._janitor())
        self.wake()

    async def stop(self) -> None:
        """Kill every process group; rows stay as they are so a restart requeues them."""
        self._stopping = True
        for task in (self._loop_task, self._janitor_task):
            if task:
                task.cancel()
        for entry in list(self.running.values()):
            entry.disposition = "shutdown"
            entry.run.kill()
        for rt in self.nodes.values():
            if rt.start_run:
                rt.start_run.kill()
            if rt.boot and not rt.boot.done():
                rt.boot.cancel()
        pending = [e.aio for e in self.running.values() if e.aio] + list(self._background)
        if pending:
            await asyncio.wait(pending, timeout=5)
        try:
            self._settle_nodes()  # totals of the tasks that ended since the last dispatch
        except Exception:
            log.exception("recording node totals failed")
        if self.http:
            await self.http.close()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)
        return task

    def wake(self) -> None:
        self._wake.set()

    def _recover(self) -> None:
        for row in self.store.iter_all("task"):
            state = row.body.get("state")
            if state in ("preparing", "running"):
                self._requeue_row(row)
            elif (
                state == "completed" and row.meta.get("cleanup_at") and not row.meta.get("cleaned")
            ):
                heapq.heappush(self._retention, (row.meta["cleanup_at"], row.parent, row.key))
        for job in self.store.iter_all("job"):
            state = job.body["state"]
            if state == "deleting":
                self._spawn(self._finish_job_delete(job.key))
            elif state == "terminating":
                self._complete_job(
                    job, job.body.get("executionInfo", {}).get("terminateReason", "UserTerminate")
                )
            elif state in ("disabling", "enabling"):
                self._set_job_state(job, "disabled" if state == "disabling" else "active")
        for pool in self.store.iter_all("pool"):
            if pool.body["state"] == "deleting":
                self._spawn(self._finish_pool_delete(pool.key))
                continue
            for node in self.store.iter("node", pool.key):
                if node.body["state"] == "leavingpool":
                    self._drop_node(pool.key, node.key)
                else:  # a reboot: nothing runs on it any more
                    node.body["runningTasksCount"] = node.body["runningTaskSlotsCount"] = 0
                    self.store.put(node)
                    self._boot_node(pool.key, node.key, reboot=True)
            self.pool_changed(pool.key, "requeue")

    # ------------------------------------------------------------------ status & counts

    def status(self) -> dict[str, Any]:
        pools = []
        for pool in self.store.iter_all("pool"):
            nodes = [
                {"id": n.body["id"], "state": n.body["state"]}
                for n in self.store.iter("node", pool.key)
            ]
            pools.append({"id": pool.body["id"], "state": pool.body["state"], "nodes": nodes})
        running = [
            {
                "jobId": e.job_id,
                "taskId": e.task_id,
                "nodeId": self._node_id(e.pool, e.node),
                "pid": e.pid,
            }
            for e in self.running.values()
            if not e.disposition
        ]
        return {"pools": pools, "runningTasks": running}

    def _node_id(self, pool: str, node: str) -> str:
        row = self.store.get("node", pool, node)
        return str(row.body["id"]) if row else node

    def node_counts(self, pool: Row) -> dict[str, Any]:
        dedicated = dict.fromkeys(NODE_COUNT_STATES.values(), 0)
        low = dict.fromkeys(NODE_COUNT_STATES.values(), 0)
        for node in self.store.iter("node", pool.key):
            counts = dedicated if node.body.get("isDedicated", True) else low
            counts[NODE_COUNT_STATES.get(node.body["state"], "unknown")] += 1
        dedicated["total"] = sum(dedicated.values())
        low["total"] = sum(low.values())
        return {"poolId": pool.body["id"], "dedicated": dedicated, "lowPriority": low}

    def task_counts(self, job: str) -> dict[str, Any]:
        counts = dict.fromkeys(("active", "running", "completed", "succeeded", "failed"), 0)
        slots = dict(counts)
        cur = self.store.db.execute(
            "SELECT state, result, COUNT(*), SUM(slots) FROM resources"
            " WHERE kind='task' AND parent=? GROUP BY 1, 2",
            (job,),
        )
        for state, result, n, s in cur.fetchall():
            s = int(s or n)
            names = ["running"] if state in ("preparing", "running") else [state]
            if state == "completed":
                names.append("succeeded" if result == "success" else "failed")
            for name in names:
                if name in counts:
                    counts[name] += int(n)
                    slots[name] += s
        return {"taskCounts": counts, "taskSlotCounts": slots}

    # ------------------------------------------------------------------ folders

    def node_dir(self, pool: str, node: str) -> Path:
        return self.nodes_root / pool / node

    def task_dir(self, row: Row) -> Path | None:
        where = row.meta.get("dir")
        return Path(where) if where else None

    def _env_node(self, pool: Row, node: Row) -> dict[str, str]:
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

    # ------------------------------------------------------------------ pools and nodes

    def pool_changed(self, pool_key: str, option: str) -> None:
        """Bring the pool's nodes to its targets (a create, a resize, a restart)."""
        pool = self.store.get("pool", "", pool_key)
        if pool is None or pool.body["state"] != "active":
            return
        nodes = [n for n in self.store.iter("node", pool_key) if n.body["state"] != "leavingpool"]
        for dedicated, target in (
            (True, pool.body["targetDedicatedNodes"]),
            (False, pool.body["targetLowPriorityNodes"]),
        ):
            mine = [n for n in nodes if n.body.get("isDedicated", True) == dedicated]
            for _ in range(target - len(mine)):
                self._add_node(pool, dedicated)
            if len(mine) > target:
                order = {
                    "starttaskfailed": 0,
                    "creating": 1,
                    "starting": 2,
                    "waitingforstarttask": 3,
                    "idle": 4,
                    "running": 5,
                }
                mine.sort(
                    key=lambda n: (
                        order.get(n.body["state"], 0),
                        -len(self._on_node(pool_key, n.key)),
                    )
                )
                for node in mine[: len(mine) - target]:
                    self._remove_node(pool_key, node.key, option)
        self._refresh_pool(pool_key)
        if pool.body["allocationState"] == "resizing":
            self._spawn(self._settle(pool_key))

    async def _settle(self, pool_key: str) -> None:
        """A resize finishes once new nodes are allocated and removed ones are gone."""
        await asyncio.sleep(BOOT_STEP * 2)
        while True:
            pool = self.store.get("pool", "", pool_key)
            if pool is None or pool.body["allocationState"] != "resizing":
                return
            nodes = list(self.store.iter("node", pool_key))
            if not any(n.body["state"] in ("leavingpool", "creating") for n in nodes):
                pool.body["allocationState"] = "steady"
                pool.body["allocationStateTransitionTime"] = iso()
                self._touch(pool)
                self.store.put(pool)
                self._refresh_pool(pool_key)
                return
            await asyncio.sleep(BOOT_STEP)

    def stop_resize(self, pool_key: str) -> None:
        pool = self.store.get("pool", "", pool_key)
        if pool is None or pool.body["allocationState"] != "resizing":
            return
        nodes = [n for n in self.store.iter("node", pool_key) if n.body["state"] != "leavingpool"]
        pool.body["targetDedicatedNodes"] = sum(1 for n in nodes if n.body.get("isDedicated", True))
        pool.body["targetLowPriorityNodes"] = len(nodes) - pool.body["targetDedicatedNodes"]
        pool.body["allocationState"] = "steady"
        pool.body["allocationStateTransitionTime"] = iso()
        pool.body["resizeErrors"] = [
            {
                "code": "ResizeStopped",
                "message": "Desired number of "
                "dedicated nodes could not be allocated as the resize "
                "was stopped",
            }
        ]
        self._touch(pool)
        self.store.put(pool)

    def remove_nodes(self, pool_key: str, node_keys: list[str], option: str) -> None:
        pool = self.store.get("pool", "", pool_key)
        if pool is None:
            return
        pool.body["allocationState"] = "resizing"
        pool.body["allocationStateTransitionTime"] = iso()
        for key in node_keys:
            node = self.store.get("node", pool_key, key)
            if node is None or node.body["state"] == "leavingpool":
                continue
            if node.body.get("isDedicated", True):
                pool.body["targetDedicatedNodes"] = max(0, pool.body["targetDedicatedNodes"] - 1)
            else:
                pool.body["targetLowPriorityNodes"] = max(
                    0, pool.body["targetLowPriorityNodes"] - 1
                )
        self._touch(pool)
        self.store.put(pool)
        for key in node_keys:
            self._remove_node(pool_key, key.lower(), option)
        self._spawn(self._settle(pool_key))

    def _add_node(self, pool: Row, dedicated: bool) -> None:
        node_id = f"tvmps_{secrets.token_hex(20)}_{'d' if dedicated else 'p'}"
        stamp = iso()
        index = sum(1 for _ in self.store.iter("node", pool.key)) + 4
        body: dict[str, Any] = {
            "id": node_id,
            "url": f"{self.base_url}/pools/{pool.body['id']}/nodes/{node_id}",
            "state": "creating",
            "schedulingState": "enabled",
            "stateTransitionTime": stamp,
            "allocationTime": stamp,
            "ipAddress": f"10.0.{index // 250}.{index % 250 + 4}",
            "affinityId": f"TVM:{node_id}",
            "vmSize": pool.body["vmSize"],
            "totalTasksRun": 0,
            "runningTasksCount": 0,
            "runningTaskSlotsCount": 0,
            "totalTasksSucceeded": 0,
            "isDedicated": dedicated,
            "nodeAgentInfo": {"version": "1.0.0-bspec-local", "lastUpdateTime": stamp},
        }
        row = Row("node", pool.key, node_id, body, {})
        self.store.put(row)
        root = self.node_dir(pool.key, row.key)
        for sub in ("shared", "startup", "workitems", "fsmounts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._boot_node(pool.key, row.key, reboot=False)

    def _boot_node(self, pool_key: str, node_key: str, *, reboot: bool) -> None:
        rt = self.nodes.setdefault((pool_key, node_key), NodeRuntime())
        if rt.boot and not rt.boot.done():
            rt.boot.cancel()
        rt.boot = self._spawn(self._boot(pool_key, node_key, reboot))

    async def _boot(self, pool_key: str, node_key: str, reboot: bool) -> None:
        if not reboot:
            await asyncio.sleep(BOOT_STEP)
        self._set_node(pool_key, node_key, state="starting")
        await asyncio.sleep(BOOT_STEP)
        pool = self.store.get("pool", "", pool_key)
        node = self.store.get("node", pool_key, node_key)
        if pool is None or node is None or pool.body["state"] != "active":
            return
        node.body["lastBootTime"] = iso()
        start = pool.body.get("startTask")
        if start:
            node.body["startTask"] = start
        else:
            node.body.pop("startTask", None)
            node.body.pop("startTaskInfo", None)
        self.store.put(node)
        if not start:
            self._set_node(pool_key, node_key, state="idle")
            self.wake()
            return
        if start.get("waitForSuccess", True):
            self._set_node(pool_key, node_key, state="waitingforstarttask")
            ok = await self._run_start_task(pool_key, node_key, start)
            self._set_node(pool_key, node_key, state="idle" if ok else "starttaskfailed")
            self.wake()
        else:
            self._set_node(pool_key, node_key, state="idle")
            self.wake()
            await self._run_start_task(pool_key, node_key, start)

    async def _run_start_task(self, pool_key: str, node_key: str, start: dict[str, Any]) -> bool:
        """Run the start task with its retries; record startTaskInfo; True when it succeeded."""
        assert self.http is not None
        retries = int(start.get("maxTaskRetryCount", 0) or 0)
        attempt = 0
        root = self.node_dir(pool_key, node_key)
        while True:
            pool = self.store.get("pool", "", pool_key)
            node = self.store.get("node", pool_key, node_key)
            if pool is None or node is None:
                return False
            env = self._env_node(pool, node)
            env["AZ_BATCH_TASK_DIR"] = str(root / "startup")
            env["AZ_BATCH_TASK_WORKING_DIR"] = str(root / "startup" / "wd")
            for setting in start.get("environmentSettings") or []:
                env[str(setting["name"])] = str(setting.get("value", ""))
            (root / "startup" / "wd").mkdir(parents=True, exist_ok=True)
            execution = agent.Execution(
                command_line=start["commandLine"],
                task_dir=root / "startup",
                working_dir=root / "startup" / "wd",
                environment=env,
                resource_files=tuple(_resource_files(start.get("resourceFiles"))),
            )
            run = agent.TaskRun(execution, self.http, self.processes)
            rt = self.nodes.setdefault((pool_key, node_key), NodeRuntime())
            rt.start_run = run
            info: dict[str, Any] = {"state": "running", "startTime": iso(), "retryCount": attempt}
            if attempt:
                info["lastRetryTime"] = info["startTime"]
            self._set_node(pool_key, node_key, startTaskInfo=info)
            outcome = await run.run()
            rt.start_run = None
            if self._stopping or outcome.stage == "killed":
                return False
            info = dict(info)
            info.update(
                {"state": "completed", "endTime": iso(outcome.end_time), "result": outcome.result}
            )
            if outcome.start_time:
                info["startTime"] = iso(outcome.start_time)
            if outcome.exit_code is not None:
                info["exitCode"] = outcome.exit_code
            if outcome.failure_info:
                info["failureInfo"] = outcome.failure_info
            self._set_node(pool_key, node_key, startTaskInfo=info)
            if outcome.result == "success":
                return True
            if outcome.stage != "process" or (retries != -1 and attempt >= retries):
                return False
            attempt += 1

    def _set_node(self, pool_key: str, node_key: str, **changes: Any) -> Row | None:
        node = self.store.get("node", pool_key, node_key)
        if node is None:
            return None
        state = changes.get("state")
        if state and state != node.body["state"]:
            if node.body["state"] == "leavingpool":
                changes.pop("state")
            else:
                node.body["stateTransitionTime"] = iso()
        node.body.update(changes)
        self.store.put(node)
        return node

    def _remove_node(self, pool_key: str, node_key: str, option: str) -> None:
        """Take a node out: requeue/terminate its tasks now, or let them finish first."""
        node = self.store.get("node", pool_key, node_key)
        if node is None:
            return
        self._set_node(pool_key, node_key, state="leavingpool")
        rt = self.nodes.setdefault((pool_key, node_key), NodeRuntime())
        rt.leaving = True
        if rt.boot and not rt.boot.done():
            rt.boot.cancel()
        if rt.start_run:
            rt.start_run.kill()
        entries = self._on_node(pool_key, node_key)
        if option in ("requeue", "terminate"):
            for entry in entries:
                self._stop_entry(entry, option)
        self._spawn(self._leave(pool_key, node_key, entries))

    async def _leave(self, pool_key: str, node_key: str, entries: list[Running]) -> None:
        waits = [e.aio for e in entries if e.aio]
        if waits:
            await asyncio.wait(waits)
        await asyncio.sleep(BOOT_STEP)
        self._drop_node(pool_key, node_key)
        await asyncio.to_thread(shutil.rmtree, self.node_dir(pool_key, node_key), True)
        self._refresh_pool(pool_key)

    def _drop_node(self, pool_key: str, node_key: str) -> None:
        self.store.delete("node", pool_key, node_key)
        self.nodes.pop((pool_key, node_key), None)
        self._refresh_pool(pool_key)

    def _refresh_pool(self, pool_key: str) -> None:
        pool = self.store.get("pool", "", pool_key)
        if pool is None:
            return
        nodes = list(self.store.iter("node", pool_key))
        dedicated = sum(1 for n in nodes if n.body.get("isDedicated", True))
        if (pool.body["currentDedicatedNodes"], pool.body["currentLowPriorityNodes"]) != (
            dedicated,
            len(nodes) - dedicated,
        ):
            pool.body["currentDedicatedNodes"] = dedicated
            pool.body["currentLowPriorityNodes"] = len(nodes) - dedicated
            self.store.put(pool)

    def _on_node(self, pool_key: str, node_key: str) -> list[Running]:
        return [e for e in self.running.values() if e.pool == pool_key and e.node == node_key]

    def reboot_node(self, pool_key: str, node_key: str, option: str) -> None:
        entries = self._on_node(pool_key, node_key)
        rt = self.nodes.setdefault((pool_key, node_key), NodeRuntime())
        if rt.start_run:
            rt.start_run.kill()
        if rt.boot and not rt.boot.done():
            rt.boot.cancel()
        self._set_node(pool_key, node_key, state="rebooting")
        if option in ("requeue", "terminate"):
            for entry in entries:
                self._stop_entry(entry, option)

        async def reboot() -> None:
            waits = [e.aio for e in entries if e.aio]
            if waits:
                await asyncio.wait(waits)
            await asyncio.sleep(BOOT_STEP)
            self._boot_node(pool_key, node_key, reboot=True)

        self._spawn(reboot())

    def set_scheduling(self, pool_key: str, node_key: str, enabled: bool, option: str) -> None:
        """Enable or disable scheduling on a node; disabling may requeue or end its tasks."""
        self._set_node(pool_key, node_key, schedulingState="enabled" if enabled else "disabled")
        if not enabled and option in ("requeue", "terminate"):
            for entry in self._on_node(pool_key, node_key):
                self._stop_entry(entry, option)
        self.wake()

    def delete_pool(self, pool_key: str) -> None:
        for entry in [e for e in self.running.values() if e.pool == pool_key]:
            self._stop_entry(entry, "requeue")
        for (pk, _nk), rt in self.nodes.items():
            if pk == pool_key:
                if rt.start_run:
                    rt.start_run.kill()
                if rt.boot and not rt.boot.done():
                    rt.boot.cancel()
        self._spawn(self._finish_pool_delete(pool_key))

    async def _finish_pool_delete(self, pool_key: str) -> None:
        started = time.monotonic()
        waits = [e.aio for e in self.running.values() if e.pool == pool_key and e.aio]
        if waits:
            await asyncio.wait(waits)
        await asyncio.sleep(max(0.0, self.settings.delete_delay - (time.monotonic() - started)))
        await asyncio.to_thread(shutil.rmtree, self.nodes_root / pool_key, True)
        self.store.delete_children("node", pool_key)
        self.store.delete("pool", "", pool_key)
        for key in [k for k in self.nodes if k[0] == pool_key]:
            self.nodes.pop(key, None)

    # ------------------------------------------------------------------ jobs

    @staticmethod
    def _touch(row: Row) -> None:
        row.body["eTag"] = new_etag()
        row.body["lastModified"] = iso()

    def _set_job_state(self, job: Row, state: str) -> None:
        if job.body["state"] != state:
            stamp = iso()
            job.body["previousState"] = job.body["state"]
            job.body["previousStateTransitionTime"] = job.body["stateTransitionTime"]
            job.body["state"] = state
            job.body["stateTransitionTime"] = stamp
        self._touch(job)
        self.store.put(job)

    def job_changed(self, job_key: str) -> None:
        self._check_job_done(job_key)
        self.wake()

    def tasks_added(self, _job_key: str) -> None:
        self.wake()

    def delete_job(self, job_key: str) -> None:
        job = self.store.get("job", "", job_key)
        if job is None:
            return
        self._set_job_state(job, "deleting")
        for entry in [e for e in self.running.values() if e.job == job_key]:
            self._stop_entry(entry, "delete")
        self._spawn(self._finish_job_delete(job_key))

    async def _finish_job_delete(self, job_key: str) -> None:
        started = time.monotonic()
        job = self.store.get("job", "", job_key)
        waits = [e.aio for e in self.running.values() if e.job == job_key and e.aio]
        if waits:
            await asyncio.wait(waits)
        await asyncio.sleep(max(0.0, self.settings.delete_delay - (time.monotonic() - started)))
        dirs = [Path(r.meta["dir"]) for r in self.store.iter("task", job_key) if r.meta.get("dir")]
        job_dirs = {d.parent.parent for d in dirs}
        self.store.delete_children("task", job_key)
        self.store.delete("job", "", job_key)
        self._retention = [r for r in self._retention if r[1] != job_key]
        heapq.heapify(self._retention)
        if job is not None:
            for path in job_dirs:
                await asyncio.to_thread(shutil.rmtree, path, True)

    def terminate_job(self, job_key: str, reason: str) -> None:
        job = self.store.get("job", "", job_key)
        if job is None:
            return
        self._set_job_state(job, "terminating")
        for entry in [e for e in self.running.values() if e.job == job_key]:
            self._stop_entry(entry, "terminate")
        self._complete_job(job, reason)

    def _complete_job(self, job: Row, reason: str) -> None:
        job.body.setdefault("executionInfo", {"startTime": job.body["creationTime"]})
        job.body["executionInfo"]["endTime"] = iso()
        job.body["executionInfo"]["terminateReason"] = reason
        self._set_job_state(job, "completed")

    def disable_job(self, job_key: str, option: str) -> None:
        job = self.store.get("job", "", job_key)
        if job is None:
            return
        self._set_job_state(job, "disabled")
        if option in ("requeue", "terminate"):
            for entry in [e for e in self.running.values() if e.job == job_key]:
                self._stop_entry(entry, option)

    def enable_job(self, job_key: str) -> None:
        job = self.store.get("job", "", job_key)
        if job is None:
            return
        self._set_job_state(job, "active")
        self.wake()

    def _check_job_done(self, job_key: str, *, known: bool = False) -> None:
        """onAllTasksComplete=terminatejob: complete the job once no task is left to run.
        `known`: the caller is a task completion, so a job known to be `noaction` is skipped
        without reading it."""
        if known and self._no_action.get(job_key):
            return
        job = self.store.get("job", "", job_key)
        if job is not None:
            self._no_action[job_key] = job.body.get("onAllTasksComplete") != "terminatejob"
        if job is None or job.body["state"] not in ("active", "disabled"):
            return
        if job.body.get("onAllTasksComplete") != "terminatejob":
            return
        states = self.store.count_states("task", job_key)
        if any(n for s, n in states.items() if s != "completed"):
            return
        self._complete_job(job, "AllTasksComplete")

    # ------------------------------------------------------------------ tasks

    def _requeue_row(self, row: Row) -> None:
        stamp = iso()
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info["requeueCount"] = int(info.get("requeueCount", 0)) + 1
        info["lastRequeueTime"] = stamp
        self._set_task_state(row, "active")
        row.body.pop("nodeInfo", None)
        self.store.put(row)

    def _set_task_state(self, row: Row, state: str) -> None:
        if row.body["state"] != state:
            row.body["previousState"] = row.body["state"]
            row.body["previousStateTransitionTime"] = row.body["stateTransitionTime"]
            row.body["state"] = state
            row.body["stateTransitionTime"] = iso()
        self._touch(row)

    def _stop_entry(self, entry: Running, disposition: str) -> None:
        """Stop a running task and record now what it becomes (its process dies shortly)."""
        if entry.disposition:
            return
        entry.disposition = disposition
        entry.run.kill()
        row = self.store.get("task", entry.job, entry.task)
        if row is None:
            return
        if disposition == "requeue":
            self._requeue_row(row)
            self.wake()
        elif disposition == "terminate":
            self._finish_terminated(row)

    def _finish_terminated(self, row: Row) -> None:
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info["endTime"] = iso()
        info["result"] = "failure"
        info["failureInfo"] = agent.failure_info("TaskEnded", "Task Was Ended by User Request")
        self._set_task_state(row, "completed")
        self._schedule_retention(row)
        self.store.put(row)
        self._check_job_done(row.parent)

    def terminate_task(self, job_key: str, task_key: str) -> None:
        entry = self.running.get((job_key, task_key))
        if entry is not None and not entry.disposition:
            self._stop_entry(entry, "terminate")
            return
        row = self.store.get("task", job_key, task_key)
        if row is not None and row.body["state"] != "completed":
            self._finish_terminated(row)

    def delete_task(self, job_key: str, task_key: str) -> None:
        row = self.store.get("task", job_key, task_key)
        entry = self.running.get((job_key, task_key))
        if entry is not None:
            self._stop_entry(entry, "delete")
        self.store.delete("task", job_key, task_key)
        if row is not None and row.meta.get("dir") and entry is None:
            self._spawn(asyncio.to_thread(shutil.rmtree, row.meta["dir"], True))
        self._check_job_done(job_key)
        self.wake()

    def reactivate_task(self, job_key: str, task_key: str) -> None:
        row = self.store.get("task", job_key, task_key)
        if row is None:
            return
        requeues = row.body.get("executionInfo", {}).get("requeueCount", 0)
        row.body["executionInfo"] = {"retryCount": 0, "requeueCount": requeues}
        row.body.pop("nodeInfo", None)
        row.meta.pop("cleanup_at", None)
        self._set_task_state(row, "active")
        self.store.put(row)
        self.wake()

    def task_constraints_changed(self, _row: Row) -> None:
        self.wake()

    # ------------------------------------------------------------------ dispatch

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                self._dispatch()
            except Exception:
                log.exception("dispatch failed")
                await asyncio.sleep(0.5)
            finally:
                try:
                    self._settle_nodes()
                except Exception:
                    log.exception("recording node totals failed")

    def _dispatch(self) -> None:
        if self._process_cap != self.settings.max_processes:
            self._process_cap = self.settings.max_processes
            self.processes = asyncio.Semaphore(self._process_cap)
        free_procs = (
            self.settings.max_processes
            - len(self.running)
            - sum(1 for rt in self.nodes.values() if rt.start_run is not None)
        )
        if free_procs <= 0:
            return
        jobs = [j for j in self.store.iter_all("job", state="active")]
        if not jobs:
            return
        jobs.sort(key=lambda j: (-int(j.body.get("priority", 0)), j.seq))
        pools: dict[str, tuple[Row, list[list[Any]]] | None] = {}
        for job in jobs:
            pool_key = str(job.body["poolInfo"]["poolId"]).lower()
            if pool_key not in pools:
                pools[pool_key] = self._free_slots(pool_key)
            found = pools[pool_key]
            if found is None:
                continue
            pool, nodes = found
            if not any(n[1] > 0 for n in nodes):
                continue
            limit = int(job.body.get("maxParallelTasks", -1))
            in_job = sum(1 for e in self.running.values() if e.job == job.key)
            deps: dict[str, bool] | None = None
            cursor = 0
            while free_procs > 0 and any(n[1] > 0 for n in nodes):
                if limit > 0 and in_job >= limit:
                    break
                free = sum(max(0, n[1]) for n in nodes)
                rows = list(
                    self.store.iter(
                        "task",
                        job.key,
                        after=cursor,
                        state=("eq", "active"),
                        limit=min(64, min(free, free_procs) + 4),
                    )
                )
                if not rows:
                    break
                for row in rows:
                    cursor = row.seq
                    if (job.key, row.key) in self.running:
                        continue
                    if row.body.get("dependsOn"):
                        if deps is None:
                            deps = self._succeeded(job.key)
                        if not _deps_met(row.body["dependsOn"], deps):
                            continue
                    need = int(row.body.get("requiredSlots", 1))
                    node = _pick(
                        nodes,
                        need,
                        pool.body.get("taskSchedulingPolicy", {}).get("nodeFillType", "spread"),
                    )
                    if node is None:
                        continue
                    node[1] -= need
                    self._start_task(job, row, pool, node[0], need)
                    free_procs -= 1
                    in_job += 1
                    if (
                        free_procs <= 0
                        or (limit > 0 and in_job >= limit)
                        or not any(n[1] > 0 for n in nodes)
                    ):
                        break

    def _free_slots(self, pool_key: str) -> tuple[Row, list[list[Any]]] | None:
        pool = self.store.get("pool", "", pool_key)
        if pool is None or pool.body["state"] != "active":
            return None
        per_node = int(pool.body.get("taskSlotsPerNode", 1))
        used: dict[str, int] = {}
        for e in self.running.values():
            if e.pool == pool_key:
                used[e.node] = used.get(e.node, 0) + e.slots
        nodes = [
            [n, per_node - used.get(n.key, 0)]
            for n in self.store.iter("node", pool_key)
            if n.body["state"] in SCHEDULABLE and n.body.get("schedulingState") == "enabled"
        ]
        return pool, nodes

    def _succeeded(self, job_key: str) -> dict[str, bool]:
        cur = self.store.db.execute(
            "SELECT key, state, result FROM resources WHERE kind='task' AND parent=?", (job_key,)
        )
        return {k: (s == "completed" and r == "success") for k, s, r in cur.fetchall()}

    def _start_task(self, job: Row, row: Row, pool: Row, node: Row, slots: int) -> None:
        assert self.http is not None
        root = self.node_dir(pool.key, node.key)
        # Paths as strings first: pathlib costs a few microseconds an operation, per task.
        job_rel = f"workitems/{job.body['id']}/job-1"
        rel = f"{job_rel}/{row.body['id']}"
        task_dir = root / rel
        task_str = str(task_dir)
        work = task_dir / "wd"
        env = self._env_node(pool, node)
        env.update(
            {
                "AZ_BATCH_JOB_ID": job.body["id"],
                "AZ_BATCH_TASK_ID": row.body["id"],
                "AZ_BATCH_TASK_DIR": task_str,
                "AZ_BATCH_TASK_WORKING_DIR": task_str + "/wd",
                "AZ_BATCH_CERTIFICATES_DIR": task_str + "/certs",
                "AZ_BATCH_JOB_PREP_DIR": f"{root}/{job_rel}/jobpreparation",
                "AZ_BATCH_JOB_PREP_WORKING_DIR": f"{root}/{job_rel}/jobpreparation/wd",
            }
        )
        for setting in job.body.get("commonEnvironmentSettings") or []:
            env[str(setting["name"])] = str(setting.get("value", ""))
        for setting in row.body.get("environmentSettings") or []:
            env[str(setting["name"])] = str(setting.get("value", ""))
        try:
            wall = duration_seconds(row.body.get("constraints", {}).get("maxWallClockTime"))
        except ValueError:
            wall = None
        execution = agent.Execution(
            command_line=row.body["commandLine"],
            task_dir=task_dir,
            working_dir=work,
            environment=env,
            resource_files=tuple(_resource_files(row.body.get("resourceFiles"))),
            output_files=tuple(_output_files(row.body.get("outputFiles"))),
            max_wall_clock_time=wall,
        )
        run = agent.TaskRun(execution, self.http, self.processes)
        entry = Running(
            run, pool.key, node.key, slots, job.key, row.key, job.body["id"], row.body["id"]
        )
        self.running[(job.key, row.key)] = entry
        node_url = node.body["url"]
        row.body["nodeInfo"] = {
            "affinityId": node.body["affinityId"],
            "nodeUrl": node_url,
            "poolId": pool.body["id"],
            "nodeId": node.body["id"],
            "taskRootDirectory": rel,
            "taskRootDirectoryUrl": f"{node_url}/files/{rel}",
        }
        row.meta["dir"] = task_str
        row.meta.pop("cleaned", None)
        # With no resource files there is nothing to prepare: the process starts right away,
        # so the task goes straight to running (one write less per task).
        entry.prepared = not execution.resource_files
        if entry.prepared:
            row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})[
                "startTime"
            ] = iso()
        self._set_task_state(row, "running" if entry.prepared else "preparing")
        self.store.put(row)
        # NODE was read by this dispatch, with no await since: current, no need to read it again.
        if node.body["state"] == "idle":
            node.body["state"] = "running"
            node.body["stateTransitionTime"] = iso()
            self.store.put(node)
        entry.aio = asyncio.create_task(self._execute(entry))

    def _node_ran(self, pool_key: str, node_key: str, succeeded: bool) -> None:
        """Count a finished task for its node; `_settle_nodes` writes it after the next
        dispatch, which the task's end wakes."""
        counts = self._ran.setdefault((pool_key, node_key), [0, 0])
        counts[0] += 1
        counts[1] += 1 if succeeded else 0

    def _settle_nodes(self) -> None:
        """After a dispatch, write what the tasks that ended since did to their nodes: the
        totals, and idle for a node the dispatch gave nothing new. One read and one write per
        node and dispatch, not per task, and a node that gets a new task at once is not written
        idle and then running again. The running counts are derived when a node is read
        (`shape_node`)."""
        ran, self._ran = self._ran, {}
        for (pool_key, node_key), (total, succeeded) in ran.items():
            node = self.store.get("node", pool_key, node_key)
            if node is None:
                continue
            node.body["totalTasksRun"] += total
            node.body["totalTasksSucceeded"] += succeeded
            if node.body["state"] == "running" and not self._on_node(pool_key, node_key):
                node.body["state"] = "idle"
                node.body["stateTransitionTime"] = iso()
            self.store.put(node)

    def shape_node(self, row: Row) -> dict[str, Any]:
        """A node as the API shows it: the running counts come from what runs right now."""
        body = dict(row.body)
        entries = self._on_node(row.parent, row.key)
        body["runningTasksCount"] = len(entries)
        body["runningTaskSlotsCount"] = sum(e.slots for e in entries)
        return body

    async def _execute(self, entry: Running) -> None:
        key = (entry.job, entry.task)

        async def on_running(pid: int) -> None:
            entry.pid = pid
            if entry.disposition or self._stopping or entry.prepared:
                return
            row = self.store.get("task", entry.job, entry.task)
            if row is None:
                return
            info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
            info["startTime"] = iso()
            self._set_task_state(row, "running")
            self.store.put(row)

        try:
            outcome = await entry.run.run(on_running)
        except Exception as exc:  # a bug in the agent must not wedge the slot
            log.exception("task run failed")
            outcome = agent.Outcome(
                "failure",
                None,
                agent.failure_info(
                    "TaskEnded", f"The node agent failed: {exc}", category="servererror"
                ),
                None,
                _utcnow(),
                "killed",
            )
        finally:
            self.running.pop(key, None)
        if self._stopping:
            return
        self._node_ran(
            entry.pool, entry.node, succeeded=outcome.result == "success" and not entry.disposition
        )
        if entry.disposition == "delete":
            row = self.store.get("task", entry.job, entry.task)
            task_dir = entry.run.execution.task_dir
            if row is None:
                await asyncio.to_thread(shutil.rmtree, task_dir, True)
        elif not entry.disposition:
            self._record(entry, outcome)
        self.wake()

    def _record(self, entry: Running, outcome: agent.Outcome) -> None:
        row = self.store.get("task", entry.job, entry.task)
        if row is None:
            return
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        if outcome.start_time:
            info["startTime"] = iso(outcome.start_time)
        elif "startTime" not in info:
            info["startTime"] = iso(outcome.end_time)
        info["endTime"] = iso(outcome.end_time)
        if outcome.exit_code is not None:
            info["exitCode"] = outcome.exit_code
        else:
            info.pop("exitCode", None)
        info["result"] = outcome.result
        if outcome.failure_info:
            info["failureInfo"] = outcome.failure_info
        else:
            info.pop("failureInfo", None)
        retries = int(row.body.get("constraints", {}).get("maxTaskRetryCount", 0))
        can_retry = (
            outcome.result == "failure"
            and outcome.stage == "process"
            and (retries == -1 or int(info.get("retryCount", 0)) < retries)
        )
        if can_retry:
            info["retryCount"] = int(info.get("retryCount", 0)) + 1
            info["lastRetryTime"] = iso()
            for k in ("endTime", "result", "failureInfo", "exitCode"):
                info.pop(k, None)
            self._set_task_state(row, "active")
            self.store.put(row)
            return
        self._set_task_state(row, "completed")
        self._schedule_retention(row)
        self.store.put(row)
        self._check_job_done(entry.job, known=True)

    # ------------------------------------------------------------------ retention

    def _schedule_retention(self, row: Row) -> None:
        try:
            keep = duration_seconds(row.body.get("constraints", {}).get("retentionTime"))
        except ValueError:
            keep = None
        if keep is None or not row.meta.get("dir"):
            return
        end = row.body.get("executionInfo", {}).get("endTime")
        at = (parse_iso(end).timestamp() if end else time.time()) + keep
        row.meta["cleanup_at"] = at
        heapq.heappush(self._retention, (at, row.parent, row.key))

    def _job_deadlines(self, now: float) -> None:
        """A job past its maxWallClockTime is terminated, as Batch does."""
        for job in self.store.iter_all("job"):
            if job.body["state"] not in ("active", "disabled"):
                continue
            try:
                limit = duration_seconds(job.body.get("constraints", {}).get("maxWallClockTime"))
            except ValueError:
                continue
            if limit is not None and parse_iso(job.body["creationTime"]).timestamp() + limit <= now:
                self.terminate_job(job.key, "MaxWallClockTimeExpiry")

    async def _janitor(self) -> None:
        """Remove the folders of completed tasks whose retention time has passed."""
        while True:
            await asyncio.sleep(0.25)
            now = time.time()
            self._job_deadlines(now)
            while self._retention and self._retention[0][0] <= now:
                _at, job_key, task_key = heapq.heappop(self._retention)
                row = self.store.get("task", job_key, task_key)
                if row is None or row.body["state"] != "completed" or not row.meta.get("dir"):
                    continue
                if row.meta.get("cleanup_at", now + 1) > now:
                    continue
                await asyncio.to_thread(shutil.rmtree, row.meta["dir"], True)
                row = self.store.get("task", job_key, task_key)
                if row is not None:
                    row.meta["cleaned"] = True
                    self.store.put(row)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task failed", exc_info=task.exception())


def _pick(nodes: list[list[Any]], need: int, fill: str) -> list[Any] | None:
    """The [node, free slots] entry to run on: most free slots (spread) or fewest (pack)."""
    fitting = [n for n in nodes if n[1] >= need]
    if not fitting:
        return None
    if fill == "pack":
        chosen = min(fitting, key=lambda n: n[1])
    else:
        chosen = max(fitting, key=lambda n: n[1])
    return chosen


def _deps_met(depends: dict[str, Any], succeeded: dict[str, bool]) -> bool:
    for task_id in depends.get("taskIds") or []:
        if not succeeded.get(str(task_id).lower(), False):
            return False
    for r in depends.get("taskIdRanges") or []:
        for n in range(int(r["start"]), int(r["end"]) + 1):
            if not succeeded.get(str(n), False):
                return False
    return True


def _resource_files(items: Iterable[dict[str, Any]] | None) -> list[agent.ResourceFile]:
    out = []
    for rf in items or []:
        out.append(
            agent.ResourceFile(
                http_url=rf.get("httpUrl"),
                storage_container_url=rf.get("storageContainerUrl"),
                blob_prefix=rf.get("blobPrefix"),
                file_path=rf.get("filePath"),
                file_mode=rf.get("fileMode"),
            )
        )
    return out


def _output_files(items: Iterable[dict[str, Any]] | None) -> list[agent.OutputFile]:
    out = []
    for of in items or []:
        container = of.get("destination", {}).get("container", {})
        out.append(
            agent.OutputFile(
                file_pattern=of["filePattern"],
                container_url=container.get("containerUrl", ""),
                path=container.get("path"),
                upload_condition=of.get("uploadOptions", {}).get("uploadCondition", "tasksuccess"),
            )
        )
    return out
