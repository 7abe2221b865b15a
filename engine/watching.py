"""Wait for the spec's tasks to complete, showing progress, and report what failed.

Progress comes from each job's task counts (one bar per job: active, running, succeeded,
failed); completion is confirmed with a list query (`state ne 'completed'`), since counts
can lag and include tasks bspec does not own. While tasks wait and no node can run them,
it says why ("waiting for 2 nodes to start") instead of sitting silent, and a node whose
start task failed is named with its stderr. A failed task is reported with its exit code,
failure info and the tail of its stderr, read from its node while the node has it and
from the stack's logs container after. Progress goes to a display (bspec.reporting);
what happens after the wait (outputs, reruns) is bspec.operations' business.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bspec.errors import NotFoundError, TaskFailedError, WaitTimeoutError
from bspec.kinds import pool as pool_kind
from bspec.model import ON_TASK_FAILURE_PERFORM, DesiredState
from bspec.providers import autoscale, inspection
from bspec.providers.batch import BatchProvider
from bspec.providers.storage import StorageProvider
from bspec.reporting.autoscale import preemption_text
from bspec.reporting.progress import Display, ProgressDisplay
from bspec.reporting.tasks import render_node_failure, render_preparation_failure

STDERR_LINES = 20
DETAILED_FAILURES = 20  # tasks whose stderr is fetched and shown; the rest are counted
READY_NODE_STATES = frozenset({"idle", "running"})
FAILED_NODE_STATES = frozenset({"starttaskfailed", "unusable"})


@dataclass
class TaskOutcome:
    """A failed task: where it ran, how it ended, the tail of its stderr."""

    job_id: str
    task_id: str
    exit_code: int | None
    failure: str | None
    node_id: str | None = None
    stderr_tail: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "address": f"task/{self.job_id}/{self.task_id}",
            "jobId": self.job_id,
            "taskId": self.task_id,
            "exitCode": self.exit_code,
            "failure": self.failure,
            "nodeId": self.node_id,
            "stderrTail": list(self.stderr_tail),
        }


@dataclass
class NodeFailure:
    """A node whose start task failed: it runs nothing until it restarts."""

    pool_id: str
    node_id: str
    exit_code: int | None
    failure: str | None
    stderr_tail: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "poolId": self.pool_id,
            "nodeId": self.node_id,
            "exitCode": self.exit_code,
            "failure": self.failure,
            "stderrTail": list(self.stderr_tail),
        }


@dataclass
class WatchResult:
    succeeded: int = 0
    failed: list[TaskOutcome] = field(default_factory=list)
    failed_count: int = 0  # all failed tasks; `failed` holds details of the first ones
    incomplete: int = 0  # the spec's tasks not completed (status, --no-wait)
    missing: int = 0  # the spec's tasks that do not exist in Batch
    start_task_failures: list[NodeFailure] = field(default_factory=list)
    preempted: int = 0  # the most Spot nodes seen preempted at once while waiting

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "succeeded": self.succeeded,
            "failed": self.failed_count,
            "failedTasks": [f.to_json() for f in self.failed],
        }
        if self.incomplete:  # only when not waited for (status, --no-wait)
            data["incomplete"] = self.incomplete
        if self.start_task_failures:
            data["startTaskFailures"] = [n.to_json() for n in self.start_task_failures]
        return data


# --------------------------------------------------------------------------- waiting


@dataclass
class _NodeWatch:
    """What was said about a pool's nodes, so each message is said once."""

    said_waiting: int = -1
    reported: set[str] = field(default_factory=set)
    autoscale: bool = False  # the pool's formula sizes it (no resize to wait for)


