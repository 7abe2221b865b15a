"""Scheduled jobs: a job with `schedule:` becomes a `ScheduleSpec` (a Batch job schedule)
instead of a job, with its tasks rendered once, here, for the job manager to add to each run.

Templates are rendered at apply time, not per run, so a run's own job id reaches its tasks
through the environment: `{{ run }}` renders `$AZ_BATCH_JOB_ID`, which bspec's job manager
replaces with the run's job id in every string of the task bodies (command lines, output
paths, environment values) as it adds them. Output files default to a folder per run
(`<run job id>/...`), so the runs' outputs never overwrite each other.

Checked here, each with the spec's file, line and JSON path: a recurrence or start window
shorter than Batch's minimum (1 minute), a `doNotRunAfter` not after `doNotRunUntil`, an
unreadable time, and a pool that `whenIdle` would delete or strand under a schedule.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from bspec.model import (
    JobSpec,
    OutputFileSpec,
    PoolSpec,
    ScheduleSpec,
    TaskSpec,
    WhenIdle,
)
from bspec.schedules import script_bytes
from bspec.spec.loading import PathKey
from bspec.spec.tree import Renderer, parse_duration

RUN_JOB_ID = "$AZ_BATCH_JOB_ID"  # what `{{ run }}` renders; the job manager fills it in
MIN_INTERVAL = dt.timedelta(minutes=1)  # Batch's minimum recurrence and start window
WILDCARDS = frozenset("*?[")


def is_scheduled(job: Mapping[str, Any]) -> bool:
    return job.get("schedule") is not None


def run_scope(job: Mapping[str, Any]) -> dict[str, Any]:
    """What a scheduled job's task templates see besides a job's names: `run`."""
    return {"run": RUN_JOB_ID} if is_scheduled(job) else {}


def parse_time(text: Any) -> dt.datetime:
    """An ISO 8601 time; one without an offset is UTC. ValueError when unreadable."""
    value = dt.datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _duration(r: Renderer, given: Mapping[str, Any], key: str, path: PathKey) -> Any:
    text = given.get(key)
    if text is None:
        return None
    try:
        value = parse_duration(str(text).strip())
    except ValueError as exc:
        r.problem((*path, key), str(exc))
        return None
    if value < MIN_INTERVAL:
        r.problem(
            (*path, key),
            f"{key} {text} is shorter than Batch's minimum of 1 minute (PT1M)",
        )
        return None
    return value


def _time(r: Renderer, given: Mapping[str, Any], key: str, path: PathKey) -> Any:
    text = given.get(key)
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        r.problem(
            (*path, key),
            f"{key} {text!r} is not a time like 2026-12-02T02:00:00Z (ISO 8601, UTC unless "
            "an offset is given)",
        )
        return None


def run_outputs(outputs: Sequence[OutputFileSpec]) -> tuple[OutputFileSpec, ...]:
    """Output files under a folder per run: `<run job id>/<path>` (a pattern without
    wildcards names one blob, so it keeps its file name under the folder)."""
    out = []
    for o in outputs:
        path = o.path
        if path is None or RUN_JOB_ID not in path:
            if path is None:
                path = "" if WILDCARDS & set(o.pattern) else o.pattern.rsplit("/", 1)[-1]
            path = f"{RUN_JOB_ID}/{path}".rstrip("/")
        out.append(dataclasses.replace(o, path=path))
    return tuple(out)


def scheduled_job(
    r: Renderer,
    job: Mapping[str, Any],
    path: PathKey,
    pool: PoolSpec,
    tasks: Sequence[TaskSpec],
    spec: JobSpec,
) -> ScheduleSpec:
    """The schedule a job with `schedule:` becomes (`spec`: the job each run is, as the
    renderer builds a plain job); problems go to `r`."""
    given: Mapping[str, Any] = job["schedule"]
    where: PathKey = (*path, "schedule")
    interval = _duration(r, given, "recurrenceInterval", where)
    window = _duration(r, given, "startWindow", where)
    until = _time(r, given, "doNotRunUntil", where)
    after = _time(r, given, "doNotRunAfter", where)
    if until is not None and after is not None and after <= until:
        r.problem(
            (*where, "doNotRunAfter"),
            f"doNotRunAfter ({given['doNotRunAfter']}) is not after doNotRunUntil "
            f"({given['doNotRunUntil']}): the schedule would never run",
        )
    per_run = bool(given.get("poolPerRun", False))
    if not per_run and pool.when_idle is not WhenIdle.KEEP:
        r.problem(
            ("pool", "whenIdle"),
            f"pool {pool.id!r} runs the scheduled job {job['id']!r}: whenIdle: "
            f"{pool.when_idle.value} would delete or strand it between runs; use whenIdle: "
            "keep with an autoscale pool, or give the schedule `poolPerRun: true` (a pool "
            "per run, deleted when the run ends)",
        )
    file_sets = tuple(
        dict.fromkeys(
            str(t["foreach"]["files"])
            for t in job.get("tasks") or ()
            if isinstance(t, Mapping)
            and isinstance(t.get("foreach"), Mapping)
            and "files" in t["foreach"]
        )
    )
    tasks = tuple(dataclasses.replace(t, output_files=run_outputs(t.output_files)) for t in tasks)
    return ScheduleSpec(
        id=str(job["id"]),
        job=spec,
        recurrence_interval=interval,
        do_not_run_until=until,
        do_not_run_after=after,
        start_window=window,
        auto_pool=per_run,
        pool=pool,
        tasks=tasks,
        file_sets=file_sets,
        planned_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
        run_spec=run_spec(tasks, pool if per_run else None),
    )


def run_spec(tasks: Sequence[TaskSpec], pool_per_run: PoolSpec | None) -> str:
    """A hash of what each run gets: its tasks (whole), its own pool, the job manager. Equal
    hashes: the schedule's runs need no update."""
    h = hashlib.sha256(script_bytes())
    for t in tasks:
        h.update(repr(t).encode())
    h.update(repr(pool_per_run).encode())
    return "v1:" + h.hexdigest()


def pool_needed(schedules: Sequence[ScheduleSpec], plain_jobs: int) -> bool:
    """Whether the spec's pool is a standing pool: not when it only shapes the pools of
    scheduled runs that each get their own (`poolPerRun`)."""
    return plain_jobs > 0 or not schedules or any(not s.auto_pool for s in schedules)


__all__ = [
    "MIN_INTERVAL",
    "RUN_JOB_ID",
    "is_scheduled",
    "parse_time",
    "pool_needed",
    "run_outputs",
    "run_scope",
    "run_spec",
    "scheduled_job",
]
