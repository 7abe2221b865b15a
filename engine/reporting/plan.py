"""Plans for people (Terraform-like text) and for machines (the --json shape).

`render_plan` is pure: a Plan in, lines out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bspec.model import KIND_ORDER, Action, Change, Kind, Plan

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
HEADINGS = {
    Kind.CONTAINER: "Containers",
    Kind.BLOB: "Blobs",
    Kind.POOL: "Pool",
    Kind.JOB: "Jobs",
    Kind.TASK: "Tasks",
}
NOUNS = {
    Kind.CONTAINER: "containers",
    Kind.BLOB: "blobs",
    Kind.POOL: "pools",
    Kind.JOB: "jobs",
    Kind.TASK: "tasks",
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
    if c.reason and c.action is not Action.CREATE:
        lines.append(f"      {c.reason}")
    return lines


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
    for kind in KIND_ORDER if not destroy else tuple(reversed(KIND_ORDER)):
        mine = [c for c in pending if c.address.kind is kind]
        if not mine:
            continue
        lines.append(f"{HEADINGS[kind]}:")
        for action in ACTION_ORDER:
            group = [c for c in mine if c.action is action]
            cap = limit if kind in (Kind.TASK, Kind.BLOB) else len(group)
            for c in group[:cap]:
                lines.extend(_change_lines(c))
            rest = len(group) - cap
            if rest > 0:
                noun = NOUNS[kind] if rest != 1 else NOUNS[kind][:-1]
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
        "reason": c.reason,
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
