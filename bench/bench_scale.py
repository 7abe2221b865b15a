"""Issue 16: 100,000 tasks, each figure against a baseline measured in the same run.

1. converged plan (`bspec plan --json`, a fresh process) of 1,000 / 10,000 / 100,000 tasks
   with a tenth as many blobs at 50 ms Batch latency, against `bspec render` of the same
   spec; requests, peak RSS minus start-up per task, and where the listing's time goes.
2. submitting 100,000 new tasks at 50 ms latency against 0 ms, and through a 429 storm.
3. waiting on 100,000 and on 10,000 tasks: requests per poll, seconds between updates.
4. outputs: 10,000 small blobs downloaded 8 at once against one at a time; a second
   `outputs` with nothing new (requests, downloads).
5. the local service: 10,000 `/bin/true` tasks against `xargs -P 8`; a `$select`ed page of
   1,000 tasks with 100,000 stored against the full page.

    python -m bench scale [--quick]
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bspec.commands.reconcile import run_apply
from bspec.downloads import download_outputs
from bspec.errors import WaitTimeoutError
from bspec.kinds import task as task_kind
from bspec.providers.batch import BatchProvider
from bspec.spec import load
from bspec.targets import connect
from bspec.watching import wait_for_tasks

from bench import bench_localbatch as lb
from bench import bench_plan as bp

# Runs the bspec console script's `main` in a fresh interpreter and writes its peak RSS
# after start-up (imports done) and at the end, in KiB, to the file named first.
RUNNER = """
import json, sys
def hwm():  # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
import bspec.cli
start = hwm()
out = sys.argv[1]
sys.argv = ["bspec", *sys.argv[2:]]
code = 0
try:
    bspec.cli.main()
except SystemExit as exc:
    code = exc.code or 0
with open(out, "w") as fh:
    json.dump({"start": start, "peak": hwm(), "code": code}, fh)
"""


# Measured once on this branch's base (before the remedies), 2026-12-01 08:12 UTC, same
# machine, load average about 4.7: cProfile of the task listing (its thread included) and
# raw page timings. Kept as text: the code it measured is gone.
PROFILE = """\
**Profile before the remedies** (this branch's base, once, 2026-12-01 08:12 UTC, load
average about 4.7). The converged plan of 10,000 tasks and 1,000 blobs listed in 1.38 to
1.56 s at 50 ms (12 Batch and 2 storage requests) and diffed in 0.10 to 0.14 s; the 9.8 s
of listing in the issue's figures did not reproduce on this machine. Per page of 1,000 tasks
at 0 ms, through `send_request`:

| where | ms per page | what it was |
| --- | ---: | --- |
| the service's answer, `$select`ed as the plan asks | 57 to 72 | every stored body (and its bookkeeping) decoded in Python, trimmed, encoded again: slower than the unselected page (27 ms), which is spliced from the stored text |
| the SDK pipeline decoding the body too | 1.7 | `send_request` without `stream=True` runs ContentDecodePolicy, then bspec decodes it again (kept: a streamed body is read outside the retry policy) |
| decoding (stdlib `json`) | 4 to 6 | |
| the engine's normal form | 23 | 16 ms of it parsing the same two ISO durations 2,000 times |
| waiting for the next page | 50 | pages fetched only after the previous one was decoded |

