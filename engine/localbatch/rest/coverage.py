"""What of the Batch definition (2025-06-01) the local service implements, and the honest
refusal of the rest.

Operations: `DEFINITION_OPERATIONS` lists every operation of the definition; the route table
(routes.table plus the rows app.py appends) says which are implemented. An operation of the
definition that no route answers is refused with 501 `OperationNotSupported` naming it
(`Refusals`), never a generic ResourceNotFound. A newly routed operation leaves the refusal
list by its route row alone: nothing here changes.

Request properties: `IMPLEMENTED_PROPERTIES` lists, per operation with a create or update
body, the JSON paths the service honours (`a.b` a property, `a[]` each item of list `a`,
`a.*` the whole subtree). Any other property with a value that asks for something is refused
with 400 `UnsupportedProperty` naming its path (`check_properties`); an empty value (null,
[] or {}) asks for nothing and passes. A feature that lands adds its paths here, one per line.

`coverage_table` (given the definition) builds the table docs/local-target.md carries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from ..resources import BatchError

REFUSAL_CODE = "OperationNotSupported"

# (method, path template, operationId): every operation of azure-batch-2025-06-01.21.0.json.
DEFINITION_OPERATIONS: tuple[tuple[str, str, str], ...] = (
    ("GET", "/applications", "Applications_ListApplications"),
    ("GET", "/applications/{applicationId}", "Applications_GetApplication"),
    ("GET", "/certificates", "Certificates_ListCertificates"),
    ("POST", "/certificates", "Certificates_CreateCertificate"),
    (
        "GET",
        "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})",
        "Certificates_GetCertificate",
    ),
    (
        "DELETE",
        "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})",
        "Certificates_DeleteCertificate",
    ),
    (
        "POST",
        "/certificates(thumbprintAlgorithm={thumbprintAlgorithm},thumbprint={thumbprint})"
        "/canceldelete",
        "Certificates_CancelCertificateDeletion",
    ),
    ("GET", "/jobs", "Jobs_ListJobs"),
    ("POST", "/jobs", "Jobs_CreateJob"),
    ("GET", "/jobs/{jobId}", "Jobs_GetJob"),
    ("PUT", "/jobs/{jobId}", "Jobs_ReplaceJob"),
    ("PATCH", "/jobs/{jobId}", "Jobs_UpdateJob"),
    ("DELETE", "/jobs/{jobId}", "Jobs_DeleteJob"),
    ("POST", "/jobs/{jobId}/addtaskcollection", "Tasks_CreateTaskCollection"),
    ("POST", "/jobs/{jobId}/disable", "Jobs_DisableJob"),
    ("POST", "/jobs/{jobId}/enable", "Jobs_EnableJob"),
    (
        "GET",
        "/jobs/{jobId}/jobpreparationandreleasetaskstatus",
        "Jobs_ListJobPreparationAndReleaseTaskStatus",
    ),
    ("GET", "/jobs/{jobId}/taskcounts", "Jobs_GetJobTaskCounts"),
    ("GET", "/jobs/{jobId}/tasks", "Tasks_ListTasks"),
    ("POST", "/jobs/{jobId}/tasks", "Tasks_CreateTask"),
    ("GET", "/jobs/{jobId}/tasks/{taskId}", "Tasks_GetTask"),
    ("PUT", "/jobs/{jobId}/tasks/{taskId}", "Tasks_ReplaceTask"),
    ("DELETE", "/jobs/{jobId}/tasks/{taskId}", "Tasks_DeleteTask"),
    ("GET", "/jobs/{jobId}/tasks/{taskId}/files", "Tasks_ListTaskFiles"),
    ("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "Tasks_GetTaskFile"),
    ("DELETE", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "Tasks_DeleteTaskFile"),
    ("HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "Tasks_GetTaskFileProperties"),
    ("POST", "/jobs/{jobId}/tasks/{taskId}/reactivate", "Tasks_ReactivateTask"),
    ("GET", "/jobs/{jobId}/tasks/{taskId}/subtasksinfo", "Tasks_ListSubTasks"),
    ("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "Tasks_TerminateTask"),
    ("POST", "/jobs/{jobId}/terminate", "Jobs_TerminateJob"),
    ("GET", "/jobschedules", "JobSchedules_ListJobSchedules"),
    ("POST", "/jobschedules", "JobSchedules_CreateJobSchedule"),
    ("GET", "/jobschedules/{jobScheduleId}", "JobSchedules_GetJobSchedule"),
    ("PUT", "/jobschedules/{jobScheduleId}", "JobSchedules_ReplaceJobSchedule"),
    ("PATCH", "/jobschedules/{jobScheduleId}", "JobSchedules_UpdateJobSchedule"),
    ("DELETE", "/jobschedules/{jobScheduleId}", "JobSchedules_DeleteJobSchedule"),
    ("HEAD", "/jobschedules/{jobScheduleId}", "JobSchedules_JobScheduleExists"),
    ("POST", "/jobschedules/{jobScheduleId}/disable", "JobSchedules_DisableJobSchedule"),
    ("POST", "/jobschedules/{jobScheduleId}/enable", "JobSchedules_EnableJobSchedule"),
    ("GET", "/jobschedules/{jobScheduleId}/jobs", "Jobs_ListJobsFromSchedule"),
    ("POST", "/jobschedules/{jobScheduleId}/terminate", "JobSchedules_TerminateJobSchedule"),
    ("GET", "/nodecounts", "Pools_ListPoolNodeCounts"),
    ("GET", "/pools", "Pools_ListPools"),
    ("POST", "/pools", "Pools_CreatePool"),
    ("GET", "/pools/{poolId}", "Pools_GetPool"),
    ("PATCH", "/pools/{poolId}", "Pools_UpdatePool"),
    ("DELETE", "/pools/{poolId}", "Pools_DeletePool"),
    ("HEAD", "/pools/{poolId}", "Pools_PoolExists"),
    ("POST", "/pools/{poolId}/disableautoscale", "Pools_DisablePoolAutoScale"),
    ("POST", "/pools/{poolId}/enableautoscale", "Pools_EnablePoolAutoScale"),
    ("POST", "/pools/{poolId}/evaluateautoscale", "Pools_EvaluatePoolAutoScale"),
    ("GET", "/pools/{poolId}/nodes", "Nodes_ListNodes"),
    ("GET", "/pools/{poolId}/nodes/{nodeId}", "Nodes_GetNode"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/deallocate", "Nodes_DeallocateNode"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/disablescheduling", "Nodes_DisableNodeScheduling"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/enablescheduling", "Nodes_EnableNodeScheduling"),
    ("GET", "/pools/{poolId}/nodes/{nodeId}/extensions", "Nodes_ListNodeExtensions"),
    (
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/extensions/{extensionName}",
        "Nodes_GetNodeExtension",
    ),
    ("GET", "/pools/{poolId}/nodes/{nodeId}/files", "Nodes_ListNodeFiles"),
    ("GET", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "Nodes_GetNodeFile"),
    ("DELETE", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "Nodes_DeleteNodeFile"),
    ("HEAD", "/pools/{poolId}/nodes/{nodeId}/files/{filePath}", "Nodes_GetNodeFileProperties"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/reboot", "Nodes_RebootNode"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/reimage", "Nodes_ReimageNode"),
    (
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/remoteloginsettings",
        "Nodes_GetNodeRemoteLoginSettings",
    ),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/start", "Nodes_StartNode"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/uploadbatchservicelogs", "Nodes_UploadNodeLogs"),
    ("POST", "/pools/{poolId}/nodes/{nodeId}/users", "Nodes_CreateNodeUser"),
    ("PUT", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "Nodes_ReplaceNodeUser"),
    ("DELETE", "/pools/{poolId}/nodes/{nodeId}/users/{userName}", "Nodes_DeleteNodeUser"),
    ("POST", "/pools/{poolId}/removenodes", "Pools_RemoveNodes"),
    ("POST", "/pools/{poolId}/resize", "Pools_ResizePool"),
    ("POST", "/pools/{poolId}/stopresize", "Pools_StopPoolResize"),
    ("POST", "/pools/{poolId}/updateproperties", "Pools_ReplacePoolProperties"),
    ("GET", "/poolusagemetrics", "Pools_ListPoolUsageMetrics"),
    ("GET", "/supportedimages", "Pools_ListSupportedImages"),
)


def path_pattern(template: str) -> re.Pattern[str]:
    """A definition path template as a regex on raw paths (`{filePath}` may hold `/`)."""
    out = ""
    for part in re.split(r"(\{\w+\})", template):
        if part == "{filePath}":
            out += "(?P<filePath>.+)"
        elif part.startswith("{") and part.endswith("}"):
            out += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            out += re.escape(part)
    return re.compile(f"^{out}/?$")


class Refusals:
    """The definition's operations no route answers, and Batch-style refusals for them."""

    def __init__(self, routed: Iterable[str]) -> None:
        done = set(routed)
        self.refused = [
            (method, path, op, path_pattern(path))
            for method, path, op in DEFINITION_OPERATIONS
            if op not in done
        ]

    def operations(self) -> list[str]:
        return [op for _m, _p, op, _r in self.refused]

    def refusal(self, method: str, raw_path: str) -> BatchError | None:
        for m, path, op, pattern in self.refused:
            if m == method and pattern.match(raw_path):
                return BatchError(
                    501,
                    REFUSAL_CODE,
                    f"The operation {op} ({m} {path}) is not supported by the local Batch service.",
                    {"OperationId": op},
                )
        return None


