"""The parts of a job that are not the job's own fields: its preparation and release tasks
and its tasks' exit rules, in the one normal form both sides share. Pure.

A preparation or release task's props (`job_task_props`, `job_task_from_rest`):

    {"commandLine", "resourceFiles": [resource file refs], "environment", "elevated",
     "container": {"image", "runOptions", "workingDirectory"} | None,
     "waitForSuccess" (preparation; None for a release), "maxWallClockTime" (seconds; None
     unlimited; a release's defaults to 900), "retentionTime" (seconds, default 7 days),
     "maxTaskRetryCount" (preparation; None for a release)}

Batch's defaults are filled in on both sides, so a job read back equals the one created.
A task's exit rules become Batch's `exitConditions` here (`exit_conditions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bspec.common import durations
from bspec.kinds.base import DEFAULT_RETENTION_SECONDS, resource_file_ref, seconds
from bspec.kinds.pool import _start_task as start_task_from_rest
from bspec.model import ExitRuleSpec, JobTaskSpec, TaskContainerSpec

RELEASE_DEFAULT_SECONDS = 900.0  # Batch's (and its longest) release task wall clock
WORKING_DIRECTORY_DEFAULT = "taskworkingdirectory"


def _container_props(c: TaskContainerSpec | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "image": c.image,
        "runOptions": c.run_options or None,
        "workingDirectory": (c.working_directory or WORKING_DIRECTORY_DEFAULT).lower(),
    }


def job_task_props(
    t: JobTaskSpec | None, names: Mapping[str, str], *, release: bool = False
) -> dict[str, Any] | None:
    """A preparation (or, `release`, a release) task in the normal form."""
    if t is None:
        return None
    wall = seconds(t.max_wall_clock_time)
    return {
        "commandLine": t.command_line,
        "resourceFiles": [resource_file_ref(rf, names) for rf in t.resource_files],
        "environment": dict(t.environment),
        "elevated": t.elevated,
        "container": _container_props(t.container),
        "waitForSuccess": None if release else t.wait_for_success,
        "maxWallClockTime": (wall if wall is not None else RELEASE_DEFAULT_SECONDS)
        if release
        else wall,
        "retentionTime": seconds(t.retention_time, DEFAULT_RETENTION_SECONDS),
        "maxTaskRetryCount": None if release else t.max_task_retry_count,
    }


def iso_seconds(text: Any, default: float | None = None) -> float | None:
    """An ISO 8601 duration as Batch writes it, in the normal form (seconds, None unlimited)."""
    if not text:
        return default
    try:
        return seconds(durations.parse(str(text)), default)
    except ValueError:
        return default


def job_task_from_rest(
    body: Mapping[str, Any] | None, source_of: Callable[[str], str], *, release: bool = False
) -> dict[str, Any] | None:
    """A jobPreparationTask (or jobReleaseTask) as Batch's REST JSON has it."""
    if not body:
        return None
    cs = body.get("containerSettings")
    c = (body if release else body.get("constraints")) or {}
    wall = iso_seconds(c.get("maxWallClockTime"))
    # the fields a start task shares with it, read as the pool reads its start task
    common = start_task_from_rest(body, source_of)
    return {
        **{k: common[k] for k in ("commandLine", "resourceFiles", "environment", "elevated")},
        "container": None
        if not cs
        else {
            "image": cs.get("imageName"),
            "runOptions": cs.get("containerRunOptions") or None,
            "workingDirectory": str(
                cs.get("workingDirectory") or WORKING_DIRECTORY_DEFAULT
            ).lower(),
        },
        "waitForSuccess": None if release else body.get("waitForSuccess", True) is not False,
        "maxWallClockTime": (wall if wall is not None else RELEASE_DEFAULT_SECONDS)
        if release
        else wall,
        "retentionTime": iso_seconds(c.get("retentionTime"), DEFAULT_RETENTION_SECONDS),
        "maxTaskRetryCount": None if release else int(c.get("maxTaskRetryCount") or 0),
    }


def exit_conditions(rules: Sequence[ExitRuleSpec], job_actions: bool) -> dict[str, Any] | None:
    """Batch's exitConditions for a task's rules. `job_actions`: the job's onTaskFailure is
    performExitOptionsJobAction; then Batch's own default for any failure not matched is to
    terminate the job, so every rule and the default say `none` unless the spec says else
    (a task without rules in such a job gets just that default). Without it Batch refuses
    any jobAction, so none is sent."""
    if not rules and not job_actions:
        return None

    def options(r: ExitRuleSpec) -> dict[str, str]:
        out: dict[str, str] = {}
        if job_actions:
            out["jobAction"] = r.job_action or "none"
        if r.dependency_action:
            out["dependencyAction"] = r.dependency_action
        return out

    body: dict[str, Any] = {}
    codes = [{"code": c, "exitOptions": options(r)} for r in rules for c in r.codes]
    spans = [{"start": a, "end": b, "exitOptions": options(r)} for r in rules for a, b in r.ranges]
    if codes:
        body["exitCodes"] = codes
    if spans:
        body["exitCodeRanges"] = spans
    for r in rules:
        if r.event is not None:
            body[r.event] = options(r)
    if job_actions and "default" not in body:
        body["default"] = {"jobAction": "none"}
    return body


__all__ = [
    "RELEASE_DEFAULT_SECONDS",
    "exit_conditions",
    "iso_seconds",
    "job_task_from_rest",
    "job_task_props",
]
