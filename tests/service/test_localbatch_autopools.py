"""Auto pools through the real azure-batch 15 SDK, responses validated against the reference
definition: a job's `autoPoolSpecification` makes a pool (`<prefix>_<GUID>`) when the job is
made and deletes it when the job completes or is deleted (lifetime job), unless keepAlive; a
schedule's jobschedule-lifetime pool is shared by its jobs and goes with the schedule. The
delete delay runs on a manual service clock, stepped, never slept."""

from __future__ import annotations

import re

import pytest
import test_localbatch_clock
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from reference import Reference
from test_localbatch_jobschedules import advance, end_job, raw
from test_localbatch_restart import Server

manual = test_localbatch_clock.manual  # the private manual-clock service fixture

GUID = r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}"


def auto(lifetime: str, prefix: str | None = "ap", keep: bool = False) -> m.BatchPoolInfo:
    return m.BatchPoolInfo(
        auto_pool_specification=m.BatchAutoPoolSpecification(
            auto_pool_id_prefix=prefix,
            pool_lifetime_option=lifetime,
            keep_alive=keep,
            pool=m.BatchPoolSpecification(
                vm_size="standard_d2s_v3",
                target_dedicated_nodes=0,
                metadata=[m.BatchMetadataItem(name="made", value="auto")],
            ),
        )
    )


def state(c: BatchClient, pool_id: str) -> str | None:
    try:
        return c.get_pool(pool_id).state
    except ResourceNotFoundError:
        return None


def test_job_auto_pool_lives_and_dies_with_its_job(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=auto("job")))
        job = c.get_job("j")
        pool_id = job.execution_info.pool_id
        assert re.fullmatch(f"ap_{GUID}", pool_id)
        assert job.pool_info.pool_id is None
        assert job.pool_info.auto_pool_specification.auto_pool_id_prefix == "ap"
        pool = c.get_pool(pool_id)
        assert pool.state == "active" and pool.vm_size == "standard_d2s_v3"
        assert pool.metadata[0].value == "auto"
        # The job's completion ends the pool's lifetime.
        end_job(c, "j")
        assert state(c, pool_id) == "deleting"
        advance(manual, "PT61S")
        assert state(c, pool_id) is None

        # keepAlive: the pool outlives its job; without a prefix the id is the GUID.
        c.create_job(m.BatchJobCreateOptions(id="kept", pool_info=auto("job", None, True)))
        kept = c.get_job("kept").execution_info.pool_id
        assert re.fullmatch(GUID, kept)
        end_job(c, "kept")
        advance(manual, "PT61S")
        assert state(c, kept) == "active"

        # Deleting the job deletes its pool too.
        c.create_job(m.BatchJobCreateOptions(id="gone", pool_info=auto("job")))
        gone = c.get_job("gone").execution_info.pool_id
        assert raw(c, "DELETE", "/jobs/gone").status_code == 202
        assert state(c, gone) == "deleting"


def test_bad_auto_pool_specifications(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        # The jobschedule lifetime is for schedules only; nothing is created.
        with pytest.raises(HttpResponseError) as err:
            c.create_job(m.BatchJobCreateOptions(id="j", pool_info=auto("jobschedule")))
        assert err.value.status_code == 400
        assert err.value.error.code == "InvalidPropertyValue"
        assert list(c.list_pools()) == []
        with pytest.raises(ResourceNotFoundError):
            c.get_job("j")
        # The pool specification is checked by the pools' own create path.
        bad = auto("job")
        bad.auto_pool_specification.pool.task_slots_per_node = 0
        with pytest.raises(HttpResponseError) as err:
            c.create_job(m.BatchJobCreateOptions(id="j", pool_info=bad))
        assert err.value.error.code == "InvalidPropertyValue"
        assert list(c.list_pools()) == []
        with pytest.raises(ResourceNotFoundError):
            c.get_job("j")


def test_schedule_auto_pools(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        # Lifetime jobschedule: one pool for every job of the schedule, gone with it.
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="shared",
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval="PT1H"),
                job_specification=m.BatchJobSpecification(pool_info=auto("jobschedule", "sh")),
            )
        )
        first = c.get_job("shared:job-1").execution_info.pool_id
        assert re.fullmatch(f"sh_{GUID}", first)
        end_job(c, "shared:job-1")
        assert state(c, first) == "active"
        advance(manual, "PT1H")
        assert c.get_job("shared:job-2").execution_info.pool_id == first
        c.begin_terminate_job_schedule("shared", polling_interval=0.05).result()
        assert state(c, first) == "deleting"

        # Lifetime job on a schedule: a pool per job, each gone with its job.
        c.create_job_schedule(
            m.BatchJobScheduleCreateOptions(
                id="each",
                schedule=m.BatchJobScheduleConfiguration(recurrence_interval="PT1H"),
                job_specification=m.BatchJobSpecification(pool_info=auto("job", "ea")),
            )
        )
        one = c.get_job("each:job-1").execution_info.pool_id
        end_job(c, "each:job-1")
        assert state(c, one) == "deleting"
        advance(manual, "PT1H")
        two = c.get_job("each:job-2").execution_info.pool_id
        assert two != one and state(c, two) == "active"
        # Deleting the schedule deletes its job, and so the job's pool.
        assert raw(c, "DELETE", "/jobschedules/each").status_code == 202
        assert state(c, two) == "deleting"
