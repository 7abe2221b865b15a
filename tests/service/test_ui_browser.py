"""`bspec ui` in a real browser: Playwright drives Debian's chromium against the dashboard
serving two stacks on the local services (one running a few real tasks on two nodes, one
holding 10,000 tasks on a pool of no nodes). One server and one browser for the module; the
tests run in file order on the same stacks. Screenshots of each page go to the tmp output
folder; every response the browser receives is scanned for the account key and SAS
signatures, and any console error fails the last test."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from engine_support import Stack

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - shown as the skip reason
    pytest.skip("playwright is not installed (pip install playwright)", allow_module_level=True)
if not os.path.exists(CHROMIUM):
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)

pytestmark = [pytest.mark.service, pytest.mark.slow]

LEAKY = "https://x.blob.core.windows.net/c/b?sv=1&sig=abcDEF123leak"
SIG = re.compile(r"sig(=|%3D)(?!REDACTED)[A-Za-z0-9%+/]", re.IGNORECASE)


@dataclass
class Served:
    url: str
    base: str
    a: Stack
    b: Stack
    shots: Path
    key: str
    errors: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)
    scanned: int = 0


def _serve(specs: list[Path], ready: threading.Event, box: dict[str, Any]) -> None:
    from aiohttp import web
    from bspec.ui.app import make_app
    from bspec.ui.security import Guard
    from bspec.ui.state import watching

    async def main() -> None:
        with watching(specs) as dash:
            guard = Guard()
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            guard.port = sock.getsockname()[1]
            runner = web.AppRunner(make_app(dash, guard, interval=0.5, log_poll=0.3))
            await runner.setup()
            await web.SockSite(runner, sock).start()
            stop = asyncio.Event()
            box.update(guard=guard, stop=stop, loop=asyncio.get_running_loop(), dash=dash)
            ready.set()
            await stop.wait()
            await runner.cleanup()

    try:
        asyncio.run(main())
    finally:
        ready.set()


@pytest.fixture(scope="module")
def served(local_services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    os.environ["BSPEC_HOME"] = str(local_services.home)
    a = Stack(tmp_path_factory.mktemp("ui-a"), f"uia-{uuid.uuid4().hex[:8]}")
    a.nodes = 2
    # every task runs at once; a start task makes joining nodes show `starting` a while
    a.pool_extra = {"taskSlotsPerNode": 8, "startTask": {"commandLine": "/bin/sleep 3"}}
    a.files = {"in1.txt": "one two three"}  # a task with SAS resource and output files
    a.extra_tasks = [
        {"id": "ok1", "commandLine": "/bin/sh -c 'echo ok; sleep 2'"},
        {"id": "ok2", "commandLine": "/bin/sh -c 'echo ok; sleep 2'"},
        {"id": "bad1", "commandLine": "/bin/sh -c 'echo bad; sleep 1; exit 3'"},
        {"id": "bad2", "commandLine": "/bin/sh -c 'echo bad; sleep 1; exit 3'"},
        # prints a SAS URL, as a task may print its resource files' URLs
        {"id": "leaky", "commandLine": f"/bin/sh -c 'echo \"{LEAKY}\"'"},
        {
            "id": "long",
            "commandLine": "/bin/sh -c 'for i in $(seq 1 90); do echo tick $i; sleep 1; done'",
        },
    ]
    b = Stack(tmp_path_factory.mktemp("ui-b"), f"uib-{uuid.uuid4().hex[:8]}")
    b.range_tasks = 10_000
    b.apply()
    a.apply()
    ready, box = threading.Event(), {}
    thread = threading.Thread(target=_serve, args=([a.spec, b.spec], ready, box), daemon=True)
    thread.start()
    assert ready.wait(60) and "guard" in box, "the dashboard did not start"
    guard = box["guard"]
    base = f"http://127.0.0.1:{guard.port}"
    shots = tmp_path_factory.mktemp("ui-screenshots")
    try:
        yield Served(f"{base}/?token={guard.token}", base, a, b, shots, local_services.key)
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        a.destroy()
        b.destroy()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser: Browser, served: Served) -> Iterator[Page]:
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    pg.on("dialog", lambda d: d.accept())
    pg.on("console", lambda m: served.errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: served.errors.append(str(e)))

    def scan(resp: Any) -> None:
        if "event-stream" in (resp.headers.get("content-type") or ""):
            return
        try:
            body = resp.body().decode("utf-8", "replace")
        except Exception:
            return
        served.scanned += 1
        if served.key in body or SIG.search(body) or SIG.search(resp.url):
            served.leaks.append(resp.url)

    ctx.on("response", scan)
    pg.goto(served.url)
    try:
        yield pg
    finally:
        ctx.close()


def until(check: Any, what: str, timeout: float = 30.0) -> None:
    """Poll `check()` from Python (the page's CSP forbids Playwright's eval'd predicates)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _num(page: Page, selector: str) -> int:
    text = (page.text_content(selector) or "").replace(",", "").strip()
    return int(text) if text.isdigit() else -1


def _job(served: Served, s: Stack) -> str:
    return f"{served.base}/s/{s.name}/jobs/{s.job_id}"


def test_counts_and_chart_move_while_the_job_runs(page: Page, served: Served) -> None:
    page.goto(_job(served, served.a))
    page.wait_for_selector("#chart .uplot")
    until(lambda: page.get_attribute("#chart", "data-points"), "the chart's first data")
    points = int(page.get_attribute("#chart", "data-points") or 0)
    before = _num(page, "#n-succeeded")
    until(lambda: _num(page, "#n-succeeded") >= 2, "two tasks to succeed")
    assert before < 2, "the counts did not move while the page was open"
    until(lambda: int(page.get_attribute("#chart", "data-points") or 0) > points, "new points")
    page.screenshot(path=served.shots / "job.png", full_page=True)


def test_the_heat_map_shows_nodes_change_state(page: Page, served: Served) -> None:
    a = served.a
    page.goto(f"{served.base}/s/{a.name}/pools/{a.pool_id}")
    expect(page.locator("#heatmap .cell")).to_have_count(2)
    page.fill("#r-dedicated", "3")
    page.click("#resize")  # confirmed by the dialog handler
    page.wait_for_url(re.compile(r"done=Resizing"))
    seen: dict[str, set[str]] = {}

    def new_node_started() -> bool:
        for c in page.query_selector_all("#heatmap .cell"):
            seen.setdefault(c.get_attribute("data-node") or "", set()).add(
                c.get_attribute("data-state") or ""
            )
        return len(seen) == 3 and any(
            len(states) > 1 and "idle" in states for states in seen.values()
        )

    until(new_node_started, "the new node to appear and change state")
    page.screenshot(path=served.shots / "pool.png", full_page=True)


def test_the_live_tail_follows_a_running_task(page: Page, served: Served) -> None:
    page.goto(f"{_job(served, served.a)}/tasks/long")
    expect(page.locator("#log")).to_contain_text("tick 2", timeout=30_000)
    first = page.text_content("#log") or ""
    until(lambda: len(page.text_content("#log") or "") > len(first), "new lines in the tail")
    assert (page.text_content("#log") or "").startswith(first)
    page.screenshot(path=served.shots / "task.png", full_page=True)


def test_terminate_stops_the_task_and_needs_the_csrf_token(page: Page, served: Served) -> None:
    url = f"{_job(served, served.a)}/tasks/long"
    page.goto(url)
    refused = page.request.post(f"{url}/terminate", form={"csrf": "wrong"})
    assert refused.status == 403
    assert page.is_visible("#terminate")
    page.click("#terminate")
    page.wait_for_url(re.compile(r"done=Terminated"))
    expect(page.locator("#log-state")).to_have_text("task completed", timeout=30_000)


def test_rerun_failed_reactivates_and_needs_the_csrf_token(page: Page, served: Served) -> None:
    url = _job(served, served.a)
    page.goto(url)
    until(lambda: _num(page, "#n-failed") >= 2, "two tasks to fail")
    refused = page.request.post(f"{url}/rerun-failed")
    assert refused.status == 403
    page.click("#rerun-failed")
    page.wait_for_url(re.compile(r"done=Reactivated"))
    # bad1, bad2 and the terminated `long`
    assert "Reactivated 3 failed task(s)" in (page.text_content("p.done") or "")


def test_the_timeline_draws_a_bar_per_task_on_its_node(page: Page, served: Served) -> None:
    url = _job(served, served.a)
    page.goto(url)
    data = page.request.get(f"{url}/timeline.json").json()
    assert len(data["bars"]) >= 4
    until(
        lambda: len(page.query_selector_all("#timeline rect.bar")) >= len(data["bars"]),
        "a bar per task",
    )
    bars = {
        (r.get_attribute("data-task"), r.get_attribute("data-node"))
        for r in page.query_selector_all("#timeline rect.bar")
    }
    page.select_option("#f-state", "succeeded")
    expect(page.locator("#tasks")).not_to_contain_text("bad1")
    for row in page.query_selector_all("#tasks tbody tr"):
        cells = [c.text_content() for c in row.query_selector_all("td")]
        assert (cells[0], cells[3]) in bars, (cells, bars)


def test_the_task_table_pages_and_filters_ten_thousand_tasks(page: Page, served: Served) -> None:
    page.goto(_job(served, served.b))
    expect(page.locator("#match-count")).to_have_text("10,000", timeout=30_000)
    page.click("#next")
    expect(page.locator("#page-no")).to_have_text("2")
    second = sorted(f"r{i}" for i in range(10_000))[50]  # ids sort as text
    assert page.text_content("#tasks tbody tr td a") == second
    page.fill("#f-prefix", "r99")
    expect(page.locator("#match-count")).to_have_text("111")
    page.select_option("#f-state", "running")
    expect(page.locator("#match-count")).to_have_text("0")
    page.select_option("#f-state", "active")
    expect(page.locator("#match-count")).to_have_text("111")
    page.click("#tasks th a.sort-id")  # descending
    expect(page.locator("#tasks tbody tr td a").first).to_have_text("r9999")
    page.screenshot(path=served.shots / "job-10000.png", full_page=True)


def test_every_page_without_console_errors_or_secrets(page: Page, served: Served) -> None:
    a = served.a
    for name, path in (
        ("stacks", "/"),
        ("plan", f"/s/{a.name}/plan"),
        ("task-files", f"/s/{a.name}/jobs/{a.job_id}/tasks/wc-in1"),
    ):
        page.goto(served.base + path)
        page.wait_for_timeout(800)  # (never network-idle: the page keeps its event stream)
        page.screenshot(path=served.shots / f"{name}.png", full_page=True)
    assert "REDACTED" in (page.content()), "the task page shows its SAS resource file"
    page.goto(served.base + "/")  # planned at start-up: the summary links to the plan view
    expect(page.locator(f"a[href='/s/{a.name}/plan']").first).to_be_visible()
    expect(page.locator("p.plan-summary").first).to_contain_text("Spec and services")
    # a task's log, followed and downloaded, never carries the signature it printed
    leaky = f"{served.base}/s/{a.name}/jobs/{a.job_id}/tasks/leaky"
    page.goto(leaky)
    expect(page.locator("#log")).to_contain_text("sig=REDACTED")
    assert "abcDEF123leak" not in page.content()
    assert "abcDEF123leak" not in page.request.get(f"{leaky}/files/stdout.txt").text()
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    req = urllib.request.Request(f"{leaky}/log?stream=stdout", headers={"Cookie": cookie})
    with urllib.request.urlopen(req, timeout=30) as stream:  # ends with the task's `end` event
        events = stream.read().decode()
    assert "sig=REDACTED" in events and "abcDEF123leak" not in events and "event: end" in events
    dl = page.request.get(f"{served.base}/s/{a.name}/jobs/{a.job_id}/tasks/ok1/files/stdout.txt")
    assert dl.status == 200 and "ok" in dl.text()
    assert page.request.get(f"{served.base}/").status == 200
    assert served.scanned > 20
    assert not served.leaks, served.leaks
    assert not served.errors, served.errors
    # the plan shown (the pool resized by hand back to the spec's size) is applied, and
    # refused without the CSRF token
    page.goto(f"{served.base}/s/{a.name}/plan")
    expect(page.locator("pre.plan")).to_contain_text("resize from 3 nodes to 2 nodes")
    plan_id = page.get_attribute("input[name=plan]", "value") or ""
    refused = page.request.post(f"{served.base}/s/{a.name}/plan/apply", form={"plan": plan_id})
    assert refused.status == 403
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text(f"Applied the plan of {a.name}", timeout=30_000)
    assert not served.errors, served.errors
    for name in ("job", "pool", "task", "job-10000", "stacks", "plan"):
        assert (served.shots / f"{name}.png").stat().st_size > 1000
