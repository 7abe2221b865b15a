"""The dashboard's web app: server-rendered Jinja2 pages, htmx fragments refreshed when the
server pushes a tick (server-sent events), JSON for the charts, and the actions, each a POST
behind a confirmation and the CSRF token that goes through bspec.operations."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from bspec.errors import BspecError
from bspec.operations import dashboard
from bspec.ui.cache import JobCache, Query
from bspec.ui.security import Guard, headers, middleware, redact, redact_tree
from bspec.ui.state import NODE_GROUPS, NODE_SERIES, Dashboard, PoolState, Stack

HERE = Path(__file__).resolve().parent  # the real folder, also under a strict editable install
PAGE_SIZES = (25, 50, 100, 200)
LOG_NAMES = {"stdout": "stdout.txt", "stderr": "stderr.txt"}
_SECRET_NAME = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|PASSWD|SAS|CONNECTION|CREDENTIAL", re.I)

DASH: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
GUARD: web.AppKey[Guard] = web.AppKey("guard", Guard)
TICK: web.AppKey[asyncio.Condition] = web.AppKey("tick", asyncio.Condition)
ENV: web.AppKey[jinja2.Environment] = web.AppKey("env", jinja2.Environment)
OPTIONS: web.AppKey[dict[str, Any]] = web.AppKey("options", dict)
PLANNING: web.AppKey[set[asyncio.Task[None]]] = web.AppKey("planning", set)


def _when(value: float | None) -> str:
    if not value:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(value))


def _dur(value: float | None) -> str:
    if value is None:
        return ""
    s = int(value)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{value:.1f}s" if value < 10 else f"{s}s"


def _plan_class(line: str) -> str:
    head = line.lstrip()[:3]
    for mark, cls in (("-/+", "replace"), ("+", "create"), ("-", "delete"), ("~", "update")):
        if head.startswith(mark):
            return cls
    return ""


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(HERE / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["when"] = _when
    env.filters["dur"] = _dur
    env.filters["redact"] = redact
    env.filters["plan_class"] = _plan_class
    env.filters["node_group"] = lambda s: NODE_GROUPS.get(str(s or "").lower(), "other")
    return env


def render(request: web.Request, name: str, status: int = 200, **ctx: Any) -> web.Response:
    guard = request.app[GUARD]
    text = (
        request.app[ENV]
        .get_template(name)
        .render(csrf=guard.csrf_of(request), request=request, dash=request.app[DASH], **ctx)
    )
    return web.Response(text=text, content_type="text/html", status=status)


def _stack(request: web.Request) -> Stack:
    s = request.app[DASH].stack(request.match_info["stack"])
    if s is None:
        raise web.HTTPNotFound(text="no such stack\n")
    return s


def _job(request: web.Request) -> tuple[Stack, JobCache]:
    s = _stack(request)
    cache = s.jobs.get(request.match_info["job"])
    if cache is None:
        raise web.HTTPNotFound(text="no such job in the spec\n")
    return s, cache


def _pool(request: web.Request) -> tuple[Stack, PoolState]:
    s = _stack(request)
    pool = s.pools.get(request.match_info["pool"])
    if pool is None:
        raise web.HTTPNotFound(text="no such pool in the spec\n")
    return s, pool


async def _run(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


def _int(text: str | None, default: int | None = None) -> int | None:
    try:
        return int(text) if text not in (None, "") else default
    except ValueError:
        return default


# --------------------------------------------------------------------------- pages


async def stacks_page(request: web.Request) -> web.Response:
    return render(request, "stacks.html", node_series=NODE_SERIES)


async def stacks_fragment(request: web.Request) -> web.Response:
    return render(request, "stacks_body.html", node_series=NODE_SERIES)


async def plan_page(request: web.Request) -> web.Response:
    s = _stack(request)
    try:
        shown = await _run(s.make_plan, request.app[DASH].folder)
    except BspecError as exc:
        status = 400 if exc.exit_code == 2 else 500
        return render(request, "error.html", status=status, message=str(exc), stack=s)
    return render(request, "plan.html", stack=s, plan=shown)


async def plan_apply(request: web.Request) -> web.StreamResponse:
    s = _stack(request)
    form = await request.post()
    pid = str(form.get("plan", ""))
    try:
        lines = await _run(s.apply_plan, pid)
    except KeyError:
        return render(
            request,
            "error.html",
            status=409,
            stack=s,
            message="that plan is no longer known; make the plan again",
        )
    except BspecError as exc:
        return render(request, "error.html", status=409, stack=s, message=str(exc))
    await _kick(request.app)
    return render(request, "applied.html", stack=s, lines=lines)


def _query(request: web.Request) -> Query:
    q = request.query
    size = _int(q.get("size"), 50) or 50
    size = size if size in PAGE_SIZES else 50
    page = max(1, _int(q.get("page"), 1) or 1)
    state = q.get("state") or None
    return Query(
        state=state,
        exit_code=_int(q.get("exit")),
        prefix=q.get("prefix") or None,
        sort=q.get("sort") or "id",
        desc=q.get("desc") == "1",
        offset=(page - 1) * size,
        limit=size,
    )


def _table(request: web.Request, s: Stack, cache: JobCache) -> dict[str, Any]:
    q = _query(request)
    total, rows = cache.page(q)
    page = q.offset // q.limit + 1
    pages = max(1, -(-total // q.limit))
    params = {
        k: v
        for k, v in (
            ("state", q.state or ""),
            ("exit", "" if q.exit_code is None else str(q.exit_code)),
            ("prefix", q.prefix or ""),
            ("sort", q.sort),
            ("desc", "1" if q.desc else ""),
            ("size", str(q.limit)),
        )
        if v
    }
    return {"q": q, "total": total, "rows": rows, "page": page, "pages": pages, "params": params}


def _job_ctx(s: Stack, cache: JobCache) -> dict[str, Any]:
    return {"stack": s, "job": cache, "throughput": cache.throughput(), "eta": cache.eta()}


async def job_page(request: web.Request) -> web.Response:
    s, cache = _job(request)
    return render(request, "job.html", **_job_ctx(s, cache), table=_table(request, s, cache))


async def job_counts(request: web.Request) -> web.Response:
    s, cache = _job(request)
    return render(request, "job_counts.html", **_job_ctx(s, cache))


async def job_tasks(request: web.Request) -> web.Response:
    s, cache = _job(request)
    return render(request, "job_tasks.html", stack=s, job=cache, table=_table(request, s, cache))


async def job_series(request: web.Request) -> web.Response:
    _, cache = _job(request)
    return web.json_response({"series": cache.series(), "version": cache.version})


async def job_timeline(request: web.Request) -> web.Response:
    _, cache = _job(request)
    rows = cache.timeline()
    nodes = sorted({r.node or "" for r in rows})
    index = {n: i for i, n in enumerate(nodes)}
    now = time.time()
    bars = [
        [index[r.node or ""], r.start, r.end or now, r.shown_state, r.id, r.retries] for r in rows
    ]
    return web.json_response({"nodes": nodes, "bars": bars, "now": now})


async def rerun_failed(request: web.Request) -> web.StreamResponse:
    s, cache = _job(request)
    if s.desired is None:
        return render(
            request,
            "error.html",
            status=409,
            stack=s,
            message="rerunning the spec's failed tasks needs the spec: run `bspec ui SPEC`",
        )
    try:
        done = await _run(dashboard.rerun_failed_of_job, s.tgt, s.desired, cache.job_id)
    except BspecError as exc:
        return render(request, "error.html", status=409, stack=s, message=str(exc))
    await _kick(request.app)
    raise web.HTTPSeeOther(
        f"/s/{s.name}/jobs/{cache.job_id}?done=Reactivated+{len(done)}+failed+task(s)"
    )


def _env_rows(task: dict[str, Any], secret: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """A task's environment for its page: values of the spec's `secretEnvironment` and
    registry-password names, and of names that look secret, never shown."""
    rows = []
    for e in task.get("environmentSettings") or ():
        name, value = str(e.get("name", "")), str(e.get("value", ""))
        if name in secret or _SECRET_NAME.search(name):
            value = "(redacted)"
        rows.append((name, redact(value)))
    return rows


async def task_page(request: web.Request) -> web.Response:
    s, cache = _job(request)
    tid = request.match_info["task"]
    task = await _run(dashboard.task_info, s.tgt, cache.job_id, tid)
    if task is None:
        raise web.HTTPNotFound(text="no such task\n")
    task = redact_tree(task)
    secret = frozenset(n for n, _digest in s.desired.secrets) if s.desired else frozenset()
    return render(request, "task.html", stack=s, job=cache, task=task, env=_env_rows(task, secret))


async def task_log(request: web.Request) -> web.StreamResponse:
    """The task's stdout/stderr as server-sent events, following while the task runs."""
    s, cache = _job(request)
    tid = request.match_info["task"]
    name = LOG_NAMES.get(request.query.get("stream", "stdout"), "stdout.txt")
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    headers(resp)
    await resp.prepare(request)
    offset, poll = 0, float(request.app[OPTIONS].get("log_poll", 1.0))
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        while True:
            try:  # the state first: once completed, the read after it has the last bytes
                info = await _run(dashboard.task_info, s.tgt, cache.job_id, tid)
                text, offset, source = await _run(
                    dashboard.task_log, s.tgt, s.desired, cache.job_id, tid, name, offset
                )
            except BspecError as exc:
                await _send(resp, "problem", {"message": str(exc)})
                break
            if text:
                await _send(resp, "chunk", {"text": text, "source": source})
            if info is None or info.get("state") == "completed":
                await _send(resp, "end", {"state": (info or {}).get("state")})
                break
            await asyncio.sleep(poll)
    return resp


