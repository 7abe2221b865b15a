"""`bspec ui` without a service: the task cache (incremental refresh, paging, filters), and
the web app's walls (token -> cookie, 401, CSRF, Host, CSP, redaction) through aiohttp's
test client over a dashboard with a stub stack."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from bspec.ui.app import make_app
from bspec.ui.cache import JobCache, Query
from bspec.ui.security import CSP, Guard, redact, redact_tree
from bspec.ui.state import Dashboard, PoolState


def _task(i: int, state: str = "active", t: int = 0, **info: Any) -> dict[str, Any]:
    """Task `i`, its state changed at second `t` (microsecond `i`: each its own instant)."""
    body: dict[str, Any] = {
        "id": f"t{i:05d}",
        "state": state,
        "stateTransitionTime": f"2026-01-01T00:{t // 60:02d}:{t % 60:02d}.{i:06d}Z",
    }
    if info:
        body["executionInfo"] = info
        body["nodeInfo"] = {"nodeId": f"node-{i % 3}"}
    return body


class FakeJob:
    """The service's side of one job, answering as the filtered list would; counts calls."""

    def __init__(self, n: int) -> None:
        self.tasks = {f"t{i:05d}": _task(i) for i in range(n)}
        self.calls: list[str] = []

    def tasks_since(self, since: str | None) -> list[dict[str, Any]]:
        self.calls.append("list")
        rows = list(self.tasks.values())
        if since is not None:
            rows = [r for r in rows if r["stateTransitionTime"] >= since]
        pages = max(1, -(-len(rows) // 1000))
        self.calls.extend(["list"] * (pages - 1))
        return rows

    def counts(self) -> dict[str, int]:
        self.calls.append("counts")
        c = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
        for r in self.tasks.values():
            c[r["state"]] += 1
            if r["state"] == "completed":
                failed = (r.get("executionInfo") or {}).get("result") == "failure"
                c["failed" if failed else "succeeded"] += 1
        return c


@pytest.mark.parametrize("n", [10, 5000])
def test_a_warm_refresh_costs_two_requests_whatever_the_task_count(n: int) -> None:
    job, cache = FakeJob(n), JobCache("j")
    cache.refresh(job)
    assert len(cache.rows) == n
    job.calls.clear()
    cache.refresh(job)
    assert job.calls == ["counts", "list"]


def test_changes_since_the_last_refresh_are_read_and_deletes_read_the_job_again() -> None:
    job, cache = FakeJob(20), JobCache("j")
    cache.refresh(job)
    job.tasks["t00003"] = _task(
        3,
        "completed",
        5,
        exitCode=2,
        result="failure",
        startTime="2026-01-01T00:00:01Z",
        endTime="2026-01-01T00:00:05Z",
    )
    assert cache.refresh(job)
    row = cache.rows["t00003"]
    assert (row.shown_state, row.exit_code, row.node) == ("failed", 2, "node-0")
    assert cache.page(Query(state="failed"))[0] == 1
    assert not cache.refresh(job)  # nothing new
    del job.tasks["t00007"]
    cache.refresh(job)  # the counts tell: next time, read whole
    cache.refresh(job)
    assert len(cache.rows) == 19 and "t00007" not in cache.rows


def test_pages_sort_and_filter_ten_thousand_tasks() -> None:
    job, cache = FakeJob(10_000), JobCache("j")
    for i in range(0, 10_000, 10):
        job.tasks[f"t{i:05d}"] = _task(
            i, "completed", 1, exitCode=i % 3, result="failure" if i % 3 else "success"
        )
    cache.refresh(job)
    total, rows = cache.page(Query(limit=50, offset=50))
    assert total == 10_000 and [r.id for r in rows][:2] == ["t00050", "t00051"]
    assert cache.page(Query(prefix="t099"))[0] == 100
    assert cache.page(Query(state="active"))[0] == 9_000
    assert cache.page(Query(exit_code=1))[0] == 333
    total, rows = cache.page(Query(sort="exitCode", desc=True, limit=3))
    assert [r.exit_code for r in rows] == [None, None, None]
    total, rows = cache.page(Query(sort="exitCode", limit=1))
    assert rows[0].exit_code == 0


def test_the_id_order_follows_new_tasks_without_sorting_again() -> None:
    job, cache = FakeJob(100), JobCache("j")
    cache.refresh(job)
    for i in (5000, 2, 7):  # t05000 sorts last; t00002 and t00007 are already there
        job.tasks[f"t{i:05d}"] = _task(i, "running", 30)
    job.tasks["s1"] = {"id": "s1", "state": "active", "stateTransitionTime": "2026-01-01T00:01:00Z"}
    job.tasks["a1"] = {"id": "a1", "state": "active", "stateTransitionTime": "2026-01-01T00:01:00Z"}
    cache.refresh(job)
    everything = sorted(job.tasks)
    assert [r.id for r in cache.page(Query(limit=1000))[1]] == everything
    assert [r.id for r in cache.page(Query(limit=3, desc=True))[1]] == everything[::-1][:3]
    assert [r.id for r in cache.page(Query(limit=3, offset=101, desc=True))[1]] == ["s1", "a1"]
    assert cache.page(Query(prefix="t0000"))[0] == 10
    assert cache.page(Query(prefix="t0", state="running"))[0] == 3
    assert [r.id for r in cache.page(Query(prefix="t", desc=True, limit=2))[1]] == [
        "t05000",
        "t00099",
    ]


def test_redact_removes_sas_signatures_plain_and_encoded() -> None:
    text = "https://a.blob/c?sv=1&sig=abc%2Bdef&se=2 and sig%3Dxyz%2F1 and 'sig=q'"
    out = redact(text)
    assert "abc" not in out and "xyz" not in out and "'sig=REDACTED'" in out
    escaped = json.dumps({"cmd": 'echo "https://a/c?sv=1&sig=abc"'})  # JSON's \" after it
    assert json.loads(redact(escaped)) == {"cmd": 'echo "https://a/c?sv=1&sig=REDACTED"'}
    assert redact_tree({"a": ["x?sig=1", 2]}) == {"a": ["x?sig=REDACTED", 2]}


# --------------------------------------------------------------------------- the web app


def _stub_pool() -> PoolState:
    pool = PoolState("pool1")
    pool.info = {
        "id": "pool1",
        "state": "active",
        "allocationState": "resizing",
        "targetDedicatedNodes": 3,
        "currentDedicatedNodes": 2,
        "resizeErrors": [{"code": "AccountCoreQuotaReached", "message": "no more cores"}],
        "enableAutoScale": True,
        "autoScaleEvaluationInterval": "PT5M",
        "autoScaleRun": {"timestamp": "2026-01-01T00:05:00Z", "results": "$TargetDedicatedNodes=3"},
    }
    pool.nodes = [
        {"id": "n1", "state": "running", "runningTasksCount": 2},
        {"id": "n2", "state": "startTaskFailed", "errors": [{"code": "E1", "message": "boom"}]},
    ]
    return pool


def _stub_dashboard(tmp_path: Path) -> Dashboard:
    job = JobCache("job1")
    fake = FakeJob(120)
    job.refresh(fake)
    stack = SimpleNamespace(
        name="demo",
        spec=Path("demo.yaml"),
        tgt=SimpleNamespace(name="local"),
        desired=SimpleNamespace(stack="demo"),
        jobs={"job1": job},
        pools={"pool1": _stub_pool()},
        last_plan=None,
        error=None,
    )
    return Dashboard({"demo": stack}, tmp_path)  # type: ignore[dict-item]


def _with_client(
    tmp_path: Path, body: Callable[[TestClient[Any, Any], Guard], Awaitable[None]]
) -> None:
    async def run() -> None:
        guard = Guard()
        app = make_app(_stub_dashboard(tmp_path), guard, refresh=False)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            guard.port = client.port or 0
            await body(client, guard)

    asyncio.run(run())


def test_everything_answers_401_without_the_token(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], guard: Guard) -> None:
        for path in ("/", "/s/demo/jobs/job1", "/static/ui.js", "/events", "/nope"):
            r = await client.get(path)
            assert r.status == 401, path
            assert r.headers["Content-Security-Policy"] == CSP
        r = await client.get("/?token=wrong")
        assert r.status == 401
        r = await client.post("/s/demo/jobs/job1/rerun-failed")
        assert r.status == 401

    _with_client(tmp_path, body)


def test_the_token_opens_a_session_cookie_and_pages_carry_the_csp(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], guard: Guard) -> None:
        r = await client.get(f"/?token={guard.token}", allow_redirects=False)
        assert r.status == 303 and r.headers["Location"] == "/"
        assert (
            "HttpOnly" in r.headers["Set-Cookie"] and "SameSite=Strict" in r.headers["Set-Cookie"]
        )
        r = await client.get("/s/demo/jobs/job1?state=active&size=25")
        text = await r.text()
        assert r.status == 200, text
        assert r.headers["Content-Security-Policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert "<script>" not in text and not re.search(r"<script(?![^>]*\bsrc=)", text)
        assert "120" in text and "t00024" in text and "t00025" not in text
        r = await client.get("/s/demo/jobs/job1/tasks?prefix=t0011&page=1")
        assert "10 task(s)" in (await r.text()).replace('<span id="match-count">', "").replace(
            "</span>", ""
        )
        r = await client.get("/s/demo/jobs/job1/series.json")
        assert (await r.json())["series"][3] == [120]
        r = await client.get("/s/demo/jobs/nope")
        assert r.status == 404

    _with_client(tmp_path, body)


def test_posts_need_the_csrf_token_and_the_host_must_be_ours(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], guard: Guard) -> None:
        await client.get(f"/?token={guard.token}")
        r = await client.post("/s/demo/jobs/job1/rerun-failed", data={"csrf": "nope"})
        assert r.status == 403 and "CSRF" in await r.text()
        r = await client.post("/s/demo/jobs/job1/rerun-failed")
        assert r.status == 403
        r = await client.get("/", headers={"Host": "evil.example:80"})
        assert r.status == 403

    _with_client(tmp_path, body)


