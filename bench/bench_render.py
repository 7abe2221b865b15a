"""Rendering cost per task and peak memory, at 1k, 10k and 100k tasks (quick: 1k and 10k).

The spec is one task template over `range` with templated id, command, and output path, a
blob resource file and an output file: the shape of a real map step. Cost per task is
marginal: (time at N - time of the same spec at 1 task) / N, CPU time, best of 5 rounds,
so the fixed cost (parsing, schema, the file's MD5) does not flatter or hurt the figure. The
baseline, measured in the same run, is the naive renderer: compile every template string again
for every item (jinja2's `from_string` per item), the templating alone, with no fingerprints.
Goal: at most 50 µs and 2 KB per task, linear within 15% (the per-task cost at 100k within
15% of the cost at 1k). The benchmark, like a program that renders large specs, pauses the
cyclic garbage collector around rendering (`gc_paused`); the library never does it itself.
"""

from __future__ import annotations

import gc
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bspec.model import DesiredState
from bspec.spec import load
from bspec.spec.environment import make_environment
from bspec.spec.rendering import gc_paused

SPEC = """apiVersion: bspec/v1
name: bench
vars: {n: 1}
storage:
  containers:
    app:
      files: [run.py]
    out: {}
pool:
  id: p
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu, sku: 22_04-lts, nodeAgentSku: batch.node.ubuntu 22.04}
jobs:
  - id: j
    tasks:
      - foreach: {range: [0, "{{ vars.n }}"]}
        id: "t-{{ item }}"
        commands:
          - python3 run.py --index {{ item }} --name {{ ('part-' ~ item) | shquote }}
        resourceFiles:
          - blob: "app/run.py"
        outputFiles:
          - pattern: "*.out"
            container: out
            path: "results/{{ item }}/"
"""
ROUNDS = 5
TEMPLATES = [
    "t-{{ item }}",
    "python3 run.py --index {{ item }} --name {{ ('part-' ~ item) | shquote }}",
    "results/{{ item }}/",
]


def _cpu(fn: Callable[[], object]) -> float:
    """CPU seconds of one call; the result is freed after the clock stops."""
    gc.collect()
    start = time.process_time()
    result = fn()
    elapsed = time.process_time() - start
    del result
    return elapsed


def _naive(n: int) -> None:
    env = make_environment()
    scope = {"vars": {"n": n}, "stack": "bench", "pool": "p", "job": "j"}
    for i in range(n):
        for source in TEMPLATES:
            env.from_string(source).render(scope, item=i, index=i)


def _load(spec: Path, n: int) -> DesiredState:
    """`bspec.spec.load` as a program that renders large specs calls it: gc paused."""
    with gc_paused():
        return load(spec, {"n": n})


def run(quick: bool) -> str:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(SPEC)
        (Path(tmp) / "run.py").write_text("print('hello')\n")
        _load(spec, 10)  # warm caches: imports, the schema validator, templates
        # Rounds interleave the sizes, so a busy moment on a shared machine hits all of them;
        # each size keeps its best round.
        best = {n: float("inf") for n in [1, *sizes]}
        for _ in range(ROUNDS):
            for n in best:
                best[n] = min(best[n], _cpu(lambda n=n: _load(spec, n)))
        fixed = best[1]
        rows = []
        for n in sizes:
            total = best[n]
            per_task = (total - fixed) / n
            naive_n = min(n, 2_000)
            naive = _cpu(lambda k=naive_n: _naive(k)) / naive_n
            gc.collect()
            tracemalloc.start()
            desired = _load(spec, n)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert len(desired.tasks) == n
            del desired
            rows.append((n, total, per_task, naive, peak / n))
    base = rows[0][2]
    lines = [
        "## Rendering (`bench/bench_render.py`)",
        "",
        "One task template over `range` (templated id, command and output path, a blob resource",
        "file, an output file), rendered to the desired state with fingerprints by",
        f"`bspec.spec.load` (gc paused). CPU time, best of {ROUNDS} interleaved rounds; per task = (total - the same spec at 1 task",
        f"[{fixed * 1e3:.1f} ms]) / N. Baseline: the naive renderer that compiles each template",
        "string per item (templating only, no fingerprints, measured on up to 2,000 items).",
        "Peak: tracemalloc's peak during `load` / N (the whole desired state is held).",
        "",
        "| tasks | total (s) | per task (µs) | vs 1k | naive baseline per task (µs) | speed-up | peak per task (KB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, total, per_task, naive, mem in rows:
        lines.append(
            f"| {n:,} | {total:.2f} | {per_task * 1e6:.1f} | {per_task / base:.2f}x | "
            f"{naive * 1e6:.1f} | {naive / per_task:.1f}x | {mem / 1024:.2f} |"
        )
    worst = max(abs(r[2] / base - 1) for r in rows)
    ok_time = all(r[2] <= 50e-6 for r in rows)
    ok_mem = all(r[4] <= 2048 for r in rows)
    lines += [
        "",
        f"Goal: ≤ 50 µs per task: {'met' if ok_time else 'NOT met'}; ≤ 2 KB per task: "
        f"{'met' if ok_mem else 'NOT met'}; linear within 15%: "
        f"{'met' if worst <= 0.15 else 'NOT met'} (largest deviation from 1k: {worst:.0%}).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run(quick=True))
