"""How `render` shows scheduled jobs: the schedule, where runs run, and the note that the
files a `foreach: files` expands over are fixed when the spec is applied, not per run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bspec.common import durations
from bspec.model import DesiredState, Kind, ScheduleSpec, TaskSpec

TaskJson = Callable[[TaskSpec], dict[str, Any]]


def fixed_files_note(s: ScheduleSpec) -> str | None:
    """The words for a schedule whose tasks expand over a container's files."""
    if not s.file_sets:
        return None
    keys = ", ".join(s.file_sets)
    return (
        f"the files of {keys} that `foreach: files` expands over are fixed when the spec is "
        "applied: every run gets these tasks; files added later reach the runs only after "
        "the next `bspec apply`"
    )


def _when(s: ScheduleSpec) -> dict[str, Any]:
    fmt = durations.format
    return {
        "recurrenceInterval": fmt(s.recurrence_interval) if s.recurrence_interval else None,
        "doNotRunUntil": s.do_not_run_until.isoformat() if s.do_not_run_until else None,
        "doNotRunAfter": s.do_not_run_after.isoformat() if s.do_not_run_after else None,
        "startWindow": fmt(s.start_window) if s.start_window else None,
        "poolPerRun": s.auto_pool,
    }


def schedules_json(desired: DesiredState, task_json: TaskJson) -> dict[str, Any]:
    """`render --json`'s `schedules` (only when the spec has scheduled jobs)."""
    found: tuple[ScheduleSpec, ...] = desired.of_kind(Kind("schedule"))
    if not found:
        return {}
    return {
        "schedules": [
            {
                "id": s.id,
                "poolId": s.pool_id,
                "schedule": _when(s),
                "priority": s.job.priority,
                "outputs": [
                    {"container": o.container, "to": o.to, "prefix": o.prefix} for o in s.outputs
                ],
                "note": fixed_files_note(s),
                "tasks": [task_json(t) for t in s.tasks],
            }
            for s in found
        ]
    }


def schedule_lines(data: dict[str, Any]) -> list[str]:
    """The text `render` prints for the `schedules` of `schedules_json`."""
    lines = []
    for s in data.get("schedules") or ():
        w = s["schedule"]
        pool = "a pool per run" if w["poolPerRun"] else f"pool={s['poolId']}"
        when = f"every {w['recurrenceInterval']}" if w["recurrenceInterval"] else "once"
        if w["doNotRunUntil"]:
            when += f" from {w['doNotRunUntil']}"
        if w["doNotRunAfter"]:
            when += f" until {w['doNotRunAfter']}"
        lines.append(f"schedule/{s['id']}  {pool} {when}")
        lines.append("  each run's job id replaces $AZ_BATCH_JOB_ID ({{ run }}) in its tasks")
        if s["note"]:
            lines.append(f"  note: {s['note']}")
        for t in s["tasks"]:
            lines.append(f"  task {t['id']}  {t['fingerprint']}")
            lines.append(f"    commandLine: {t['commandLine']}")
            for of in t["outputFiles"]:
                lines.append(f"    outputFile: {of['pattern']} -> {of['container']}/{of['path']}")
    return lines


def validate_schedule_lines(desired: DesiredState) -> list[str]:
    """What `validate` says of each scheduled job (its tasks are per run, not in the count)."""
    found: tuple[ScheduleSpec, ...] = desired.of_kind(Kind("schedule"))
    return [f"  schedule  {s.id:<14} {len(s.tasks)} task(s) per run" for s in found]


__all__ = ["fixed_files_note", "schedule_lines", "schedules_json", "validate_schedule_lines"]
