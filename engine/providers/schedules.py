"""Job schedules through Batch's REST API (the client's pipeline, like the other raw calls):
read them into `kinds.schedule`'s normal form, create, update in place (PATCH), delete.

A schedule's runs get their tasks from bspec's job manager (`bspec.schedules`): before a
schedule is created or updated, the manager script and the task collection (Batch REST task
bodies with fresh SAS URLs, in dependency waves) are uploaded to the stack's own container
under `schedules/<id>/`, and the job specification's manager task reads both with SAS URLs.
Every create and update therefore renews the tokens (`apply` plans an update when they are
close to running out). Each run's job starts with onAllTasksComplete noaction; the manager
switches it to terminatejob once the tasks are in.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from bspec.common import durations
from bspec.errors import ConflictError, NotFoundError, ServiceError, TransientServiceError
from bspec.kinds import schedule as schedule_kind
from bspec.kinds.job import SCHEDULE_METADATA
from bspec.model import STACK_METADATA, Address, Resource
from bspec.providers.batch import BatchProvider, SasMaker
from bspec.providers.errors import sdk_errors
from bspec.providers.storage import StorageProvider
from bspec.schedules import SCRIPT, script_bytes

RUN_JOB_ID = "$AZ_BATCH_JOB_ID"  # the job manager puts the run's job id in its place
TASKS_BLOB = "tasks.json"
SELECT = "id,state,schedule,jobSpecification,metadata,executionInfo"
GONE_CODES = frozenset({"JobScheduleNotFound", "JobScheduleBeingDeleted"})


def folder(schedule_id: str) -> str:
    """Where a schedule's job manager and task collection live in the stack's container."""
    return f"schedules/{schedule_id}"


def _path(schedule_id: str) -> str:
    return f"jobschedules/{quote(schedule_id, safe='')}"


def sas_expiry(s: Mapping[str, Any]) -> str | None:
    """The earliest `se` (expiry) of the SAS URLs the schedule's job manager reads."""
    manager = (s.get("jobSpecification") or {}).get("jobManagerTask") or {}
    found = []
    for rf in manager.get("resourceFiles") or ():
        url = rf.get("httpUrl") or rf.get("storageContainerUrl") or ""
        se = parse_qs(urlsplit(url).query).get("se")
        if se:
            found.append(schedule_kind.utc_text(se[-1]))
    return min((f for f in found if f), default=None)


def read_schedules(batch: BatchProvider) -> list[Resource]:
    items = batch.list_raw("list job schedules", "jobschedules", {"$select": SELECT})
    return [schedule_kind.from_rest(s, sas_expiry(s), batch.source_of) for s in items]


def recent_runs(batch: BatchProvider, schedule_id: str) -> list[dict[str, Any]]:
    """The jobs the schedule has made that still exist, newest first: id, state, times."""
    jobs = batch.list_raw(
        f"list jobs of schedule {schedule_id}",
        f"{_path(schedule_id)}/jobs",
        {"$select": "id,state,creationTime,executionInfo"},
    )
    out = [
        {
            "id": j.get("id"),
            "state": j.get("state"),
            "created": schedule_kind.utc_text(j.get("creationTime")),
            "ended": schedule_kind.utc_text((j.get("executionInfo") or {}).get("endTime")),
        }
        for j in jobs
    ]
    return sorted(out, key=lambda j: str(j["created"] or ""), reverse=True)


def get_schedule(batch: BatchProvider, schedule_id: str) -> dict[str, Any] | None:
    try:
        with sdk_errors("batch", f"get job schedule {schedule_id}"):
            body: dict[str, Any] = batch.send("GET", _path(schedule_id)).json()
            return body
    except NotFoundError:
        return None


# --------------------------------------------------------------------------- writes


def _duration(secs: float | None) -> str | None:
    return None if secs is None else durations.format(timedelta(seconds=secs))


def schedule_config(props: Mapping[str, Any]) -> dict[str, Any]:
    s = props["schedule"]
    body = {
        "recurrenceInterval": _duration(s["recurrenceInterval"]),
        "startWindow": _duration(s["startWindow"]),
        "doNotRunUntil": s["doNotRunUntil"],
        "doNotRunAfter": s["doNotRunAfter"],
    }
    return {k: v for k, v in body.items() if v is not None}


Waves = Callable[[list[Resource]], list[list[Resource]]]


def task_collection(
    batch: BatchProvider, props: Mapping[str, Any], sas: SasMaker, waves: Waves
) -> bytes:
    """The job manager's input: the tasks as Batch REST bodies, in dependency `waves`."""
    tasks = [Resource(Address.task(RUN_JOB_ID, str(t["id"])), t) for t in props["tasks"]]
    ordered = waves(tasks)
    return json.dumps(
        {"version": 1, "waves": [[batch.task_body(t, sas) for t in wave] for wave in ordered]},
        separators=(",", ":"),
    ).encode()


