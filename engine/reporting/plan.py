"""Plans for people (Terraform-like text) and for machines (the --json shape).

`render_plan` is pure: a Plan in, lines out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bspec import kinds
from bspec.kinds.base import KindDef, Words
from bspec.model import Action, Change, Plan, Reason
from bspec.preflight import legacy
from bspec.reporting.autoscale import evaluation_lines

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


# The words of the reason codes every kind may use (`model.Reason`); a kind's own codes
# carry their words in its module (`KindDef.words`). The --json `reason` is these words.
COMMON_WORDS: dict[str, Words] = {
    "new": lambda v: f"new {v['noun']}",
    "removed": lambda v: "no longer in the spec",
    "owned": lambda v: f"owned by stack {v['stack']}",
    "adopted": lambda v: f"adopted into stack {v['stack']}",
    "metadataChanged": lambda v: "metadata changed",
}
_words_for: list[tuple[tuple[KindDef, ...], dict[str, Words]]] = []  # built once per KINDS


def reason_words() -> dict[str, Words]:
    """Every reason code's words: the common ones and each registered kind's."""
    if _words_for and _words_for[0][0] is kinds.KINDS:
        return _words_for[0][1]
    table = dict(COMMON_WORDS)
    for k in kinds.KINDS:
        table.update(k.words)
    _words_for[:] = [(kinds.KINDS, table)]
    return table


def reason_text(reasons: Sequence[Reason]) -> str:
    """A change's reasons as the words plans show (and `--json` carries), "; "-joined."""
    if not reasons:
        return ""
    words = reason_words()
    return "; ".join(words[r.code](r.values) for r in reasons)


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
    for k in kinds.KINDS if not destroy else tuple(reversed(kinds.KINDS)):
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
    lines.extend(evaluation_lines(plan.autoscale))
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
        data["warnings"] = [w.to_json() for w in legacy(plan)]
    if plan.autoscale:
        data["autoscale"] = [dict(e) for e in plan.autoscale]
    return data