async def task_file(request: web.Request) -> web.StreamResponse:
    """A task's log as a download (through the server: SAS signatures redacted)."""
    s, cache = _job(request)
    tid = request.match_info["task"]
    stream = request.match_info["name"].removesuffix(".txt")
    if stream not in LOG_NAMES:
        raise web.HTTPNotFound(text="only stdout.txt and stderr.txt\n")
    text, _, _ = await _run(
        dashboard.task_log, s.tgt, s.desired, cache.job_id, tid, LOG_NAMES[stream], 0
    )
    if text is None:
        raise web.HTTPNotFound(text="the task has no such file (yet)\n")
    return web.Response(
        text=text,
        content_type="text/plain",
        headers={"Content-Disposition": f'attachment; filename="{tid}-{stream}.txt"'},
    )


async def terminate(request: web.Request) -> web.StreamResponse:
    s, cache = _job(request)
    tid = request.match_info["task"]
    try:
        await _run(dashboard.terminate_task, s.tgt, cache.job_id, tid)
    except BspecError as exc:
        return render(request, "error.html", status=409, stack=s, message=str(exc))
    await _kick(request.app)
    raise web.HTTPSeeOther(f"/s/{s.name}/jobs/{cache.job_id}/tasks/{tid}?done=Terminated")


async def pool_page(request: web.Request) -> web.Response:
    s, pool = _pool(request)
    return render(request, "pool.html", stack=s, pool=pool, node_series=NODE_SERIES)


