"""Compute nodes: their whole state machine, and their start tasks.

creating -> starting -> waitingforstarttask -> idle <-> running, or starttaskfailed;
rebooting; leavingpool -> gone. A node is a folder tree; its start task runs through the node
agent. The pools module decides how many nodes a pool has and calls `add` and `remove`; the
scheduler reports tasks starting and ending on a node (`task_started`, `task_ended`). The
pool's node counts follow through the `on_count` hook.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import agent
from .base import ResourceModule
from .bodies import resource_files
from .clock import Clock
from .containers import Containers
from .resources import BatchError, iso
from .runs import BOOT_STEP, Running, Runtime
from .store import Row, Store
from .tasks import Tasks

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
REMOVAL_ORDER = {
    "starttaskfailed": 0,
    "creating": 1,
    "starting": 2,
    "waitingforstarttask": 3,
    "idle": 4,
    "running": 5,
}


class Nodes(ResourceModule):
    containers: Containers | None = None  # container pools' images (service.py sets it)

    def __init__(self, store: Store, clock: Clock, runtime: Runtime, tasks: Tasks) -> None:
        super().__init__(store, clock, runtime)
        self.tasks = tasks
        self.on_count: Callable[[str], None] = lambda _pool: None  # the pools module's
        self._ran: dict[tuple[str, str], list[int]] = {}  # node -> [tasks run, succeeded]

    # ------------------------------------------------------------------ reading

    def get(self, pool: Row, node_id: str) -> Row:
        row = self.store.get("node", pool.key, node_id)
        if row is None:
            raise BatchError(404, "NodeNotFound", "The specified node does not exist.")
        return row

    def live(self, pool_key: str) -> list[Row]:
        return [n for n in self.store.iter("node", pool_key) if n.body["state"] != "leavingpool"]

    def schedulable(self, pool_key: str) -> list[Row]:
        return [
            n
            for n in self.store.iter("node", pool_key)
            if n.body["state"] in SCHEDULABLE and n.body.get("schedulingState") == "enabled"
        ]

    def shape(self, row: Row) -> dict[str, Any]:
        """A node as the API shows it: the running counts come from what runs right now."""
        body = dict(row.body)
        entries = self.runtime.on_node(row.parent, row.key)
        body["runningTasksCount"] = len(entries)
        body["runningTaskSlotsCount"] = sum(e.slots for e in entries)
        return body

    def counts(self, pool: Row) -> dict[str, Any]:
        dedicated = dict.fromkeys(NODE_COUNT_STATES.values(), 0)
        low = dict.fromkeys(NODE_COUNT_STATES.values(), 0)
        for node in self.store.iter("node", pool.key):
            counts = dedicated if node.body.get("isDedicated", True) else low
            counts[NODE_COUNT_STATES.get(node.body["state"], "unknown")] += 1
        dedicated["total"] = sum(dedicated.values())
        low["total"] = sum(low.values())
        return {"poolId": pool.body["id"], "dedicated": dedicated, "lowPriority": low}

    def removal_order(self, pool_key: str, nodes: list[Row]) -> list[Row]:
        """Which nodes go first when a pool shrinks: the least useful, the least busy."""
        return sorted(
            nodes,
            key=lambda n: (
                REMOVAL_ORDER.get(n.body["state"], 0),
                -len(self.runtime.on_node(pool_key, n.key)),
            ),
        )

    # ------------------------------------------------------------------ joining

    def add(self, pool: Row, dedicated: bool) -> None:
        node_id = f"tvmps_{secrets.token_hex(20)}_{'d' if dedicated else 'p'}"
        stamp = self.clock.iso()
        index = sum(1 for _ in self.store.iter("node", pool.key)) + 4
        body: dict[str, Any] = {
            "id": node_id,
            "url": f"{self.runtime.base_url}/pools/{pool.body['id']}/nodes/{node_id}",
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
        root = self.runtime.node_dir(pool.key, row.key)
        for sub in ("shared", "startup", "workitems", "fsmounts"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self._boot(pool.key, row.key, reboot=False)

    def _boot(self, pool_key: str, node_key: str, *, reboot: bool) -> None:
        rt = self.runtime.node_runtime(pool_key, node_key)
        if rt.boot and not rt.boot.done():
            rt.boot.cancel()
        rt.boot = self.runtime.spawn(self._booting(pool_key, node_key, reboot))

    async def _booting(self, pool_key: str, node_key: str, reboot: bool) -> None:
        if not reboot:
            await asyncio.sleep(BOOT_STEP)
        self._set(pool_key, node_key, state="starting")
        await asyncio.sleep(BOOT_STEP)
        pool = self.store.get("pool", "", pool_key)
        node = self.store.get("node", pool_key, node_key)
        if pool is None or node is None or pool.body["state"] != "active":
            return
        if self.containers is not None:
            errors = await self.containers.pull_for_node(pool)
            node = self.store.get("node", pool_key, node_key)
            if node is None:
                return
            if errors:
                node.body["errors"] = errors
                self.store.put(node)
                self._set(pool_key, node_key, state="unusable")
                return
            node.body.pop("errors", None)
        node.body["lastBootTime"] = self.clock.iso()  # after the pull, which reads the row again
        start = pool.body.get("startTask")
        if start:
            node.body["startTask"] = start
        else:
            node.body.pop("startTask", None)
            node.body.pop("startTaskInfo", None)
        self.store.put(node)
        if not start:
            self._set(pool_key, node_key, state="idle")
            self.runtime.wake()
            return
        if start.get("waitForSuccess", True):
            self._set(pool_key, node_key, state="waitingforstarttask")
            ok = await self._run_start_task(pool_key, node_key, start)
            self._set(pool_key, node_key, state="idle" if ok else "starttaskfailed")
            self.runtime.wake()
        else:
            self._set(pool_key, node_key, state="idle")
            self.runtime.wake()
            await self._run_start_task(pool_key, node_key, start)

    async def _run_start_task(self, pool_key: str, node_key: str, start: dict[str, Any]) -> bool:
        """Run the start task with its retries; record startTaskInfo; True when it succeeded."""
        assert self.runtime.http is not None
        retries = int(start.get("maxTaskRetryCount", 0) or 0)
        attempt = 0
        root = self.runtime.node_dir(pool_key, node_key)
        while True:
            pool = self.store.get("pool", "", pool_key)
            node = self.store.get("node", pool_key, node_key)
            if pool is None or node is None:
                return False
            env = self.runtime.env_node(pool, node)
            env["AZ_BATCH_TASK_DIR"] = str(root / "startup")
            env["AZ_BATCH_TASK_WORKING_DIR"] = str(root / "startup" / "wd")
            for setting in start.get("environmentSettings") or []:
                env[str(setting["name"])] = str(setting.get("value", ""))
            (root / "startup" / "wd").mkdir(parents=True, exist_ok=True)
            container, refusal = (None, None)
            if self.containers is not None and start.get("containerSettings"):
                container, refusal = self.containers.run_for(
                    pool, node, "starttask", start["containerSettings"]
                )
            execution = agent.Execution(
                command_line=start["commandLine"],
                task_dir=root / "startup",
                working_dir=root / "startup" / "wd",
                environment=env,
                resource_files=tuple(resource_files(start.get("resourceFiles"))),
                container=container,
                refusal=refusal,
            )
            run = agent.TaskRun(
                execution, self.runtime.http, self.runtime.processes, clock=self.clock.now
            )
            rt = self.runtime.node_runtime(pool_key, node_key)
            rt.start_run = run
            info: dict[str, Any] = {
                "state": "running",
                "startTime": self.clock.iso(),
                "retryCount": attempt,
            }
            if attempt:
                info["lastRetryTime"] = info["startTime"]
            self._set(pool_key, node_key, startTaskInfo=info)
            outcome = await run.run()
            rt.start_run = None
            if self.runtime.stopping or outcome.stage == "killed":
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
            self._set(pool_key, node_key, startTaskInfo=info)
            if outcome.result == "success":
                return True
            if outcome.stage != "process" or (retries != -1 and attempt >= retries):
                return False
            attempt += 1

    def _set(self, pool_key: str, node_key: str, **changes: Any) -> Row | None:
        node = self.store.get("node", pool_key, node_key)
        if node is None:
            return None
        state = changes.get("state")
        if state and state != node.body["state"]:
            if node.body["state"] == "leavingpool":
                changes.pop("state")
            else:
                node.body["stateTransitionTime"] = self.clock.iso()
        node.body.update(changes)
        self.store.put(node)
        return node

    def set_state(self, pool_key: str, node_key: str, **changes: Any) -> Row | None:
        """Change a node's fields from another module (preemption)."""
        return self._set(pool_key, node_key, **changes)

    def boot(self, pool_key: str, node_key: str) -> None:
        """Boot a node again, start task and all (a preempted node restored)."""
        self._boot(pool_key, node_key, reboot=True)

    # ------------------------------------------------------------------ tasks on nodes

    def task_started(self, node: Row) -> None:
        """NODE was read by this dispatch with no await since: current, written at once."""
        if node.body["state"] == "idle":
            node.body["state"] = "running"
            node.body["stateTransitionTime"] = self.clock.iso()
            self.store.put(node)

    def task_ended(self, pool_key: str, node_key: str, succeeded: bool) -> None:
        """Count a finished task for its node; `settle` writes it after the next dispatch,
        which the task's end wakes."""
        counts = self._ran.setdefault((pool_key, node_key), [0, 0])
        counts[0] += 1
        counts[1] += 1 if succeeded else 0

    def settle(self) -> None:
        """After a dispatch, write what the tasks that ended since did to their nodes: the
        totals, and idle for a node the dispatch gave nothing new. One read and one write per
        node and dispatch, not per task, and a node that gets a new task at once is not written
        idle and then running again. The running counts are derived when a node is read
        (`shape`)."""
        ran, self._ran = self._ran, {}
        for (pool_key, node_key), (total, succeeded) in ran.items():
            node = self.store.get("node", pool_key, node_key)
            if node is None:
                continue
            node.body["totalTasksRun"] += total
            node.body["totalTasksSucceeded"] += succeeded
            if node.body["state"] == "running" and not self.runtime.on_node(pool_key, node_key):
                node.body["state"] = "idle"
                node.body["stateTransitionTime"] = self.clock.iso()
            self.store.put(node)

    # ------------------------------------------------------------------ leaving

    def remove(self, pool_key: str, node_key: str, option: str) -> None:
        """Take a node out: requeue/terminate its tasks now, or let them finish first."""
        node = self.store.get("node", pool_key, node_key)
        if node is None:
            return
        self._set(pool_key, node_key, state="leavingpool")
        rt = self.runtime.node_runtime(pool_key, node_key)
        rt.leaving = True
        rt.halt()
        entries = self.runtime.on_node(pool_key, node_key)
        if option in ("requeue", "terminate"):
            self.tasks.stop_all(entries, option)
        self.runtime.spawn(self._leave(pool_key, node_key, entries))

    async def _leave(self, pool_key: str, node_key: str, entries: list[Running]) -> None:
        waits = [e.aio for e in entries if e.aio]
        if waits:
            await asyncio.wait(waits)
        await asyncio.sleep(BOOT_STEP)
        node = self.store.get("node", pool_key, node_key)
        pool = self.store.get("pool", "", pool_key)
        self.drop(pool_key, node_key)
        if self.containers is not None and node is not None and pool is not None:
            await self.containers.remove_for(pool.body["id"], node.body["id"])
        await asyncio.to_thread(shutil.rmtree, self.runtime.node_dir(pool_key, node_key), True)
        self.on_count(pool_key)

    def drop(self, pool_key: str, node_key: str) -> None:
        self.store.delete("node", pool_key, node_key)
        self.runtime.nodes.pop((pool_key, node_key), None)
        self.on_count(pool_key)

    def halt_pool(self, pool_key: str) -> None:
        """A pool is being deleted: its tasks go back to active, its nodes stop booting."""
        self.tasks.stop_all(self.runtime.in_pool(pool_key), "requeue")
        for (pk, _nk), rt in self.runtime.nodes.items():
            if pk == pool_key:
                rt.halt()

    def forget_pool(self, pool_key: str) -> None:
        self.store.delete_children("node", pool_key)
        for key in [k for k in self.runtime.nodes if k[0] == pool_key]:
            self.runtime.nodes.pop(key, None)

    # ------------------------------------------------------------------ requests

    def reboot(self, row: Row, option: str) -> None:
        if row.body["state"] in ("creating", "starting", "rebooting", "leavingpool", "preempted"):
            raise BatchError(
                409, "OperationNotValidOnNode", "The node is not in a state that allows a reboot."
            )
        pool_key, node_key = row.parent, row.key
        entries = self.runtime.on_node(pool_key, node_key)
        self.runtime.node_runtime(pool_key, node_key).halt()
        self._set(pool_key, node_key, state="rebooting")
        if option in ("requeue", "terminate"):
            self.tasks.stop_all(entries, option)

        async def reboot() -> None:
            waits = [e.aio for e in entries if e.aio]
            if waits:
                await asyncio.wait(waits)
            await asyncio.sleep(BOOT_STEP)
            self._boot(pool_key, node_key, reboot=True)

        self.runtime.spawn(reboot())

    def reimage(self, row: Row, option: str) -> None:
        """A reboot on a fresh disk: once the node's tasks are stopped (or, taskCompletion and
        retainedData, done), its folders start empty and the start task runs again."""
        if row.body["state"] not in ("idle", "running", "starttaskfailed", "unusable"):
            raise BatchError(
                409, "OperationNotValidOnNode", "The node is not in a state that allows a reimage."
            )
        pool_key, node_key = row.parent, row.key
        entries = self.runtime.on_node(pool_key, node_key)
        self.runtime.node_runtime(pool_key, node_key).halt()
        self._set(pool_key, node_key, state="reimaging")
        if option in ("requeue", "terminate"):
            self.tasks.stop_all(entries, option)

        async def reimage() -> None:
            waits = [e.aio for e in entries if e.aio]
            if waits:
                await asyncio.wait(waits)
            await asyncio.to_thread(fresh_folders, self.runtime.node_dir(pool_key, node_key))
            node = self.store.get("node", pool_key, node_key)
            if node is not None:
                node.body.pop("startTaskInfo", None)
                node.body.pop("errors", None)
                self.store.put(node)
            await asyncio.sleep(BOOT_STEP)
            self._boot(pool_key, node_key, reboot=True)

        self.runtime.spawn(reimage())

    def set_scheduling(self, row: Row, enabled: bool, option: str) -> None:
        """Enable or disable scheduling on a node; disabling may requeue or end its tasks.
        (`taskCompletion` and the others let running tasks finish.)"""
        current = row.body.get("schedulingState", "enabled")
        if current == ("enabled" if enabled else "disabled"):
            raise BatchError(
                409,
                "NodeAlreadyInTargetSchedulingState",
                "The node is already in the requested scheduling state.",
            )
        self._set(row.parent, row.key, schedulingState="enabled" if enabled else "disabled")
        if not enabled and option in ("requeue", "terminate"):
            self.tasks.stop_all(self.runtime.on_node(row.parent, row.key), option)
        self.runtime.wake()

    # ------------------------------------------------------------------ restart

    def recover(self, pool_key: str) -> None:
        """After a restart every node reboots: nothing runs on it any more."""
        for node in self.store.iter("node", pool_key):
            if node.body["state"] == "leavingpool":
                self.drop(pool_key, node.key)
            else:
                node.body["runningTasksCount"] = node.body["runningTaskSlotsCount"] = 0
                self.store.put(node)
                self._boot(pool_key, node.key, reboot=True)


NODE_FOLDERS = ("shared", "startup", "workitems", "fsmounts")


def fresh_folders(root: Path) -> None:
    """A node's folders emptied, as on a fresh disk (reimage, a preempted node restored)."""
    for sub in NODE_FOLDERS:
        shutil.rmtree(root / sub, True)
        (root / sub).mkdir(parents=True, exist_ok=True)
