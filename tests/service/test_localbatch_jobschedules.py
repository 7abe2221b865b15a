"""Job schedules through the real azure-batch 15 SDK, every response validated against the
reference definition: a private service with a manual clock is stepped across a schedule's
doNotRunUntil, its recurrences, a start window that waits for the active job and one that
expires, and doNotRunAfter, never sleeping; then the operations on a schedule (get, exists,
list, patch, put, disable, enable, terminate, delete) and Batch's errors."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import test_localbatch_clock
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from reference import Reference, get_json
from test_localbatch_restart import Server

manual = test_localbatch_clock.manual  # the private manual-clock service fixture

API = "2025-06-01.21.0"
COMPAT_PYTHON = Path(__file__).resolve().parents[2] / ".venv" / "compat" / "bin" / "python"
OLD_CLIENT = Path(__file__).with_name("jobschedules_old_client.py")
POLL = {"polling_interval": 0.05}


def advance(server: Server, duration: str) -> dt.datetime:
    """Step the service clock; the service time after the step."""
    request = urllib.request.Request(
        f"{server.url}/_local/clock",
        data=json.dumps({"advance": duration}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return parse(json.loads(resp.read())["now"])


def now(server: Server) -> dt.datetime:
    return parse(get_json(f"{server.url}/_local/clock")["now"])


def parse(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def job_ids(c: BatchClient, schedule_id: str) -> list[str]:
    return [j.id for j in c.list_jobs_from_schedule(schedule_id)]


def spec(pool_id: str = "p", **kw: Any) -> m.BatchJobSpecification:
    return m.BatchJobSpecification(pool_info=m.BatchPoolInfo(pool_id=pool_id), **kw)


def end_job(c: BatchClient, job_id: str) -> None:
    c.begin_terminate_job(job_id, {"terminateReason": "done"}, **POLL).result()


def raw(c: BatchClient, method: str, path: str, body: Any = None) -> Any:
    sep = "&" if "?" in path else "?"
    return c.send_request(HttpRequest(method, f"{path}{sep}api-version={API}", json=body))


def test_recurrence_start_window_and_do_not_run_after(manual: Server, reference: Reference) -> None:
    t0 = now(manual) + dt.timedelta(minutes=10)
    with manual.client(reference) as c:
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="nightly",
                schedule=m.BatchJobScheduleConfiguration(
                    do_not_run_until=t0,
                    do_not_run_after=t0 + dt.timedelta(hours=3, minutes=20),
                    start_window="PT30M",
                    recurrence_interval="PT1H",
                ),
                job_specification=spec(
                    display_name="night run",
                    priority=5,
                    job_manager_task=m.BatchJobManagerTask(id="jm", command_line="/bin/true"),
                    metadata=[m.BatchMetadataItem(name="k", value="v")],
                ),
                metadata=[m.BatchMetadataItem(name="owner", value="me")],
            )
        )
        s = c.get_job_schedule("nightly")
        assert s.state == "active"
        assert s.execution_info.next_run_time == t0
        assert s.execution_info.recent_job is None
        assert job_ids(c, "nightly") == []

        # doNotRunUntil: the first job, with the schedule's id and the specification's fields.
        advance(manual, "PT9M")
        assert job_ids(c, "nightly") == []
        advance(manual, "PT2M")  # t0 + 1m
        assert job_ids(c, "nightly") == ["nightly:job-1"]
        job = c.get_job("nightly:job-1")
        assert job.state == "active" and job.priority == 5
        assert job.display_name == "night run"
        assert job.job_manager_task.id == "jm"
        assert job.pool_info.pool_id == "p" and job.execution_info.pool_id == "p"
        s = c.get_job_schedule("nightly")
        assert s.execution_info.recent_job.id == "nightly:job-1"
        assert s.execution_info.recent_job.url.endswith("/jobs/nightly:job-1")
        assert s.execution_info.next_run_time == t0 + dt.timedelta(hours=1)

        # The next run is due while job 1 is active: it waits (within the start window)...
        advance(manual, "PT1H")
        assert job_ids(c, "nightly") == ["nightly:job-1"]
        advance(manual, "PT14M")  # t0 + 1h15m
        # ... and starts as soon as job 1 ends.
        end_job(c, "nightly:job-1")
        assert job_ids(c, "nightly") == ["nightly:job-1", "nightly:job-2"]
        assert c.get_job("nightly:job-2").creation_time == now(manual)
        assert c.get_job_schedule("nightly").execution_info.next_run_time == t0 + dt.timedelta(
            hours=2
        )

        # Job 2 outlives the third run's start window: that run is skipped.
        advance(manual, "PT1H16M")  # t0 + 2h31m
        assert job_ids(c, "nightly") == ["nightly:job-1", "nightly:job-2"]
        assert c.get_job_schedule("nightly").execution_info.next_run_time == t0 + dt.timedelta(
            hours=3
        )
        end_job(c, "nightly:job-2")
        assert len(job_ids(c, "nightly")) == 2

        # The fourth run (t0 + 3h) is the last before doNotRunAfter (t0 + 3h20m).
        advance(manual, "PT30M")  # t0 + 3h1m
        assert job_ids(c, "nightly")[-1] == "nightly:job-3"
        s = c.get_job_schedule("nightly")
        assert s.state == "active" and s.execution_info.next_run_time is None

        # Past doNotRunAfter, the schedule completes once its job is no longer active.
        advance(manual, "PT30M")
        assert c.get_job_schedule("nightly").state == "active"
        end_job(c, "nightly:job-3")
        s = c.get_job_schedule("nightly")
        assert s.state == "completed" and s.previous_state == "active"
        assert s.execution_info.end_time == now(manual)
        assert s.execution_info.next_run_time is None
        assert s.metadata[0].name == "owner"
        with pytest.raises(HttpResponseError) as err:
            c.disable_job_schedule("nightly")
        assert err.value.error.code == "JobScheduleCompleted"


def test_one_job_without_recurrence_then_complete(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="once",
                schedule=m.BatchJobScheduleConfiguration(),
                job_specification=spec(all_tasks_complete_mode="terminatejob"),
            )
        )
        # Created at once; a job with no tasks under terminatejob completes at once, and so
        # does a schedule with no recurrence.
        assert job_ids(c, "once") == ["once:job-1"]
        assert c.get_job("once:job-1").state == "completed"
        s = c.get_job_schedule("once")
        assert s.state == "completed"
        assert s.execution_info.recent_job.id == "once:job-1"

        # A window that passes before the job could start: no job, the schedule completes.
        start = now(manual) + dt.timedelta(minutes=5)
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="late",
                schedule=m.BatchJobScheduleConfiguration(
                    do_not_run_until=start, start_window="PT1M", recurrence_interval="PT1H"
                ),
                job_specification=spec(),
            )
        )
        c.disable_job_schedule("late")
        advance(manual, "PT7M")
        assert job_ids(c, "late") == []
        c.enable_job_schedule("late")
        # The missed run is lost; the next recurrence is the next one due.
        s = c.get_job_schedule("late")
        assert s.state == "active"
        assert s.execution_info.next_run_time == start + dt.timedelta(hours=1)
        assert job_ids(c, "late") == []


def test_operations_on_a_schedule(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="ops",
                display_name="ops schedule",
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval="PT1H"),
                job_specification=spec(priority=1),
            )
        )
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="other",
                schedule=m.BatchJobScheduleConfiguration(
                    do_not_run_until=now(manual) + dt.timedelta(days=1)
                ),
                job_specification=spec(),
            )
        )
        assert c.job_schedule_exists("ops") is True
        with pytest.raises(ResourceNotFoundError):  # the SDK's exception policy raises on 404
            c.job_schedule_exists("nope")
        assert sorted(s.id for s in c.list_job_schedules()) == ["ops", "other"]
        listed = list(c.list_job_schedules(filter="id eq 'ops'", select=["id", "state"]))
        assert [(s.id, s.state, s.job_specification) for s in listed] == [("ops", "active", None)]
        assert [s.id for s in c.list_job_schedules(max_results=1)] == ["ops", "other"]
        # A schedule's job list holds its own jobs only, and filters as the job list does.
        c.create_job(m.BatchJobCreateOptions(id="plain", pool_info=m.BatchPoolInfo(pool_id="p")))
        assert job_ids(c, "ops") == ["ops:job-1"]
        assert job_ids(c, "other") == []
        assert [j.id for j in c.list_jobs_from_schedule("ops", filter="state eq 'active'")] == [
            "ops:job-1"
        ]

        # PATCH keeps what it does not name; later jobs use the new specification.
        c.update_job_schedule(
            "ops",
            m.BatchJobScheduleUpdateOptions(
                job_specification=m.BatchJobSpecification(
                    pool_info=m.BatchPoolInfo(pool_id="p2"), priority=7
                ),
                metadata=[m.BatchMetadataItem(name="a", value="1")],
            ),
        )
        s = c.get_job_schedule("ops")
        assert s.job_specification.priority == 7 and s.job_specification.pool_info.pool_id == "p2"
        assert s.schedule.recurrence_interval == dt.timedelta(hours=1)
        assert c.get_job("ops:job-1").priority == 1
        # PUT replaces: metadata not given is removed.
        c.replace_job_schedule(
            "ops",
            m.BatchJobSchedule(
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval="PT2H"),
                job_specification=spec(priority=3),
            ),
        )
        s = c.get_job_schedule("ops")
        assert s.metadata is None and s.job_specification.priority == 3
        assert s.schedule.recurrence_interval == dt.timedelta(hours=2)

        c.disable_job_schedule("ops")
        assert c.get_job_schedule("ops").state == "disabled"
        # Disabling a schedule leaves its job alone.
        assert c.get_job("ops:job-1").state == "active"
        c.enable_job_schedule("ops")
        assert c.get_job_schedule("ops").state == "active"

        # Terminate: the active job is terminated and the schedule completes.
        c.begin_terminate_job_schedule("ops", **POLL).result()
        s = c.get_job_schedule("ops")
        assert s.state == "completed" and s.execution_info.end_time is not None
        job = c.get_job("ops:job-1")
        assert job.state == "completed"
        assert job.execution_info.termination_reason == "UserTerminate"

        # Delete: the schedule and its jobs are deleting, and gone after the delete delay.
        assert raw(c, "DELETE", "/jobschedules/ops").status_code == 202
        assert c.get_job_schedule("ops").state == "deleting"
        assert c.get_job("ops:job-1").state == "deleting"
        with pytest.raises(HttpResponseError) as err:
            c.enable_job_schedule("ops")
        assert err.value.error.code == "JobScheduleBeingDeleted"
        advance(manual, "PT61S")
        with pytest.raises(ResourceNotFoundError):
            c.get_job_schedule("ops")
        with pytest.raises(ResourceNotFoundError):
            c.get_job("ops:job-1")
        assert c.get_job("plain").state == "active"


def test_bad_input_answers_batch_errors(manual: Server, reference: Reference) -> None:
    def error(method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        # Invalid requests by design: the reply, not the request, is checked against the
        # reference.
        try:
            reply = raw(c, method, path, body)
        except HttpResponseError as exc:  # the SDK's exception policy raises on errors
            assert exc.response is not None
            reply = exc.response
        reference.check_response(
            method, reply.request.url, reply.status_code, "application/json", reply.read()
        )
        return reply.status_code, (reply.json() if reply.content else {})

    good = {"id": "s", "schedule": {}, "jobSpecification": {"poolInfo": {"poolId": "p"}}}
    account = json.loads((manual.home / "account.json").read_text())
    with BatchClient(manual.url, AzureNamedKeyCredential(account["name"], account["key"])) as c:
        status, body = error("POST", "/jobschedules", {**good, "schedule": None})
        assert (status, body["code"]) == (400, "MissingRequiredProperty")
        status, body = error("POST", "/jobschedules", {"id": "s", "schedule": {}})
        assert (status, body["code"]) == (400, "MissingRequiredProperty")
        assert body["values"][0]["value"] == "jobSpecification"
        status, body = error("POST", "/jobschedules", {**good, "id": "x" * 65})
        assert (status, body["code"]) == (400, "InvalidPropertyValue")
        status, body = error(
            "POST", "/jobschedules", {**good, "schedule": {"recurrenceInterval": "PT30S"}}
        )
        assert (status, body["code"]) == (400, "InvalidPropertyValue")
        status, body = error("POST", "/jobschedules", {**good, "schedule": {"startWindow": "soon"}})
        assert (status, body["code"]) == (400, "InvalidPropertyValue")
        status, body = error(
            "POST", "/jobschedules", {**good, "jobSpecification": {"poolInfo": {}}}
        )
        assert (status, body["code"]) == (400, "MissingRequiredProperty")
        status, body = error(
            "POST",
            "/jobschedules",
            {**good, "jobSpecification": {"poolInfo": {"poolId": "p"}, "priority": 5000}},
        )
        assert (status, body["code"]) == (400, "InvalidPropertyValue")
        assert error("POST", "/jobschedules", good)[0] == 201
        status, body = error("POST", "/jobschedules", good)
        assert (status, body["code"]) == (409, "JobScheduleExists")
        status, body = error("GET", "/jobschedules/nope")
        assert (status, body["code"]) == (404, "JobScheduleNotFound")
        status, body = error("GET", "/jobschedules/s?$expand=stats")
        assert (
            status == 400 and "not supported by the local Batch service" in body["message"]["value"]
        )
        status, body = error("GET", "/jobschedules?$filter=nope eq 1")
        assert (status, body["code"]) == (400, "InvalidQueryParameterValue")
        # A job's id may not take the form the service gives a schedule's jobs.
        status, body = error("POST", "/jobs", {"id": "s:job-9", "poolInfo": {"poolId": "p"}})
        assert (status, body["code"]) == (400, "InvalidPropertyValue")


def test_a_schedule_survives_a_restart(manual: Server, reference: Reference) -> None:
    """The recurrence, the count of jobs made and the auto pool's owner are in the state
    folder: after a restart the next run comes as planned, with the next job number."""
    with manual.client(reference) as c:
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="kept",
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval="PT1H"),
                job_specification=spec(),
            )
        )
        end_job(c, "kept:job-1")
        due = c.get_job_schedule("kept").execution_info.next_run_time
    manual.stop()
    manual.start()
    with manual.client(reference) as c:
        assert c.get_job_schedule("kept").execution_info.next_run_time == due
        advance(manual, "PT1H")
        assert job_ids(c, "kept") == ["kept:job-1", "kept:job-2"]


def test_an_older_client_generation(tmp_path: Path) -> None:
    """azure-batch 12 (msrest, api-version 2022-01-01.15.0, in .venv/compat) runs every
    job schedule operation it has against a service that accepts its version."""
    if not COMPAT_PYTHON.exists():
        pytest.fail(f"{COMPAT_PYTHON} is missing: run `make install` (it builds .venv/compat)")
    srv = Server(tmp_path / "home", "--clock", "manual", "--min-api-version", "2022-01-01.15.0")
    srv.home.mkdir()
    srv.start()
    try:
        account = json.loads((srv.home / "account.json").read_text())
        done = subprocess.run(
            [str(COMPAT_PYTHON), str(OLD_CLIENT), srv.url, account["name"]],
            env={**os.environ, "BSPEC_TEST_BATCH_KEY": account["key"]},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        srv.stop()
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["api"] == "2022-01-01.15.0"
    assert seen["recentJob"] == "old:job-1" and seen["jobs"] == ["old:job-1"]
    assert seen["exists"] is True and seen["list"] == ["old"]
    assert seen["interval"] == "2:00:00"
    assert seen["states"] == ["disabled", "active", "completed", "deleting"]
