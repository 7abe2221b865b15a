"""A job's own tasks: the job manager task, the preparation task and the release task.

The job manager task is an ordinary task of the job (with its id, in the task list) added
when the job is created, marked in its row's meta (`manager`, `exclusive`, `kill`) so the
scheduler runs it alone on its node (runExclusive) and the job terminates when it completes
(killJobOnCompletion). The preparation task runs once per node before the first task of the
job there, in `workitems/<job>/job-1/jobpreparation`; the scheduler asks `status` before
placing a task and `start_preparation` to run it. The release task runs on every node that
ran the preparation task when the job is terminated or deleted, before the job finishes
(`release`), killed after its maxWallClockTime (15 minutes by default) on the service clock.
Each node's record is a `jobprep` row of the job: the body is Batch's
JobPreparationAndReleaseTaskStatus.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from . import agent
from .bodies import resource_files
from .clock import Clock
from .resources import BatchError, check_duration, duration_seconds, iso, missing
from .runs import Runtime
from .store import Row, Store

KIND = "jobprep"
RELEASE_LIMIT = 15 * 60.0  # seconds: Batch's default and maximum for the release task
STATUS_PROPS = frozenset(
    {
        "poolId",
        "nodeId",
        "nodeUrl",
        "jobPreparationTaskExecutionInfo/state",
        "jobPreparationTaskExecutionInfo/result",
        "jobPreparationTaskExecutionInfo/exitCode",
        "jobPreparationTaskExecutionInfo/retryCount",
        "jobReleaseTaskExecutionInfo/state",
        "jobReleaseTaskExecutionInfo/result",
        "jobReleaseTaskExecutionInfo/exitCode",
    }
)
MANAGER_FIELDS = (
    "id",
    "displayName",
    "commandLine",
    "containerSettings",
    "resourceFiles",
    "outputFiles",
    "environmentSettings",
    "constraints",
    "requiredSlots",
    "userIdentity",
    "applicationPackageReferences",
    "authenticationTokenSettings",
)


def check(req: dict[str, Any]) -> None:
    """Validate the three task specifications of a job body (before anything is stored)."""
    for name in ("jobManagerTask", "jobPreparationTask", "jobReleaseTask"):
        spec = req.get(name)
        if spec is None:
            continue
        if not isinstance(spec, dict):
            raise BatchError(400, "InvalidRequestBody", f"{name} must be a JSON object.")
        if not spec.get("commandLine"):
            raise missing(f"{name}.commandLine")
        if name == "jobManagerTask" and not spec.get("id"):
            raise missing("jobManagerTask.id")
        constraints = spec.get("constraints") or {}
        if isinstance(constraints, dict):
            check_duration(
                f"{name}.constraints.maxWallClockTime", constraints.get("maxWallClockTime")
            )
    release = req.get("jobReleaseTask")
    if release is not None:
        if req.get("jobPreparationTask") is None:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "A job release task requires a job preparation task.",
                {"PropertyName": "jobReleaseTask", "Reason": "jobPreparationTask is not set."},
            )
        check_duration("jobReleaseTask.maxWallClockTime", release.get("maxWallClockTime"))
        limit = duration_seconds(release.get("maxWallClockTime"))
        if limit is not None and limit > RELEASE_LIMIT:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "The job release task's maxWallClockTime may not exceed 15 minutes.",
                {
                    "PropertyName": "jobReleaseTask.maxWallClockTime",
                    "PropertyValue": str(release.get("maxWallClockTime")),
                },
            )


def stored(req: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The three specifications as the job stores and returns them, with Batch's defaults."""
    defaults: dict[str, dict[str, Any]] = {
        "jobManagerTask": {"killJobOnCompletion": True, "runExclusive": True},
        "jobPreparationTask": {
            "id": "jobpreparation",
            "waitForSuccess": True,
            "rerunOnNodeRebootAfterSuccess": True,
        },
        "jobReleaseTask": {"id": "jobrelease", "maxWallClockTime": "PT15M"},
    }
    return {
        name: {**extra, **{k: v for k, v in req[name].items() if v is not None}}
        for name, extra in defaults.items()
        if req.get(name) is not None
    }


def manager_request(spec: dict[str, Any]) -> dict[str, Any]:
    """The job manager task as a task body the tasks module validates and shapes."""
    return {k: spec[k] for k in MANAGER_FIELDS if spec.get(k) is not None}


def manager_meta(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "manager": True,
        "exclusive": spec.get("runExclusive", True) is not False,
        "kill": spec.get("killJobOnCompletion", True) is not False,
    }


