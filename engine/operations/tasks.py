"""After submitting: wait for the spec's tasks, report failures, download the outputs and
do what each pool's `whenIdle` asks; `wait` and `outputs` on their own; and reactivating
failed tasks (`--rerun-failed`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from bspec import applying
from bspec.downloads import download_outputs
from bspec.errors import NotFoundError, RefusedError
from bspec.kinds import pool as pool_kind
from bspec.model import ON_TASK_FAILURE_PERFORM, DesiredState, ExitRuleSpec
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
    idle = IdlePools(desired, target, display.say)
    watched = wait_for_tasks(
        target.batch,
        desired,
        timeout=timeout,
        display=display,
        storage=target.storage,
        on_job_done=idle.job_done if len(desired.pools) > 1 else None,
    )
    data: dict[str, Any] = {"tasks": watched.to_json()}
    for line in render_result(watched):
        reporter.show(line)
    spotty = [p for p in desired.pools if pool_kind.may_have_spot(p)]
    if watched.preempted and spotty:
        data["spot"] = {
            "preempted": watched.preempted,
            "handling": pool_kind.spot_handling(spotty[0]),
        }
    if any(j.outputs for j in desired.jobs):
        got = download_outputs(target.storage, desired)
        data["outputs"] = got.to_json()
        for line in render_outputs(got, base=base or Path.cwd()):
            reporter.show(line)
    data.update(idle.finish(reporter.note))
    return data, 1 if watched.failed_count else 0


class IdlePools:
    """`whenIdle` per pool: a pool's fires once the tasks of the jobs on it have completed,
    while the other pools' tasks may still run (with one pool: after the wait, as always).
    `finish` does the pools not done yet and gives the --json members: `pool` (the one
    pool's outcome) and `pools` (each pool's id, key and outcome)."""

    def __init__(self, desired: DesiredState, target: Target, say: Callable[[str], None]):
        self.desired = desired
        self.target = target
        self.say = say
        self.done_jobs = {j.id for j in desired.jobs if not any(desired.tasks_of(j.id))}
        self.outcome: dict[str, str] = {}

    def job_done(self, job_id: str) -> None:
        self.done_jobs.add(job_id)
        ready = [
            p
            for p in self.desired.pools
            if p.id not in self.outcome
            and all(j.id in self.done_jobs for j in self.desired.jobs_on(p.id))
        ]
        if ready:
            self.outcome.update(
                applying.when_idle_pools(self.desired, self.target, ready, self.say)
            )

    def finish(self, say: Callable[[str], None]) -> dict[str, Any]:
        left = [p for p in self.desired.pools if p.id not in self.outcome]
        if len(self.desired.pools) == 1 and self.desired.pool is not None:
            self.outcome[self.desired.pool.id] = applying.when_idle(self.desired, self.target, say)
        elif left:
            self.outcome.update(applying.when_idle_pools(self.desired, self.target, left, say))
        data: dict[str, Any] = {
            "pools": [
                {"id": p.id, "key": p.key, "outcome": self.outcome[p.id]}
                for p in self.desired.pools
            ]
        }
        if self.desired.pool is not None:
            data["pool"] = self.outcome[self.desired.pool.id]
        elif not self.desired.pools:
            data["pool"] = "kept"
        return data


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
        data.update(outcome)  # with what pool.whenIdle did, as after apply
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


def rerun_failed(
    batch: BatchProvider, desired: DesiredState, *, jobs: Collection[str] | None = None
) -> list[str]:
    """Reactivate the spec's failed tasks (`--rerun-failed`; of `jobs` only, when given);
    returns their addresses. (Moved whole from watching; its one write is to go through
    the applier.)"""
    done: list[str] = []
    for job in desired.jobs:
        if jobs is not None and job.id not in jobs:
            continue
        wanted = {t.id for t in desired.tasks_of(job.id)}
        if not wanted:
            continue
        if job.on_task_failure == ON_TASK_FAILURE_PERFORM:
            _check_not_ended_by_rule(batch, desired, job.id)
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


def _check_not_ended_by_rule(batch: BatchProvider, desired: DesiredState, job_id: str) -> None:
    """A job a task's exit rule terminated takes no reactivated task (Batch refuses with
    JobCompleted): say what does run them again instead of failing on that refusal."""
    job = inspection.get_job(batch, job_id, "id,state,executionInfo")
    if job is None or str(job.get("state", "")).lower() not in ("completed", "terminating"):
        return
    if (job.get("executionInfo") or {}).get("terminateReason") != "TaskFailed":
        return
    failed = inspection.list_tasks(
        batch,
        job_id,
        flt="state eq 'completed' and executionInfo/result eq 'failure'",
        select="id,executionInfo",
    )
    rules = {t.id: t.on_exit for t in desired.tasks_of(job_id) if t.on_exit}
    ids = [
        str(t.get("id"))
        for t in failed
        if _terminates(rules.get(str(t.get("id")), ()), (t.get("executionInfo") or {}))
    ]
    if len(ids) == 1:
        by = f"task {ids[0]}'s exit rule"
    else:
        by = "a task's exit rule" + (f" (tasks {', '.join(ids)})" if ids else "")
    raise RefusedError(
        f"job {job_id} was terminated by {by} (jobAction: terminate); Batch reactivates no"
        " task of a completed job",
        code="JobEndedByExitRule",
        hint="run `bspec apply SPEC --rerun-failed` (not a saved plan): it plans the job's"
        " replacement, which runs all its tasks again",
    )


def _terminates(rules: Sequence[ExitRuleSpec], info: Mapping[str, Any]) -> bool:
    """Whether a failed task's outcome picks a rule that terminates the job, as Batch picks:
    its exit code's rule, else (no exit code: it could not start) preProcessingError, else
    default."""
    code = info.get("exitCode")
    if code is not None:
        for r in rules:
            if int(code) in r.codes or any(a <= int(code) <= b for a, b in r.ranges):
                return r.job_action == "terminate"
    events = {r.event: r for r in rules if r.event}
    chosen = events.get("preProcessingError") if code is None else None
    chosen = chosen or events.get("default")
    return chosen is not None and chosen.job_action == "terminate"