def test_the_pool_page_shows_the_heat_map_resize_errors_and_autoscale(tmp_path: Path) -> None:
    async def body(client: TestClient[Any, Any], guard: Guard) -> None:
        await client.get(f"/?token={guard.token}")
        text = await (await client.get("/s/demo/pools/pool1")).text()
        assert 'class="cell n-running" data-node="n1"' in text
        assert 'class="cell n-failed" data-node="n2"' in text and "E1: boom" in text
        assert "AccountCoreQuotaReached: no more cores" in text
        assert "2026-01-01T00:05:00Z" in text and "$TargetDedicatedNodes=3" in text
        r = await client.get("/events")
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert (await r.content.readline()).decode().startswith("event: tick")
        r.close()

    _with_client(tmp_path, body)


def test_task_environment_hides_the_specs_secret_names_whatever_they_look_like() -> None:
    """A `secretEnvironment` name need not look secret (`DB_URL`): the page never shows its
    value; other values show, SAS signatures redacted."""
    from bspec.ui.app import _env_rows

    task = {
        "environmentSettings": [
            {"name": "DB_URL", "value": "postgres://user:hunter2@db"},
            {"name": "MODE", "value": "fast"},
            {"name": "INPUT", "value": "https://a.blob/c?sv=1&sig=abc123"},
        ]
    }
    rows = dict(_env_rows(task, frozenset({"DB_URL"})))
    assert rows["DB_URL"] == "(redacted)" and rows["MODE"] == "fast"
    assert "abc123" not in rows["INPUT"]