# ------------------------------------------------------------------ request properties

_STORED = "stored and reported; no effect on local processes"

# A task as Tasks_CreateTask and the items of Tasks_CreateTaskCollection take it.
_TASK = (
    "id",
    "displayName",
    "commandLine",
    "resourceFiles.*",
    "outputFiles.*",
    "environmentSettings.*",
    "constraints.*",
    "requiredSlots",
    "userIdentity.*",
    "dependsOn.*",
    "exitConditions.*",
    "authenticationTokenSettings.*",
    "containerSettings.*",
)
_START_TASK = (
    "startTask.containerSettings.*",
    "startTask.commandLine",
    "startTask.resourceFiles.*",
    "startTask.environmentSettings.*",
    "startTask.userIdentity.*",
    "startTask.maxTaskRetryCount",
    "startTask.waitForSuccess",
)
_POOL = (
    "displayName",
    "vmSize",
    "virtualMachineConfiguration.*",
    "networkConfiguration.*",
    "resourceTags.*",
    "enableInterNodeCommunication",
    "taskSlotsPerNode",
    "taskSchedulingPolicy.*",
    "metadata.*",
    "targetNodeCommunicationMode",
    *_START_TASK,
)
_JOB_MANAGER = (
    "id",
    "displayName",
    "commandLine",
    "resourceFiles.*",
    "outputFiles.*",
    "environmentSettings.*",
    "constraints.*",
    "requiredSlots",
    "killJobOnCompletion",
    "userIdentity.*",
    "runExclusive",
    "authenticationTokenSettings.*",
)
_JOB_PREPARATION = (
    "id",
    "commandLine",
    "resourceFiles.*",
    "environmentSettings.*",
    "constraints.*",
    "waitForSuccess",
    "userIdentity.*",
    "rerunOnNodeRebootAfterSuccess",
)
_JOB_RELEASE = (
    "id",
    "commandLine",
    "resourceFiles.*",
    "environmentSettings.*",
    "maxWallClockTime",
    "retentionTime",
    "userIdentity.*",
)
_JOB_UPDATE = (
    "priority",
    "allowTaskPreemption",
    "maxParallelTasks",
    "constraints.*",
    "poolInfo.poolId",
    "onAllTasksComplete",
    "metadata.*",
)

