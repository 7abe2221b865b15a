"""Task dispatch: what runs where, and when.

Everything runs on the event loop's thread, so a read-modify-write of a row with no `await`
in between is atomic. The scheduler decides: active tasks go to free slots (taskSlotsPerNode,
requiredSlots, dependencies, maxParallelTasks, job priority) under a global cap on processes.
It asks the tasks and nodes modules to make every state change, hands the process to the node
agent (`agent.TaskRun`), and reports the agent's outcome back to the tasks module. A task's
maxWallClockTime is a timer on the service clock that expires the run.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

import aiohttp

from . import agent
from .bodies import output_files, resource_files
from .clock import Clock
from .containers import Containers
from .jobs import Jobs
from .nodes import Nodes
from .pools import Pools
from .resources import duration_seconds
from .runs import Running, Runtime
from .settings import Settings
from .store import Row, Store
from .tasks import Tasks
from .tokens import wants_token

log = logging.getLogger("bspec.localbatch.scheduler")


class Scheduler:
    containers: Containers | None = None  # container tasks (service.py sets it)

    def __init__(
        self,
        store: Store,
        clock: Clock,
        runtime: Runtime,
        settings: Settings,
        pools: Pools,
        nodes: Nodes,
        jobs: Jobs,
        tasks: Tasks,
    ) -> None:
        self.store = store
        self.clock = clock
        self.runtime = runtime
        self.settings = settings
        self.pools = pools
        self.nodes = nodes
        self.jobs = jobs
        self.tasks = tasks
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        runtime.wake = self.wake

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the HTTP session, recover from a previous run (as a node reboot would)."""
        self.runtime.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        self.tasks.recover()
        self.jobs.recover()
        self.pools.recover()
        self._loop_task = asyncio.create_task(self._loop())
        self.wake()

    async def stop(self) -> None:
        """Kill every process group; rows stay as they are so a restart requeues them."""
        rt = self.runtime
        rt.stopping = True
        if self._loop_task:
            self._loop_task.cancel()
        for entry in list(rt.running.values()):
            entry.disposition = "shutdown"
            entry.run.kill()
        for node in rt.nodes.values():
            node.halt()
        pending = [e.aio for e in rt.running.values() if e.aio] + list(rt.background)
        if pending:
            await asyncio.wait(pending, timeout=5)
        try:
            self.nodes.settle()  # totals of the tasks that ended since the last dispatch
        except Exception:
            log.exception("recording node totals failed")
        if rt.http:
            await rt.http.close()

    def wake(self) -> None:
        self._wake.set()

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
            for e in self.runtime.running.values()
            if not e.disposition
        ]
        return {"pools": pools, "runningTasks": running}

    def _node_id(self, pool: str, node: str) -> str:
        row = self.store.get("node", pool, node)
        return str(row.body["id"]) if row else node

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
                    self.nodes.settle()
                except Exception:
                    log.exception("recording node totals failed")

    def _dispatch(self) -> None:
        rt = self.runtime
        if rt.process_cap != self.settings.max_processes:
            rt.process_cap = self.settings.max_processes
            rt.processes = asyncio.Semaphore(rt.process_cap)
        free_procs = (
            self.settings.max_processes
            - len(rt.running)
            - sum(1 for n in rt.nodes.values() if n.start_run is not None)
        )
        if free_procs <= 0:
            return
        jobs = [j for j in self.store.iter_all("job", state="active")]
        if not jobs:
            return
        jobs.sort(key=lambda j: (-int(j.body.get("priority", 0)), j.seq))
        pools: dict[str, tuple[Row, list[list[Any]]] | None] = {}
        for job in jobs:
            pool_key = str(
                (job.body.get("executionInfo") or {}).get("poolId")
                or job.body["poolInfo"].get("poolId")
            ).lower()
            if pool_key not in pools:
                pools[pool_key] = self._free_slots(pool_key)
            found = pools[pool_key]
            if found is None:
                continue
            pool, nodes = found
            if not any(n[1] > 0 for n in nodes):
                continue
            limit = int(job.body.get("maxParallelTasks", -1))
            in_job = sum(1 for e in rt.running.values() if e.job == job.key)
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
                    if (job.key, row.key) in rt.running:
                        continue
                    if row.body.get("dependsOn"):
                        if deps is None:
                            deps = self.tasks.succeeded(job.key)
                        if not _deps_met(row.body["dependsOn"], deps):
                            continue
                    need = int(row.body.get("requiredSlots", 1))
                    fill = pool.body.get("taskSchedulingPolicy", {}).get("nodeFillType", "spread")
                    exclusive = bool(row.meta.get("exclusive"))
                    if exclusive:  # runExclusive: the whole node, nothing else beside it
                        need = max(need, int(pool.body.get("taskSlotsPerNode", 1)))
                    if job.body.get("jobPreparationTask"):
                        node = self._prepared(job, pool, nodes, need, fill)
                    else:
                        node = _pick(nodes, need, fill)
                    if node is None:
                        if row.meta.get("manager"):
                            break  # the job manager task starts before the job's others
                        continue
                    node[1] -= need
                    self._start_task(job, row, pool, node[0], need)
                    rt.running[(job.key, row.key)].exclusive = exclusive
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
        for e in self.runtime.running.values():
            if e.pool == pool_key:
                used[e.node] = used.get(e.node, 0) + e.slots
        for e in self.runtime.running.values():
            if e.pool == pool_key and e.exclusive:
                used[e.node] = per_node
        nodes = [[n, per_node - used.get(n.key, 0)] for n in self.nodes.schedulable(pool_key)]
        return pool, nodes

    def _prepared(
        self, job: Row, pool: Row, nodes: list[list[Any]], need: int, fill: str
    ) -> list[Any] | None:
        """A node where JOB's preparation task has run (as its waitForSuccess needs), or
        None after starting the preparation task on a node that has not run it yet."""
        gate = self.jobs.jobtasks
        states = [(n, gate.status(job, pool, n[0])) for n in nodes]
        node = _pick([n for n, s in states if s == "ready"], need, fill)
        if node is not None:
            return node
        fresh = _pick([n for n, s in states if s == "new"], need, fill)
        if fresh is not None:
            gate.start_preparation(job, pool, fresh[0])
        return None

    def _start_task(self, job: Row, row: Row, pool: Row, node: Row, slots: int) -> None:
        rt = self.runtime
        assert rt.http is not None
        root = rt.node_dir(pool.key, node.key)
        # Paths as strings first: pathlib costs a few microseconds an operation, per task.
        job_rel = f"workitems/{job.body['id']}/job-1"
        rel = f"{job_rel}/{row.body['id']}"
        task_dir = root / rel
        task_str = str(task_dir)
        env = rt.env_node(pool, node)
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
        if wants_token(row.body):  # authenticationTokenSettings: a token for this job
            env["AZ_BATCH_AUTHENTICATION_TOKEN"] = rt.tokens.issue(job.key)
        try:
            wall = duration_seconds(row.body.get("constraints", {}).get("maxWallClockTime"))
        except ValueError:
            wall = None
        container, refusal = (None, None)
        if self.containers is not None and row.body.get("containerSettings"):
            container, refusal = self.containers.run_for(
                pool, node, row.body["id"], row.body["containerSettings"]
            )
        execution = agent.Execution(
            command_line=row.body["commandLine"],
            task_dir=task_dir,
            working_dir=task_dir / "wd",
            environment=env,
            resource_files=tuple(resource_files(row.body.get("resourceFiles"))),
            output_files=tuple(output_files(row.body.get("outputFiles"))),
            container=container,
            refusal=refusal,
        )
        run = agent.TaskRun(execution, rt.http, rt.processes, clock=self.clock.now)
        entry = Running(
            run, pool.key, node.key, slots, job.key, row.key, job.body["id"], row.body["id"]
        )
        rt.running[(job.key, row.key)] = entry
        entry.prepared = not execution.resource_files
        self.tasks.dispatched(row, node, pool.body["id"], rel, task_str, entry.prepared)
        self.nodes.task_started(node)
        entry.aio = asyncio.create_task(self._execute(entry, wall))

    async def _execute(self, entry: Running, wall: float | None) -> None:
        key = (entry.job, entry.task)

        async def on_running(pid: int) -> None:
            entry.pid = pid
            if wall is not None:  # measured on the service clock from the process start
                entry.deadline = self.clock.after(wall, lambda: self._expire(entry))
            if entry.disposition or self.runtime.stopping or entry.prepared:
                return
            self.tasks.process_started(entry)

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
                self.clock.now(),
                "killed",
            )
        finally:
            self.runtime.running.pop(key, None)
            if entry.deadline is not None:
                entry.deadline.cancel()
        if self.runtime.stopping:
            return
        self.nodes.task_ended(
            entry.pool, entry.node, succeeded=outcome.result == "success" and not entry.disposition
        )
        if entry.disposition == "delete":
            if self.store.get("task", entry.job, entry.task) is None:
                await asyncio.to_thread(shutil.rmtree, entry.run.execution.task_dir, True)
        elif not entry.disposition:
            self.tasks.record(entry, outcome)
        self.wake()

    async def _expire(self, entry: Running) -> None:
        """maxWallClockTime passed: the agent kills the run; the outcome is recorded before
        this returns, so a manual clock step answers with the task completed."""
        entry.run.expire()
        if entry.aio is not None:
            await asyncio.wait([entry.aio])


def _pick(nodes: list[list[Any]], need: int, fill: str) -> list[Any] | None:
    """The [node, free slots] entry to run on: most free slots (spread) or fewest (pack)."""
    fitting = [n for n in nodes if n[1] >= need]
    if not fitting:
        return None
    if fill == "pack":
        return min(fitting, key=lambda n: n[1])
    return max(fitting, key=lambda n: n[1])


def _deps_met(depends: dict[str, Any], succeeded: dict[str, bool]) -> bool:
    for task_id in depends.get("taskIds") or []:
        if not succeeded.get(str(task_id).lower(), False):
            return False
    for r in depends.get("taskIdRanges") or []:
        for n in range(int(r["start"]), int(r["end"]) + 1):
            if not succeeded.get(str(n), False):
                return False
    return True
