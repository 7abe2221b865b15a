"""After submitting: wait for the spec's tasks, report failures, download the outputs;
`wait` and `outputs` on their own; and reactivating failed tasks (`--rerun-failed`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bspec import applying
from bspec.downloads import download_outputs
from bspec.errors import NotFoundError
from bspec.kinds import pool as pool_kind
from bspec.model import DesiredState
from bspec.operations.session import Outcome, Vars, opened
from bspec.providers import inspection
from bspec.providers.batch import BatchProvider
from bspec.reporting.outputs import render_outputs
from bspec.reporting.reporter import Reporter
from bspec.reporting.tasks import render_result
from bspec.targets import Target
from bspec.watching import wait_for_tasks


def finish(
    target: Target,
    desired: DesiredState,
    reporter: Reporter,
    *,
    timeout: float | None = None,
    base: Path | None = None,
) -> tuple[dict[str, Any], int]:
    """What `apply` (and `bspec wait`) do once tasks are submitted: wait with progress,
    report failed tasks with their stderr, download the declared outputs and show them.
    Returns the outcome's --json members and the exit code (1 when any of the spec's tasks
    failed, also on an earlier apply)."""
    display = reporter.progress()
    total = len(desired.tasks)
    display.say(f"Waiting for {total:,} task{'s' if total != 1 else ''} to complete")
    watched = wait_for_tasks(
        target.batch, desired, timeout=timeout, display=display, storage=target.storage
    )
    data: dict[str, Any] = {"tasks": watched.to_json()}
    for line in render_result(watched):
        reporter.show(line)
    if watched.preempted and desired.pool is not None:
        data["spot"] = {
            "preempted": watched.preempted,
            "handling": pool_kind.spot_handling(desired.pool),
        }
    if any(j.outputs for j in desired.jobs):
        got = download_outputs(target.storage, desired)
        data["outputs"] = got.to_json()
        for line in render_outputs(got, base=base or Path.cwd()):
            reporter.show(line)
    return data, 1 if watched.failed_count else 0


def wait(
    spec: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    timeout: float | None = None,
) -> Outcome:
    """`bspec wait`: what apply does after submitting, for tasks submitted earlier."""
    with opened(spec, vars, target) as (desired, tgt):
        for job in desired.jobs:
            if (
                any(True for _ in desired.tasks_of(job.id))
                and inspection.get_job(tgt.batch, job.id) is None
            ):
                raise NotFoundError(
                    f"job {job.id} does not exist",
                    code="NotFound",
                    hint="run `bspec apply SPEC` first",
                )
        data: dict[str, Any] = {"stack": desired.stack, "target": tgt.name}
        outcome, code = finish(tgt, desired, reporter, timeout=timeout)
        data.update(outcome)
        # as after apply: pool.whenIdle once the spec's tasks have completed
        data["pool"] = applying.when_idle(desired, tgt, reporter.note)
        data["requests"] = tgt.counter.snapshot()
        return Outcome(data, code)


def outputs(
    spec: Path, reporter: Reporter, *, vars: Vars = None, target: str | None = None
) -> Outcome:
    """`bspec outputs`: download the spec's outputs that are new or changed."""
    with opened(spec, vars, target) as (desired, tgt):
        got = download_outputs(tgt.storage, desired)
        for line in render_outputs(got, base=Path.cwd(), show_content=False):
            reporter.show(line)
        return Outcome(
            {
                "stack": desired.stack,
                "target": tgt.name,
                "outputs": got.to_json(),
                "requests": tgt.counter.snapshot(),
            }
        )


def rerun_failed(batch: BatchProvider, desired: DesiredState) -> list[str]:
    """Reactivate the spec's failed tasks (`--rerun-failed`); returns their addresses.
    (Moved whole from watching; its one write is to go through the applier.)"""
    done: list[str] = []
    for job in desired.jobs:
        wanted = {t.id for t in desired.tasks_of(job.id)}
        if not wanted:
            continue
        failed = inspection.list_tasks(
            batch,
            job.id,
            flt="state eq 'completed' and executionInfo/result eq 'failure'",
            select="id",
        )
        for t in failed:
            tid = str(t.get("id"))
            if tid in wanted:
                applying.reactivate_tasks(batch, job.id, [tid])  # the write is the applier's
                done.append(f"task/{job.id}/{tid}")
    return done