class JobTasks:
    """Preparation and release runs, one record per (job, node)."""

    def __init__(self, store: Store, clock: Clock, runtime: Runtime) -> None:
        self.store = store
        self.clock = clock
        self.runtime = runtime
        self._runs: dict[tuple[str, str], agent.TaskRun] = {}  # (job key, row key) -> prep

    # ------------------------------------------------------------------ preparation

    def status(self, job: Row, pool: Row, node: Row) -> str:
        """`ready` (tasks may run), `new` (to prepare), `busy` (preparing) or `blocked`."""
        spec = job.body.get("jobPreparationTask")
        if not spec:
            return "ready"
        key = _key(pool, node)
        if (job.key, key) in self._runs:
            return "busy"
        row = self.store.get(KIND, job.key, key)
        info = (row.body.get("jobPreparationTaskExecutionInfo") if row else None) or {}
        if info.get("state") != "completed":
            return "new"
        rebooted = row is not None and row.meta.get("boot") != node.body.get("lastBootTime")
        # A node that rebooted since runs it again, unless told not to after a success.
        if rebooted and (
            info.get("result") != "success" or spec.get("rerunOnNodeRebootAfterSuccess", True)
        ):
            return "new"
        if info.get("result") == "success" or spec.get("waitForSuccess", True) is False:
            return "ready"
        return "blocked"

    def start_preparation(self, job: Row, pool: Row, node: Row) -> None:
        key = _key(pool, node)
        run = self._run_for(job, pool, node, "jobPreparationTask", "jobpreparation")
        self._runs[(job.key, key)] = run
        self.runtime.spawn(self._prepare(job, pool, node, run))

    async def _prepare(self, job: Row, pool: Row, node: Row, run: agent.TaskRun) -> None:
        key = _key(pool, node)
        spec = job.body["jobPreparationTask"]
        retries = int((spec.get("constraints") or {}).get("maxTaskRetryCount", 0) or 0)
        attempt = 0
        try:
            while True:
                info: dict[str, Any] = {
                    "state": "running",
                    "startTime": self.clock.iso(),
                    "retryCount": attempt,
                    **_root(node, job, "jobpreparation"),
                }
                if attempt:
                    info["lastRetryTime"] = info["startTime"]
                self._record(job, pool, node, "jobPreparationTaskExecutionInfo", info)
                wall = _seconds((spec.get("constraints") or {}).get("maxWallClockTime"))
                outcome = await self._execute(run, wall, pool, node)
                if self.runtime.stopping or outcome.stage == "killed":
                    return
                info = _finished(info, outcome)
                self._record(job, pool, node, "jobPreparationTaskExecutionInfo", info)
                if outcome.result == "success" or outcome.stage != "process":
                    return
                if retries != -1 and attempt >= retries:
                    return
                attempt += 1
                run = self._run_for(job, pool, node, "jobPreparationTask", "jobpreparation")
                self._runs[(job.key, key)] = run
        finally:
            self._runs.pop((job.key, key), None)
            self.runtime.wake()

    # ------------------------------------------------------------------ release

    def needs_release(self, job: Row) -> bool:
        return bool(job.body.get("jobReleaseTask")) and any(
            True for _ in self.store.iter(KIND, job.key)
        )

    def stop_preparations(self, job_key: str) -> None:
        """The job ends: kill its preparation tasks still running."""
        for (key, _node), run in list(self._runs.items()):
            if key == job_key:
                run.kill()

    async def release(self, job: Row) -> None:
        """Run the release task on every node that ran the preparation task, and wait."""
        self.stop_preparations(job.key)
        if not job.body.get("jobReleaseTask"):
            return
        waits = []
        for row in list(self.store.iter(KIND, job.key)):
            pool = self.store.get("pool", "", row.meta.get("pool", ""))
            node = self.store.get("node", row.meta.get("pool", ""), row.meta.get("node", ""))
            if pool is None or node is None or row.body.get("jobReleaseTaskExecutionInfo"):
                continue
            waits.append(self._release_one(job, pool, node))
        if waits:
            await asyncio.gather(*waits)

    async def _release_one(self, job: Row, pool: Row, node: Row) -> None:
        spec = job.body["jobReleaseTask"]
        run = self._run_for(job, pool, node, "jobReleaseTask", "jobrelease")
        info: dict[str, Any] = {
            "state": "running",
            "startTime": self.clock.iso(),
            **_root(node, job, "jobrelease"),
        }
        self._record(job, pool, node, "jobReleaseTaskExecutionInfo", info)
        wall = _seconds(spec.get("maxWallClockTime"))
        outcome = await self._execute(run, RELEASE_LIMIT if wall is None else wall, pool, node)
        if self.runtime.stopping:
            return
        info = _finished(info, outcome)
        info.pop("retryCount", None)
        self._record(job, pool, node, "jobReleaseTaskExecutionInfo", info)

    def forget(self, job_key: str) -> None:
        self.store.delete_children(KIND, job_key)

    # ------------------------------------------------------------------ running

    async def _execute(
        self, run: agent.TaskRun, wall: float | None, pool: Row, node: Row
    ) -> agent.Outcome:
        """Run on NODE (a reboot or removal of it kills the run, as it kills a start task).
        The wall clock counts from now, when the run was reported running, not from the
        process start a moment later: a client that steps the manual clock as soon as it sees
        the run must find the limit where the reported start time says it is."""
        timer: Any = None
        started = self.clock.time()
        on_node = self.runtime.node_runtime(pool.key, node.key).job_runs
        on_node.add(run)

        async def on_running(_pid: int) -> None:
            nonlocal timer
            if wall is not None:  # on the service clock
                timer = self.clock.at(started + wall, run.expire)

        try:
            return await run.run(on_running)
        finally:
            on_node.discard(run)
            if timer is not None:
                timer.cancel()

    def _run_for(self, job: Row, pool: Row, node: Row, name: str, folder: str) -> agent.TaskRun:
        assert self.runtime.http is not None
        spec = job.body[name]
        root = self.runtime.node_dir(pool.key, node.key)
        job_dir = f"{root}/workitems/{job.body['id']}/job-1"
        task_dir = f"{job_dir}/{folder}"
        env = self.runtime.env_node(pool, node)
        env.update(
            {
                "AZ_BATCH_JOB_ID": job.body["id"],
                "AZ_BATCH_TASK_ID": str(spec.get("id") or folder),
                "AZ_BATCH_TASK_DIR": task_dir,
                "AZ_BATCH_TASK_WORKING_DIR": f"{task_dir}/wd",
                "AZ_BATCH_JOB_PREP_DIR": f"{job_dir}/jobpreparation",
                "AZ_BATCH_JOB_PREP_WORKING_DIR": f"{job_dir}/jobpreparation/wd",
            }
        )
        for setting in job.body.get("commonEnvironmentSettings") or []:
            env[str(setting["name"])] = str(setting.get("value", ""))
        for setting in spec.get("environmentSettings") or []:
            env[str(setting["name"])] = str(setting.get("value", ""))
        execution = agent.Execution(
            command_line=spec["commandLine"],
            task_dir=Path(task_dir),
            working_dir=Path(task_dir) / "wd",
            environment=env,
            resource_files=tuple(resource_files(spec.get("resourceFiles"))),
        )
        return agent.TaskRun(
            execution, self.runtime.http, self.runtime.processes, clock=self.clock.now
        )

    def _record(self, job: Row, pool: Row, node: Row, field: str, info: dict[str, Any]) -> None:
        key = _key(pool, node)
        row = self.store.get(KIND, job.key, key)
        if row is None:
            body = {
                "poolId": pool.body["id"],
                "nodeId": node.body["id"],
                "nodeUrl": node.body["url"],
            }
            row = Row(KIND, job.key, key, body, {"pool": pool.key, "node": node.key})
        row.body[field] = info
        if field == "jobPreparationTaskExecutionInfo":
            row.meta["boot"] = node.body.get("lastBootTime")
        self.store.put(row)


def _key(pool: Row, node: Row) -> str:
    return f"{pool.key}|{node.key}"


def _root(node: Row, job: Row, folder: str) -> dict[str, str]:
    rel = f"workitems/{job.body['id']}/job-1/{folder}"
    return {"taskRootDirectory": rel, "taskRootDirectoryUrl": f"{node.body['url']}/files/{rel}"}


def _seconds(text: Any) -> float | None:
    try:
        return duration_seconds(text)
    except ValueError:
        return None


def _finished(info: dict[str, Any], outcome: agent.Outcome) -> dict[str, Any]:
    done = dict(info)
    done.update({"state": "completed", "endTime": iso(outcome.end_time), "result": outcome.result})
    if outcome.start_time:
        done["startTime"] = iso(outcome.start_time)
    if outcome.exit_code is not None:
        done["exitCode"] = outcome.exit_code
    if outcome.failure_info:
        done["failureInfo"] = outcome.failure_info
    return done