At 100,000 tasks (after the service fix, before the rest): listing 8.6 s at 50 ms, diff
1.1 to 1.5 s, of which 0.4 s building 100,000 frozen addresses for the desired tasks and
0.4 s hashing them; and at 100,000 stored tasks each page, full or not, cost SQLite a sort
of every task of the job (no index served "seq > token in seq order" within a job).
Remedies, in that order: `$select`ed pages built by SQLite from the stored JSON (never
decoded in Python), pages read from an index on (kind, parent, seq); the
next page asked for by a thread as soon as a page's bytes arrive (its nextLink read from
the page's tail) while this one is decoded; durations parsed once per distinct text; the
task diff keyed by (job, task id) tuples, reusing the listed address and, for an unchanged
task, its listed props (compared field by field, no dict built). orjson was not
needed: decoding is 1 to 2 ms of a page that costs 60 to 80 ms on the wire.
"""


def _cli(args: list[str], cwd: Path, stdout: Path | None = None) -> tuple[float, dict[str, Any]]:
    """Wall seconds of `bspec ARGS` in a fresh process, and its RSS figures."""
    out = Path(tempfile.mktemp(prefix="bspec-rss-"))
    started = time.perf_counter()
    with open(stdout or os.devnull, "wb") as fh:
        subprocess.run(
            [sys.executable, "-c", RUNNER, str(out), *args], cwd=cwd, stdout=fh, check=True
        )
    took = time.perf_counter() - started
    rss: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return took, rss


def _best(
    args: list[str], cwd: Path, repeat: int, stdout: Path | None = None
) -> tuple[float, dict[str, Any]]:
    """The fastest of `repeat` runs of `bspec ARGS`."""
    runs = [_cli(args, cwd, stdout) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def _median_ms(fn: Callable[[], Any], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def listing_split(tgt: Any, job_id: str, pages: int) -> dict[str, float]:
    """Per page of 1,000 tasks, at 0 ms latency: the service's answer (request to last
    byte, through the SDK pipeline), decoding, and the engine's normal form."""
    from bspec.providers.batch import PAGE, TASK_SELECT

    path = f"jobs/{job_id}/tasks"
    params = {"$select": ",".join(TASK_SELECT), "maxresults": str(PAGE)}
    raw = tgt.batch._get_bytes(path, params)
    items = json.loads(raw)["value"]
    return {
        "service": _median_ms(lambda: tgt.batch._get_bytes(path, params)),
        "decode": _median_ms(lambda: json.loads(raw)),
        "normal": _median_ms(lambda: [task_kind.from_rest(job_id, t, "x") for t in items]),
        "pages": pages,
    }