async def pool_nodes(request: web.Request) -> web.Response:
    s, pool = _pool(request)
    return render(request, "pool_body.html", stack=s, pool=pool, node_series=NODE_SERIES)


async def pool_series(request: web.Request) -> web.Response:
    _, pool = _pool(request)
    return web.json_response({"series": pool.series(), "labels": list(NODE_SERIES)})


async def resize(request: web.Request) -> web.StreamResponse:
    s, pool = _pool(request)
    form = await request.post()
    dedicated = _int(str(form.get("dedicated", "")), None)
    low = _int(str(form.get("low", "")), 0)
    if dedicated is None or dedicated < 0 or low is None or low < 0:
        return render(
            request,
            "error.html",
            status=400,
            stack=s,
            message="give the number of nodes (0 or more)",
        )
    try:
        await _run(dashboard.resize_pool, s.tgt, pool.pool_id, dedicated, low)
    except BspecError as exc:
        return render(request, "error.html", status=409, stack=s, message=str(exc))
    s.last_plan = None  # the pool no longer has the spec's size: the summary would mislead
    await _kick(request.app)
    raise web.HTTPSeeOther(f"/s/{s.name}/pools/{pool.pool_id}?done=Resizing")


# --------------------------------------------------------------------------- live updates


async def _send(resp: web.StreamResponse, event: str, data: dict[str, Any]) -> None:
    payload = redact(json.dumps(data))
    await resp.write(f"event: {event}\ndata: {payload}\n\n".encode())