_POOL_CREATE = (
    *_POOL,
    "resizeTimeout",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleEvaluationInterval",
)
_AUTO_POOL = (
    "poolInfo.autoPoolSpecification.autoPoolIdPrefix",
    "poolInfo.autoPoolSpecification.poolLifetimeOption",
    "poolInfo.autoPoolSpecification.keepAlive",
    *(f"poolInfo.autoPoolSpecification.pool.{p}" for p in _POOL_CREATE),
)
# What a job takes at creation, and a job schedule's jobSpecification with it.
_JOB_SPEC = (
    "displayName",
    "usesTaskDependencies",
    *_JOB_UPDATE,
    *_AUTO_POOL,
    "networkConfiguration.*",
    "commonEnvironmentSettings.*",
    "onTaskFailure",
    *(f"jobManagerTask.{p}" for p in _JOB_MANAGER),
    *(f"jobPreparationTask.{p}" for p in _JOB_PREPARATION),
    *(f"jobReleaseTask.{p}" for p in _JOB_RELEASE),
)
_SCHEDULE = ("schedule.*", "metadata.*", *(f"jobSpecification.{p}" for p in _JOB_SPEC))

IMPLEMENTED_PROPERTIES: dict[str, tuple[str, ...]] = {
    "Pools_CreatePool": ("id", *_POOL_CREATE),
    "Pools_UpdatePool": _POOL,
    "Pools_ReplacePoolProperties": (*_START_TASK, "metadata.*", "targetNodeCommunicationMode"),
    "Pools_ResizePool": (
        "targetDedicatedNodes",
        "targetLowPriorityNodes",
        "resizeTimeout",
        "nodeDeallocationOption",
    ),
    "Pools_RemoveNodes": ("nodeList.*", "resizeTimeout", "nodeDeallocationOption"),
    "Jobs_CreateJob": ("id", *_JOB_SPEC),
    "JobSchedules_CreateJobSchedule": ("id", "displayName", *_SCHEDULE),
    "JobSchedules_UpdateJobSchedule": _SCHEDULE,
    "JobSchedules_ReplaceJobSchedule": _SCHEDULE,
    "Jobs_UpdateJob": (*_JOB_UPDATE, "networkConfiguration.*"),
    "Jobs_ReplaceJob": _JOB_UPDATE,
    "Jobs_DisableJob": ("disableTasks",),
    "Jobs_TerminateJob": ("terminateReason",),
    "Tasks_CreateTask": _TASK,
    "Tasks_CreateTaskCollection": (*tuple(f"value[].{p}" for p in _TASK), "value"),
    "Tasks_ReplaceTask": ("constraints.*",),
    "Nodes_RebootNode": ("nodeRebootOption",),
    "Nodes_ReimageNode": ("nodeReimageOption",),
    "Nodes_DisableNodeScheduling": ("nodeDisableSchedulingOption",),
    "Pools_EnablePoolAutoScale": ("autoScaleFormula", "autoScaleEvaluationInterval"),
    "Pools_EvaluatePoolAutoScale": ("autoScaleFormula",),
}

