"""Every operation issue 3 lists, called once through the SDK with its answer checked: status
and body against the reference (by the response hook), and the headers a client relies on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from reference import Reference, load_reference, response_hook
from test_localbatch_api import IMAGE, wait_for

OPERATIONS = {
    "Pools_CreatePool",
    "Pools_GetPool",
    "Pools_ListPools",
    "Pools_UpdatePool",
    "Pools_ReplacePoolProperties",
    "Pools_ResizePool",
    "Pools_StopPoolResize",
    "Pools_RemoveNodes",
    "Pools_DeletePool",
    "Pools_PoolExists",
    "Pools_ListPoolNodeCounts",
    "Jobs_CreateJob",
    "Jobs_GetJob",
    "Jobs_ListJobs",
    "Jobs_UpdateJob",
    "Jobs_ReplaceJob",
    "Jobs_DisableJob",
    "Jobs_EnableJob",
    "Jobs_DeleteJob",
    "Jobs_TerminateJob",
    "Jobs_GetJobTaskCounts",
    "Tasks_CreateTask",
    "Tasks_CreateTaskCollection",
    "Tasks_ListTasks",
    "Tasks_GetTask",
    "Tasks_ReplaceTask",
    "Tasks_DeleteTask",
    "Tasks_TerminateTask",
    "Tasks_ReactivateTask",
    "Tasks_ListTaskFiles",
    "Tasks_GetTaskFile",
    "Tasks_GetTaskFileProperties",
    "Nodes_ListNodes",
    "Nodes_GetNode",
    "Nodes_ListNodeFiles",
    "Nodes_GetNodeFile",
    "Nodes_GetNodeFileProperties",
    "Nodes_RebootNode",
}


def test_every_listed_operation(local_services: Any, unique_id: Callable[[str], str]) -> None:
    reference = Reference(load_reference().spec, load_reference().operations)
    headers: dict[str, dict[str, str]] = {}
    check = response_hook(reference)

    def hook(pipeline_response: Any) -> None:
        check(pipeline_response)
        request = pipeline_response.http_request
        op = reference.operation(
            request.method, request.url.split("?")[0].split(local_services.batch_url, 1)[1]
        )
        assert op is not None
        found = dict(pipeline_response.http_response.headers)
        found["sent-client-request-id"] = request.headers.get("client-request-id", "")
        headers.setdefault(op.op_id, found)

    c = BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
        raw_response_hook=hook,
    )
    pool_id, job_id = unique_id("cov"), unique_id("cov")
    poll = {"polling_interval": 0.05}
    with c:
        c.create_pool(
            m.BatchPoolCreateOptions(
                id=pool_id,
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=IMAGE,
                target_dedicated_nodes=2,
                start_task=m.BatchStartTask(command_line="true"),
            )
        )
        assert c.pool_exists(pool_id)
        list(c.list_pools(filter=f"id eq '{pool_id}'"))
        c.update_pool(pool_id, m.BatchPoolUpdateOptions(metadata=[]))
        c.replace_pool_properties(
            pool_id,
            m.BatchPoolReplaceOptions(
                start_task=m.BatchStartTask(command_line="echo started"),
                application_package_references=[],
                metadata=[],
            ),
        )
        wait_for(lambda: [n.state for n in c.list_nodes(pool_id)] == ["idle", "idle"])
        list(c.list_pool_node_counts())
        node = next(iter(c.list_nodes(pool_id)))
        c.get_node(pool_id, node.id)
        list(c.list_node_files(pool_id, node.id, recursive=True))
        b"".join(c.download_node_file(pool_id, node.id, "startup/stdout.txt"))
        c.get_node_file_properties(pool_id, node.id, "startup/stdout.txt")
        c.begin_reboot_node(pool_id, node.id, {"nodeRebootOption": "requeue"}, **poll).result()
        c.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id)))
        c.get_job(job_id)
        list(c.list_jobs(filter=f"id eq '{job_id}'"))
        c.update_job(job_id, m.BatchJobUpdateOptions(priority=1))
        c.replace_job(job_id, c.get_job(job_id))
        c.create_task(job_id, m.BatchTaskCreateOptions(id="a", command_line="echo a"))
        c.create_task_collection(
            job_id,
            m.BatchTaskGroup(
                task_values=[
                    m.BatchTaskCreateOptions(
                        id="b",
                        command_line="sleep 30",
                        constraints=m.BatchTaskConstraints(max_wall_clock_time="PT1S"),
                    )
                ]
            ),
        )
        wait_for(lambda: c.get_job_task_counts(job_id).task_counts.completed == 2)
        list(c.list_tasks(job_id))
        assert c.get_task(job_id, "a").execution_info.exit_code == 0
        c.replace_task(
            job_id, "a", m.BatchTask(constraints=m.BatchTaskConstraints(max_task_retry_count=1))
        )
        list(c.list_task_files(job_id, "a"))
        assert b"".join(c.download_task_file(job_id, "a", "stdout.txt")) == b"a\n"
        c.get_task_file_properties(job_id, "a", "stdout.txt")
        c.reactivate_task(job_id, "b")
        c.terminate_task(job_id, "b")
        c.delete_task(job_id, "b")
        c.begin_disable_job(job_id, m.BatchJobDisableOptions(disable_tasks="wait"), **poll).result()
        c.begin_enable_job(job_id, **poll).result()
        c.begin_terminate_job(job_id, {"terminateReason": "done"}, **poll).result()
        c.begin_delete_job(job_id, **poll).result()
        c.begin_resize_pool(
            pool_id, m.BatchPoolResizeOptions(target_dedicated_nodes=3), **poll
        ).result()
        c.begin_stop_pool_resize(pool_id, **poll).result()
        node_ids = [n.id for n in c.list_nodes(pool_id)]
        c.begin_remove_nodes(
            pool_id, m.BatchNodeRemoveOptions(node_ids=node_ids[:1]), **poll
        ).result()
        c.begin_delete_pool(pool_id, **poll).result()
    assert set(reference.seen) >= OPERATIONS, sorted(OPERATIONS - set(reference.seen))
    for op, found in headers.items():
        assert found.get("request-id"), op
        assert found["sent-client-request-id"], op
        assert found.get("client-request-id") == found["sent-client-request-id"], op
    for op in ("Pools_CreatePool", "Jobs_CreateJob", "Tasks_CreateTask"):
        assert headers[op]["DataServiceId"] and headers[op]["ETag"], op
        assert headers[op]["Location"] == headers[op]["DataServiceId"], op
    for op in ("Pools_GetPool", "Jobs_GetJob", "Tasks_GetTask", "Pools_UpdatePool"):
        assert headers[op]["ETag"] and headers[op]["Last-Modified"], op
    for op in ("Tasks_GetTaskFile", "Nodes_GetNodeFileProperties"):
        assert headers[op]["ocp-batch-file-isdirectory"] == "false", op
        assert headers[op]["Content-Length"], op