def bench_plans(ep: Any, root: Path, sizes: tuple[int, ...]) -> tuple[str, dict[int, Path]]:
    rows = []
    specs: dict[int, Path] = {}
    detail: dict[str, Any] = {}
    for n in sizes:
        files = n // 10
        name = f"scale{n}"
        spec = bp._spec(root / name, name, files, n - files)
        specs[n] = spec
        started = time.perf_counter()
        run_apply(spec, yes=True, no_wait=True, show=False)
        setup = time.perf_counter() - started
        bp._latency(ep, 50)
        try:
            repeat = 1 if n >= 100_000 else 2
            t_render_json, _ = _best(["render", "--json", "spec.json"], spec.parent, repeat)
            t_render, _ = _best(["render", "spec.json"], spec.parent, 1)
            out = spec.parent / "plan.json"
            t_plan, rss = _best(["plan", "--json", "spec.json"], spec.parent, repeat, out)
            data = json.loads(out.read_text())
            pending = {k: v for k, v in data["summary"].items() if k != "noop" and v}
            assert not pending, f"the stack should be converged: {pending}"
            reqs = sum(v["read"] + v["write"] for v in data["requests"].values())
            if n == max(sizes):
                detail = _plan_detail(ep, spec, n)
        finally:
            bp._latency(ep, 0)
        per_task_kb = (rss["peak"] - rss["start"]) / n  # KiB
        rows.append((n, files, setup, t_render_json, t_render, t_plan, reqs, per_task_kb))
    lines = [
        "### 1. Converged plan at 50 ms Batch latency, against `bspec render` of the same spec",
        "",
        PROFILE,
        "Each command in a fresh process (`bspec plan --json`, `bspec render --json`,"
        " `bspec render` to /dev/null), wall seconds, best of 2 (1 at 100,000). Memory: the"
        " plan process's peak RSS minus its RSS once `bspec.cli` is imported, per task.",
        "",
        "| tasks | blobs | render --json (s) | render (s) | plan (s) | plan / render --json |"
        " plan / render | plan per task (µs) | requests | peak per task (KB) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for n, files, _setup, rj, r, p, reqs, kb in rows:
        lines.append(
            f"| {n:,} | {files:,} | {rj:.2f} | {r:.2f} | {p:.2f} | {p / rj:.2f}x | {p / r:.2f}x |"
            f" {p / n * 1e6:.0f} | {reqs} | {kb * 1.024:.2f} |"
        )
    big = rows[-1]
    lines += [
        "",
        f"Goal at {big[0]:,} tasks: plan at most 3 times `bspec render`:"
        f" {big[5] / big[4]:.2f}x ({big[5] / big[3]:.2f}x the stricter `render --json`);"
        f" at most 120 requests: {big[6]}; at most 4 KB per task: {big[7] * 1.024:.2f} KB.",
        "",
    ]
    if detail:
        lines += _detail_lines(detail)
    return "\n".join(lines), specs


# The plan's steps apart, in a fresh process tuned as the `bspec` script tunes its collector
# (bspec.cli), so that the bench's own heap does not slow the collections it measures.
DETAIL = """
import gc, json, sys, time
import bspec.cli
gc.freeze()
gc.set_threshold(50_000, 20, 100)
from bench.bench_scale import listing_split
from bspec import local as services
from bspec.planning import PlanOptions, plan
from bspec.providers import read_actual
from bspec.spec import load
from bspec.targets import connect
started = time.perf_counter()
desired = load(sys.argv[1])
t_render = time.perf_counter() - started
tgt = connect("local", desired.stack)
started = time.perf_counter()
actual = read_actual(desired, tgt.batch, tgt.storage)
t_list = time.perf_counter() - started
requests = tgt.counter.snapshot()
t_diff = 1e9
for _ in range(3):  # CPU time, best of 3: the diff is pure CPU, and the machine is shared
    started = time.process_time()
    p = plan(desired, actual, PlanOptions("local"))
    t_diff = min(t_diff, time.process_time() - started)
    assert p.empty()
    del p
services.http_json("PUT", sys.argv[2] + "/_local/settings", {"latencyMs": 0})
split = listing_split(tgt, desired.jobs[0].id, (len(desired.tasks) + 999) // 1000)
tgt.close()
print(json.dumps({"render": t_render, "list": t_list, "diff": t_diff, "requests": requests,
                  "split": split}))
"""


def _plan_detail(ep: Any, spec: Path, n: int) -> dict[str, Any]:
    """Render, list and diff apart (fresh process, 50 ms), and the listing's split per page."""
    out = subprocess.run(
        [sys.executable, "-c", DETAIL, str(spec), ep.batch_url],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    detail: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    detail["n"] = n
    return detail


def _detail_lines(d: dict[str, Any]) -> list[str]:
    s = d["split"]
    return [
        f"Where the plan of {d['n']:,} tasks goes (a fresh process, its collector tuned as `bspec`'s): render {d['render']:.2f} s,"
        f" list {d['list']:.2f} s ({json.dumps(d['requests'])}), diff of {d['n']:,} unchanged"
        f" tasks {d['diff']:.2f} s of CPU, best of 3 (goal: under 1 s). The task listing is {s['pages']} pages"
        " of 1,000, fetched one after another (each needs the last one's nextLink) while the"
        " page before is decoded on another thread; per page, measured at 0 ms latency:",
        "",
        "| part of a page of 1,000 tasks | ms |",
        "| --- | ---: |",
        "| the simulated latency (on the wire) | 50.0 |",
        f"| the service's answer, request to last byte ($select'ed, through the SDK's pipeline)"
        f" | {s['service']:.1f} |",
        f"| decoding the JSON (stdlib `json`) | {s['decode']:.1f} |",
        f"| the engine's normal form (`kinds.task.from_rest`) | {s['normal']:.1f} |",
        "",
        "Latency and the service's answer are on the fetching thread, decoding and the normal"
        " form on the reader's, so a page costs about the larger of the two.",
        "",
    ]


def bench_submit(ep: Any, root: Path, n: int) -> str:
    results: dict[str, float] = {}
    checked: dict[str, str] = {}
    for i, (label, latency, storm) in enumerate(
        (
            ("0 ms", 0, False),
            ("50 ms", 50, False),
            ("0 ms", 0, False),
            ("50 ms", 50, False),
            ("50 ms, 429 storm (30% for 20 s)", 50, True),
        )
    ):
        _desired, tgt, job, bodies = bp.fresh_job(root, f"scalesub{i}", n)
        try:
            bp._latency(ep, latency)
            if storm:
                _settings(ep, {"faultRate": 0.3, "faultKinds": ["429"], "faultFor": 20})
            try:
                started = time.perf_counter()
                tgt.batch.add_tasks(job, bodies)
                took = time.perf_counter() - started
                results[label] = min(took, results.get(label, took))
            finally:
                _settings(ep, {"faultRate": 0.0, "faultFor": None})
                bp._latency(ep, 0)
            ids = [
                t["id"]
                for t in tgt.batch.list_raw(
                    "list", f"jobs/{job}/tasks", {"$select": "id", "maxresults": "1000"}
                )
            ]
            ok = len(ids) == n and len(set(ids)) == n
            checked[label] = (
                f"{len(set(ids)):,} tasks, {'none' if len(ids) == len(set(ids)) else 'some'}"
                f" duplicated, {tgt.counter.retries()['batch']} requests retried"
            )
            assert ok, checked[label]
            tgt.batch.delete_job(job)
        finally:
            tgt.close()
    base = results["0 ms"]
    rows = [
        f"| {k} | {v:.2f} | {n / v:,.0f} | {v / base:.2f}x | {checked[k]} |"
        for k, v in results.items()
    ]
    hidden = results["50 ms"] / base
    return "\n".join(
        [
            f"### 2. Submitting {n:,} new tasks",
            "",
            "Through `BatchProvider.add_tasks` (chunks of 100,"
            f" {BatchProvider.workers} in flight); 0 ms and 50 ms"
            " interleaved twice, best of each; the storm once.",
            "",
            "| Batch latency | seconds | tasks/s | vs 0 ms | afterwards |",
            "| --- | ---: | ---: | ---: | --- |",
            *rows,
            "",
            f"At 50 ms bspec takes **{hidden:.2f} times** its 0 ms time (goal: within 1.3)."
            " In the storm the service answers 30% of requests 429 with Retry-After: 1 for"
            " 20 s; the pipeline retries them and a chunk still throttled is sent again"
            " later, so the submission is slower but completes, every task once.",
            "",
        ]
    )


def _settings(ep: Any, body: dict[str, Any]) -> None:
    from bspec import local as services

    services.http_json("PUT", f"{ep.batch_url}/_local/settings", body)


def bench_wait(ep: Any, specs: dict[int, Path]) -> str:
    rows = []
    for n in sorted(specs)[-2:]:
        desired = load(specs[n])
        tgt = connect("local", desired.stack)
        seen: list[tuple[float, int]] = []

        def progress(done: int, total: int, seen: Any = seen, tgt: Any = tgt) -> None:
            seen.append((time.perf_counter(), tgt.counter.total()))

        bp._latency(ep, 50)
        try:
            wait_for_tasks(
                tgt.batch,
                desired,
                timeout=12.0,
                poll=1.0,
                on_progress=progress,
            )
        except WaitTimeoutError:
            pass
        finally:
            bp._latency(ep, 0)
            tgt.close()
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(seen)]
        per_poll = [b[1] - a[1] for a, b in itertools.pairwise(seen)]
        rows.append(
            f"| {n:,} | {len(seen)} | {statistics.mean(per_poll):.2f} | {max(per_poll)} |"
            f" {max(gaps):.2f} |"
        )
    return "\n".join(
        [
            "### 3. Waiting (tasks active on a pool of 0 nodes, 50 ms latency, poll 1 s, 12 s)",
            "",
            "| tasks | polls | requests per poll, mean | max | longest gap between updates (s) |",
            "| ---: | ---: | ---: | ---: | ---: |",
            *rows,
            "",
            "A poll reads the task counts; when they say all done, and every tenth poll, it"
            " reads one page of incomplete tasks ($select=id) and stops at the first of the"
            " spec's; every third poll while tasks wait, the pool and its nodes. Completion is"
            " then confirmed by listing the tasks once.",
            "",
        ]
    )


def bench_outputs(root: Path, n: int) -> str:
    name = "scaleout"
    spec = bp._spec(root / name, name, 0, 1)
    data = json.loads(spec.read_text())
    data["storage"]["containers"]["output"] = {}
    data["jobs"][0]["outputs"] = [{"container": "output", "to": "results"}]
    spec.write_text(json.dumps(data))
    run_apply(spec, yes=True, no_wait=True, show=False)
    desired = load(spec)
    src = root / name / "blobs"
    src.mkdir()
    items = []
    for i in range(n):
        p = src / f"{i:05d}.txt"
        p.write_text(f"result {i}\n")
        md5 = hashlib.md5(p.read_bytes(), usedforsecurity=False).hexdigest()
        items.append((desired.container("output").name, f"out/{i:05d}.txt", str(p), md5))
    tgt = connect("local", desired.stack)
    try:
        tgt.storage.upload_many(items, parallel=True)
    finally:
        tgt.close()
    times = {}
    cwd = os.getcwd()
    for label, workers in (("8 at once", 8), ("one at a time", 1)):
        folder = root / name / "results"
        if folder.exists():
            shutil.rmtree(folder)
        tgt = connect("local", desired.stack)
        try:
            os.chdir(spec.parent)
            started = time.perf_counter()
            got = download_outputs(tgt.storage, desired, workers=workers)
            times[label] = time.perf_counter() - started
            assert len(got.downloaded) == n
        finally:
            os.chdir(cwd)
            tgt.close()
    tgt = connect("local", desired.stack)
    try:
        os.chdir(spec.parent)
        started = time.perf_counter()
        again = download_outputs(tgt.storage, desired)
        t_again = time.perf_counter() - started
        reqs = tgt.counter.snapshot()
    finally:
        os.chdir(cwd)
        tgt.close()
    speed = times["one at a time"] / times["8 at once"]
    return "\n".join(
        [
            f"### 4. Outputs: {n:,} small blobs",
            "",
            "| download | seconds |",
            "| --- | ---: |",
            *(f"| {k} | {v:.2f} |" for k, v in times.items()),
            f"| again, nothing new | {t_again:.2f} |",
            "",
            f"Downloading 8 at once is **{speed:.1f} times** faster than one at a time (Azurite,"
            f" this machine). The second `outputs` downloaded {len(again.downloaded)} and made"
            f" {json.dumps(reqs)}: list requests only (a page holds 5,000 blobs).",
            "",
        ]
    )


def bench_service(n_true: int, n_stored: int) -> str:
    with tempfile.TemporaryDirectory(prefix="bspec-bench-scale-lb-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with lb.service(home, max_processes=8) as (client, _pid):
            lb._pool(client, "bench", nodes=4, slots=2)
            # Interleaved, best of 2 each: the load of a shared machine moves both a lot.
            runs = [
                (
                    lb._run_tasks(client, "bench", f"overhead{i}", n_true, "/bin/true"),
                    lb._xargs(n_true, "/bin/true", 8),
                )
                for i in range(2)
            ]
            overhead = min(r[0] for r in runs)
            xargs = min(r[1] for r in runs)
            from azure.batch import models as m
            from azure.core.rest import HttpRequest

            client.create_job(
                m.BatchJobCreateOptions(id="stored", pool_info=m.BatchPoolInfo(pool_id="nopool"))
            )
            lb._fill(home, "stored", n_stored)

            def get(query: str) -> bytes:
                req = HttpRequest(
                    "GET", f"/jobs/stored/tasks?api-version=2025-06-01&maxresults=1000{query}"
                )
                data: bytes = client.send_request(req, stream=True).read()
                return data

            get("")
            full = _median_ms(lambda: get(""))
            sel = _median_ms(lambda: get("&$select=id,state,environmentSettings"))
            sel4 = _median_ms(lambda: get("&$select=id,state,environmentSettings,constraints"))
    return "\n".join(
        [
            "### 5. The local service",
            "",
            "| measure | value |",
            "| --- | ---: |",
            f"| {n_true:,} `/bin/true` tasks on 4 nodes x 2 slots, submission to all completed"
            f" (best of 2, interleaved with xargs) | {overhead:.2f} s |",
            f"| `xargs -P 8` running the same command lines | {xargs:.2f} s |",
            f"| ratio (goal: within 1.5) | {overhead / xargs:.2f} |",
            f"| a page of 1,000 of {n_stored:,} stored tasks, raw, full | {full:.0f} ms |",
            f"| the same page, `$select=id,state,environmentSettings` (goal: under 30 ms)"
            f" | {sel:.0f} ms |",
            f"| the same page, `$select` as bspec's plan asks (4 properties) | {sel4:.0f} ms |",
            "",
            "A `$select`ed page is built by SQLite from the stored JSON (each property read by"
            " its path, or `json_each` when a name's case differs), never decoded in Python,"
            " and read in list order from an index on (kind, parent, seq). Page times are"
            " medians of 5, request to last byte through the SDK's pipeline.",
            "",
        ]
    )


def run(quick: bool = False) -> str:
    sizes = (500, 2000, 5000) if quick else (1000, 10_000, 100_000)
    submit_n, out_n = (2000, 500) if quick else (100_000, 10_000)
    n_true, n_stored = (500, 5000) if quick else (10_000, 100_000)
    root = Path(tempfile.mkdtemp(prefix="bspec-bench-scale-"))
    load_before = os.getloadavg()[0]
    with bp._services() as ep:
        plans, specs = bench_plans(ep, root, sizes)
        waits = bench_wait(ep, specs)
        submits = bench_submit(ep, root, submit_n)
        outputs = bench_outputs(root, out_n)
    service = bench_service(n_true, n_stored)
    load_after = os.getloadavg()[0]
    return "\n".join(
        [
            "## 100,000 tasks (`bench/bench_scale.py`, issue 16)",
            "",
            "Against the local Batch service and Azurite on this machine, each figure against a"
            f" baseline measured in the same run. The machine was shared with other work (load"
            f" average {load_before:.1f} at the start, {load_after:.1f} at the end, on"
            f" {os.cpu_count()} cores), so absolute times are noisy; the ratios are the figures.",
            "",
            plans,
            submits,
            waits,
            outputs,
            service,
        ]
    )


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