# Why a refused property is refused, by its last path segment (for the table and the error).
REASONS: dict[str, str] = {
    "containerSettings": "job manager, preparation and release tasks do not run in containers locally",
    "certificateReferences": "no certificate store",
    "applicationPackageReferences": "no application packages",
    "userAccounts": "every process runs as the service's user",
    "mountConfiguration": "no file system mounts",
    "upgradePolicy": "no node OS upgrades",
    "multiInstanceSettings": "no multi-instance (MPI) tasks",
    "affinityInfo": "no node affinity",
}


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def accepted(paths: Iterable[str], path: str) -> bool:
    """Whether PATH (`a.b`, `a[].b`) is one of PATHS or inside a `x.*` subtree of them."""
    for p in paths:
        if p == path or p.startswith((path + ".", path + "[]")):
            return True  # the property itself, or an object holding implemented ones
        if p.endswith(".*") and (path == p[:-2] or path.startswith((p[:-1], p[:-2] + "[]"))):
            return True
    return False


# PUT bodies are whole entities: a client sends back what it read, read-only properties
# included, which Batch ignores; only these writable properties are checked.
WRITABLE_OF_ENTITY: dict[str, frozenset[str]] = {
    "Jobs_ReplaceJob": frozenset(
        {
            "priority",
            "allowTaskPreemption",
            "maxParallelTasks",
            "constraints",
            "poolInfo",
            "onAllTasksComplete",
            "metadata",
        }
    ),
    "Tasks_ReplaceTask": frozenset({"constraints"}),
    "JobSchedules_ReplaceJobSchedule": frozenset({"schedule", "jobSpecification", "metadata"}),
}


def unsupported(op: str, body: Any) -> str | None:
    """The first property path in BODY that OP does not implement, or None."""
    paths = IMPLEMENTED_PROPERTIES.get(op)
    if paths is None or not isinstance(body, dict):
        return None
    writable = WRITABLE_OF_ENTITY.get(op)
    if writable is not None:
        body = {k: v for k, v in body.items() if k in writable}
    return _walk(paths, body, "")


def _walk(paths: tuple[str, ...], node: Any, prefix: str) -> str | None:
    if isinstance(node, list):
        for item in node:
            found = _walk(paths, item, prefix + "[]")
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    for key, value in node.items():
        path = f"{prefix}.{key}" if prefix else key
        if _empty(value):
            continue
        if not accepted(paths, path):
            return path
        if any(p == path + ".*" or p == path + "[].*" for p in paths):
            continue
        if isinstance(value, (dict, list)):
            found = _walk(paths, value, path)
            if found:
                return found
    return None


def check_properties(op: str, body: Any) -> None:
    """Batch's 400 UnsupportedProperty naming the first property OP does not implement."""
    path = unsupported(op, body)
    if path is None:
        return
    leaf = re.split(r"[.\[\]]+", path.rstrip("[]"))[-1]
    detail = {"PropertyName": path}
    if leaf in REASONS:
        detail["Reason"] = REASONS[leaf]
    raise BatchError(
        400,
        "UnsupportedProperty",
        f"The property {path} is not supported by the local Batch service.",
        detail,
    )


