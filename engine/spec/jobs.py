"""How a job lives, from its rendered spec: preparation and release tasks, completion,
maxParallelTasks, and the onTaskFailure its tasks' exit rules need.

The job's strings were rendered with the job's scope (vars, stack) before this runs; what is
left is building the spec objects and the checks the schema cannot make (a release without
a preparation, a release longer than Batch's 15 minutes, exit rules without tasks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from bspec.model import (
    ON_TASK_FAILURE_PERFORM,
    JobTaskSpec,
    ResourceFileSpec,
    TaskContainerSpec,
    TaskSpec,
)
from bspec.spec.environment import Failure
from bspec.spec.exits import has_job_action
from bspec.spec.loading import PathKey
from bspec.spec.references import References
from bspec.spec.tasks import check_batch_limits
from bspec.spec.tree import Renderer, as_int, parse_duration

RELEASE_LIMIT = timedelta(minutes=15)  # Batch's longest (and default) release task
COMPLETION = {"noAction": "noaction", "terminateJob": "terminatejob"}


def container(body: Mapping[str, Any] | None) -> TaskContainerSpec | None:
    if not body:
        return None
    return TaskContainerSpec(
        image=str(body["image"]),
        run_options=body.get("runOptions"),
        working_directory=body.get("workingDirectory"),
    )


def job_task(r: Renderer, refs: References, body: Mapping[str, Any], path: PathKey) -> JobTaskSpec:
    """A preparation or release task (the schema says which fields each may have)."""
    command_line = r.command_line(body, path, r.wrapper())
    files: list[ResourceFileSpec] = [
        refs.resource_file(rf, (*path, "resourceFiles", i))
        for i, rf in enumerate(body.get("resourceFiles") or ())
    ]
    environment = tuple((k, str(v)) for k, v in (body.get("environment") or {}).items())
    check_batch_limits(body, path, command_line, environment, None, len(files))
    c = body.get("constraints") or {}
    wall, keep = c.get("maxWallClockTime"), c.get("retentionTime")
    return JobTaskSpec(
        command_line=command_line,
        resource_files=tuple(files),
        environment=environment,
        elevated=bool(body.get("elevated", False)),
        container=container(body.get("container")),
        wait_for_success=bool(body.get("waitForSuccess", True)),
        max_wall_clock_time=parse_duration(wall) if wall else None,
        retention_time=parse_duration(keep) if keep else None,
        max_task_retry_count=int(c.get("maxTaskRetryCount", 0)),
    )


def job_options(
    r: Renderer,
    job: Mapping[str, Any],
    path: PathKey,
    refs: References,
    tasks: Sequence[TaskSpec],
) -> dict[str, Any]:
    """The JobSpec fields of how the job lives; problems are recorded on `r`."""
    out: dict[str, Any] = {}
    try:
        if job.get("preparation"):
            out["preparation"] = job_task(r, refs, job["preparation"], (*path, "preparation"))
        if job.get("release"):
            where = (*path, "release")
            if not job.get("preparation"):
                raise Failure(
                    where,
                    "a release task needs a preparation task (Batch runs the release only on "
                    "nodes that ran the preparation): add `preparation:` to the job",
                )
            release = job_task(r, refs, job["release"], where)
            wall = release.max_wall_clock_time
            if wall is not None and wall > RELEASE_LIMIT:
                raise Failure(
                    (*where, "constraints", "maxWallClockTime"),
                    "a release task runs for at most 15 minutes (PT15M) on Batch",
                )
            out["release"] = release
        if "maxParallelTasks" in job:
            out["max_parallel_tasks"] = as_int(
                job["maxParallelTasks"], path, "maxParallelTasks", 1, 2**31 - 1
            )
    except Failure as f:
        r.problem(f.path, f.message, key=f.key)
    if "onAllTasksComplete" in job:
        out["on_all_tasks_complete"] = COMPLETION[job["onAllTasksComplete"]]
    if any(has_job_action(t.on_exit) for t in tasks):
        out["on_task_failure"] = ON_TASK_FAILURE_PERFORM
    return out


__all__ = ["COMPLETION", "RELEASE_LIMIT", "job_options", "job_task"]
