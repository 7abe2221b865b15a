"""`bspec ui` figures (issue 15), against the local services in a temporary BSPEC_HOME:

- Batch requests per refresh once the cache is warm, for jobs of 1,000, 10,000 and 100,000
  tasks (counted by the target's counting transport; goal: independent of the task count);
- the job page's answer time with 100,000 tasks (goal < 300 ms), against 1,000 tasks;
- the resident memory of a `bspec ui` process watching 100,000 tasks (goal < 300 MB),
  against one watching 1,000;
- the time until chromium (through Playwright) shows the job's counts, its chart and the
  first page of its task table with 100,000 tasks (goal < 1 s), against 1,000.

The tasks wait on a pool of no nodes (submitted, never run), so the figures are about the
dashboard, not the tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

from bench.bench_plan import _services  # the local services in a temporary BSPEC_HOME

IMAGE = {
    "publisher": "canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "nodeAgentSku": "batch.node.ubuntu 22.04",
}
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def _spec(root: Path, name: str, tasks: int) -> Path:
    spec = {
        "apiVersion": "bspec/v1",
        "name": name,
        "pool": {"id": f"{name}-pool", "vmSize": "standard_d2s_v3", "image": IMAGE, "nodes": 0},
        "jobs": [
            {
                "id": f"{name}-job",
                "tasks": [
                    {
                        "foreach": {"range": [0, tasks]},
                        "id": "t{{ item }}",
                        "commandLine": "/bin/true",
                    }
                ],
            }
        ],
    }
    path = root / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _apply_in_process(spec: Path) -> None:
    import bspec.cli  # noqa: F401  (registers the commands)
    from bspec.commands.reconcile import run_apply

    run_apply(spec, yes=True, show=False, no_wait=True)


def _warm_requests(specs: dict[int, Path]) -> dict[int, tuple[int, int]]:
    """(cold, warm) Batch requests of one refresh, per task count."""
    from bspec.ui.state import watching

    out = {}
    with watching(list(specs.values())) as dash:
        for n, spec in specs.items():
            s = next(x for x in dash.stacks.values() if x.spec == spec)
            costs = []
            for _ in range(3):
                before = s.tgt.counter.total()
                s.refresh()
                costs.append(s.tgt.counter.total() - before)
            out[n] = (costs[0], costs[-1])
    return out


class _Ui:
    """A `bspec ui` process on one spec, and a cookie-carrying opener."""

    def __init__(self, spec: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bspec.cli import main; main()",
                "ui",
                str(spec),
                "--json",
                "--interval",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = ""
        while '"url"' not in line:
            line += self.proc.stdout.readline()
            if self.proc.poll() is not None:
                raise RuntimeError("bspec ui did not start")
        buf = line
        while True:
            try:
                self.url = json.loads(buf)["url"]
                break
            except json.JSONDecodeError:
                buf += self.proc.stdout.readline()
        self.base = self.url.split("/?")[0]
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.opener.open(self.url).read()

    def get(self, path: str) -> tuple[float, str]:
        t0 = time.perf_counter()
        with self.opener.open(self.base + path) as r:
            body = r.read().decode()
        return time.perf_counter() - t0, body

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _wait_warm(ui: _Ui, job_path: str, n: int) -> None:
    want = f"{n:,}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        _, body = ui.get(f"{job_path}/tasks")
        if f'<span id="match-count">{want}</span>' in body:
            return
        time.sleep(1)
    raise RuntimeError(f"the cache never held {want} tasks")


def _browser_first_view(url: str, job_url: str, base: str) -> float | None:
    """Seconds from navigation until counts, chart data and the first table page show."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if not os.path.exists(CHROMIUM):
        return None
    times = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = b.new_page()
        page.goto(url)
        for _ in range(4):
            page.goto(base + "/")
            t0 = time.perf_counter()
            page.goto(job_url, wait_until="commit")
            page.wait_for_selector("#n-active")
            page.wait_for_selector("#tasks tbody tr")
            page.wait_for_selector("#chart[data-points]")
            times.append(time.perf_counter() - t0)
        b.close()
    return statistics.median(times[1:])


def _measure_ui(spec: Path, name: str, n: int) -> dict[str, Any]:
    ui = _Ui(spec)
    try:
        job_path = f"/s/{name}/jobs/{name}-job"
        _wait_warm(ui, job_path, n)
        ui.get(job_path)  # the first render sorts; later ones reuse the order
        page = statistics.median(ui.get(job_path)[0] for _ in range(7))
        filtered = statistics.median(
            ui.get(f"{job_path}/tasks?prefix=t99&sort=id&desc=1")[0] for _ in range(7)
        )
        rss = ui.rss_mb()
        first_view = _browser_first_view(ui.url, ui.base + job_path, ui.base)
        return {"page": page, "filtered": filtered, "rss": rss, "first_view": first_view}
    finally:
        ui.close()


