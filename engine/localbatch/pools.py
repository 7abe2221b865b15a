"""Pools: their validation, their shape and their whole state machine.

state active -> deleting -> gone (after the delete delay on the service clock);
allocationState steady <-> resizing (create, resize, remove nodes, stop resize), settling
once new nodes are allocated and removed ones are gone. The pool decides how many nodes it
has; the nodes module runs each node's own states. (Auto pools and autoscale, when they
come, change targets here.)
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import Any

from . import quotas
from .base import ResourceModule
from .clock import Clock
from .containers import Containers
from .nodes import Nodes
from .resources import (
    BatchError,
    check_duration,
    check_id,
    check_int,
    invalid,
    missing,
    new_etag,
)
from .runs import BOOT_STEP, Runtime
from .settings import Settings
from .store import Row, Store

BEING_DELETED = (
    409,
    "PoolBeingDeleted",
    "The specified pool has been marked for deletion and is being reclaimed.",
)
# Changeable by PATCH only while the pool has no nodes.
EMPTY_ONLY = (
    "vmSize",
    "taskSlotsPerNode",
    "virtualMachineConfiguration",
    "networkConfiguration",
    "enableInterNodeCommunication",
    "userAccounts",
    "mountConfiguration",
    "resourceTags",
    "taskSchedulingPolicy",
    "upgradePolicy",
    "displayName",
)
ANY_TIME = (
    "startTask",
    "metadata",
    "certificateReferences",
    "applicationPackageReferences",
    "targetNodeCommunicationMode",
)


class Pools(ResourceModule):
    containers: Containers | None = None  # container pools (service.py sets it)

    def __init__(
        self, store: Store, clock: Clock, runtime: Runtime, nodes: Nodes, settings: Settings
    ) -> None:
        super().__init__(store, clock, runtime)
        self.nodes = nodes
        self.settings = settings
        nodes.on_count = self._count_nodes
        # autoscaling.py's: validates a create's autoscale settings, evaluates once created.
        self.check_autoscale: Callable[[dict[str, Any]], None] = lambda _req: None
        self.on_autoscale: Callable[[Row], None] = lambda _row: None

    # ------------------------------------------------------------------ reading

    def get(self, pool_id: str) -> Row:
        row = self.store.get("pool", "", pool_id)
        if row is None:
            raise BatchError(404, "PoolNotFound", "The specified pool does not exist.")
        return row

    def writable(self, row: Row) -> Row:
        if row.body["state"] == "deleting":
            raise BatchError(*BEING_DELETED)
        return row

    # ------------------------------------------------------------------ requests

    def create(self, base: str, req: dict[str, Any]) -> Row:
        pool_id = check_id("id", req.get("id"))
        if not req.get("vmSize"):
            raise missing("vmSize")
        existing = self.store.get("pool", "", pool_id)
        if existing is not None:
            if existing.body.get("state") == "deleting":
                raise BatchError(*BEING_DELETED)
            raise BatchError(409, "PoolExists", "The specified pool already exists.")
        quotas.check_pool_quota(self.store, self.settings.quotas)
        dedicated = req.get("targetDedicatedNodes", 0) or 0
        low = req.get("targetLowPriorityNodes", 0) or 0
        check_int("targetDedicatedNodes", dedicated, 0, 1000)
        check_int("targetLowPriorityNodes", low, 0, 1000)
        slots = req.get("taskSlotsPerNode", 1)
        check_int("taskSlotsPerNode", slots, 1, 256)
        quotas.check_slots(slots, quotas.vm_size(req["vmSize"]))
        check_duration("resizeTimeout", req.get("resizeTimeout"))
        if req.get("startTask") is not None:
            _check_start_task(req["startTask"])
        self.check_autoscale(req)
        if self.containers is not None:
            self.containers.check_pool(req)
        stamp = self.clock.iso()
        url = f"{base}/pools/{pool_id}"
        body: dict[str, Any] = {"id": pool_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        autoscale = bool(req.get("enableAutoScale", False))
        body.update(
            {
                "url": url,
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
                "state": "active",
                "stateTransitionTime": stamp,
                "allocationState": "resizing" if (dedicated or low) and not autoscale else "steady",
                "allocationStateTransitionTime": stamp,
                "vmSize": str(req["vmSize"]).lower(),
            }
        )
        for key in ("virtualMachineConfiguration", "networkConfiguration", "resourceTags"):
            if req.get(key) is not None:
                body[key] = req[key]
        body["resizeTimeout"] = req.get("resizeTimeout") or "PT15M"
        body.update(
            {
                "currentDedicatedNodes": 0,
                "currentLowPriorityNodes": 0,
                "targetDedicatedNodes": 0 if autoscale else dedicated,
                "targetLowPriorityNodes": 0 if autoscale else low,
                "enableAutoScale": autoscale,
                "enableInterNodeCommunication": bool(
                    req.get("enableInterNodeCommunication", False)
                ),
            }
        )
        if autoscale:
            body["autoScaleFormula"] = req.get("autoScaleFormula", "")
            body["autoScaleEvaluationInterval"] = req.get("autoScaleEvaluationInterval", "PT15M")
        for key in (
            "startTask",
            "certificateReferences",
            "applicationPackageReferences",
            "userAccounts",
            "metadata",
            "mountConfiguration",
            "upgradePolicy",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body["taskSlotsPerNode"] = slots
        policy = dict(req.get("taskSchedulingPolicy") or {})
        policy.setdefault("nodeFillType", "spread")
        body["taskSchedulingPolicy"] = policy
        body["targetNodeCommunicationMode"] = req.get("targetNodeCommunicationMode", "default")
        body["currentNodeCommunicationMode"] = "simplified"
        row = Row("pool", "", pool_id, body, {})
        self.store.put(row)
        self.reconcile(row.key, "requeue")
        if autoscale:
            self.on_autoscale(row)
        return row

    def update(self, row: Row, req: dict[str, Any]) -> None:
        """PATCH: what may change at any time, and what only while the pool has no nodes."""
        self.writable(row)
        body = row.body
        if req.get("startTask") is not None:
            _check_start_task(req["startTask"])
        empty = (
            body["currentDedicatedNodes"] + body["currentLowPriorityNodes"] == 0
            and body["allocationState"] == "steady"
        )
        for key in EMPTY_ONLY:
            if key in req and req[key] is not None and req[key] != body.get(key):
                if not empty:
                    raise BatchError(
                        409,
                        "OperationNotValidOnPool",
                        f"{key} can be changed only when the pool has no nodes.",
                        {"PropertyName": key},
                    )
                if key == "taskSlotsPerNode":
                    check_int(key, req[key], 1, 256)
                if key in ("vmSize", "taskSlotsPerNode"):
                    quotas.check_slots(
                        req.get("taskSlotsPerNode", body["taskSlotsPerNode"]),
                        quotas.vm_size(req.get("vmSize") or body["vmSize"]),
                    )
                body[key] = str(req[key]).lower() if key == "vmSize" else req[key]
        for key in ANY_TIME:
            if key in req and req[key] is not None:
                if key == "startTask" and not req[key]:
                    body.pop(key, None)
                else:
                    body[key] = req[key]
        self.touch(row)
        self.store.put(row)

    def replace(self, row: Row, req: dict[str, Any]) -> None:
        """updateproperties: the start task, references and metadata, all replaced."""
        self.writable(row)
        # The reference requires certificateReferences too, but azure-batch 15.x never sends
        # it (certificates are retired), and Batch accepts that.
        for key in ("applicationPackageReferences", "metadata"):
            if req.get(key) is None:
                raise missing(key)
        if req.get("startTask") is not None:
            _check_start_task(req["startTask"])
            row.body["startTask"] = req["startTask"]
        else:
            row.body.pop("startTask", None)
        for key in ("certificateReferences", "applicationPackageReferences", "metadata"):
            if req.get(key):
                row.body[key] = req[key]
            else:
                row.body.pop(key, None)
        row.body["targetNodeCommunicationMode"] = req.get("targetNodeCommunicationMode", "default")
        self.touch(row)
        self.store.put(row)

    def resize(self, row: Row, req: dict[str, Any]) -> None:
        self.writable(row)
        body = row.body
        if body.get("enableAutoScale"):
            raise BatchError(409, "OperationNotValidOnPool", "The pool has autoscale enabled.")
        if body["allocationState"] != "steady":
            raise BatchError(409, "PoolBeingResized", "The specified pool is being resized.")
        dedicated = req.get("targetDedicatedNodes", body["targetDedicatedNodes"])
        low = req.get("targetLowPriorityNodes", body["targetLowPriorityNodes"])
        check_int("targetDedicatedNodes", dedicated, 0, 1000)
        check_int("targetLowPriorityNodes", low, 0, 1000)
        check_duration("resizeTimeout", req.get("resizeTimeout"))
        if req.get("resizeTimeout"):
            body["resizeTimeout"] = req["resizeTimeout"]
        self.retarget(row, dedicated, low, req.get("nodeDeallocationOption") or "requeue")

    def retarget(self, row: Row, dedicated: int, low: int, option: str) -> None:
        """New targets, and a resize toward them (a resize request, an autoscale result)."""
        body = row.body
        body["targetDedicatedNodes"] = dedicated
        body["targetLowPriorityNodes"] = low
        body.pop("resizeErrors", None)
        self._allocation(row, "resizing")
        self.store.put(row)
        self.reconcile(row.key, option)
        fresh = self.store.get("pool", "", row.key)
        if fresh is not None:  # reconcile's quota errors and counts
            row.body = fresh.body

    def stop_resize(self, row: Row) -> None:
        self.writable(row)
        if row.body["allocationState"] != "resizing":
            return
        nodes = self.nodes.live(row.key)
        row.body["targetDedicatedNodes"] = sum(1 for n in nodes if n.body.get("isDedicated", True))
        row.body["targetLowPriorityNodes"] = len(nodes) - row.body["targetDedicatedNodes"]
        row.body["allocationState"] = "steady"
        row.body["allocationStateTransitionTime"] = self.clock.iso()
        row.body["resizeErrors"] = [
            {
                "code": "ResizeStopped",
                "message": "Desired number of "
                "dedicated nodes could not be allocated as the resize "
                "was stopped",
            }
        ]
        self.touch(row)
        self.store.put(row)

    def remove_nodes(self, row: Row, req: dict[str, Any]) -> None:
        self.writable(row)
        node_ids = req.get("nodeList")
        if not node_ids:
            raise missing("nodeList")
        if not isinstance(node_ids, list) or len(node_ids) > 100:
            raise invalid("nodeList", node_ids, "Up to 100 node ids may be removed at once.")
        if row.body["allocationState"] != "steady":
            raise BatchError(409, "PoolBeingResized", "The specified pool is being resized.")
        for node_id in node_ids:
            if self.store.get("node", row.key, str(node_id)) is None:
                raise BatchError(404, "NodeNotFound", f"The node {node_id} does not exist.")
        keys = [str(n) for n in node_ids]
        option = req.get("nodeDeallocationOption") or "requeue"
        body = row.body
        body["allocationState"] = "resizing"
        body["allocationStateTransitionTime"] = self.clock.iso()
        for key in keys:
            node = self.store.get("node", row.key, key)
            if node is None or node.body["state"] == "leavingpool":
                continue
            if node.body.get("isDedicated", True):
                body["targetDedicatedNodes"] = max(0, body["targetDedicatedNodes"] - 1)
            else:
                body["targetLowPriorityNodes"] = max(0, body["targetLowPriorityNodes"] - 1)
        self.touch(row)
        self.store.put(row)
        for key in keys:
            self.nodes.remove(row.key, key.lower(), option)
        self.runtime.spawn(self._settle(row.key))

    def delete(self, row: Row) -> None:
        if row.body["state"] == "deleting":
            return
        row.body["state"] = "deleting"
        row.body["stateTransitionTime"] = self.clock.iso()
        self.touch(row)
        self.store.put(row)
        self.nodes.halt_pool(row.key)
        self._finish_delete_later(row.key)

    def _finish_delete_later(self, pool_key: str) -> None:
        self.clock.after(self.settings.delete_delay, lambda: self._finish_delete(pool_key))

    async def _finish_delete(self, pool_key: str) -> None:
        """The delete delay is over: once its processes have ended, the pool goes."""
        waits = [e.aio for e in self.runtime.in_pool(pool_key) if e.aio]
        if waits:
            await asyncio.wait(waits)
        pool = self.store.get("pool", "", pool_key)
        if self.containers is not None and pool is not None:
            await self.containers.remove_for(pool.body["id"])
        await asyncio.to_thread(shutil.rmtree, self.runtime.nodes_root / pool_key, True)
        self.nodes.forget_pool(pool_key)
        self.store.delete("pool", "", pool_key)

    # ------------------------------------------------------------------ transitions

    def _allocation(self, row: Row, state: str) -> None:
        row.body["allocationState"] = state
        row.body["allocationStateTransitionTime"] = self.clock.iso()
        self.touch(row)

    def reconcile(self, pool_key: str, option: str) -> None:
        """Bring the pool's nodes to its targets (a create, a resize, a restart)."""
        pool = self.store.get("pool", "", pool_key)
        if pool is None or pool.body["state"] != "active":
            return
        nodes = self.nodes.live(pool_key)
        for dedicated, target in (
            (True, pool.body["targetDedicatedNodes"]),
            (False, pool.body["targetLowPriorityNodes"]),
        ):
            mine = [n for n in nodes if n.body.get("isDedicated", True) == dedicated]
            for _ in range(self._fit(pool, dedicated, target - len(mine))):
                self.nodes.add(pool, dedicated)
            if len(mine) > target:
                for node in self.nodes.removal_order(pool_key, mine)[: len(mine) - target]:
                    self.nodes.remove(pool_key, node.key, option)
        self._count_nodes(pool_key)
        if pool.body["allocationState"] == "resizing":
            self.runtime.spawn(self._settle(pool_key))

    def _fit(self, pool: Row, dedicated: bool, wanted: int) -> int:
        """How many new nodes the account's quotas let in; a shortfall goes in resizeErrors."""
        allowed, error = quotas.fit(self.store, self.settings.quotas, pool, dedicated, wanted)
        if error is not None:
            errors = [e for e in pool.body.get("resizeErrors", []) if e["code"] != error["code"]]
            pool.body["resizeErrors"] = [*errors, error]
            self.store.put(pool)
        return allowed

    async def _settle(self, pool_key: str) -> None:
        """A resize finishes once new nodes are allocated and removed ones are gone."""
        await asyncio.sleep(BOOT_STEP * 2)
        while True:
            pool = self.store.get("pool", "", pool_key)
            if pool is None or pool.body["allocationState"] != "resizing":
                return
            nodes = list(self.store.iter("node", pool_key))
            if not any(n.body["state"] in ("leavingpool", "creating") for n in nodes):
                self._allocation(pool, "steady")
                self.store.put(pool)
                self._count_nodes(pool_key)
                return
            await asyncio.sleep(BOOT_STEP)

    def _count_nodes(self, pool_key: str) -> None:
        """currentDedicatedNodes and currentLowPriorityNodes follow the node rows."""
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

    # ------------------------------------------------------------------ restart

    def recover(self) -> None:
        for pool in self.store.iter_all("pool"):
            if pool.body["state"] == "deleting":
                self._finish_delete_later(pool.key)
                continue
            self.nodes.recover(pool.key)
            self.reconcile(pool.key, "requeue")


def _check_start_task(start: Any) -> None:
    if not isinstance(start, dict):
        raise invalid("startTask", start, "The start task must be an object.")
    if not start.get("commandLine"):
        raise missing("startTask.commandLine")
    check_int("startTask.maxTaskRetryCount", start.get("maxTaskRetryCount"), -1, None)