async def events(request: web.Request) -> web.StreamResponse:
    """One `tick` event after each refresh: pages re-fetch their live parts."""
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    headers(resp)
    await resp.prepare(request)
    dash, cond = request.app[DASH], request.app[TICK]
    with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
        await _send(resp, "tick", {"version": dash.version})
        while True:
            async with cond:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(cond.wait(), 15.0)
            await _send(resp, "tick", {"version": dash.version})
    return resp


async def _kick(app: web.Application) -> None:
    """Refresh now (after an action) rather than at the next interval."""
    await asyncio.to_thread(app[DASH].refresh)
    async with app[TICK]:
        app[TICK].notify_all()


async def _refresher(app: web.Application) -> AsyncIterator[None]:
    interval = float(app[OPTIONS].get("interval", 2.0))

    async def loop() -> None:
        dash = app[DASH]
        for s in dash.stacks.values():  # in the background: the pages answer meanwhile
            app[PLANNING].add(asyncio.create_task(asyncio.to_thread(s.plan_quietly, dash.folder)))
        while True:
            await asyncio.to_thread(app[DASH].refresh)
            async with app[TICK]:
                app[TICK].notify_all()
            await asyncio.sleep(interval)

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    for planning in app[PLANNING]:
        with contextlib.suppress(Exception):
            await planning


def make_app(
    dash: Dashboard,
    guard: Guard,
    *,
    interval: float = 2.0,
    log_poll: float = 1.0,
    refresh: bool = True,
) -> web.Application:
    """The dashboard's aiohttp application over `dash` (refreshing every `interval` s)."""
    app = web.Application(middlewares=[middleware(guard)])
    app[DASH] = dash
    app[GUARD] = guard
    app[TICK] = asyncio.Condition()
    app[ENV] = environment()
    app[OPTIONS] = {"interval": interval, "log_poll": log_poll}
    app[PLANNING] = set()
    if refresh:
        app.cleanup_ctx.append(_refresher)
    r = app.router
    r.add_get("/", stacks_page)
    r.add_get("/stacks", stacks_fragment)
    r.add_get("/events", events)
    r.add_get("/s/{stack}/plan", plan_page)
    r.add_post("/s/{stack}/plan/apply", plan_apply)
    r.add_get("/s/{stack}/jobs/{job}", job_page)
    r.add_get("/s/{stack}/jobs/{job}/counts", job_counts)
    r.add_get("/s/{stack}/jobs/{job}/tasks", job_tasks)
    r.add_get("/s/{stack}/jobs/{job}/series.json", job_series)
    r.add_get("/s/{stack}/jobs/{job}/timeline.json", job_timeline)
    r.add_post("/s/{stack}/jobs/{job}/rerun-failed", rerun_failed)
    r.add_get("/s/{stack}/jobs/{job}/tasks/{task}", task_page)
    r.add_get("/s/{stack}/jobs/{job}/tasks/{task}/log", task_log)
    r.add_get("/s/{stack}/jobs/{job}/tasks/{task}/files/{name}", task_file)
    r.add_post("/s/{stack}/jobs/{job}/tasks/{task}/terminate", terminate)
    r.add_get("/s/{stack}/pools/{pool}", pool_page)
    r.add_get("/s/{stack}/pools/{pool}/nodes", pool_nodes)
    r.add_get("/s/{stack}/pools/{pool}/series.json", pool_series)
    r.add_post("/s/{stack}/pools/{pool}/resize", resize)
    r.add_static("/static", HERE / "static", append_version=False)
    return app
