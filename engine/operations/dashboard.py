"""What the web dashboard (`bspec ui`) reads and does, as plain functions on a connected
target: narrow, `$select`ed list requests for its cache and pages, a task's log from a byte
offset, and its three writes (rerun failed, terminate, resize), each through the applier.

Plan and apply of a shown plan are `operations.plan(out_file=...)` and
`operations.apply(<saved plan>)`, exactly as the CLI's `plan -o` / `apply PLAN`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

from bspec import applying
from bspec.errors import NotFoundError
from bspec.model import STACK_METADATA, DesiredState
from bspec.operations.tasks import rerun_failed
from bspec.providers import inspection
from bspec.providers.errors import redact
from bspec.targets import Target, choose, connect
from bspec.watching import read_task_stream

# What the dashboard's task cache keeps of each task (sorting, filtering, the timeline).
TASK_SELECT = "id,state,stateTransitionTime,creationTime,executionInfo,nodeInfo"
NODE_SELECT = (
    "id,state,schedulingState,stateTransitionTime,runningTasksCount,isDedicated,errors,"
    "startTaskInfo,recentTasks"
)
POOL_SELECT = (
    "id,state,allocationState,allocationStateTransitionTime,vmSize,targetDedicatedNodes,"
    "targetLowPriorityNodes,currentDedicatedNodes,currentLowPriorityNodes,resizeErrors,"
    "enableAutoScale,autoScaleFormula,autoScaleEvaluationInterval,autoScaleRun,metadata"
)
PAGE = "1000"


def _list(tgt: Target, what: str, path: str, **params: str) -> list[dict[str, Any]]:
    return list(tgt.batch.list_raw(what, path, {"maxresults": PAGE, **params}))


@contextmanager
def account(target: str | None) -> Iterator[Target]:
    """The target's account without a spec (`bspec ui` with no SPEC), closed on the way out."""
    tgt = connect(choose(target, None), "bspec-ui")
    try:
        yield tgt
    finally:
        tgt.close()


def find_stacks(tgt: Target) -> dict[str, dict[str, list[str]]]:
    """The account's bspec stacks, found by their tags: {stack: {"pools": [...], "jobs": [...]}}
    from the `bspec-stack` metadata of pools and jobs (two requests)."""
    found: dict[str, dict[str, list[str]]] = {}
    for kind in ("pools", "jobs"):
        for item in _list(tgt, f"list {kind}", kind, **{"$select": "id,metadata"}):
            tags = {m.get("name"): m.get("value") for m in item.get("metadata") or ()}
            stack = tags.get(STACK_METADATA)
            if stack:
                found.setdefault(str(stack), {"pools": [], "jobs": []})[kind].append(
                    str(item.get("id"))
                )
    return found


def job_tasks_since(tgt: Target, job_id: str, since: str | None) -> list[dict[str, Any]]:
    """The job's tasks whose state changed at or after `since` (the service's own ISO time),
    or all of them when `since` is None; [] when the job does not exist. One list request
    per thousand tasks returned, so a refresh costs what changed, not what exists."""
    params = {"$select": TASK_SELECT}
    if since:
        params["$filter"] = f"stateTransitionTime ge datetime'{since}'"
    try:
        return _list(
            tgt, f"list tasks of job {job_id}", f"jobs/{quote(job_id, safe='')}/tasks", **params
        )
    except NotFoundError:
        return []


def job_task_counts(tgt: Target, job_id: str) -> dict[str, int] | None:
    """The job's task counts (one request), or None when the job does not exist."""
    return inspection.task_counts(tgt.batch, job_id)


def job_info(tgt: Target, job_id: str) -> dict[str, Any] | None:
    return inspection.get_job(tgt.batch, job_id)


def pool_info(tgt: Target, pool_id: str) -> dict[str, Any] | None:
    """The pool with its allocation, resize errors and autoscale's last run, or None."""
    found = _list(
        tgt, "list pools", "pools", **{"$filter": f"id eq '{inspection.quote_id(pool_id)}'", "$select": POOL_SELECT}
    )
    return found[0] if found else None


def pool_nodes(tgt: Target, pool_id: str) -> list[dict[str, Any]]:
    """The pool's nodes (state, running tasks, errors); [] when the pool is missing."""
    return inspection.list_nodes(tgt.batch, pool_id, NODE_SELECT)


def task_info(tgt: Target, job_id: str, task_id: str) -> dict[str, Any] | None:
    """One task in full (command line, environment, files, constraints), or None."""
    try:
        found = _list(
            tgt,
            f"list tasks of job {job_id}",
            f"jobs/{quote(job_id, safe='')}/tasks",
            **{"$filter": f"id eq '{inspection.quote_id(task_id)}'"},
        )
    except NotFoundError:
        return None
    return found[0] if found else None


def task_log(
    tgt: Target,
    desired: DesiredState | None,
    job_id: str,
    task_id: str,
    name: str,
    offset: int = 0,
) -> tuple[str | None, int, str]:
    """A task's stdout.txt/stderr.txt from byte `offset`: from its node while it has it,
    from the stack's logs container after (known from the spec: without one, the node only).
    Returns (text or None, next offset, source); SAS signatures redacted."""
    data = inspection.task_file(tgt.batch, job_id, task_id, name, offset)
    source = "node"
    if data is None:
        if desired is None:
            return None, offset, source
        whole, source = read_task_stream(tgt.batch, tgt.storage, desired, job_id, task_id, name)
        if whole is None:
            return None, offset, source
        data = whole[offset:]
    return redact(data.decode("utf-8", errors="replace")), offset + len(data), source


def rerun_failed_of_job(tgt: Target, desired: DesiredState, job_id: str) -> list[str]:
    """Reactivate the spec's failed tasks of one job (`apply --rerun-failed`, one job)."""
    return rerun_failed(tgt.batch, desired, jobs={job_id})


def terminate_task(tgt: Target, job_id: str, task_id: str) -> None:
    applying.terminate_task(tgt.batch, job_id, task_id)


def resize_pool(tgt: Target, pool_id: str, dedicated: int, low: int) -> None:
    applying.resize_pool(tgt.batch, pool_id, dedicated, low)
