"""What plans say about autoscale formulas, and what status and wait say about preempted
Spot nodes. Pure: data in, lines out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bspec.kinds.base import count

# What a pool does about its preempted Spot nodes (status --json `spot.handling`).
HANDLING = {
    "queueFallback": "autoscale will replace {them} with dedicated nodes (queue preset fallback)",
    "formula": "the pool's autoscale formula decides what replaces {them} at its next evaluation",
    "batchRestores": "Batch re-allocates preempted Spot nodes when capacity returns",
}


def evaluation_text(e: Mapping[str, Any]) -> str:
    """One evaluation: the targets it gives, or the service's error."""
    which = "new formula" if e.get("formula") == "new" else "current formula"
    error = e.get("error")
    if error:
        text = f"{e['address']} ({which}) fails: {error.get('code')}: {error.get('message')}"
        details = error.get("details") or []
        return text + (f" ({'; '.join(details)})" if details else "")
    dedicated = e.get("targetDedicatedNodes") or 0
    spot = e.get("targetLowPriorityNodes") or 0
    nodes = count(int(dedicated), "dedicated node")
    if spot:
        nodes += f" + {count(int(spot), 'Spot node')}"
    return f"{e['address']} ({which}) evaluates now to {nodes}"


def evaluation_lines(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The plan's block of evaluations (none: no lines)."""
    if not entries:
        return []
    lines = ["Autoscale (evaluated now by Batch; nothing changed):"]
    lines.extend(f"  {evaluation_text(e)}" for e in entries)
    lines.append("")
    return lines


def autoscale_status_text(a: Mapping[str, Any]) -> str:
    """`autoscale every PT5M; last evaluation at <time>: 2 dedicated nodes`."""
    text = f"autoscale every {a.get('interval')}"
    last = a.get("lastRun")
    if not last:
        return text + "; not evaluated yet"
    text += f"; last evaluation at {last.get('timestamp')}: "
    error = last.get("error")
    if error:
        details = error.get("details") or []
        extra = f" ({'; '.join(details)})" if details else ""
        return text + f"failed, {error.get('code')}: {error.get('message')}{extra}"
    nodes = count(int(last.get("targetDedicatedNodes") or 0), "dedicated node")
    if last.get("targetLowPriorityNodes"):
        nodes += f" + {count(int(last['targetLowPriorityNodes']), 'Spot node')}"
    return text + nodes


def preemption_text(pool_id: str, preempted: int, handling: str) -> str:
    """`2 Spot nodes of pool p preempted; <what the pool does about it>`."""
    what = HANDLING.get(handling, HANDLING["batchRestores"])
    return (
        f"{count(preempted, 'Spot node')} of pool {pool_id} preempted;"
        f" {what.format(them='it' if preempted == 1 else 'them')}"
    )


__all__ = [
    "HANDLING",
    "autoscale_status_text",
    "evaluation_lines",
    "evaluation_text",
    "preemption_text",
]
