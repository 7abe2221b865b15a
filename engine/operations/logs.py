"""`bspec logs`: a task's stdout or stderr, from its node while the node has it and from
the stack's logs container after; with `follow`, until the task completes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bspec.errors import InputError, NotFoundError
from bspec.model import DesiredState
from bspec.operations.session import Outcome, Vars, opened
from bspec.providers import inspection
from bspec.reporting.reporter import Reporter
from bspec.targets import Target
from bspec.watching import read_task_stream


def logs(
    spec: Path,
    task: str,
    reporter: Reporter,
    *,
    job: str | None = None,
    stderr: bool = False,
    tail: int | None = None,
    follow: bool = False,
    vars: Vars = None,
    target: str | None = None,
    poll: float = 1.0,
) -> Outcome:
    """A task's stdout.txt or stderr.txt, from its node while the node has it and from the
    stack's logs container after. The text goes to `reporter.write`; with `follow`, as it
    arrives until the task completes."""
    name = "stderr.txt" if stderr else "stdout.txt"
    with opened(spec, vars, target) as (desired, tgt):
        job_id = _job_of(desired, task, job)
        data, source = read_task_stream(tgt.batch, tgt.storage, desired, job_id, task, name)
        if data is None and not follow:
            raise NotFoundError(
                f"task/{job_id}/{task} has no {name} yet: it has not run, or"
                " it is gone with its logs",
                code="NotFound",
                hint=f"see where it is with `bspec status {spec}`",
            )
        text = inspection.text_of(data or b"")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        if text:
            reporter.write(text)
        if follow:
            size = len(data or b"")
            _follow(tgt, desired, job_id, task, name, size, reporter.write, poll)
        elif text and not text.endswith("\n"):
            reporter.write("\n")
        return Outcome(
            {
                "stack": desired.stack,
                "target": tgt.name,
                "jobId": job_id,
                "taskId": task,
                "stream": "stderr" if stderr else "stdout",
                "source": source,
                "text": text,
                "requests": tgt.counter.snapshot(),
            }
        )


def _job_of(desired: DesiredState, task: str, job: str | None) -> str:
    if job is not None:
        return job
    jobs = sorted({t.job_id for t in desired.tasks if t.id.lower() == task.lower()})
    if len(jobs) == 1:
        return jobs[0]
    if not jobs and len(desired.jobs) == 1:
        return desired.jobs[0].id
    if not jobs:
        raise InputError(
            f"task {task!r} is not in the spec",
            code="InvalidFlag",
            hint="give its job with --job ID",
        )
    raise InputError(
        f"task {task!r} is in jobs {', '.join(jobs)}",
        code="InvalidFlag",
        hint="choose one with --job ID",
    )


def _follow(
    tgt: Target,
    desired: DesiredState,
    job_id: str,
    task: str,
    name: str,
    offset: int,
    write: Callable[[str], None],
    poll: float,
) -> None:
    """Print what the task writes until it completes (then its last bytes, from the node
    or the logs container)."""
    while True:
        rows = inspection.list_tasks(tgt.batch, job_id, flt=f"id eq '{task}'", select="id,state")
        done = not rows or str(rows[0].get("state")).lower() == "completed"
        chunk = inspection.task_file(tgt.batch, job_id, task, name, offset)
        if chunk is None and done:
            whole, _ = read_task_stream(tgt.batch, tgt.storage, desired, job_id, task, name)
            chunk = (whole or b"")[offset:]
        if chunk:
            write(inspection.text_of(chunk))
            offset += len(chunk)
        if done:
            return
        time.sleep(poll)
