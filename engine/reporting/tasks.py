"""What waiting says about tasks and nodes: counts, failed tasks with their exit code and
the tail of their stderr, nodes whose start task failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bspec.watching import WatchResult


class NodeFailure(Protocol):
    """What is said about a node whose start task failed (bspec.watching.NodeFailure)."""

    pool_id: str
    node_id: str
    exit_code: int | None
    failure: str | None
    stderr_tail: list[str]


def render_node_failure(n: NodeFailure) -> list[str]:
    lines = [
        f"Start task failed on node {n.node_id} of pool {n.pool_id}"
        f" (exit code {n.exit_code})" + (f": {n.failure}" if n.failure else "")
    ]
    lines.extend(_tail_lines(n.stderr_tail))
    return lines


def render_preparation_failure(job_id: str, n: NodeFailure) -> list[str]:
    """A job's preparation task that failed on a node: none of the job's tasks run there."""
    lines = [
        f"Preparation task of job {job_id} failed on node {n.node_id} of pool {n.pool_id}"
        f" (exit code {n.exit_code})"
        + (f": {n.failure}" if n.failure else "")
        + "; the job's tasks will not run on that node"
    ]
    lines.extend(_tail_lines(n.stderr_tail))
    return lines


def _tail_lines(tail: list[str]) -> list[str]:
    if not tail:
        return ["    (stderr is empty)"]
    return [f"    stderr (last {len(tail)} line{'s' if len(tail) != 1 else ''}):"] + [
        f"    | {line}" for line in tail
    ]


def render_result(w: WatchResult) -> list[str]:
    """The outcome as lines: counts, then each failed task with its stderr tail."""
    lines = [f"Tasks: {w.succeeded:,} succeeded, {w.failed_count:,} failed."]
    for f in w.failed:
        lines.append(
            f"  failed: task/{f.job_id}/{f.task_id} (exit code {f.exit_code})"
            + (f" on node {f.node_id}" if f.node_id else "")
            + (f": {f.failure}" if f.failure else "")
        )
        lines.extend(_tail_lines(f.stderr_tail))
    more = w.failed_count - len(w.failed)
    if more > 0:
        lines.append(f"  ... and {more:,} more failed tasks (bspec status SPEC lists them)")
    if w.failed_count:
        lines.append(
            "Rerun them with `bspec apply SPEC --rerun-failed` once fixed; read a"
            " task's output with `bspec logs SPEC TASK`."
        )
    return lines
