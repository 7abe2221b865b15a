"""Run a compiled formula over a pool snapshot: the targets, and `results` as Batch prints it.

evaluate() is pure apart from rand() (pass `rand` to make it deterministic): it reads the
snapshot and the clock value given, and never raises for a bad formula; the outcome carries
the error in Batch's autoScaleRun.error shape instead.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .compiler import (
    DEALLOCATION,
    DEALLOCATION_OPTIONS,
    DEDICATED,
    DEDICATED_ALIAS,
    FIRST_USER_SLOT,
    LOW_PRIORITY,
    LOW_PRIORITY_ALIAS,
    CompiledFormula,
    compile_formula,
)
from .errors import EVALUATION_ERROR, EVALUATION_MESSAGE, AutoScaleError, FormulaError
from .runtime import EvaluationError, Frame, Stop
from .snapshot import PoolSnapshot
from .values import Timestamp, Value, format_value, type_name


@dataclass(frozen=True, slots=True)
class AutoScaleOutcome:
    """One evaluation. With `error` set the targets are None and the pool must not change;
    `results` then lists what the statements before the failure had assigned. `stopped` says
    stop() ended the formula (its targets so far still apply)."""

    timestamp: dt.datetime
    target_dedicated: int | None
    target_low_priority: int | None
    node_deallocation_option: str | None
    results: str
    error: AutoScaleError | None = None
    stopped: bool = False

    def to_autoscale_run(self) -> dict[str, Any]:
        """The REST definition's AutoScaleRun: what GET pool's `autoScaleRun` and
        evaluateautoscale answer."""
        run: dict[str, Any] = {"timestamp": _iso(self.timestamp)}
        if self.results:
            run["results"] = self.results
        if self.error is not None:
            run["error"] = self.error.to_autoscale_run_error()
        return run


def _iso(when: dt.datetime) -> str:
    """As the local service writes every timestamp (resources.iso)."""
    when = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.lru_cache(maxsize=256)
def compile_cached(text: str) -> CompiledFormula:
    """compile_formula, remembered: a pool's formula is compiled once, not every interval."""
    return compile_formula(text)


def evaluate(
    formula: str | CompiledFormula,
    snapshot: PoolSnapshot,
    now: dt.datetime,
    *,
    rand: Callable[[], float] = random.random,
) -> AutoScaleOutcome:
    """Evaluate `formula` at `now` on `snapshot`."""
    if isinstance(formula, str):
        try:
            formula = compile_cached(formula)
        except FormulaError as exc:
            return AutoScaleOutcome(now, None, None, None, "", exc.error)
    slots: list[Value | None] = [None] * (FIRST_USER_SLOT + len(formula.user_names))
    slots[DEDICATED] = float(snapshot.target_dedicated)
    slots[LOW_PRIORITY] = float(snapshot.target_low_priority)
    slots[DEALLOCATION] = "requeue"
    frame = Frame(slots, snapshot, Timestamp.from_datetime(now), rand)
    stopped = False
    try:
        for statement in formula.statements:
            statement(frame)
    except Stop:
        stopped = True
    except EvaluationError as exc:
        return AutoScaleOutcome(now, None, None, None, _results(formula, frame), exc.error)
    except (RecursionError, ArithmeticError, ValueError) as exc:
        # A guard, not a path the tests know: no formula should reach it.
        detail = "The formula nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        error = AutoScaleError(EVALUATION_ERROR, EVALUATION_MESSAGE, detail)
        return AutoScaleOutcome(now, None, None, None, _results(formula, frame), error)
    results = _results(formula, frame)
    try:
        dedicated = _target(frame, "$TargetDedicatedNodes", DEDICATED, DEDICATED_ALIAS)
        low_priority = _target(frame, "$TargetLowPriorityNodes", LOW_PRIORITY, LOW_PRIORITY_ALIAS)
        option = _option(frame)
    except EvaluationError as exc:
        return AutoScaleOutcome(now, None, None, None, results, exc.error)
    return AutoScaleOutcome(now, dedicated, low_priority, option, results, None, stopped)


def _final(frame: Frame, slot: int, alias: int) -> Value:
    """The full name wins when the formula set both it and its alias (Microsoft's rule)."""
    is_set = frame.dedicated_set if slot == DEDICATED else frame.low_priority_set
    aliased = frame.slots[alias]
    value = frame.slots[slot] if is_set or aliased is None else aliased
    assert value is not None
    return value


def _target(frame: Frame, name: str, slot: int, alias: int) -> int:
    """A target node count: a finite, non-negative double, truncated toward zero."""
    value = _final(frame, slot, alias)
    if not isinstance(value, float):
        raise _invalid(f"{name} must be a double, not {type_name(value)}")
    if not math.isfinite(value) or value < 0:
        raise _invalid(f"{name} must be a non-negative number, not {format_value(value)}")
    return int(value)


def _option(frame: Frame) -> str:
    value = frame.slots[DEALLOCATION]
    if isinstance(value, str):
        option = value.lower()
        if option in DEALLOCATION_OPTIONS:
            return option
    assert value is not None
    raise _invalid(
        f"$NodeDeallocationOption must be one of {', '.join(DEALLOCATION_OPTIONS)}, "
        f"not {format_value(value)}"
    )


def _invalid(detail: str) -> EvaluationError:
    return EvaluationError(AutoScaleError(EVALUATION_ERROR, EVALUATION_MESSAGE, detail))


def _results(formula: CompiledFormula, frame: Frame) -> str:
    """`$TargetDedicatedNodes=..;$TargetLowPriorityNodes=..;$NodeDeallocationOption=..` then
    the user variables assigned so far, by name, each `$name=value`, separated by `;`."""
    slots = frame.slots
    parts = [
        "$TargetDedicatedNodes=" + format_value(_final(frame, DEDICATED, DEDICATED_ALIAS)),
        "$TargetLowPriorityNodes=" + format_value(_final(frame, LOW_PRIORITY, LOW_PRIORITY_ALIAS)),
        "$NodeDeallocationOption=" + _option_text(slots[DEALLOCATION]),
    ]
    names = formula.user_names
    for slot in formula.result_order:
        value = slots[slot]
        if value is not None:
            parts.append(f"${names[slot - FIRST_USER_SLOT]}={format_value(value)}")
    return ";".join(parts)


def _option_text(value: Value | None) -> str:
    assert value is not None
    if isinstance(value, str):
        return value.lower() if value.lower() in DEALLOCATION_OPTIONS else value
    return format_value(value)
