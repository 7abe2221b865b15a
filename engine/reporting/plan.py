"""Plans for people (Terraform-like text) and for machines (the --json shape).

`render_plan` is pure: a Plan in, lines out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bspec.kinds import KINDS
from bspec.model import Action, Change, Plan, Reason

SYMBOLS = {
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.DELETE: "-",
}
VERBS = {
    Action.CREATE: "create",
    Action.UPDATE: "update",
    Action.REPLACE: "replace",
    Action.DELETE: "delete",
}
ACTION_ORDER = (Action.DELETE, Action.REPLACE, Action.UPDATE, Action.CREATE)


def _change_lines(c: Change) -> list[str]:
    sym = SYMBOLS[c.action]
    head = f"  {sym} {c.address}"
    if c.forced_by:
        head += f"  (forced by: {', '.join(c.forced_by)})"
    elif c.action is Action.UPDATE and c.fields:
        head += f"  ({', '.join(c.fields)})"
    lines = [head]
    text = reason_text(c.reasons)
    if text and c.action is not Action.CREATE:
        lines.append(f"      {text}")
    return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"


def _nodes(pair: Sequence[int]) -> str:
    dedicated, low = pair
    text = _count(dedicated, "node")
    if low:
        text += f" + {low} low-priority"
    return text


_JOB_REPLACED = {
    "poolId": lambda v: "the pool it runs on changed",
    "usesTaskDependencies": lambda v: "task dependencies switched on",
    "state": lambda v: f"the job was {v['state']} outside bspec",
}

# A change's reason codes (`model.Reason`) in words; the --json `reason` is these words.
REASON_WORDS: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "new": lambda v: f"new {v['noun']}",
    "removed": lambda v: "no longer in the spec",
    "owned": lambda v: f"owned by stack {v['stack']}",
    "adopted": lambda v: f"adopted into stack {v['stack']}",
    "destroysNodes": lambda v: f"destroys {_count(v['nodes'], 'node')}",
    "deletesTasks": lambda v: f"deletes its {v['tasks']} tasks",
    "blobsGo": lambda v: "deletes every blob in it",
    "contentChanged": lambda v: "content changed",
    "idle": lambda v: "deleted when idle; no work to run",
    "emptyOnly": lambda v: (
        f"replaces pool: {', '.join(v['fields'])} can only change on an"
        f" empty pool; destroys {_count(v['nodes'], 'node')}, requeues running tasks"
    ),
    "changedOnEmptyPool": lambda v: (
        f"{', '.join(v['fields'])} changed in place (the pool has no nodes)"
    ),
    "startTaskChanged": lambda v: "start task changed; it reaches existing nodes when they restart",
    "metadataChanged": lambda v: "metadata changed",
    "resize": lambda v: f"resize from {_nodes(v['old'])} to {_nodes(v['new'])}",
    "jobReplaced": lambda v: (
        "job replaced ("
        + "; ".join(_JOB_REPLACED[f](v) for f in v["forced"])
        + f"): {_count(v['tasks'], 'task')} rerun"
    ),
    "priorityChanged": lambda v: "priority changed",
    "constraintsChanged": lambda v: "constraints changed",
    "taskConstraintsChanged": lambda v: "constraints changed: " + ", ".join(v["fields"]),
    "jobReplacesTask": lambda v: "its job is replaced",
    "adoptedRunsAgain": lambda v: "adopted: not created by bspec, runs again",
    "inputBlobChanged": lambda v: f"input blob {v['container']}/{v['blob']} changed",
    "inputContainerChanged": lambda v: f"input container {v['container']} changed",
    "dependencyRunsAgain": lambda v: f"depends on task {v['task']}, which runs again",
    "definitionChanged": lambda v: "task definition changed",
}


def reason_text(reasons: Sequence[Reason]) -> str:
    """A change's reasons as the words plans show (and `--json` carries), "; "-joined."""
    return "; ".join(REASON_WORDS[r.code](r.values) for r in reasons)


def summary_line(plan: Plan, *, destroy: bool = False) -> str:
    if plan.empty():
        return "No changes." if not destroy else "Nothing to destroy."
    s = plan.summary()
    return (
        f"Plan: {s['create']} to create, {s['update']} to update, "
        f"{s['replace']} to replace, {s['delete']} to delete."
    )


def render_plan(plan: Plan, *, limit: int = 3, destroy: bool = False) -> list[str]:
    """The plan as lines: grouped by kind, long lists of one action summarized
    ("+ 9,997 more tasks"), a summary line at the end."""
    lines: list[str] = []
    pending = plan.pending()
    for k in KINDS if not destroy else tuple(reversed(KINDS)):
        mine = [c for c in pending if c.address.kind is k.kind]
        if not mine:
            continue
        lines.append(f"{k.heading}:")
        for action in ACTION_ORDER:
            group = [c for c in mine if c.action is action]
            cap = limit if k.summarized else len(group)
            for c in group[:cap]:
                lines.extend(_change_lines(c))
            rest = len(group) - cap
            if rest > 0:
                noun = k.nouns if rest != 1 else k.noun
                lines.append(f"  {SYMBOLS[action]} {rest:,} more {noun} to {VERBS[action]}")
        lines.append("")
    for w in plan.warnings:
        lines.append(f"Warning: {w}")
    if plan.warnings:
        lines.append("")
    lines.append(summary_line(plan, destroy=destroy))
    return lines


def change_json(c: Change) -> dict[str, Any]:
    return {
        "action": c.action.value,
        "address": str(c.address),
        "fields": list(c.fields),
        "forcedBy": list(c.forced_by),
        "reason": reason_text(c.reasons),
    }


def plan_json(plan: Plan, requests: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """The plan/apply/destroy --json object of DESIGN.md (formatVersion added by emit_json)."""
    data: dict[str, Any] = {
        "stack": plan.stack,
        "target": plan.target,
        "changes": [change_json(c) for c in plan.pending()],
        "summary": plan.summary(),
        "requests": {
            s: {"read": int(v["read"]), "write": int(v["write"])} for s, v in requests.items()
        },
    }
    if plan.warnings:
        data["warnings"] = list(plan.warnings)
    return data