# ------------------------------------------------------------------ the table, generated


def body_paths(definition: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """Every writable property path of a request body schema (read-only ones left out)."""
    defs = definition["definitions"]
    out: list[str] = []

    def walk(node: Mapping[str, Any], prefix: str, seen: frozenset[str]) -> None:
        if "$ref" in node:
            name = str(node["$ref"]).rsplit("/", 1)[-1]
            if name in seen:
                return
            node, seen = defs[name], seen | {name}
        for part in node.get("allOf", []):
            walk(part, prefix, seen)
        if node.get("type") == "array" and "items" in node:
            walk(node["items"], prefix + "[]", seen)
            return
        for key, value in node.get("properties", {}).items():
            if value.get("readOnly"):
                continue
            path = f"{prefix}.{key}" if prefix else key
            out.append(path)
            walk(value, path, seen)

    walk(schema, "", frozenset())
    return out


def body_operations(definition: Mapping[str, Any]) -> dict[str, list[str]]:
    """operationId -> the property paths of its request body, for every operation with one."""
    out: dict[str, list[str]] = {}
    for ops in definition["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            for param in op.get("parameters", []):
                if param.get("in") == "body":
                    out[op["operationId"]] = body_paths(definition, param["schema"])
    return out


def property_status(op: str, path: str, routed: set[str]) -> bool:
    """Whether a body property is implemented (its operation routed and the path accepted)."""
    return op in routed and accepted(IMPLEMENTED_PROPERTIES.get(op, ()), path)


# Routed only to refuse with a reason of their own (after checking what they name exists, as
# Batch would): refused in the table, never counted as implemented.
REFUSED_WITH_REASON = {
    "Nodes_GetNodeRemoteLoginSettings": "a local node has no SSH endpoint (the node is checked first)",
}


def coverage_table(definition: Mapping[str, Any], routed: set[str]) -> str:
    """The Markdown table of docs/local-target.md: every operation, implemented or refused,
    and per body the implemented and refused properties (as subtrees where whole)."""
    lines = [
        "| Operation | Method and path | Local service |",
        "|---|---|---|",
    ]
    for method, path, op in DEFINITION_OPERATIONS:
        if op in REFUSED_WITH_REASON:
            answer = f"501 {REFUSAL_CODE}: {REFUSED_WITH_REASON[op]}"
        else:
            answer = "implemented" if op in routed else f"501 {REFUSAL_CODE}"
        lines.append(f"| {op} | `{method} {path}` | {answer} |")
    ops_done = sum(
        1 for _m, _p, op in DEFINITION_OPERATIONS if op in routed and op not in REFUSED_WITH_REASON
    )
    bodies = body_operations(definition)
    lines += ["", "| Request body | Properties implemented | Properties refused |", "|---|---|---|"]
    total_done = total_refused = 0
    for op in sorted(bodies):
        paths = bodies[op]
        done = [p for p in paths if property_status(op, p, routed)]
        refused = [p for p in paths if not property_status(op, p, routed)]
        total_done += len(done)
        total_refused += len(refused)
        if op not in routed:
            shown = "all (operation refused)"
        else:
            gone = set(refused)
            outer = [p for p in refused if _parent(p) not in gone]
            shown = ", ".join(f"`{p}`" for p in outer) or "none"
        lines.append(f"| {op} | {len(done)} | {len(refused)}: {shown} |")
    summary = (
        f"Operations: {ops_done} implemented, {len(DEFINITION_OPERATIONS) - ops_done} refused. "
        f"Request body properties: {total_done} implemented, {total_refused} refused."
    )
    return summary + "\n\n" + "\n".join(lines) + "\n"


def _parent(path: str) -> str:
    """`a.b[].c` -> `a.b`: the property holding PATH."""
    return path.rpartition(".")[0].removesuffix("[]")


DOC_BEGIN = "<!-- coverage:begin (generated by `python -m bspec.localbatch.rest.coverage_doc`) -->"
DOC_END = "<!-- coverage:end -->"


def with_table(doc: str, table: str) -> str:
    """DOC with the text between its coverage markers replaced by TABLE."""
    head, _, rest = doc.partition(DOC_BEGIN)
    _, _, tail = rest.partition(DOC_END)
    return f"{head}{DOC_BEGIN}\n{table}{DOC_END}{tail}"
