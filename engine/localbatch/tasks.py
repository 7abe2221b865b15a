"""Tasks: their validation, their shape and their whole state machine.

active -> preparing -> running -> completed, with requeues (a node leaving, a reboot, a
restart of the service), retries, terminate, reactivate and delete, and a completed task's
folder removed after its retention time on the service clock. Requests (through the HTTP
layer) and the scheduler (a dispatch, an outcome from the node agent) both come here for
every change of a task row; a job learns of completions through `on_complete`.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import agent, exits
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
    iso,
    missing,
    new_etag,
    parse_iso,
    transition,
)
from .runs import Running, Runtime
from .store import Row, Store

MAX_COLLECTION = 100


class Tasks(ResourceModule):
    def __init__(self, store: Store, clock: Clock, runtime: Runtime) -> None:
        super().__init__(store, clock, runtime)
        # Set by the jobs module: a task of JOB completed (or went); KNOWN: by an outcome.
        self.on_complete: Callable[[str, bool], None] = lambda _job, _known: None
        # Set by the jobs module: a task of JOB completed with these exit options.
        self.on_exit: Callable[[str, Row, dict[str, str]], None] = lambda _j, _t, _o: None

    # ------------------------------------------------------------------ reading

    def get(self, job: Row, task_id: str) -> Row:
        row = self.store.get("task", job.key, task_id)
        if row is None:
            raise BatchError(404, "TaskNotFound", "The specified task does not exist.")
        return row

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

    def succeeded(self, job_key: str) -> dict[str, bool]:
        cur = self.store.db.execute(
            "SELECT key, state, result, json_extract(meta, '$.dep') FROM resources"
            " WHERE kind='task' AND parent=?",
            (job_key,),
        )
        # A completed task satisfies its dependents per its exit options' dependencyAction.
        return {
            k: (s == "completed" and (d == "satisfy" if d else r == "success"))
            for k, s, r, d in cur.fetchall()
        }

    # ------------------------------------------------------------------ creating

    def new(self, base: str, job: Row, req: Any) -> Row:
        """Validate one task's body and shape it as Batch stores it."""
        if not isinstance(req, dict):
            raise BatchError(400, "InvalidRequestBody", "A task must be a JSON object.")
        task_id = check_id("id", req.get("id"))
        if not req.get("commandLine"):
            raise missing("commandLine")
        if not isinstance(req["commandLine"], str):
            raise invalid("commandLine", req["commandLine"], "The command line must be a string.")
        constraints = req.get("constraints") or {}
        if not isinstance(constraints, dict):
            raise invalid("constraints", constraints, "Constraints must be an object.")
        check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
        check_duration("constraints.retentionTime", constraints.get("retentionTime"))
        check_int("constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None)
        slots = req.get("requiredSlots", 1)
        check_int("requiredSlots", slots, 1, 256)
        depends = req.get("dependsOn")
        if depends:
            _check_depends(job, depends)
        exits.check(req.get("exitConditions"), str(job.body.get("onTaskFailure") or "noaction"))
        for rf in req.get("resourceFiles") or []:
            sources = [
                k
                for k in ("httpUrl", "storageContainerUrl", "autoStorageContainerName")
                if rf.get(k)
            ]
            if len(sources) != 1:
                raise invalid(
                    "resourceFiles",
                    rf,
                    "Exactly one of httpUrl, "
                    "storageContainerUrl or autoStorageContainerName is required.",
                )
        for of in req.get("outputFiles") or []:
            if not isinstance(of, dict) or not of.get("filePattern"):
                raise missing("outputFiles.filePattern")
            dest = (of.get("destination") or {}).get("container") or {}
            if not dest.get("containerUrl"):
                raise missing("outputFiles.destination.container.containerUrl")
            if not (of.get("uploadOptions") or {}).get("uploadCondition"):
                raise missing("outputFiles.uploadOptions.uploadCondition")
        stamp = self.clock.iso()
        job_retries = job.body.get("constraints", {}).get("maxTaskRetryCount", 0)
        body: dict[str, Any] = {"id": task_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        body.update(
            {
                "url": f"{base}/jobs/{job.body['id']}/tasks/{task_id}",
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
            }
        )
        if req.get("exitConditions") is not None:
            body["exitConditions"] = req["exitConditions"]
        body.update(
            {"state": "active", "stateTransitionTime": stamp, "commandLine": req["commandLine"]}
        )
        for key in (
            "containerSettings",
            "resourceFiles",
            "outputFiles",
            "environmentSettings",
            "affinityInfo",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body["constraints"] = {
            "maxWallClockTime": constraints.get("maxWallClockTime") or MAX_DURATION,
            "retentionTime": constraints.get("retentionTime") or "P7D",
            "maxTaskRetryCount": constraints.get("maxTaskRetryCount", job_retries),
        }
        body["requiredSlots"] = slots
        body["userIdentity"] = req.get("userIdentity") or {
            "autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}
        }
        body["executionInfo"] = {"retryCount": 0, "requeueCount": 0}
        for key in (
            "multiInstanceSettings",
            "applicationPackageReferences",
            "authenticationTokenSettings",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        if depends:
            body["dependsOn"] = {k: v for k, v in depends.items() if v}
        return Row("task", job.key, task_id, body, {})

    def add(self, base: str, job: Row, req: Any) -> Row:
        row = self.new(base, job, req)
        if self.store.get("task", job.key, row.key) is not None:
            raise BatchError(409, "TaskExists", "The specified task already exists.")
        self.store.put(row)
        self.runtime.wake()
        return row

    def add_collection(self, base: str, job: Row, req: dict[str, Any]) -> list[dict[str, Any]]:
        """Up to 100 tasks at once; each gets its own result, as Batch answers them."""
        tasks = req.get("value")
        if not isinstance(tasks, list) or not tasks:
            raise missing("value")
        if len(tasks) > MAX_COLLECTION:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "A task collection may hold at most 100 tasks.",
                {
                    "PropertyName": "value",
                    "PropertyValue": str(len(tasks)),
                    "Reason": "At most 100 tasks may be added in one request.",
                },
            )
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        rows: list[Row] = []
        for raw in tasks:
            task_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
            try:
                row = self.new(base, job, raw)
                if row.key in seen or self.store.get("task", job.key, row.key) is not None:
                    raise BatchError(409, "TaskExists", "The specified task already exists.")
            except BatchError as exc:
                error = exc.body(str(uuid.uuid4()))
                results.append({"status": "clienterror", "taskId": task_id, "error": error})
                continue
            seen.add(row.key)
            rows.append(row)
            results.append(
                {
                    "status": "success",
                    "taskId": row.body["id"],
                    "eTag": row.body["eTag"],
                    "lastModified": row.body["lastModified"],
                    "location": row.body["url"],
                }
            )
        self.store.put_many(rows)
        if rows:
            self.runtime.wake()
        return results

    # ------------------------------------------------------------------ requests

    def replace(self, row: Row, req: dict[str, Any]) -> None:
        constraints = req.get("constraints")
        if constraints is not None:
            if not isinstance(constraints, dict):
                raise invalid("constraints", constraints, "Constraints must be an object.")
            check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
            check_duration("constraints.retentionTime", constraints.get("retentionTime"))
            check_int(
                "constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None
            )
            row.body["constraints"] = {
                "maxWallClockTime": constraints.get("maxWallClockTime") or MAX_DURATION,
                "retentionTime": constraints.get("retentionTime") or "P7D",
                "maxTaskRetryCount": constraints.get("maxTaskRetryCount", 0),
            }
        self.touch(row)
        self.store.put(row)
        self.runtime.wake()

    def terminate(self, row: Row) -> None:
        if row.body["state"] == "completed":
            raise BatchError(409, "TaskCompleted", "The specified task is already completed.")
        entry = self.runtime.running.get((row.parent, row.key))
        if entry is not None and not entry.disposition:
            self.stop(entry, "terminate")
            return
        self._finish_terminated(row)

    def delete(self, row: Row) -> None:
        job_key, task_key = row.parent, row.key
        entry = self.runtime.running.get((job_key, task_key))
        if entry is not None:
            self.stop(entry, "delete")
        self.store.delete("task", job_key, task_key)
        if row.meta.get("dir") and entry is None:
            self.runtime.spawn(asyncio.to_thread(shutil.rmtree, row.meta["dir"], True))
        self.on_complete(job_key, False)
        self.runtime.wake()

    def reactivate(self, row: Row, job: Row) -> None:
        if row.body["state"] != "completed":
            raise BatchError(409, "TaskNotCompleted", "The specified task is not completed.")
        if row.body.get("executionInfo", {}).get("result") == "success":
            raise BatchError(
                409,
                "TaskSucceeded",
                "The specified task completed successfully and cannot be reactivated.",
            )
        if job.body["state"] in ("completed", "terminating", "deleting"):
            raise BatchError(409, "JobCompleted", "The job of this task is completed.")
        requeues = row.body.get("executionInfo", {}).get("requeueCount", 0)
        row.body["executionInfo"] = {"retryCount": 0, "requeueCount": requeues}
        row.body.pop("nodeInfo", None)
        row.meta.pop("cleanup_at", None)
        self._set_state(row, "active")
        self.store.put(row)
        self.runtime.wake()

    # ------------------------------------------------------------------ transitions

    def _set_state(self, row: Row, state: str) -> None:
        transition(row.body, state, self.clock.iso())

    def requeue(self, row: Row) -> None:
        """Back to active, as after a node reboot (counted as a requeue, not a retry)."""
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info["requeueCount"] = int(info.get("requeueCount", 0)) + 1
        info["lastRequeueTime"] = self.clock.iso()
        self._set_state(row, "active")
        row.body.pop("nodeInfo", None)
        self.store.put(row)

    def stop(self, entry: Running, disposition: str) -> None:
        """Stop a running task and record now what it becomes (its process dies shortly)."""
        if entry.disposition:
            return
        entry.disposition = disposition
        entry.run.kill()
        row = self.store.get("task", entry.job, entry.task)
        if row is None:
            return
        if disposition == "requeue":
            self.requeue(row)
            self.runtime.wake()
        elif disposition == "terminate":
            self._finish_terminated(row)

    def stop_all(self, entries: list[Running], disposition: str) -> None:
        for entry in entries:
            self.stop(entry, disposition)

    def _finish_terminated(self, row: Row) -> None:
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info["endTime"] = self.clock.iso()
        info["result"] = "failure"
        info["failureInfo"] = agent.failure_info("TaskEnded", "Task Was Ended by User Request")
        self._set_state(row, "completed")
        self._schedule_retention(row)
        self.store.put(row)
        if row.meta.get("manager"):
            self.on_exit(row.parent, row, {"jobAction": "none", "dependencyAction": "block"})
        self.on_complete(row.parent, False)

    def dispatched(
        self, row: Row, node: Row, pool_id: str, rel: str, task_dir: str, prepared: bool
    ) -> None:
        """The scheduler put the task on NODE: preparing, or running when nothing to fetch."""
        node_url = node.body["url"]
        row.body["nodeInfo"] = {
            "affinityId": node.body["affinityId"],
            "nodeUrl": node_url,
            "poolId": pool_id,
            "nodeId": node.body["id"],
            "taskRootDirectory": rel,
            "taskRootDirectoryUrl": f"{node_url}/files/{rel}",
        }
        row.meta["dir"] = task_dir
        row.meta.pop("cleaned", None)
        # With no resource files there is nothing to prepare: the process starts right away,
        # so the task goes straight to running (one write less per task).
        if prepared:
            row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})[
                "startTime"
            ] = self.clock.iso()
        self._set_state(row, "running" if prepared else "preparing")
        self.store.put(row)

    def process_started(self, entry: Running) -> None:
        """The node agent started the process of a task that was preparing."""
        row = self.store.get("task", entry.job, entry.task)
        if row is None:
            return
        info = row.body.setdefault("executionInfo", {"retryCount": 0, "requeueCount": 0})
        info["startTime"] = self.clock.iso()
        self._set_state(row, "running")
        self.store.put(row)

    def record(self, entry: Running, outcome: agent.Outcome) -> None:
        """The node agent's outcome: a retry (back to active) or completed."""
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
            info["lastRetryTime"] = self.clock.iso()
            for k in ("endTime", "result", "failureInfo", "exitCode"):
                info.pop(k, None)
            self._set_state(row, "active")
            self.store.put(row)
            return
        options = exits.options(
            row.body.get("exitConditions"), outcome.result, outcome.exit_code, outcome.stage
        )
        row.meta["dep"] = options["dependencyAction"]
        self._set_state(row, "completed")
        self._schedule_retention(row)
        self.store.put(row)
        self.on_exit(entry.job, row, options)
        self.on_complete(entry.job, True)

    def forget_job(self, job_key: str) -> set[Path]:
        """A deleted job's tasks go; returns the job's folders on the nodes, to remove."""
        dirs = [Path(r.meta["dir"]) for r in self.store.iter("task", job_key) if r.meta.get("dir")]
        self.store.delete_children("task", job_key)
        return {d.parent.parent for d in dirs}

    # ------------------------------------------------------------------ retention

    def _schedule_retention(self, row: Row) -> None:
        try:
            keep = duration_seconds(row.body.get("constraints", {}).get("retentionTime"))
        except ValueError:
            keep = None
        if keep is None or not row.meta.get("dir"):
            return
        end = row.body.get("executionInfo", {}).get("endTime")
        at = (parse_iso(end).timestamp() if end else self.clock.time()) + keep
        row.meta["cleanup_at"] = at
        self._retain_until(at, row.parent, row.key)

    def _retain_until(self, at: float, job_key: str, task_key: str) -> None:
        self.clock.at(at, lambda: self._expire(job_key, task_key))

    async def _expire(self, job_key: str, task_key: str) -> None:
        """Retention time over: the task's folder goes; its files answer TaskFilesCleanedup."""
        row = self.store.get("task", job_key, task_key)
        if row is None or row.body["state"] != "completed" or not row.meta.get("dir"):
            return
        if row.meta.get("cleanup_at", self.clock.time() + 1) > self.clock.time():
            return  # reactivated since, or a newer retention
        await asyncio.to_thread(shutil.rmtree, row.meta["dir"], True)
        row = self.store.get("task", job_key, task_key)
        if row is not None:
            row.meta["cleaned"] = True
            self.store.put(row)

    # ------------------------------------------------------------------ restart

    def recover(self) -> None:
        """After a restart: running tasks run again, as after a reboot; retention resumes."""
        for row in self.store.iter_all("task"):
            state = row.body.get("state")
            if state in ("preparing", "running"):
                self.requeue(row)
            elif (
                state == "completed" and row.meta.get("cleanup_at") and not row.meta.get("cleaned")
            ):
                self._retain_until(row.meta["cleanup_at"], row.parent, row.key)


def _check_depends(job: Row, depends: Any) -> None:
    if not job.body.get("usesTaskDependencies"):
        raise BatchError(
            400,
            "TaskDependenciesNotSpecifiedOnJob",
            "The job does not allow tasks with dependencies (usesTaskDependencies is not set).",
        )
    if not isinstance(depends, dict):
        raise invalid("dependsOn", depends, "dependsOn must be an object.")
    ids = depends.get("taskIds") or []
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise invalid("dependsOn.taskIds", ids, "taskIds must be a list of ids.")
    if sum(len(i) for i in ids) > 64000:
        raise BatchError(
            400, "TaskDependencyListTooLong", "The task's dependency list is too long."
        )
    ranges = depends.get("taskIdRanges") or []
    for r in ranges:
        if not isinstance(r, dict) or "start" not in r or "end" not in r:
            raise missing("dependsOn.taskIdRanges.start")
        check_int("dependsOn.taskIdRanges.start", r["start"], 0, None)
        check_int("dependsOn.taskIdRanges.end", r["end"], 0, None)
        if r["start"] > r["end"]:
            raise invalid("dependsOn.taskIdRanges", r, "start must not exceed end.")
