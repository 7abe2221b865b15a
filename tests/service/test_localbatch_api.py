"""The local Batch service's REST surface through the real azure-batch SDK.

Every call goes through `checked_client`, so each response body (and each request body the
service accepted) is validated against the reference definitions as the test runs.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.batch import models as m
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)

IMAGE = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    ),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


def wait_for(check: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def new_pool(client: Any, pool_id: str, nodes: int = 0, **kw: Any) -> None:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="STANDARD_D2S_V3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=nodes,
            **kw,
        )
    )


@pytest.fixture
def uid() -> Callable[[str], str]:
    counter = iter(range(10**6))
    stamp = f"{time.time_ns() % 10**9:x}"
    return lambda prefix: f"{prefix}-{stamp}-{next(counter)}"


def test_pool_create_get_list_delete(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id = uid("pool")
    new_pool(checked_client, pool_id, metadata=[m.BatchMetadataItem(name="bspec-stack", value="s")])
    pool = checked_client.get_pool(pool_id)
    assert pool.id == pool_id and pool.state == "active"
    assert pool.vm_size == "standard_d2s_v3"
    assert pool.task_slots_per_node == 1 and pool.metadata[0].value == "s"
    assert pool.etag and pool.last_modified
    ids = [p.id for p in checked_client.list_pools(filter=f"id eq '{pool_id}'")]
    assert ids == [pool_id]
    with pytest.raises(ResourceExistsError) as err:
        new_pool(checked_client, pool_id.upper())  # ids are case-insensitive
    assert err.value.error.code == "PoolExists"
    checked_client.begin_delete_pool(pool_id, polling_interval=0.05)
    assert checked_client.get_pool(pool_id).state == "deleting"
    with pytest.raises(ResourceExistsError) as err:
        new_pool(checked_client, pool_id)
    assert err.value.error.code == "PoolBeingDeleted"
    wait_for(lambda: not _exists(checked_client, pool_id), what="pool gone")
    with pytest.raises(ResourceNotFoundError) as missing:
        checked_client.get_pool(pool_id)
    assert missing.value.error.code == "PoolNotFound"


def _exists(client: Any, pool_id: str) -> bool:
    try:
        client.get_pool(pool_id)
    except ResourceNotFoundError:
        return False
    return True


def test_pool_exists_head(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id = uid("pool")
    new_pool(checked_client, pool_id)
    assert checked_client.pool_exists(pool_id) is True
    with pytest.raises(ResourceNotFoundError):  # the SDK's exception policy raises on 404
        checked_client.pool_exists(uid("nopool"))


def test_update_replace_resize_pool(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id = uid("pool")
    new_pool(checked_client, pool_id)
    checked_client.update_pool(
        pool_id,
        m.BatchPoolUpdateOptions(
            metadata=[m.BatchMetadataItem(name="k", value="v")],
            task_slots_per_node=2,
            start_task=m.BatchStartTask(command_line="true"),
        ),
    )
    pool = checked_client.get_pool(pool_id)
    assert pool.metadata[0].name == "k" and pool.task_slots_per_node == 2
    assert pool.start_task.command_line == "true"
    checked_client.replace_pool_properties(
        pool_id, m.BatchPoolReplaceOptions(application_package_references=[], metadata=[])
    )
    pool = checked_client.get_pool(pool_id)
    assert not pool.metadata and pool.start_task is None
    checked_client.begin_resize_pool(
        pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=2), polling_interval=0.05
    ).result()
    pool = checked_client.get_pool(pool_id)
    assert pool.allocation_state == "steady" and pool.current_dedicated_nodes == 2
    with pytest.raises(HttpResponseError) as err:
        checked_client.update_pool(pool_id, m.BatchPoolUpdateOptions(vm_size="standard_d4s_v3"))
    assert err.value.status_code == 409
    nodes = list(checked_client.list_nodes(pool_id))
    assert len(nodes) == 2
    checked_client.begin_remove_nodes(
        pool_id, m.BatchNodeRemoveOptions(node_ids=[nodes[0].id]), polling_interval=0.05
    ).result()
    wait_for(lambda: len(list(checked_client.list_nodes(pool_id))) == 1, what="node removed")
    assert checked_client.get_pool(pool_id).target_dedicated_nodes == 1
    checked_client.begin_resize_pool(
        pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=0), polling_interval=0.05
    ).result()
    wait_for(lambda: checked_client.get_pool(pool_id).current_dedicated_nodes == 0)
    checked_client.begin_stop_pool_resize(pool_id, polling_interval=0.05).result()
    counts = [c for c in checked_client.list_pool_node_counts(filter=f"poolId eq '{pool_id}'")]
    assert [c.pool_id for c in counts] == [pool_id] and counts[0].dedicated.total == 0


def test_job_lifecycle(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    new_pool(checked_client, pool_id)
    checked_client.create_job(
        m.BatchJobCreateOptions(
            id=job_id,
            pool_info=m.BatchPoolInfo(pool_id=pool_id),
            priority=5,
            metadata=[m.BatchMetadataItem(name="bspec-stack", value="x")],
        )
    )
    job = checked_client.get_job(job_id)
    assert job.state == "active" and job.priority == 5
    assert job.all_tasks_complete_mode == "noaction"
    assert job.constraints.max_task_retry_count == 0
    with pytest.raises(ResourceExistsError) as err:
        checked_client.create_job(
            m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id))
        )
    assert err.value.error.code == "JobExists"
    checked_client.update_job(job_id, m.BatchJobUpdateOptions(priority=7))
    assert checked_client.get_job(job_id).priority == 7
    job = checked_client.get_job(job_id)
    job.priority = 1
    job.metadata = None
    checked_client.replace_job(job_id, job)
    replaced = checked_client.get_job(job_id)
    assert replaced.priority == 1 and not replaced.metadata
    checked_client.begin_disable_job(
        job_id, m.BatchJobDisableOptions(disable_tasks="requeue"), polling_interval=0.05
    ).result()
    assert checked_client.get_job(job_id).state == "disabled"
    checked_client.begin_enable_job(job_id, polling_interval=0.05).result()
    assert checked_client.get_job(job_id).state == "active"
    assert [
        j.id for j in checked_client.list_jobs(filter=f"id eq '{job_id}'", select=["id", "state"])
    ] == [job_id]
    # azure-batch 15.1 cannot send a terminate without a body (no Content-Type); give one.
    checked_client.begin_terminate_job(
        job_id, options={"terminateReason": "stopped"}, polling_interval=0.05
    ).result()
    job = checked_client.get_job(job_id)
    assert job.state == "completed" and job.execution_info.termination_reason == "stopped"
    checked_client.begin_delete_job(job_id, polling_interval=0.05).result()
    with pytest.raises(ResourceNotFoundError):
        checked_client.get_job(job_id)


def test_tasks_crud_and_collection(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    checked_client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id))
    )  # no pool: tasks wait
    checked_client.create_task(job_id, m.BatchTaskCreateOptions(id="one", command_line="true"))
    task = checked_client.get_task(job_id, "one")
    assert task.state == "active" and task.required_slots == 1
    assert task.constraints.retention_time == dt.timedelta(days=7)
    with pytest.raises(ResourceExistsError) as err:
        checked_client.create_task(job_id, m.BatchTaskCreateOptions(id="ONE", command_line="true"))
    assert err.value.error.code == "TaskExists"
    result = checked_client.create_task_collection(
        job_id,
        m.BatchTaskGroup(
            task_values=[
                m.BatchTaskCreateOptions(id="two", command_line="true"),
                m.BatchTaskCreateOptions(id="one", command_line="true"),
                m.BatchTaskCreateOptions(id="bad id!", command_line="true"),
            ]
        ),
    )
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["two"].status == "success" and by_id["two"].etag
    assert by_id["one"].status == "clienterror" and by_id["one"].error.code == "TaskExists"
    assert by_id["bad id!"].error.code == "InvalidPropertyValue"
    checked_client.replace_task(
        job_id, "two", m.BatchTask(constraints=m.BatchTaskConstraints(max_task_retry_count=3))
    )
    assert checked_client.get_task(job_id, "two").constraints.max_task_retry_count == 3
    checked_client.terminate_task(job_id, "two")
    two = checked_client.get_task(job_id, "two")
    assert two.state == "completed" and two.execution_info.failure_info.code == "TaskEnded"
    checked_client.reactivate_task(job_id, "two")
    assert checked_client.get_task(job_id, "two").state == "active"
    checked_client.delete_task(job_id, "two")
    with pytest.raises(ResourceNotFoundError) as gone:
        checked_client.get_task(job_id, "two")
    assert gone.value.error.code == "TaskNotFound"
    counts = checked_client.get_job_task_counts(job_id)
    assert counts.task_counts.active == 1 and counts.task_slot_counts.active == 1


def test_paging_filter_select(checked_client: Any, uid: Callable[[str], str]) -> None:
    job_id = uid("job")
    checked_client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=uid("nopool")))
    )
    checked_client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(
                id=f"t{i:03d}", command_line="true", display_name="even" if i % 2 == 0 else "odd"
            )
            for i in range(25)
        ],
    )
    pages = checked_client.list_tasks(job_id, max_results=10, select=["id", "displayName"])
    tasks = list(pages)
    assert sorted(t.id for t in tasks) == [f"t{i:03d}" for i in range(25)]
    assert all(t.command_line is None for t in tasks)  # $select trimmed it
    plain = list(checked_client.list_tasks(job_id, max_results=7))
    assert sorted(t.id for t in plain) == [f"t{i:03d}" for i in range(25)]
    assert all(t.command_line == "true" for t in plain)
    evens = list(
        checked_client.list_tasks(
            job_id, max_results=4, filter="displayName eq 'even' and startswith(id, 't00')"
        )
    )
    assert sorted(t.id for t in evens) == ["t000", "t002", "t004", "t006", "t008"]
    either = list(checked_client.list_tasks(job_id, filter="id eq 't001' or id eq 't024'"))
    assert sorted(t.id for t in either) == ["t001", "t024"]
    assert len(list(checked_client.list_tasks(job_id, filter="state ne 'completed'"))) == 25
    with pytest.raises(HttpResponseError) as err:
        list(checked_client.list_tasks(job_id, filter="commandLine eq 'true'"))
    assert err.value.status_code == 400
    assert err.value.error.code == "InvalidQueryParameterValue"
    with pytest.raises(HttpResponseError) as err:
        list(checked_client.list_tasks(job_id, filter="id has 'x'"))
    assert err.value.status_code == 400
    with pytest.raises(HttpResponseError) as err:
        list(checked_client.list_tasks(job_id, max_results=1001))
    assert err.value.error.code == "OutOfRangeQueryParameterValue"


def test_etag_conditions(checked_client: Any, uid: Callable[[str], str]) -> None:
    pool_id = uid("pool")
    new_pool(checked_client, pool_id)
    etag = checked_client.get_pool(pool_id).etag
    checked_client.update_pool(
        pool_id,
        m.BatchPoolUpdateOptions(metadata=[m.BatchMetadataItem(name="a", value="1")]),
        etag=etag,
        match_condition=MatchConditions.IfNotModified,
    )
    with pytest.raises(ResourceModifiedError) as err:
        checked_client.update_pool(
            pool_id,
            m.BatchPoolUpdateOptions(metadata=[m.BatchMetadataItem(name="a", value="2")]),
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
        )
    assert err.value.status_code == 412 and err.value.error.code == "ConditionNotMet"
    assert checked_client.get_pool(pool_id).metadata[0].value == "1"


def test_validation_errors(checked_client: Any, uid: Callable[[str], str]) -> None:
    with pytest.raises(HttpResponseError) as err:
        checked_client.create_pool(m.BatchPoolCreateOptions(id="bad/id", vm_size="x"))
    assert err.value.status_code == 400
    job_id = uid("job")
    checked_client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="p"))
    )
    with pytest.raises(HttpResponseError) as err:
        checked_client.create_task(
            job_id,
            m.BatchTaskCreateOptions(
                id="d", command_line="true", depends_on=m.BatchTaskDependencies(task_ids=["x"])
            ),
        )
    assert err.value.error.code == "TaskDependenciesNotSpecifiedOnJob"
    with pytest.raises(ResourceNotFoundError) as nf:
        checked_client.create_task(
            uid("nojob"), m.BatchTaskCreateOptions(id="a", command_line="true")
        )
    assert nf.value.error.code == "JobNotFound"