def wait_for_tasks(
    batch: BatchProvider,
    desired: DesiredState,
    *,
    timeout: float | None = None,
    poll: float = 1.0,
    display: ProgressDisplay | None = None,
    storage: StorageProvider | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_job_done: Callable[[str], None] | None = None,
) -> WatchResult:
    """Block until every task of the spec's jobs has completed; report failures.
    `on_job_done(job_id)` is called as each job's tasks are seen completed.

    Raises WaitTimeoutError (exit 1) when `timeout` seconds pass first."""
    shown = display or Display(quiet=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    wanted = {j.id: {t.id for t in desired.tasks_of(j.id)} for j in desired.jobs}
    pending = [j for j in desired.jobs if wanted[j.id]]
    nodes: dict[str, _NodeWatch] = {}  # by pool id
    start_failures: list[NodeFailure] = []
    spot = _SpotWatch(desired) if any(map(pool_kind.may_have_spot, desired.pools)) else None
    polls = 0
    with shown.running():
        while pending:
            started = time.monotonic()
            still = []
            waiting: list[str] = []  # pools with tasks waiting and none running
            for job in pending:
                counts = batch.task_counts(job.id)
                total = len(wanted[job.id])
                shown.update(job.id, total, counts)
                if on_progress:
                    on_progress(counts["completed"], total)
                if (
                    (counts["active"] == 0 and counts["running"] == 0) or polls % 10 == 9
                ) and not inspection.any_incomplete(batch, job.id, wanted[job.id]):
                    shown.update(job.id, total, batch.task_counts(job.id), final=True)
                    if on_job_done:
                        on_job_done(job.id)
                    continue
                if (
                    job.on_task_failure == ON_TASK_FAILURE_PERFORM
                    and counts["running"] == 0
                    and _ended_by_rule(batch, job.id, counts["active"], shown)
                ):
                    continue
                still.append(job)
                idle = counts["active"] > 0 and counts["running"] == 0
                if idle and job.pool_id not in waiting:
                    waiting.append(job.pool_id)
                if idle and job.preparation is not None and polls % 3 == 1:
                    watch = nodes.setdefault(job.pool_id, _node_watch(desired, job.pool_id))
                    _check_preparation(batch, job.id, watch, shown)
            pending = still
            if spot is not None and (polls % 5 == 0 or not pending):
                spot.check(batch, shown)  # and once at the end: what the run went through
            if not pending:
                break
            for pool_id in waiting if polls % 3 == 0 else ():
                if any(p.id == pool_id for p in desired.pools):
                    watch = nodes.setdefault(pool_id, _node_watch(desired, pool_id))
                    named = len(desired.pools) > 1  # say which pool
                    start_failures.extend(_check_nodes(batch, pool_id, watch, shown, named))
            if deadline is not None and time.monotonic() > deadline:
                ids = ", ".join(j.id for j in pending)
                raise WaitTimeoutError(
                    f"tasks of job {ids} still not completed after {timeout:g} s",
                    hint="run `bspec wait SPEC` to keep"
                    " waiting, or `bspec status SPEC` to see where they are",
                )
            polls += 1
            # A poll's requests count towards its interval, so progress is refreshed every
            # `poll` seconds however slow the answers are.
            time.sleep(max(0.0, poll - (time.monotonic() - started)))
    result = collect(batch, desired, storage)
    result.start_task_failures = start_failures
    result.preempted = spot.most if spot is not None else 0
    return result


def _ended_by_rule(batch: BatchProvider, job_id: str, active: int, shown: ProgressDisplay) -> bool:
    """Whether a task's exit rule ended or disabled the job: its tasks still active stay so
    (Batch leaves them active in a completed job), so waiting for them would never end."""
    job = inspection.get_job(batch, job_id, "id,state,executionInfo")
    state = str((job or {}).get("state", "")).lower()
    if state not in ("completed", "terminating", "disabled"):
        return False
    what = "terminated" if state != "disabled" else "disabled"
    left = f"; {active:,} of its tasks will not run" if active else ""
    shown.say(f"Job {job_id} was {what} by a task's exit rule{left}")
    return True


def _check_preparation(
    batch: BatchProvider, job_id: str, watch: _NodeWatch, shown: ProgressDisplay
) -> None:
    """Say where the job's preparation failed (Batch runs none of the job's tasks on such a
    node); stop waiting when it failed on every node of the pool."""
    failed = [
        s
        for s in inspection.preparation_status(batch, job_id)
        if str((s.get("jobPreparationTaskExecutionInfo") or {}).get("result", "")).lower()
        == "failure"
    ]
    for s in failed:
        node_id, pool_id = str(s.get("nodeId")), str(s.get("poolId"))
        key = f"prep/{job_id}/{node_id}"
        if key in watch.reported:
            continue
        watch.reported.add(key)
        info = s.get("jobPreparationTaskExecutionInfo") or {}
        fi = info.get("failureInfo") or {}
        root = str(info.get("taskRootDirectory") or f"workitems/{job_id}/job-1/jobpreparation")
        data = inspection.node_file(batch, pool_id, node_id, f"{root}/stderr.txt") or b""
        nf = NodeFailure(
            pool_id,
            node_id,
            info.get("exitCode"),
            fi.get("message") or fi.get("code"),
            inspection.lines_tail(data, STDERR_LINES),
        )
        for line in render_preparation_failure(job_id, nf):
            shown.say(line)
    if not failed:
        return
    pool_id = str(failed[0].get("poolId"))
    nodes = inspection.list_nodes(batch, pool_id)
    if nodes and len({str(s.get("nodeId")) for s in failed}) >= len(nodes):
        raise TaskFailedError(
            f"no node of pool {pool_id} can run the tasks of job {job_id}: its preparation"
            f" task failed on {'all ' if len(nodes) > 1 else ''}{len(nodes)}"
            f" node{'s' if len(nodes) > 1 else ''}",
            hint="fix the job's preparation and apply again: a changed preparation replaces"
            " the job",
        )


def _node_watch(desired: DesiredState, pool_id: str) -> _NodeWatch:
    pool = next((p for p in desired.pools if p.id == pool_id), None)
    return _NodeWatch(autoscale=pool is not None and pool.autoscale is not None)


@dataclass
class _SpotWatch:
    """Preempted Spot nodes of the spec's pools that may have them, from their node counts
    (one request a check for all); each rise is said once, with what the pool does about it."""

    desired: DesiredState
    said: dict[str, int] = field(default_factory=dict)
    most: int = 0

    def check(self, batch: BatchProvider, shown: ProgressDisplay) -> None:
        pools = [p for p in self.desired.pools if pool_kind.may_have_spot(p)]
        counts = autoscale.node_counts(batch, [p.id for p in pools])
        now = 0
        for pool in pools:
            n = autoscale.preempted(counts.get(pool.id))
            now += n
            if n > self.said.get(pool.id, 0):
                shown.say(preemption_text(pool.id, n, pool_kind.spot_handling(pool)))
            self.said[pool.id] = n
        self.most = max(self.most, now)


def _check_nodes(
    batch: BatchProvider,
    pool_id: str,
    watch: _NodeWatch,
    shown: ProgressDisplay,
    named: bool = False,
) -> list[NodeFailure]:
    """Say why tasks are waiting: nodes still starting, or nodes whose start task failed."""
    pool = inspection.get_pool(batch, pool_id)
    if pool is None:
        if watch.said_waiting != -2:
            shown.say(f"Waiting: pool {pool_id} does not exist; tasks wait for it")
            watch.said_waiting = -2
        return []
    listed = inspection.list_nodes(batch, pool_id)
    ready = [n for n in listed if str(n.get("state", "")).lower() in READY_NODE_STATES]
    failed = [n for n in listed if str(n.get("state", "")).lower() in FAILED_NODE_STATES]
    target = int(pool.get("targetDedicatedNodes") or 0) + int(
        pool.get("targetLowPriorityNodes") or 0
    )
    found: list[NodeFailure] = []
    for n in failed:
        node_id = str(n.get("id"))
        if node_id in watch.reported:
            continue
        watch.reported.add(node_id)
        info = n.get("startTaskInfo") or {}
        fi = info.get("failureInfo") or {}
        data = inspection.node_file(batch, pool_id, node_id, "startup/stderr.txt") or b""
        nf = NodeFailure(
            pool_id,
            node_id,
            info.get("exitCode"),
            fi.get("message") or fi.get("code"),
            inspection.lines_tail(data, STDERR_LINES),
        )
        found.append(nf)
        for line in render_node_failure(nf):
            shown.say(line)
    if ready:
        return found
    steady = str(pool.get("allocationState") or "").lower() == "steady"
    if failed and len(failed) == len(listed) and len(listed) >= target and steady:
        raise TaskFailedError(
            f"no node of pool {pool_id} can run tasks: the start task failed on"
            f" {'all ' if len(failed) > 1 else ''}{len(failed)} node{'s' if len(failed) > 1 else ''}",
            hint="fix pool.startTask and apply again; nodes run the new start task when they"
            " restart or when the pool is recreated",
        )
    starting = max(target - len(failed), 0)
    if target == 0 and watch.said_waiting != 0:
        until = (
            "its autoscale formula asks for nodes at its next evaluation"
            if watch.autoscale
            else "it is resized"
        )
        shown.say(f"Waiting: pool {pool_id} has no nodes (target 0); tasks wait until {until}")
        watch.said_waiting = 0
    elif starting and watch.said_waiting != starting:
        why = (
            "pool resizing" if str(pool.get("allocationState")) == "resizing" else "nodes starting"
        )
        of = f" of pool {pool_id}" if named else ""
        shown.say(f"Waiting for {starting} node{'s' if starting != 1 else ''}{of} to start ({why})")
        watch.said_waiting = starting
    return found


def collect(
    batch: BatchProvider,
    desired: DesiredState,
    storage: StorageProvider | None = None,
    *,
    detailed: int = DETAILED_FAILURES,
) -> WatchResult:
    """Succeeded and failed counts over the spec's tasks (foreign tasks excluded), with the
    first failed tasks' stderr tails."""
    result = WatchResult()
    for job in desired.jobs:
        wanted = {t.id for t in desired.tasks_of(job.id)}
        if not wanted:
            continue
        try:
            tasks = inspection.list_tasks(batch, job.id)
        except NotFoundError:
            tasks = []
        seen = set()
        for t in tasks:
            tid = str(t.get("id"))
            if tid not in wanted:
                continue
            seen.add(tid)
            info = t.get("executionInfo") or {}
            res = str(info.get("result") or "").lower()
            if str(t.get("state", "")).lower() != "completed":
                result.incomplete += 1
            elif res == "failure":
                result.failed_count += 1
                if len(result.failed) < detailed:
                    fi = info.get("failureInfo") or {}
                    node = (t.get("nodeInfo") or {}).get("nodeId")
                    result.failed.append(
                        TaskOutcome(
                            job.id,
                            tid,
                            info.get("exitCode"),
                            fi.get("message") or fi.get("code"),
                            node,
                            stderr_tail(batch, storage, desired, job.id, tid),
                        )
                    )
            elif res == "success":
                result.succeeded += 1
        result.missing += len(wanted - seen)
    return result


def read_task_stream(
    batch: BatchProvider,
    storage: StorageProvider | None,
    desired: DesiredState,
    job_id: str,
    task_id: str,
    name: str = "stderr.txt",
) -> tuple[bytes | None, str]:
    """A task's stdout.txt or stderr.txt: from its node while the node has it, from the
    stack's logs container after. Returns (data or None, "node" | "logs")."""
    data = inspection.task_file(batch, job_id, task_id, name)
    if data is not None:
        return data, "node"
    if storage is None:
        return None, "logs"
    blob = f"logs/{job_id}/{task_id}/{name}"
    return inspection.read_blob(storage, desired.logs_container.name, blob), "logs"


def stderr_tail(
    batch: BatchProvider,
    storage: StorageProvider | None,
    desired: DesiredState,
    job_id: str,
    task_id: str,
) -> list[str]:
    data, _ = read_task_stream(batch, storage, desired, job_id, task_id)
    return inspection.lines_tail(data or b"", STDERR_LINES)
