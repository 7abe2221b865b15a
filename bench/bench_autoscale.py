"""Autoscale formula evaluation cost, for each of Microsoft's documented formulas.

Each formula runs on a pool snapshot holding 24 hours of samples (2,880 per metric, what the
service keeps), as the service will run it every interval: compiled once, then evaluated.
The baseline, measured in the same run, is parsing and compiling the formula again for every
evaluation. CPU time per evaluation, best of 7 rounds. Goal: under 1 ms per evaluation.
"""

from __future__ import annotations

import datetime as dt
import time
import timeit

from bspec.localbatch.autoscale import (
    PoolSnapshot,
    SampleRecorder,
    compile_formula,
    evaluate,
)
from bspec.localbatch.autoscale.examples import DOCUMENTED

ROUNDS = 7
NOW = dt.datetime(2026, 12, 1, 10, 0, 0, tzinfo=dt.UTC)
GOAL_SECONDS = 1e-3


def _snapshot(hours: int) -> PoolSnapshot:
    """A busy pool with `hours` of samples every 30 s, the newest taken now."""
    recorder = SampleRecorder(retention_seconds=hours * 3600.0)
    count = hours * 120
    for i in range(count + 1):
        at = NOW - dt.timedelta(seconds=30 * (count - i))
        recorder.record(
            at,
            PoolSnapshot(active_tasks=i % 17, running_tasks=8, current_dedicated=4, usable=4),
        )
    return PoolSnapshot(
        target_dedicated=4,
        current_dedicated=4,
        usable=4,
        active_tasks=12,
        running_tasks=8,
        task_slots_per_node=4,
        samples=recorder.series(),
    )


def _best(fn: object, number: int) -> float:
    assert callable(fn)
    return min(timeit.repeat(fn, number=number, repeat=ROUNDS, timer=time.process_time)) / number


def run(quick: bool) -> str:
    number = 200 if quick else 2_000
    snapshot = _snapshot(24)
    rows = []
    for name, text in DOCUMENTED.items():
        compiled = compile_formula(text)
        outcome = evaluate(compiled, snapshot, NOW)
        evaluated = _best(lambda c=compiled: evaluate(c, snapshot, NOW), number)
        baseline = _best(
            lambda t=text: evaluate(compile_formula(t), snapshot, NOW), max(1, number // 10)
        )
        status = "error: " + outcome.error.code if outcome.error else f"{outcome.target_dedicated}"
        rows.append((name, len(compiled.statements), evaluated, baseline, status))
    worst = max(r[2] for r in rows)
    lines = [
        "## Autoscale formulas (`bench/bench_autoscale.py`)",
        "",
        "Each of Microsoft's documented formulas (`bspec.localbatch.autoscale.examples`) on a pool",
        "snapshot with 24 hours of samples per metric (2,880 each), evaluated as the service runs",
        "it: compiled once, then `evaluate`. Baseline in the same run: parse and compile again",
        f"for every evaluation. CPU time per evaluation, best of {ROUNDS} rounds.",
        "",
        "| formula | statements | evaluate (µs) | parse + compile + evaluate (µs) | ratio | $TargetDedicatedNodes |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, statements, evaluated, baseline, status in rows:
        lines.append(
            f"| {name} | {statements} | {evaluated * 1e6:.1f} | {baseline * 1e6:.1f} | "
            f"{baseline / evaluated:.1f}x | {status} |"
        )
    lines += [
        "",
        f"Goal: under 1 ms per evaluation: {'met' if worst < GOAL_SECONDS else 'NOT met'} "
        f"(slowest {worst * 1e6:.1f} µs). The service compiles a pool's formula once "
        "(`compile_cached`), so the first column is what each interval costs.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick=True))
