"""The route table: (method, path template, operationId, handler), matched on raw paths.

One catch-all aiohttp route dispatches through it, so an unknown path or verb still answers
a Batch error body. Job schedules' rows come from `_schedule_rows` (`jobschedules_api`).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from ..resources import BatchError
from .files_api import FilesApi
from .jobs_api import JobsApi
from .jobschedules_api import JobSchedulesApi
from .nodes_api import NodeOpsApi
from .pools_api import PoolsApi
from .protocol import Handler

Route = tuple[str, re.Pattern[str], str, Handler]


def table(
    pools: PoolsApi, jobs: JobsApi, files: FilesApi, schedules: JobSchedulesApi | None = None
) -> list[tuple[str, str, str, Handler]]:
    node_ops = NodeOpsApi(pools.batch)
    return (_schedule_rows(schedules) if schedules is not None else []) + [
        ("GET", "/pools", "Pools_ListPools", pools.list_pools),
        ("POST", "/pools", "Pools_CreatePool", pools.create_pool),
        ("GET", "/pools/{poolId}", "Pools_GetPool", pools.get_pool),
        ("HEAD", "/pools/{poolId}", "Pools_PoolExists", pools.pool_exists),
        ("PATCH", "/pools/{poolId}", "Pools_UpdatePool", pools.update_pool),
        ("DELETE", "/pools/{poolId}", "Pools_DeletePool", pools.delete_pool),
        (
            "POST",
            "/pools/{poolId}/updateproperties",
            "Pools_ReplacePoolProperties",
            pools.replace_pool,
        ),
        ("POST", "/pools/{poolId}/resize", "Pools_ResizePool", pools.resize_pool),
        ("POST", "/pools/{poolId}/stopresize", "Pools_StopPoolResize", pools.stop_resize),
        ("POST", "/pools/{poolId}/removenodes", "Pools_RemoveNodes", pools.remove_nodes),
        (
            "POST",
            "/pools/{poolId}/enableautoscale",
            "Pools_EnablePoolAutoScale",
            pools.enable_autoscale,
        ),
        (
            "POST",
            "/pools/{poolId}/disableautoscale",
            "Pools_DisablePoolAutoScale",
            pools.disable_autoscale,
        ),
        (
            "POST",
            "/pools/{poolId}/evaluateautoscale",
            "Pools_EvaluatePoolAutoScale",
            pools.evaluate_autoscale,
        ),
        ("GET", "/nodecounts", "Pools_ListPoolNodeCounts", pools.node_counts),
        ("GET", "/pools/{poolId}/nodes", "Nodes_ListNodes", pools.list_nodes),
        ("GET", "/pools/{poolId}/nodes/{nodeId}", "Nodes_GetNode", pools.get_node),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/reboot", "Nodes_RebootNode", pools.reboot_node),
        ("POST", "/pools/{poolId}/nodes/{nodeId}/reimage", "Nodes_ReimageNode", node_ops.reimage),
        (
            "GET",
            "/pools/{poolId}/nodes/{nodeId}/remoteloginsettings",
            "Nodes_GetNodeRemoteLoginSettings",
            node_ops.remote_login_settings,
        ),
        (
            "GET",
            "/pools/{poolId}/nodes/{nodeId}/files",
            "Nodes_ListNodeFiles",
            files.list_node_files,
        ),
        (
            "GET",
            "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
            "Nodes_GetNodeFile",
            files.get_node_file,
        ),
        (
            "HEAD",
            "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
            "Nodes_GetNodeFileProperties",
            files.get_node_file,
        ),
        (
            "POST",
            "/pools/{poolId}/nodes/{nodeId}/disablescheduling",
            "Nodes_DisableNodeScheduling",
            pools.disable_scheduling,
        ),
        (
            "POST",
            "/pools/{poolId}/nodes/{nodeId}/enablescheduling",
            "Nodes_EnableNodeScheduling",
            pools.enable_scheduling,
        ),
        (
            "DELETE",
            "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
            "Nodes_DeleteNodeFile",
            files.delete_node_file,
        ),
        (
            "DELETE",
            "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
            "Tasks_DeleteTaskFile",
            files.delete_task_file,
        ),
        ("GET", "/jobs", "Jobs_ListJobs", jobs.list_jobs),
        ("POST", "/jobs", "Jobs_CreateJob", jobs.create_job),
        ("GET", "/jobs/{jobId}", "Jobs_GetJob", jobs.get_job),
        ("PATCH", "/jobs/{jobId}", "Jobs_UpdateJob", jobs.update_job),
        ("PUT", "/jobs/{jobId}", "Jobs_ReplaceJob", jobs.replace_job),
        ("DELETE", "/jobs/{jobId}", "Jobs_DeleteJob", jobs.delete_job),
        ("POST", "/jobs/{jobId}/disable", "Jobs_DisableJob", jobs.disable_job),
        ("POST", "/jobs/{jobId}/enable", "Jobs_EnableJob", jobs.enable_job),
        ("POST", "/jobs/{jobId}/terminate", "Jobs_TerminateJob", jobs.terminate_job),
        ("GET", "/jobs/{jobId}/taskcounts", "Jobs_GetJobTaskCounts", jobs.task_counts),
        (
            "GET",
            "/jobs/{jobId}/jobpreparationandreleasetaskstatus",
            "Jobs_ListJobPreparationAndReleaseTaskStatus",
            jobs.prep_release_status,
        ),
        ("POST", "/jobs/{jobId}/tasks", "Tasks_CreateTask", jobs.create_task),
        (
            "POST",
            "/jobs/{jobId}/addtaskcollection",
            "Tasks_CreateTaskCollection",
            jobs.create_task_collection,
        ),
        ("GET", "/jobs/{jobId}/tasks", "Tasks_ListTasks", jobs.list_tasks),
        ("GET", "/jobs/{jobId}/tasks/{taskId}", "Tasks_GetTask", jobs.get_task),
        ("PUT", "/jobs/{jobId}/tasks/{taskId}", "Tasks_ReplaceTask", jobs.replace_task),
        ("DELETE", "/jobs/{jobId}/tasks/{taskId}", "Tasks_DeleteTask", jobs.delete_task),
        (
            "POST",
            "/jobs/{jobId}/tasks/{taskId}/terminate",
            "Tasks_TerminateTask",
            jobs.terminate_task,
        ),
        (
            "POST",
            "/jobs/{jobId}/tasks/{taskId}/reactivate",
            "Tasks_ReactivateTask",
            jobs.reactivate_task,
        ),
        ("GET", "/jobs/{jobId}/tasks/{taskId}/files", "Tasks_ListTaskFiles", files.list_task_files),
        (
            "GET",
            "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
            "Tasks_GetTaskFile",
            files.get_task_file,
        ),
        (
            "HEAD",
            "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
            "Tasks_GetTaskFileProperties",
            files.get_task_file,
        ),
    ]


def _schedule_rows(s: JobSchedulesApi) -> list[tuple[str, str, str, Handler]]:
    return [
        ("GET", "/jobschedules", "JobSchedules_ListJobSchedules", s.list),
        ("POST", "/jobschedules", "JobSchedules_CreateJobSchedule", s.create),
        ("GET", "/jobschedules/{jobScheduleId}", "JobSchedules_GetJobSchedule", s.get),
        ("HEAD", "/jobschedules/{jobScheduleId}", "JobSchedules_JobScheduleExists", s.exists),
        ("PATCH", "/jobschedules/{jobScheduleId}", "JobSchedules_UpdateJobSchedule", s.update),
        ("PUT", "/jobschedules/{jobScheduleId}", "JobSchedules_ReplaceJobSchedule", s.replace),
        ("DELETE", "/jobschedules/{jobScheduleId}", "JobSchedules_DeleteJobSchedule", s.delete),
        (
            "POST",
            "/jobschedules/{jobScheduleId}/disable",
            "JobSchedules_DisableJobSchedule",
            s.disable,
        ),
        (
            "POST",
            "/jobschedules/{jobScheduleId}/enable",
            "JobSchedules_EnableJobSchedule",
            s.enable,
        ),
        (
            "POST",
            "/jobschedules/{jobScheduleId}/terminate",
            "JobSchedules_TerminateJobSchedule",
            s.terminate,
        ),
        ("GET", "/jobschedules/{jobScheduleId}/jobs", "Jobs_ListJobsFromSchedule", s.list_jobs),
    ]


class Router:
    def __init__(self, rows: list[tuple[str, str, str, Handler]]) -> None:
        self.routes: list[Route] = []
        for method, path, op, handler in rows:
            pattern = re.sub(r"\{filePath\}", r"(?P<filePath>.+)", path)
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            self.routes.append((method, re.compile(f"^{pattern}/?$"), op, handler))

    def match(self, method: str, raw_path: str) -> tuple[str, Handler, dict[str, str]] | None:
        """Route on the raw path so that an escaped `/` inside a file path stays one segment;
        a known path with another verb answers Batch's 405."""
        known_path = False
        for m, pattern, op, handler in self.routes:
            found = pattern.match(raw_path)
            if not found:
                continue
            known_path = True
            if m == method:
                return op, handler, {k: unquote(v) for k, v in found.groupdict().items()}
        if known_path:
            raise BatchError(
                405,
                "UnsupportedHttpVerb",
                f"The resource doesn't support the specified HTTP verb {method}.",
            )
        return None
