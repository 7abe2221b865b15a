"""A task's `onExit` rules -> `ExitRuleSpec`s, checked where the schema cannot.

The schema has already said that each rule matches exactly one thing and does something;
here come what only the rendered values show: integers, ranges whose first code is not
after the last, and rules that overlap (two rules for one exit code, or two `default`s),
which Batch would resolve silently by order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bspec.model import ExitRuleSpec
from bspec.spec.environment import Failure
from bspec.spec.loading import PathKey
from bspec.spec.tree import as_int

EVENTS = ("preProcessingError", "fileUploadError", "default")
INT32 = (-(2**31), 2**31 - 1)


def exit_rules(raw: Sequence[Mapping[str, Any]], path: PathKey) -> tuple[ExitRuleSpec, ...]:
    """The rules of one `onExit` list (rendered), in order; a `Failure` at the first bad one."""
    rules: list[ExitRuleSpec] = []
    codes: dict[int, int] = {}  # exit code -> the rule that names it
    ranges: list[tuple[int, int, int]] = []  # (first, last, rule)
    events: dict[str, int] = {}
    for i, rule in enumerate(raw):
        where = (*path, i)
        listed = tuple(
            as_int(c, (*where, "exitCodes"), j, *INT32)  # type: ignore[arg-type]
            for j, c in enumerate(rule.get("exitCodes") or ())
        )
        spans: list[tuple[int, int]] = []
        for j, pair in enumerate(rule.get("exitCodeRanges") or ()):
            at = (*where, "exitCodeRanges", j)
            first = as_int(pair[0], at, 0, *INT32)  # type: ignore[arg-type]
            last = as_int(pair[1], at, 1, *INT32)  # type: ignore[arg-type]
            if first > last:
                raise Failure(at, f"the range [{first}, {last}] ends before it starts")
            spans.append((first, last))
        for code in listed:
            other = codes.get(code)
            if other is None:
                other = next((r for a, b, r in ranges if a <= code <= b), None)
            if other is not None:
                raise Failure(
                    (*where, "exitCodes"),
                    f"exit code {code} is already matched by rule {other + 1} of onExit",
                )
            codes[code] = i
        for first, last in spans:
            clash = next((c for c in codes if first <= c <= last), None)
            overlap = next((r for a, b, r in ranges if a <= last and first <= b), None)
            if clash is not None or overlap is not None:
                what = (
                    f"exit code {clash} of rule {codes[clash] + 1}"
                    if clash is not None
                    else f"a range of rule {overlap + 1}"  # type: ignore[operator]
                )
                raise Failure(
                    (*where, "exitCodeRanges"),
                    f"the range [{first}, {last}] overlaps {what} of onExit",
                )
            ranges.append((first, last, i))
        event = next((e for e in EVENTS if rule.get(e) is True), None)
        if event is not None:
            if event in events:
                raise Failure(
                    (*where, event), f"{event} is already given by rule {events[event] + 1}"
                )
            events[event] = i
        rules.append(
            ExitRuleSpec(
                codes=listed,
                ranges=tuple(spans),
                event=event,
                job_action=rule.get("jobAction"),
                dependency_action=rule.get("dependencyAction"),
            )
        )
    return tuple(rules)


def has_job_action(rules: Sequence[ExitRuleSpec]) -> bool:
    """Whether a rule asks Batch to act on the job: then the job needs onTaskFailure
    performExitOptionsJobAction, which Batch fixes when the job is created."""
    return any(r.job_action in ("terminate", "disable") for r in rules)


__all__ = ["EVENTS", "exit_rules", "has_job_action"]