def upload_bytes(storage: StorageProvider, container: str, name: str, data: bytes) -> None:
    """Upload `data` as a blob (through a temporary file: the provider uploads files)."""
    fd, tmp = tempfile.mkstemp(prefix="bspec-schedule-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        storage.upload(container, name, tmp, hashlib.md5(data).hexdigest())
    finally:
        os.unlink(tmp)


def job_specification(
    batch: BatchProvider,
    schedule: Resource,
    sas: SasMaker,
    storage: StorageProvider,
    waves: Waves,
) -> dict[str, Any]:
    """The job specification of a schedule, after uploading what its manager reads."""
    schedule_id = schedule.address.parts[0]
    p = schedule.props
    logs = str(p["logsContainer"])
    where = folder(schedule_id)
    upload_bytes(storage, logs, f"{where}/{SCRIPT}", script_bytes())
    upload_bytes(storage, logs, f"{where}/{TASKS_BLOB}", task_collection(batch, p, sas, waves))
    # The job each run is: the body a plain job of the spec would be created with (so the
    # job kind's fields reach the runs too), without its id, on the schedule's pool info.
    spec = batch.job_body(Resource(Address.job(schedule_id), p["jobBody"]), sas)
    spec.pop("id", None)
    if p["autoPool"] is not None:
        pool = batch.pool_body(Resource(Address.pool(schedule_id), p["autoPool"]), sas)
        pool.pop("id", None)
        spec["poolInfo"] = {
            "autoPoolSpecification": {
                "autoPoolIdPrefix": schedule_id[:20],
                "poolLifetimeOption": "job",
                "keepAlive": False,
                "pool": pool,
            }
        }
    # noaction until the manager has added the tasks (a job with none would end at once)
    spec["onAllTasksComplete"] = "noaction"
    spec["metadata"].insert(1, {"name": SCHEDULE_METADATA, "value": schedule_id})
    return {
        **spec,
        "jobManagerTask": {
            "id": schedule_kind.MANAGER_ID,
            "displayName": "bspec job manager: adds the run's tasks",
            "commandLine": f"python3 {SCRIPT} {TASKS_BLOB}",
            "resourceFiles": [
                {"httpUrl": sas(logs, f"{where}/{SCRIPT}", "r"), "filePath": SCRIPT},
                {"httpUrl": sas(logs, f"{where}/{TASKS_BLOB}", "r"), "filePath": TASKS_BLOB},
            ],
            "environmentSettings": [{"name": schedule_kind.RUN_SPEC_ENV, "value": p["runSpec"]}],
            "constraints": {"maxTaskRetryCount": 2},
            # the job outlives its manager: the tasks it added still have to run
            "killJobOnCompletion": False,
            "runExclusive": False,
            "authenticationTokenSettings": {"access": ["job"]},
        },
    }


def write_schedule(
    batch: BatchProvider,
    schedule: Resource,
    sas: SasMaker,
    storage: StorageProvider,
    waves: Waves,
    *,
    create: bool,
) -> None:
    """Create a schedule, or PATCH the whole updatable part of one: the times, the job
    specification (new SAS URLs, the tasks of later runs) and the metadata. Runs in
    progress keep what they started with."""
    schedule_id = schedule.address.parts[0]
    body = {
        "schedule": schedule_config(schedule.props),
        "jobSpecification": job_specification(batch, schedule, sas, storage, waves),
        "metadata": [{"name": STACK_METADATA, "value": batch.stack}],
    }
    if not create:
        with sdk_errors("batch", f"update job schedule {schedule_id}"):
            batch.send("PATCH", _path(schedule_id), body=body)
        return
    deadline = time.monotonic() + 300
    while True:
        try:
            with sdk_errors("batch", f"create job schedule {schedule_id}"):
                batch.send("POST", "jobschedules", body={"id": schedule_id, **body})
            return
        except ServiceError as err:
            if err.service_code == "JobScheduleBeingDeleted" and time.monotonic() < deadline:
                time.sleep(0.5)
                continue
            there = (
                get_schedule(batch, schedule_id)
                if err.service_code == "JobScheduleExists"
                else None
            )
            meta = {m.get("name"): m.get("value") for m in (there or {}).get("metadata") or ()}
            if meta.get(STACK_METADATA) != batch.stack:
                raise
            # a retried create that had gone through: make it what this apply wants
            with sdk_errors("batch", f"replace job schedule {schedule_id}"):
                batch.send("PUT", _path(schedule_id), body=body)
            return


def delete_schedule(batch: BatchProvider, schedule_id: str) -> None:
    """Delete a schedule; Batch deletes the jobs of its runs with it."""
    try:
        with sdk_errors("batch", f"delete job schedule {schedule_id}"):
            batch.send("DELETE", _path(schedule_id))
    except ServiceError as err:
        if isinstance(err, NotFoundError) or err.service_code in GONE_CODES:
            return
        raise


def wait_schedules_gone(batch: BatchProvider, ids: Sequence[str], timeout: float = 600.0) -> None:
    """Until the schedules `ids` are no longer listed (deletes are asynchronous)."""
    want = set(ids)
    deadline = time.monotonic() + timeout
    delay = 0.2
    while want:
        flt = " or ".join(f"id eq '{i}'" for i in sorted(want))
        try:
            listed = batch.list_raw(
                "list job schedules", "jobschedules", {"$filter": flt, "$select": "id"}
            )
            want &= {str(s.get("id")) for s in listed}
        except TransientServiceError:
            pass  # a poll: the next one asks again
        if not want:
            return
        if time.monotonic() > deadline:
            raise ServiceError(
                f"batch: job schedules still being deleted: {', '.join(sorted(want))}",
                service="batch",
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


__all__ = [
    "ConflictError",
    "delete_schedule",
    "folder",
    "get_schedule",
    "read_schedules",
    "recent_runs",
    "sas_expiry",
    "wait_schedules_gone",
    "write_schedule",
]
