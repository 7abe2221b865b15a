"""Spot (low-priority) capacity: preempting nodes and giving them back.

Batch evicts a Spot node whenever Azure needs the capacity: the node shows `preempted`
(still counted in the pool's currentLowPriorityNodes, as Batch documents), the tasks that
ran on it go back to active (a requeue, not a retry), their output files are not uploaded,
and later Batch restores the node, fresh. Locally a loopback control (`/_local/preempt`,
`/_local/restore`) preempts chosen nodes, and a seeded rate (`preemptionRate`, the
probability per Spot node and minute of service clock) preempts at random, so tests step a
manual clock and see the same preemptions every run.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from .clock import Clock, Timer
from .nodes import Nodes, fresh_folders
from .resources import BatchError
from .runs import Running, Runtime
from .settings import Settings
from .store import Store

# States in which a Spot node holds a VM that Azure can take back.
PREEMPTIBLE = ("creating", "starting", "waitingforstarttask", "idle", "running", "starttaskfailed")
TICK = 60.0  # the rate is per minute of service clock


class Preemption:
    def __init__(
        self, store: Store, clock: Clock, runtime: Runtime, nodes: Nodes, settings: Settings
    ) -> None:
        self.store = store
        self.clock = clock
        self.runtime = runtime
        self.nodes = nodes
        self.settings = settings
        self._seed = settings.preemption_seed
        self._rng = random.Random(settings.preemption_seed)
        self._timer: Timer | None = None
        self._restores: dict[tuple[str, str], Timer] = {}

    def start(self) -> None:
        self._timer = self.clock.after(TICK, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for timer in self._restores.values():
            timer.cancel()
        self._restores.clear()

    # ------------------------------------------------------------------ controls

    def preempt(self, pool_key: str, node_keys: list[str] | None, count: int | None) -> list[str]:
        """Preempt the named Spot nodes, or COUNT of them (the busiest first); their ids."""
        self._pool(pool_key)
        if node_keys is None:
            spot = [n for n in self.nodes.live(pool_key) if _preemptible(n.body)]
            spot.sort(key=lambda n: -len(self.runtime.on_node(pool_key, n.key)))
            chosen = [n.key for n in spot[: max(0, count or 0)]]
        else:
            chosen = []
            for node_id in node_keys:
                node = self.store.get("node", pool_key, node_id.lower())
                if node is None:
                    raise BatchError(404, "NodeNotFound", f"The node {node_id} does not exist.")
                if node.body.get("isDedicated", True):
                    raise BatchError(
                        409, "OperationNotValidOnNode", f"The node {node_id} is not a Spot node."
                    )
                if _preemptible(node.body):
                    chosen.append(node.key)
        done = []
        for key in chosen:
            node = self.store.get("node", pool_key, key)
            if node is not None:
                self._preempt(pool_key, key)
                done.append(str(node.body["id"]))
        return done

    def restore(self, pool_key: str, node_keys: list[str] | None) -> list[str]:
        """Give preempted nodes back (all of the pool's when NODE_KEYS is None); their ids."""
        self._pool(pool_key)
        keys = (
            [n.key for n in self.store.iter("node", pool_key)]
            if node_keys is None
            else [k.lower() for k in node_keys]
        )
        done = []
        for key in keys:
            node = self.store.get("node", pool_key, key)
            if node is not None and node.body["state"] == "preempted":
                self._restore(pool_key, key)
                done.append(str(node.body["id"]))
        return done

    def _pool(self, pool_key: str) -> None:
        pool = self.store.get("pool", "", pool_key)
        if pool is None:
            raise BatchError(404, "PoolNotFound", "The specified pool does not exist.")

    # ------------------------------------------------------------------ transitions

    def _preempt(self, pool_key: str, node_key: str) -> None:
        """The VM is gone: its processes die, its tasks go back to active, its disk is lost."""
        entries = self.runtime.on_node(pool_key, node_key)
        self.runtime.node_runtime(pool_key, node_key).halt()
        self.nodes.set_state(pool_key, node_key, state="preempted")
        self.nodes.tasks.stop_all(entries, "requeue")
        self.runtime.spawn(self._wipe(pool_key, node_key, entries))
        after = self.settings.preemption_restore_after
        if after is not None:
            old = self._restores.pop((pool_key, node_key), None)
            if old is not None:
                old.cancel()
            self._restores[(pool_key, node_key)] = self.clock.after(
                after, lambda: self._restore_due(pool_key, node_key)
            )
        self.runtime.wake()

    async def _wipe(self, pool_key: str, node_key: str, entries: list[Running]) -> None:
        """Once its runs have ended, the node's folders start empty again (a fresh VM): the
        next attempt of a task never finds what a preempted one left."""
        waits = [e.aio for e in entries if e.aio]
        if waits:
            await asyncio.wait(waits)
        await asyncio.to_thread(fresh_folders, self.runtime.node_dir(pool_key, node_key))

    def _restore_due(self, pool_key: str, node_key: str) -> None:
        self._restores.pop((pool_key, node_key), None)
        node = self.store.get("node", pool_key, node_key)
        if node is not None and node.body["state"] == "preempted":
            self._restore(pool_key, node_key)

    def _restore(self, pool_key: str, node_key: str) -> None:
        timer = self._restores.pop((pool_key, node_key), None)
        if timer is not None:
            timer.cancel()
        self.nodes.boot(pool_key, node_key)

    async def _tick(self) -> None:
        """Each minute of service clock, each Spot node is preempted with the set rate."""
        self._timer = self.clock.after(TICK, self._tick)
        rate = self.settings.preemption_rate
        if self.settings.preemption_seed != self._seed:
            self._seed = self.settings.preemption_seed
            self._rng = random.Random(self._seed)
        if rate <= 0:
            return
        for pool in list(self.store.iter("pool", "")):
            if pool.body["state"] != "active":
                continue
            for node in list(self.store.iter("node", pool.key)):
                if _preemptible(node.body) and self._rng.random() < rate:
                    self._preempt(pool.key, node.key)


def _preemptible(body: dict[str, Any]) -> bool:
    return not body.get("isDedicated", True) and body["state"] in PREEMPTIBLE