def _first_order(n: int) -> dict[str, float]:
    """In process, seconds for table pages of a cache of `n` tasks right after a refresh that
    changed tasks: by id (the order is kept up to date as tasks arrive), by id prefix (a
    run of that order), and by start time (that order is computed again once per change)."""
    from bspec.ui.cache import JobCache, Query

    class Reader:
        extra = 0

        def tasks_since(self, since: str | None) -> list[dict[str, Any]]:
            ids = range(n) if since is None else range(n, n + self.extra)
            return [
                {
                    "id": f"t{i}",
                    "state": "completed",
                    "stateTransitionTime": f"2026-01-01T00:{i // 1000000 % 60:02d}:"
                    f"{i % 60:02d}.{i % 1000000:06d}Z",
                    "executionInfo": {"exitCode": i % 3, "startTime": "2026-01-01T00:00:00Z"},
                    "nodeInfo": {"nodeId": f"node-{i % 50}"},
                }
                for i in ids
            ]

        def counts(self) -> dict[str, int]:
            m = n + self.extra
            return {"active": 0, "running": 0, "completed": m, "succeeded": m, "failed": 0}

    def timed(q: Query) -> float:
        t0 = time.perf_counter()
        cache.page(q)
        return time.perf_counter() - t0

    reader, cache = Reader(), JobCache("j")
    cache.refresh(reader)
    reader.extra = 10  # ten new tasks arrive
    cache.refresh(reader)
    return {
        "id": timed(Query()),
        "prefix": timed(Query(prefix="t99", desc=True)),
        "start": timed(Query(sort="start")),
        "start_next": timed(Query(sort="start", offset=50)),
    }


def run(quick: bool = False) -> str:
    sizes = [1_000, 10_000] if quick else [1_000, 10_000, 100_000]
    big, small = sizes[-1], sizes[0]
    with _services(), tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        specs = {}
        for n in sizes:
            specs[n] = _spec(root, f"ui{n}", n)
            t0 = time.perf_counter()
            _apply_in_process(specs[n])
            print(f"   submitted {n:,} tasks in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        requests = _warm_requests(specs)
        figures = {n: _measure_ui(specs[n], f"ui{n}", n) for n in (small, big)}
    orders = {n: _first_order(n) for n in (small, big)}

    lines = [
        "## Dashboard (`bench/bench_ui.py`)",
        "",
        "`bspec ui` against the local services, the tasks waiting on a pool of no nodes; the "
        "machine was shared with other work while this ran (8 helpers on 2 cores), so read the "
        "ratios rather than the absolute times.",
        "",
        "### Batch requests per refresh",
        "",
        "| tasks in the job | first refresh (cold) | warm refresh |",
        "| ---: | ---: | ---: |",
    ]
    for n, (cold, warm) in requests.items():
        lines.append(f"| {n:,} | {cold} | {warm} |")
    lines += [
        "",
        "A warm refresh is the job's task counts, one list of the tasks whose state changed "
        "since the newest `stateTransitionTime` seen, the pool and its nodes: the same number "
        "of requests whatever the job's size (goal: independent of the task count).",
        "",
        f"### Job page, memory and first view: {big:,} tasks against {small:,}",
        "",
        f"| figure | {small:,} tasks | {big:,} tasks | goal |",
        "| --- | ---: | ---: | --- |",
    ]
    fs, fb = figures[small], figures[big]
    lines.append(
        f"| job page answer (warm, median of 7) | {fs['page'] * 1000:.0f} ms | "
        f"{fb['page'] * 1000:.0f} ms | < 300 ms |"
    )
    lines.append(
        f"| task table filtered by id prefix, sorted descending | {fs['filtered'] * 1000:.0f} ms"
        f" | {fb['filtered'] * 1000:.0f} ms | |"
    )
    for key, what in (
        ("id", "first table page after ten new tasks, by id (in process)"),
        ("prefix", "the same, filtered by id prefix, descending (in process)"),
        ("start", "the same, sorted by start time: that order is computed again (in process)"),
        ("start_next", "the next page by start time (the order reused; in process)"),
    ):
        lines.append(
            f"| {what} | {orders[small][key] * 1000:.2f} ms | {orders[big][key] * 1000:.2f} ms | |"
        )
    lines.append(
        f"| `bspec ui` resident memory | {fs['rss']:.0f} MB | {fb['rss']:.0f} MB | < 300 MB |"
    )
    if fs["first_view"] is not None and fb["first_view"] is not None:
        lines.append(
            f"| chromium shows counts, chart and first table page | {fs['first_view']:.2f} s | "
            f"{fb['first_view']:.2f} s | < 1 s |"
        )
    else:
        lines.append("| chromium first view | not measured (no chromium or playwright) | | |")
    lines += [
        "",
        f"The job page answers in {fb['page'] * 1000:.0f} ms with {big:,} tasks and "
        f"{fs['page'] * 1000:.0f} ms with {small:,}: it costs what it shows (one page of the "
        "table, from orders kept in memory), not what the job holds. The process holds the "
        f"{big:,}-task cache in "
        f"{fb['rss'] - fs['rss']:.0f} MB more than the {small:,}-task one.",
        "",
    ]
    return "\n".join(lines)
