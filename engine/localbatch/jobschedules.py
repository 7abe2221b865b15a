"""Job schedules: their validation, their shape and their state machine.

active <-> disabled, terminating -> completed, deleting -> gone (after the delete delay on
the service clock). An active schedule makes jobs from its `jobSpecification`, with ids
`<scheduleId>:job-<n>`, at `doNotRunUntil` (or at once) and then every
`recurrenceInterval` from the previous run's due time. It has at most one active job: a run
that falls due while the previous job is active waits for it until its `startWindow` is
over, and is skipped after. With no recurrence it makes one job and completes when that job
does; past `doNotRunAfter` it makes no more jobs and completes once none is active. Every
step happens on the service clock's timers, so a manual clock steps across them.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from . import autopools
from .base import ResourceModule
from .clock import Clock, Timer
from .jobs import Jobs, _check_fields
from .resources import (
    BatchError,
    check_id,
    duration_seconds,
    invalid,
    iso,
    missing,
    new_etag,
    parse_iso,
    transition,
)
from .runs import Runtime
from .settings import Settings
from .store import Row, Store

BEING_DELETED = (
    409,
    "JobScheduleBeingDeleted",
    "The specified job schedule has been marked for deletion and is being garbage collected.",
)
ACTIVE_JOB = ("active", "disabling", "disabled", "enabling", "terminating")
MIN_INTERVAL = 60.0
SPEC_KEYS = (
    "priority",
    "allowTaskPreemption",
    "maxParallelTasks",
    "displayName",
    "usesTaskDependencies",
    "onAllTasksComplete",
    "onTaskFailure",
    "networkConfiguration",
    "constraints",
    "jobManagerTask",
    "jobPreparationTask",
    "jobReleaseTask",
    "commonEnvironmentSettings",
    "poolInfo",
    "metadata",
)


class JobSchedules(ResourceModule):
    def __init__(
        self,
        store: Store,
        clock: Clock,
        runtime: Runtime,
        jobs: Jobs,
        auto_pools: autopools.AutoPools,
        settings: Settings,
    ) -> None:
        super().__init__(store, clock, runtime)
        self.jobs = jobs
        self.auto_pools = auto_pools
        self.settings = settings
        self._timers: dict[str, Timer] = {}
        self._busy: set[str] = set()  # schedules making a job right now
        jobs.listeners.append(self.job_changed)

    # ------------------------------------------------------------------ reading

    def get(self, schedule_id: str) -> Row:
        row = self.store.get("jobschedule", "", schedule_id)
        if row is None:
            raise BatchError(
                404, "JobScheduleNotFound", "The specified job schedule does not exist."
            )
        return row

    def writable(self, row: Row) -> Row:
        state = row.body["state"]
        if state == "deleting":
            raise BatchError(*BEING_DELETED)
        if state == "completed":
            raise BatchError(
                409,
                "JobScheduleCompleted",
                "The specified job schedule is already in a completed state.",
            )
        if state == "terminating":
            raise BatchError(
                409, "JobScheduleBeingTerminated", "The specified job schedule is being terminated."
            )
        return row

    def job_keys(self, row: Row) -> list[str]:
        """The keys of the schedule's jobs that still exist, oldest first."""
        prefix = f"{row.key}:job-"
        return [
            j.key
            for j in self.store.iter("job", where=("substr(key, 1, ?) = ?", [len(prefix), prefix]))
        ]

    # ------------------------------------------------------------------ requests

    def create(self, base: str, req: dict[str, Any]) -> Row:
        schedule_id = check_id("id", req.get("id"))
        if req.get("schedule") is None:
            raise missing("schedule")
        schedule = _check_schedule(req["schedule"])
        spec = _check_spec(req.get("jobSpecification"), required=True)
        existing = self.store.get("jobschedule", "", schedule_id)
        if existing is not None:
            if existing.body.get("state") == "deleting":
                raise BatchError(*BEING_DELETED)
            raise BatchError(409, "JobScheduleExists", "The specified job schedule already exists.")
        stamp = self.clock.iso()
        body: dict[str, Any] = {"id": schedule_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        body.update(
            {
                "url": f"{base}/jobschedules/{schedule_id}",
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
                "state": "active",
                "stateTransitionTime": stamp,
                "schedule": schedule,
                "jobSpecification": spec,
                "executionInfo": {},
            }
        )
        if req.get("metadata") is not None:
            body["metadata"] = req["metadata"]
        until = schedule.get("doNotRunUntil")
        due = parse_iso(until).timestamp() if until else self.clock.time()
        row = Row("jobschedule", "", schedule_id, body, {"due": due, "made": 0, "base": base})
        self.store.put(row)
        self._evaluate(row)
        return row

    def update(self, row: Row, req: dict[str, Any], replace: bool) -> None:
        """PATCH (REPLACE false) or PUT: later jobs use the new specification; a new
        schedule restarts the recurrence from now (or its doNotRunUntil)."""
        self.writable(row)
        body = row.body
        if replace and req.get("schedule") is None:
            raise missing("schedule")
        if replace and req.get("jobSpecification") is None:
            raise missing("jobSpecification")
        schedule = _check_schedule(req["schedule"]) if req.get("schedule") is not None else None
        spec = (
            _check_spec(req["jobSpecification"], required=replace)
            if req.get("jobSpecification") is not None
            else None
        )
        if spec is not None and "poolInfo" not in spec:
            spec["poolInfo"] = body["jobSpecification"]["poolInfo"]  # a PATCH may leave it out
        if schedule is not None:
            body["schedule"] = schedule
            until = schedule.get("doNotRunUntil")
            row.meta["due"] = parse_iso(until).timestamp() if until else self.clock.time()
        if spec is not None:
            body["jobSpecification"] = spec
        if req.get("metadata") is not None:
            body["metadata"] = req["metadata"]
        elif replace:
            body.pop("metadata", None)
        self.touch(row)
        self.store.put(row)
        self._evaluate(row)

    def disable(self, row: Row) -> None:
        self.writable(row)
        self._set_state(row, "disabled")
        self._cancel(row.key)

    def enable(self, row: Row) -> None:
        self.writable(row)
        self._set_state(row, "active")
        self._evaluate(row)

    def terminate(self, row: Row) -> None:
        """The active job is terminated, then the schedule completes."""
        self.writable(row)
        self._cancel(row.key)
        self._set_state(row, "terminating")
        for key in self.job_keys(row):
            job = self.store.get("job", "", key)
            if job is not None and job.body["state"] in ACTIVE_JOB:
                self.jobs.terminate(self.jobs.writable(job), "UserTerminate")
        self._complete(row)

    def delete(self, row: Row) -> None:
        """The schedule's jobs are deleted with it; the row goes after the delete delay."""
        if row.body["state"] == "deleting":
            return
        self._cancel(row.key)
        self._set_state(row, "deleting")
        for key in self.job_keys(row):
            job = self.store.get("job", "", key)
            if job is not None:
                self.jobs.delete(job)
        self.auto_pools.release(row.meta.pop("autoPool", None))
        self.store.put(row)
        self._finish_delete_later(row.key)

    def _finish_delete_later(self, key: str) -> None:
        self.clock.after(self.settings.delete_delay, lambda: self._finish_delete(key))

    def _finish_delete(self, key: str) -> None:
        self.store.delete("jobschedule", "", key)

    # ------------------------------------------------------------------ transitions

    def job_changed(self, job: Row) -> None:
        """A job left the active states: its schedule may run the next job, or complete."""
        schedule = job.meta.get("schedule")
        if not schedule or job.body["state"] in ACTIVE_JOB or schedule in self._busy:
            return
        row = self.store.get("jobschedule", "", str(schedule))
        if row is not None and row.body["state"] == "active":
            self._evaluate(row)

    def _active_job(self, row: Row) -> Row | None:
        key = row.meta.get("current")
        job = self.store.get("job", "", str(key)) if key else None
        return job if job is not None and job.body["state"] in ACTIVE_JOB else None

    def _evaluate(self, row: Row) -> None:
        """Make the job that is due, skip runs whose start window is over, complete the
        schedule when no run is left, and set the timer for the next step."""
        self._cancel(row.key)
        if row.body["state"] != "active":
            return
        schedule = row.body["schedule"]
        now = self.clock.time()
        interval = duration_seconds(schedule.get("recurrenceInterval"))
        window = duration_seconds(schedule.get("startWindow"))
        after_text = schedule.get("doNotRunAfter")
        after = parse_iso(after_text).timestamp() if after_text else None
        if interval is not None:
            # A run is not carried into the next recurrence: the window is at most one.
            window = interval if window is None else min(window, interval)
        due: float | None = row.meta.get("due")
        active = self._active_job(row)
        while True:
            if due is not None and window is not None and now >= due + window:
                # The run's opportunity is lost: on to the next recurrence (if any).
                if interval is None:
                    due = None
                else:
                    due += (math.floor((now - window - due) / interval) + 1) * interval
            if due is not None and after is not None and (due > after or now > after):
                due = None
            if due is None or now < due or active is not None:
                break
            self._busy.add(row.key)
            try:
                self._make_job(row)
            finally:
                self._busy.discard(row.key)
            active = self._active_job(row)  # read again: a job may complete as it is made
            due = None if interval is None else due + interval
        row.meta["due"] = due
        info = row.body.setdefault("executionInfo", {})
        if due is None:
            info.pop("nextRunTime", None)
            self.store.put(row)
            if active is None:
                self._complete(row)
            return
        info["nextRunTime"] = iso_at(due)
        self.store.put(row)
        wake = due if now < due else (due + window if window is not None else None)
        if after is not None and after > now:
            wake = after if wake is None else min(wake, after)
        if wake is not None:
            self._timers[row.key] = self.clock.at(wake, lambda: self._fire(row.key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        row = self.store.get("jobschedule", "", key)
        if row is not None:
            self._evaluate(row)

    def _cancel(self, key: str) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _make_job(self, row: Row) -> None:
        """The schedule's next job, from its specification as it is now."""
        spec = row.body["jobSpecification"]
        row.meta["made"] = int(row.meta.get("made", 0)) + 1
        job_id = f"{row.body['id']}:job-{row.meta['made']}"
        req = {k: v for k, v in spec.items() if k in SPEC_KEYS}
        req["id"] = job_id
        base = str(row.meta.get("base") or row.body["url"].rsplit("/jobschedules/", 1)[0])
        auto = (spec.get("poolInfo") or {}).get("autoPoolSpecification")
        pool_id: str | None = None
        try:
            if auto and auto.get("poolLifetimeOption") == "jobschedule":
                pool_id = row.meta.get("pool")
                if pool_id is None:
                    pool_id = self.auto_pools.create(base, auto)
                    row.meta["pool"] = pool_id
                    if not auto.get("keepAlive"):
                        row.meta["autoPool"] = pool_id
            job = self.jobs.create(base, req, schedule=row.key, auto_pool_id=pool_id)
        except BatchError:
            # A pool specification the pools refuse, an id left over from a deleted job:
            # this run is lost, the schedule goes on.
            self.store.put(row)
            return
        row.meta["current"] = job.key
        row.body["executionInfo"]["recentJob"] = {"id": job.body["id"], "url": job.body["url"]}
        self.store.put(row)

    def _set_state(self, row: Row, state: str) -> None:
        transition(row.body, state, self.clock.iso())
        self.store.put(row)

    def _complete(self, row: Row) -> None:
        self._cancel(row.key)
        info = row.body.setdefault("executionInfo", {})
        info.pop("nextRunTime", None)
        info["endTime"] = self.clock.iso()
        self._set_state(row, "completed")
        self.auto_pools.release(row.meta.pop("autoPool", None))
        self.store.put(row)

    # ------------------------------------------------------------------ restart

    def recover(self) -> None:
        for row in self.store.iter_all("jobschedule"):
            state = row.body["state"]
            if state == "deleting":
                self._finish_delete_later(row.key)
            elif state == "terminating":
                self._complete(row)
            elif state == "active":
                self._evaluate(row)


def iso_at(when: float) -> str:
    return iso(dt.datetime.fromtimestamp(when, dt.UTC))


def _check_schedule(given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise invalid("schedule", given, "The schedule must be an object.")
    out: dict[str, Any] = {}
    for key in ("doNotRunUntil", "doNotRunAfter"):
        value = given.get(key)
        if value is None:
            continue
        try:
            parse_iso(str(value))
        except ValueError:
            raise invalid(f"schedule.{key}", value, "The value is not a valid time.") from None
        out[key] = value
    for key in ("startWindow", "recurrenceInterval"):
        value = given.get(key)
        if value is None:
            continue
        try:
            secs = duration_seconds(str(value))
        except ValueError:
            raise invalid(
                f"schedule.{key}", value, "The value is not a valid ISO 8601 duration."
            ) from None
        if secs is not None and secs < MIN_INTERVAL:
            raise invalid(f"schedule.{key}", value, "The minimum value is 1 minute.")
        out[key] = value
    return out


def _check_spec(given: Any, required: bool) -> dict[str, Any]:
    """A jobSpecification as Batch checks it when the schedule is created or replaced."""
    if given is None:
        raise missing("jobSpecification")
    if not isinstance(given, dict):
        raise invalid("jobSpecification", given, "The job specification must be an object.")
    pool_info = given.get("poolInfo")
    if required and not isinstance(pool_info, dict):
        raise missing("jobSpecification.poolInfo")
    if isinstance(pool_info, dict):
        if pool_info.get("autoPoolSpecification") and not pool_info.get("poolId"):
            autopools.check_spec(
                "jobSpecification.poolInfo.autoPoolSpecification",
                pool_info["autoPoolSpecification"],
                in_schedule=True,
            )
        elif not pool_info.get("poolId"):
            raise missing("jobSpecification.poolInfo.poolId")
    _check_fields(given)
    return {k: v for k, v in given.items() if k in SPEC_KEYS and v is not None}
