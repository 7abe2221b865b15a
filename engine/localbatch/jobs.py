"""Jobs: their validation, their shape and their whole state machine.

active <-> disabling/disabled/enabling, terminating -> completed (by request, by
onAllTasksComplete, by the job's maxWallClockTime on the service clock), deleting -> gone
after the delete delay on the service clock. The tasks of a job are the tasks module's; a
job stops them through it and hears of their completions through its `on_complete` hook.
Job schedules create jobs through `create` (with `schedule=`); a job with an
`autoPoolSpecification` gets its pool through the `auto_pool` hook the service sets.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from typing import Any

from . import autopools, exits, jobtasks, quotas
from .base import ResourceModule
from .clock import Clock
from .resources import (
    MAX_DURATION,
    BatchError,
    check_duration,
    check_id,
    check_int,
    duration_seconds,
    invalid,
    missing,
    new_etag,
    parse_iso,
    transition,
)
from .runs import Runtime
from .settings import Settings
from .store import Row, Store
from .tasks import Tasks

BEING_DELETED = (
    409,
    "JobBeingDeleted",
    "The specified job has been marked for deletion and is being garbage collected.",
)


class Jobs(ResourceModule):
    def __init__(
        self, store: Store, clock: Clock, runtime: Runtime, tasks: Tasks, settings: Settings
    ) -> None:
        super().__init__(store, clock, runtime)
        self.tasks = tasks
        self.settings = settings
        self._no_action: dict[str, bool] = {}  # job key -> onAllTasksComplete is noaction
        tasks.on_complete = self.check_done
        # Set by the service: creates an auto pool (base URL, autoPoolSpecification) -> id.
        self.auto_pool: Callable[[str, dict[str, Any]], str] | None = None
        # Told of every job state change (auto pools, job schedules).
        self.listeners: list[Callable[[Row], None]] = []
        tasks.on_exit = self.task_exited
        self.jobtasks = jobtasks.JobTasks(store, clock, runtime)

    # ------------------------------------------------------------------ reading

    def get(self, job_id: str) -> Row:
        row = self.store.get("job", "", job_id)
        if row is None:
            raise BatchError(404, "JobNotFound", "The specified job does not exist.")
        return row

    def writable(self, row: Row) -> Row:
        """ROW, unless its state forbids changes (deleting, completed, terminating)."""
        state = row.body["state"]
        if state == "deleting":
            raise BatchError(*BEING_DELETED)
        if state == "completed":
            raise BatchError(
                409, "JobCompleted", "The specified job is already in a completed state."
            )
        if state == "terminating":
            raise BatchError(409, "JobBeingTerminated", "The specified job is being terminated.")
        return row

    # ------------------------------------------------------------------ requests

    def create(
        self,
        base: str,
        req: dict[str, Any],
        *,
        schedule: str | None = None,
        auto_pool_id: str | None = None,
    ) -> Row:
        """A new job; SCHEDULE: the job schedule making it (its id is the service's own),
        AUTO_POOL_ID: the schedule's pool for a jobschedule-lifetime auto pool."""
        job_id = str(req.get("id")) if schedule else check_id("id", req.get("id"))
        pool_info = req.get("poolInfo")
        if not isinstance(pool_info, dict):
            raise missing("poolInfo")
        auto_spec = None
        if not pool_info.get("poolId"):
            if not pool_info.get("autoPoolSpecification") or self.auto_pool is None:
                raise missing("poolInfo.poolId")
            auto_spec = autopools.check_spec(
                "poolInfo.autoPoolSpecification",
                pool_info["autoPoolSpecification"],
                in_schedule=schedule is not None,
            )
        existing = self.store.get("job", "", job_id)
        if existing is not None:
            if existing.body.get("state") == "deleting":
                raise BatchError(*BEING_DELETED)
            raise BatchError(409, "JobExists", "The specified job already exists.")
        _check_fields(req)
        self._check_parallel(req)
        jobtasks.check(req)
        quotas.check_job_quota(self.store, self.settings.quotas)
        meta: dict[str, Any] = {}
        if schedule:
            meta["schedule"] = schedule
        if auto_spec is None:
            pool_id = pool_info["poolId"]
        elif auto_pool_id is not None:
            pool_id = auto_pool_id
        else:
            assert self.auto_pool is not None
            pool_id = self.auto_pool(base, auto_spec)
            if not auto_spec.get("keepAlive"):
                meta["autoPool"] = pool_id
        stamp = self.clock.iso()
        url = f"{base}/jobs/{job_id}"
        body: dict[str, Any] = {"id": job_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        body.update(
            {
                "usesTaskDependencies": bool(req.get("usesTaskDependencies", False)),
                "url": url,
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
                "state": "active",
                "stateTransitionTime": stamp,
                "priority": req.get("priority", 0),
                "allowTaskPreemption": bool(req.get("allowTaskPreemption", False)),
                "maxParallelTasks": req.get("maxParallelTasks", -1),
                "constraints": _constraints(req.get("constraints")),
            }
        )
        for key in (
            "jobManagerTask",
            "jobPreparationTask",
            "jobReleaseTask",
            "commonEnvironmentSettings",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body.update(jobtasks.stored(req))
        body["poolInfo"] = (
            {"poolId": pool_id} if auto_spec is None else {"autoPoolSpecification": auto_spec}
        )
        body["onAllTasksComplete"] = req.get("onAllTasksComplete") or "noaction"
        body["onTaskFailure"] = req.get("onTaskFailure") or "noaction"
        if req.get("networkConfiguration") is not None:
            body["networkConfiguration"] = req["networkConfiguration"]
        if req.get("metadata") is not None:
            body["metadata"] = req["metadata"]
        body["executionInfo"] = {"startTime": stamp, "poolId": pool_id}
        row = Row("job", "", job_id, body, meta)
        manager = req.get("jobManagerTask")
        first = None
        if manager is not None:  # a task of the job, validated before anything is stored
            first = self.tasks.new(base, row, jobtasks.manager_request(manager))
            first.meta.update(jobtasks.manager_meta(manager))
        self.store.put(row)
        if first is not None:
            self.store.put(first)
        self._changed(row)
        return row

    def update(self, row: Row, req: dict[str, Any], replace: bool) -> None:
        """PATCH (REPLACE false) or PUT of a job's properties."""
        self.writable(row)
        _check_fields(req)
        self._check_parallel(req)
        body = row.body
        pool_info = req.get("poolInfo")
        if replace and not isinstance(pool_info, dict):
            raise missing("poolInfo")
        if (
            isinstance(pool_info, dict)
            and pool_info.get("poolId")
            and pool_info["poolId"].lower() != str(body["executionInfo"].get("poolId")).lower()
        ):
            if body["state"] != "disabled":
                raise BatchError(
                    409,
                    "OperationInvalidForCurrentState",
                    "The pool of a job can be changed only while the job is disabled.",
                    {"PropertyName": "poolInfo"},
                )
            body["poolInfo"] = {"poolId": pool_info["poolId"]}
            body["executionInfo"]["poolId"] = pool_info["poolId"]
        mode = req.get("onAllTasksComplete")
        if body["onAllTasksComplete"] == "terminatejob" and mode == "noaction":
            raise invalid(
                "onAllTasksComplete",
                mode,
                "Once set to terminatejob it cannot be changed back to noaction.",
            )
        defaults: dict[str, Any] = {
            "priority": 0,
            "allowTaskPreemption": False,
            "maxParallelTasks": -1,
            "onAllTasksComplete": None,
            "metadata": None,
        }
        for key, default in defaults.items():
            if key in req and req[key] is not None:
                body[key] = req[key]
            elif replace and default is not None:
                body[key] = default
            elif replace and key == "metadata":
                body.pop("metadata", None)
        if ("constraints" in req and req["constraints"] is not None) or replace:
            body["constraints"] = _constraints(req.get("constraints"))
        self.touch(row)
        self.store.put(row)
        self._changed(row)

    def _check_parallel(self, req: dict[str, Any]) -> None:
        """An account without maxParallelTasks refuses a job that sets it, as Azure does."""
        if req.get("maxParallelTasks") in (None, -1) or self.settings.max_parallel_tasks_enabled:
            return
        raise BatchError(
            403,
            "Forbidden",
            "Access is Forbidden",
            {"Reason": "Property maxParallelTasks is not enabled for current account"},
        )

    def delete(self, row: Row) -> None:
        if row.body["state"] == "deleting":
            return
        self._set_state(row, "deleting")
        self.tasks.stop_all(self.runtime.in_job(row.key), "delete")
        self._finish_delete_later(row.key)

    def _finish_delete_later(self, job_key: str) -> None:
        self.clock.after(self.settings.delete_delay, lambda: self._finish_delete(job_key))

    async def _finish_delete(self, job_key: str) -> None:
        """The delete delay is over: once its processes have ended, the job and its tasks go."""
        job = self.store.get("job", "", job_key)
        waits = [e.aio for e in self.runtime.in_job(job_key) if e.aio]
        if waits:
            await asyncio.wait(waits)
        if job is not None:
            await self.jobtasks.release(job)
            self.jobtasks.forget(job_key)
        self.runtime.tokens.forget_job(job_key)
        job_dirs = self.tasks.forget_job(job_key)
        self.store.delete("job", "", job_key)
        self._no_action.pop(job_key, None)
        if job is not None:
            for path in job_dirs:
                await asyncio.to_thread(shutil.rmtree, path, True)

    def disable(self, row: Row, option: Any) -> None:
        self.writable(row)
        if option is None:
            raise missing("disableTasks")
        if row.body["state"] not in ("active", "disabling", "disabled", "enabling"):
            raise BatchError(409, "JobNotActive", "The specified job is not active.")
        self._set_state(row, "disabled")
        if option in ("requeue", "terminate"):
            self.tasks.stop_all(self.runtime.in_job(row.key), option)

    def enable(self, row: Row) -> None:
        self.writable(row)
        self._set_state(row, "active")
        self.runtime.wake()

    def terminate(self, row: Row, reason: str) -> None:
        self.writable(row)
        self._terminate(row, reason)

    def _terminate(self, row: Row, reason: str) -> None:
        self._set_state(row, "terminating")
        self.tasks.stop_all(self.runtime.in_job(row.key), "terminate")
        self.jobtasks.stop_preparations(row.key)
        if self.jobtasks.needs_release(row):
            row.body.setdefault("executionInfo", {})["terminateReason"] = reason
            self.store.put(row)
            self.runtime.spawn(self._release_then_complete(row.key, reason))
            return
        self._complete(row, reason)

    async def _release_then_complete(self, job_key: str, reason: str) -> None:
        """Terminating: the tasks' processes end, the release tasks run, then completed."""
        waits = [e.aio for e in self.runtime.in_job(job_key) if e.aio]
        if waits:
            await asyncio.wait(waits)
        job = self.store.get("job", "", job_key)
        if job is None:
            return
        await self.jobtasks.release(job)
        job = self.store.get("job", "", job_key)
        if job is not None and job.body["state"] == "terminating":
            self._complete(job, reason)

    def task_exited(self, job_key: str, task: Row, options: dict[str, str]) -> None:
        """A task completed: its exit options' jobAction (under performexitoptionsjobaction),
        then a job manager task's killJobOnCompletion."""
        job = self.store.get("job", "", job_key)
        if job is None or job.body["state"] not in ("active", "disabled"):
            return
        if str(job.body.get("onTaskFailure", "")).lower() == exits.PERFORM:
            action = options.get("jobAction")
            if action == "terminate":
                self._terminate(job, "TaskFailed")
                return
            if action == "disable" and job.body["state"] == "active":
                self._set_state(job, "disabled")
                self.tasks.stop_all(self.runtime.in_job(job.key), "requeue")
        if task.meta.get("manager") and task.meta.get("kill"):
            self._terminate(job, "JMComplete")

    # ------------------------------------------------------------------ transitions

    def _set_state(self, job: Row, state: str) -> None:
        transition(job.body, state, self.clock.iso())
        self.store.put(job)
        for listener in self.listeners:
            listener(job)

    def _complete(self, job: Row, reason: str) -> None:
        job.body.setdefault("executionInfo", {"startTime": job.body["creationTime"]})
        job.body["executionInfo"]["endTime"] = self.clock.iso()
        job.body["executionInfo"]["terminateReason"] = reason
        self._set_state(job, "completed")

    def _changed(self, row: Row) -> None:
        """After a create or an update: completion rules, the deadline, a dispatch."""
        self.check_done(row.key)
        self._watch_deadline(row)
        self.runtime.wake()

    def check_done(self, job_key: str, known: bool = False) -> None:
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
        # Terminated as by a request: the release task runs on the nodes that prepared.
        self._terminate(job, "AllTasksComplete")

    def _watch_deadline(self, row: Row) -> None:
        """A job past its maxWallClockTime (from its creation) is terminated, as Batch does."""
        try:
            limit = duration_seconds(row.body.get("constraints", {}).get("maxWallClockTime"))
        except ValueError:
            return
        if limit is None:
            return
        due = parse_iso(row.body["creationTime"]).timestamp() + limit
        self.clock.at(due, lambda: self._deadline(row.key))

    def _deadline(self, job_key: str) -> None:
        job = self.store.get("job", "", job_key)
        if job is None or job.body["state"] not in ("active", "disabled"):
            return
        try:
            limit = duration_seconds(job.body.get("constraints", {}).get("maxWallClockTime"))
        except ValueError:
            return
        created = parse_iso(job.body["creationTime"]).timestamp()
        if limit is not None and created + limit <= self.clock.time():
            self._terminate(job, "MaxWallClockTimeExpiry")

    # ------------------------------------------------------------------ restart

    def recover(self) -> None:
        for job in self.store.iter_all("job"):
            state = job.body["state"]
            if state == "deleting":
                self._finish_delete_later(job.key)
            elif state == "terminating":
                self._complete(
                    job, job.body.get("executionInfo", {}).get("terminateReason", "UserTerminate")
                )
            elif state in ("disabling", "enabling"):
                self._set_state(job, "disabled" if state == "disabling" else "active")
            if job.body["state"] in ("active", "disabled"):
                self._watch_deadline(job)


def _check_fields(req: dict[str, Any]) -> None:
    check_int("priority", req.get("priority"), -1000, 1000)
    check_int("maxParallelTasks", req.get("maxParallelTasks"), -1, None)
    if req.get("maxParallelTasks") == 0:
        raise invalid("maxParallelTasks", 0, "The value must be -1 or greater than 0.")
    constraints = req.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise invalid("constraints", constraints, "Constraints must be an object.")
    check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
    check_int("constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None)


def _constraints(given: Any) -> dict[str, Any]:
    given = given or {}
    return {
        "maxWallClockTime": given.get("maxWallClockTime") or MAX_DURATION,
        "maxTaskRetryCount": given.get("maxTaskRetryCount", 0),
    }
