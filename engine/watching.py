"""Wait for the spec's tasks to complete, then report the failed ones (minimal; issue 5
builds rich progress, outputs and logs on top of this).

Progress comes from the job's task counts; completion is confirmed with a list query
(`state ne 'completed'`), since counts can lag.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bspec.errors import WaitTimeoutError
from bspec.model import DesiredState
from bspec.providers.batch import BatchProvider


@dataclass
class TaskOutcome:
    job_id: str
    task_id: str
    exit_code: int | None
    failure: str | None


@dataclass
class WatchResult:
    succeeded: int = 0
    failed: list[TaskOutcome] = field(default_factory=list)


def wait_for_tasks(
    batch: BatchProvider,
    desired: DesiredState,
    *,
    timeout: float | None = None,
    poll: float = 1.0,
    on_progress: Callable[[int, int], None] | None = None,
) -> WatchResult:
    """Block until every task of the spec's jobs has completed; report failures."""
    total = len(desired.tasks)
    deadline = None if timeout is None else time.monotonic() + timeout
    for job in desired.jobs:
        wanted = {t.id for t in desired.tasks_of(job.id)}
        polls = 0
        while True:
            counts = batch.task_counts(job.id)
            if on_progress:
                on_progress(counts["completed"], total)
            polls += 1
            # Counts can lag, and include tasks bspec does not own: confirm with a list
            # query of what is not completed yet, limited to the spec's tasks.
            if (counts["active"] == 0 and counts["running"] == 0) or polls % 10 == 0:
                left = batch.list_tasks_raw(job.id, filter="state ne 'completed'",
                                            select=["id"])
                if not any(t.id in wanted for t in left):
                    break
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeoutError(f"tasks of job {job.id} still running after"
                                       f" {timeout:g} s")
            time.sleep(poll)
    return collect(batch, desired)


def collect(batch: BatchProvider, desired: DesiredState) -> WatchResult:
    """Succeeded and failed counts over the spec's tasks (foreign tasks excluded)."""
    result = WatchResult()
    for job in desired.jobs:
        wanted = {t.id for t in desired.tasks_of(job.id)}
        for t in batch.list_tasks_raw(job.id, select=["id", "state", "executionInfo"]):
            if t.id not in wanted:
                continue
            info = t.execution_info
            res = str(getattr(getattr(info, "result", None), "value",
                              getattr(info, "result", "")) or "").lower()
            if res == "failure":
                fi = getattr(info, "failure_info", None)
                result.failed.append(TaskOutcome(
                    job.id, t.id, getattr(info, "exit_code", None),
                    getattr(fi, "message", None) or getattr(fi, "code", None)))
            elif res == "success":
                result.succeeded += 1
    return result
