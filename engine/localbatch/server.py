"""The Batch REST API on loopback: routing, SharedKey auth, api-versions, errors, CRUD.

One catch-all aiohttp route dispatches on (method, path) through `ROUTES`, so an unknown path
or verb still answers a Batch error body, and every request is counted by operationId before
latency and fault injection apply. Handlers read and write the `Store` synchronously (one
thread, one writer) and hand everything that involves processes to the `Scheduler`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import mimetypes
import os
import random
import re
import shutil
import stat
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from aiohttp import web

from . import odata
from .resources import (
    MAX_DURATION,
    BatchError,
    check_duration,
    check_id,
    check_int,
    http_date,
    invalid,
    iso,
    lenient,
    missing,
    new_etag,
    parse_iso,
)
from .scheduler import Scheduler
from .store import Row, Store

MIN_API = "2023-05-01.17.0"
MAX_API = "2025-06-01.21.0"
JSON_TYPE = "application/json;odata=minimalmetadata"
MAX_BODY = 4 * 1024 * 1024
MAX_COLLECTION_BODY = 1024 * 1024
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)
SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


@dataclass
class Settings:
    """What `/_local/settings` reads and changes at run time."""

    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: ["500", "503", "429", "drop"])
    delete_delay: float = 1.0
    max_processes: int = os.cpu_count() or 1

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "faultRate": self.fault_rate,
            "faultKinds": list(self.fault_kinds),
            "deleteDelay": self.delete_delay,
            "maxProcesses": self.max_processes,
        }


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None


Handler = Callable[["Call"], Awaitable[Reply] | Reply]


@dataclass
class Call:
    """One parsed API request, as handlers see it."""

    request: web.Request
    op: str
    params: dict[str, str]
    query: dict[str, str]
    base: str
    body: Any = None

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise BatchError(
                400, "InvalidRequestBody", "The request body is missing or is not a JSON object."
            )
        return self.body


def _api_key(version: str) -> tuple[int, ...]:
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:\.(\d+)\.(\d+))?", version.strip())
    if not m:
        raise ValueError(version)
    return (int(m[1]), int(m[2]), int(m[3]))


class Service:
    """The application: routes, auth, accounting, and the handlers of every operation."""

    def __init__(
        self,
        home: Path,
        account: str,
        key: str,
        settings: Settings,
        *,
        min_api: str = MIN_API,
        max_api: str = MAX_API,
        bearer_token: str | None = None,
    ) -> None:
        self.home = home
        self.account = account
        self.key = base64.b64decode(key)
        self.settings = settings
        self.min_api = _api_key(min_api)
        self.max_api = _api_key(max_api)
        self.api_range = [min_api, max_api]
        self.bearer_token = bearer_token
        self.store = Store(home / "batch" / "batch.sqlite")
        self.nodes_root = home / "batch" / "nodes"
        self.scheduler = Scheduler(self.store, self.nodes_root, account, settings)
        self.counts: dict[str, dict[str, int]] = {}
        self.routes = self._routes()
        self.app = web.Application(client_max_size=MAX_BODY + 1)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.app.on_startup.append(self._startup)
        self.app.on_shutdown.append(self._shutdown)

    async def _startup(self, _app: web.Application) -> None:
        loop = asyncio.get_running_loop()
        self.store.commit_later(lambda commit: loop.call_later(0.005, commit))
        await self.scheduler.start()

    async def _shutdown(self, _app: web.Application) -> None:
        await self.scheduler.stop()
        self.store.close()

    # ------------------------------------------------------------------ routing

    def _routes(self) -> list[tuple[str, re.Pattern[str], str, Handler]]:
        table: list[tuple[str, str, str, Handler]] = [
            ("GET", "/pools", "Pools_ListPools", self.list_pools),
            ("POST", "/pools", "Pools_CreatePool", self.create_pool),
            ("GET", "/pools/{poolId}", "Pools_GetPool", self.get_pool),
            ("HEAD", "/pools/{poolId}", "Pools_PoolExists", self.pool_exists),
            ("PATCH", "/pools/{poolId}", "Pools_UpdatePool", self.update_pool),
            ("DELETE", "/pools/{poolId}", "Pools_DeletePool", self.delete_pool),
            (
                "POST",
                "/pools/{poolId}/updateproperties",
                "Pools_ReplacePoolProperties",
                self.replace_pool,
            ),
            ("POST", "/pools/{poolId}/resize", "Pools_ResizePool", self.resize_pool),
            ("POST", "/pools/{poolId}/stopresize", "Pools_StopPoolResize", self.stop_resize),
            ("POST", "/pools/{poolId}/removenodes", "Pools_RemoveNodes", self.remove_nodes),
            ("GET", "/nodecounts", "Pools_ListPoolNodeCounts", self.node_counts),
            ("GET", "/pools/{poolId}/nodes", "Nodes_ListNodes", self.list_nodes),
            ("GET", "/pools/{poolId}/nodes/{nodeId}", "Nodes_GetNode", self.get_node),
            ("POST", "/pools/{poolId}/nodes/{nodeId}/reboot", "Nodes_RebootNode", self.reboot_node),
            (
                "GET",
                "/pools/{poolId}/nodes/{nodeId}/files",
                "Nodes_ListNodeFiles",
                self.list_node_files,
            ),
            (
                "GET",
                "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
                "Nodes_GetNodeFile",
                self.get_node_file,
            ),
            (
                "HEAD",
                "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
                "Nodes_GetNodeFileProperties",
                self.get_node_file,
            ),
            (
                "POST",
                "/pools/{poolId}/nodes/{nodeId}/disablescheduling",
                "Nodes_DisableNodeScheduling",
                self.disable_scheduling,
            ),
            (
                "POST",
                "/pools/{poolId}/nodes/{nodeId}/enablescheduling",
                "Nodes_EnableNodeScheduling",
                self.enable_scheduling,
            ),
            (
                "DELETE",
                "/pools/{poolId}/nodes/{nodeId}/files/{filePath}",
                "Nodes_DeleteNodeFile",
                self.delete_node_file,
            ),
            (
                "DELETE",
                "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
                "Tasks_DeleteTaskFile",
                self.delete_task_file,
            ),
            ("GET", "/jobs", "Jobs_ListJobs", self.list_jobs),
            ("POST", "/jobs", "Jobs_CreateJob", self.create_job),
            ("GET", "/jobs/{jobId}", "Jobs_GetJob", self.get_job),
            ("PATCH", "/jobs/{jobId}", "Jobs_UpdateJob", self.update_job),
            ("PUT", "/jobs/{jobId}", "Jobs_ReplaceJob", self.replace_job),
            ("DELETE", "/jobs/{jobId}", "Jobs_DeleteJob", self.delete_job),
            ("POST", "/jobs/{jobId}/disable", "Jobs_DisableJob", self.disable_job),
            ("POST", "/jobs/{jobId}/enable", "Jobs_EnableJob", self.enable_job),
            ("POST", "/jobs/{jobId}/terminate", "Jobs_TerminateJob", self.terminate_job),
            ("GET", "/jobs/{jobId}/taskcounts", "Jobs_GetJobTaskCounts", self.task_counts),
            ("POST", "/jobs/{jobId}/tasks", "Tasks_CreateTask", self.create_task),
            (
                "POST",
                "/jobs/{jobId}/addtaskcollection",
                "Tasks_CreateTaskCollection",
                self.create_task_collection,
            ),
            ("GET", "/jobs/{jobId}/tasks", "Tasks_ListTasks", self.list_tasks),
            ("GET", "/jobs/{jobId}/tasks/{taskId}", "Tasks_GetTask", self.get_task),
            ("PUT", "/jobs/{jobId}/tasks/{taskId}", "Tasks_ReplaceTask", self.replace_task),
            ("DELETE", "/jobs/{jobId}/tasks/{taskId}", "Tasks_DeleteTask", self.delete_task),
            (
                "POST",
                "/jobs/{jobId}/tasks/{taskId}/terminate",
                "Tasks_TerminateTask",
                self.terminate_task,
            ),
            (
                "POST",
                "/jobs/{jobId}/tasks/{taskId}/reactivate",
                "Tasks_ReactivateTask",
                self.reactivate_task,
            ),
            (
                "GET",
                "/jobs/{jobId}/tasks/{taskId}/files",
                "Tasks_ListTaskFiles",
                self.list_task_files,
            ),
            (
                "GET",
                "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
                "Tasks_GetTaskFile",
                self.get_task_file,
            ),
            (
                "HEAD",
                "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
                "Tasks_GetTaskFileProperties",
                self.get_task_file,
            ),
        ]
        out = []
        for method, path, op, handler in table:
            pattern = re.sub(r"\{filePath\}", r"(?P<filePath>.+)", path)
            pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
            out.append((method, re.compile(f"^{pattern}/?$"), op, handler))
        return out

    def _match(self, method: str, raw_path: str) -> tuple[str, Handler, dict[str, str]] | None:
        """Route on the raw path so that an escaped `/` inside a file path stays one segment."""
        known_path = False
        for m, pattern, op, handler in self.routes:
            found = pattern.match(raw_path)
            if not found:
                continue
            known_path = True
            if m == method:
                return op, handler, {k: unquote(v) for k, v in found.groupdict().items()}
        if known_path:
            raise BatchError(
                405,
                "UnsupportedHttpVerb",
                f"The resource doesn't support the specified HTTP verb {method}.",
            )
        return None

    # ------------------------------------------------------------------ the pipeline

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_local/"):
            return await self.local(request)
        request_id = str(uuid.uuid4())
        raw_path, _, raw_query = request.raw_path.partition("?")
        op = "Unknown"
        try:
            matched = self._match(request.method, raw_path)
        except BatchError as exc:
            self._count("Unknown", request.method)
            return self._error(request, exc, request_id)
        if matched is not None:
            op = matched[0]
        self._count(op, request.method)
        try:
            if self.settings.latency_ms > 0:
                await asyncio.sleep(self.settings.latency_ms / 1000)
            fault = self._fault(request)
            if fault is not None:
                return fault
            self._authenticate(request, raw_path, raw_query)
            query = {k: v[0] for k, v in parse_qs(raw_query).items()}
            self._check_api_version(query)
            if matched is None:
                raise BatchError(404, "ResourceNotFound", "The specified resource does not exist.")
            op, handler, params = matched
            call = Call(request, op, params, query, f"{request.scheme}://{request.host}")
            call.body = await self._read_body(request, op)
            result = handler(call)
            reply = await result if asyncio.iscoroutine(result) else result
            assert isinstance(reply, Reply)
            return self._reply(request, reply, request_id)
        except BatchError as exc:
            return self._error(request, exc, request_id)

    def _count(self, op: str, method: str) -> None:
        entry = self.counts.setdefault(op, {"read": 0, "write": 0})
        entry["read" if method in ("GET", "HEAD") else "write"] += 1

    def _fault(self, request: web.Request) -> web.StreamResponse | None:
        rate = self.settings.fault_rate
        kinds = self.settings.fault_kinds
        if rate <= 0 or not kinds or random.random() >= rate:
            return None
        kind = random.choice(kinds)
        request_id = str(uuid.uuid4())
        if kind == "drop":
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # nothing more to say on a dropped connection
        if kind == "429":
            return self._error(
                request,
                BatchError(
                    429, "TooManyRequests", "Too many requests.", headers={"Retry-After": "1"}
                ),
                request_id,
            )
        if kind == "503":
            return self._error(
                request,
                BatchError(503, "ServerBusy", "The server is busy.", headers={"Retry-After": "1"}),
                request_id,
            )
        return self._error(
            request,
            BatchError(
                500,
                "InternalError",
                "Server encountered an internal error. Please try again after some time.",
            ),
            request_id,
        )

    def _authenticate(self, request: web.Request, raw_path: str, raw_query: str) -> None:
        auth = request.headers.get("Authorization", "")
        if self.bearer_token is not None and auth.startswith("Bearer "):
            if hmac.compare_digest(auth[len("Bearer ") :], self.bearer_token):
                return
            raise BatchError(
                401,
                "AuthenticationFailed",
                "Server failed to authenticate the request. The access token is invalid.",
            )
        if not auth:
            raise BatchError(
                401,
                "AuthenticationFailed",
                "Server failed to authenticate the "
                "request. Make sure the value of Authorization header is formed "
                "correctly including the signature.",
            )
        if not auth.startswith("SharedKey ") or ":" not in auth:
            raise BatchError(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information "
                "is not given in the correct format. Check the value of "
                "Authorization header.",
            )
        name, _, signature = auth[len("SharedKey ") :].partition(":")
        expected = self._signature(request, raw_path, raw_query, name)
        if name != self.account or not hmac.compare_digest(signature.strip(), expected):
            raise BatchError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the "
                "request. Make sure the value of Authorization header is formed "
                "correctly including the signature.",
                {
                    "AuthenticationErrorDetail": "The MAC signature found in the "
                    "HTTP request is not the same as any computed signature."
                },
            )
        self._check_date(request)

    def _check_date(self, request: web.Request) -> None:
        """A signed request is good for 15 minutes either side of its ocp-date (or Date), as
        on Batch, so a captured request cannot be replayed later."""
        raw = request.headers.get("ocp-date") or request.headers.get("Date")
        if not raw:
            return
        try:
            when = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            raise BatchError(
                400,
                "InvalidHeaderValue",
                "The value for one of the HTTP headers is not in the correct format.",
                {"HeaderName": "ocp-date", "HeaderValue": raw},
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        if abs(dt.datetime.now(dt.UTC) - when) > MAX_CLOCK_SKEW:
            raise BatchError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the "
                "request. The request date is more than 15 minutes away from "
                "the server's time.",
                {
                    "AuthenticationErrorDetail": f"Request date {raw} is outside "
                    "the allowed clock skew of 15 minutes."
                },
            )

    def _signature(self, request: web.Request, raw_path: str, raw_query: str, name: str) -> str:
        """The string Batch signs (see azure.batch._patch.BatchSharedKeyAuthPolicy)."""
        headers = {k.lower(): v for k, v in request.headers.items() if v}
        if request.method not in ("GET", "HEAD") and "content-length" not in headers:
            headers["content-length"] = "0"
        text = request.method + "\n"
        text += "\n".join(headers.get(h, "") for h in SIGNED_HEADERS) + "\n"
        ocp = sorted((k, v) for k, v in headers.items() if "ocp-" in k)
        for k, v in ocp:
            text += f"{k}:{v}\n"
        text += f"/{name}{raw_path}"
        parsed = parse_qs(raw_query)
        for k in sorted(parsed):
            if parsed[k][0]:
                text += f"\n{k}:{parsed[k][0]}"
        digest = hmac.new(self.key, text.encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _check_api_version(self, query: dict[str, str]) -> None:
        version = query.get("api-version")
        if not version:
            raise BatchError(
                400,
                "MissingRequiredQueryParameter",
                "A query parameter that's mandatory for this request is not specified.",
                {"QueryParameterName": "api-version"},
            )
        try:
            key = _api_key(version)
        except ValueError:
            key = (0,)
        if not self.min_api <= key <= self.max_api:
            raise BatchError(
                400,
                "UnsupportedRequestVersion",
                "The specified api-version is "
                f"not supported; this service accepts {self.api_range[0]} to "
                f"{self.api_range[1]}.",
                {"QueryParameterName": "api-version", "QueryParameterValue": version},
            )

    async def _read_body(self, request: web.Request, op: str) -> Any:
        if request.method in ("GET", "HEAD", "DELETE") or not request.can_read_body:
            return None
        limit = MAX_COLLECTION_BODY if op == "Tasks_CreateTaskCollection" else MAX_BODY
        if (request.content_length or 0) > limit:
            raise BatchError(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
                {"MaxLimit": str(limit)},
            )
        raw = await request.read()
        if len(raw) > limit:
            raise BatchError(
                413,
                "RequestBodyTooLarge",
                "The request body is too large and exceeds the maximum permissible limit.",
                {"MaxLimit": str(limit)},
            )
        if not raw.strip():
            return None
        try:
            return lenient(json.loads(raw))
        except (ValueError, UnicodeDecodeError):
            raise BatchError(
                400, "InvalidRequestBody", "The specified Request Body is not syntactically valid."
            ) from None

    def _common(self, request: web.Request, request_id: str, headers: dict[str, str]) -> None:
        headers["request-id"] = request_id
        client_id = request.headers.get("client-request-id")
        if client_id:
            headers["client-request-id"] = client_id

    def _reply(self, request: web.Request, reply: Reply, request_id: str) -> web.StreamResponse:
        headers = dict(reply.headers)
        self._common(request, request_id, headers)
        if reply.raw is not None:
            return web.Response(status=reply.status, body=reply.raw, headers=headers)
        if reply.body is None or request.method == "HEAD":
            return web.Response(status=reply.status, headers=headers)
        headers["Content-Type"] = JSON_TYPE
        return web.Response(
            status=reply.status, headers=headers, body=json.dumps(reply.body).encode()
        )

    def _error(self, request: web.Request, exc: BatchError, request_id: str) -> web.Response:
        headers = dict(exc.headers)
        self._common(request, request_id, headers)
        if request.method == "HEAD" or exc.status == 304:
            return web.Response(status=exc.status, headers=headers)
        body = {
            "odata.metadata": f"{request.scheme}://{request.host}/$metadata#Microsoft.Azure"
            ".Batch.Protocol.Entities.Container.errors/@Element",
            **exc.body(request_id),
        }
        headers["Content-Type"] = JSON_TYPE
        return web.Response(status=exc.status, headers=headers, body=json.dumps(body).encode())

    # ------------------------------------------------------------------ /_local

    async def local(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        try:
            loopback = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return web.json_response({"error": "loopback only"}, status=403)
        path, method = request.path, request.method
        if path == "/_local/health" and method == "GET":
            return web.json_response(
                {
                    "status": "ok",
                    "account": self.account,
                    "pid": os.getpid(),
                    "apiVersions": self.api_range,
                }
            )
        if path == "/_local/requests" and method == "GET":
            read = sum(v["read"] for v in self.counts.values())
            write = sum(v["write"] for v in self.counts.values())
            return web.json_response({"read": read, "write": write, "byOperation": self.counts})
        if path == "/_local/requests/reset" and method == "POST":
            self.counts = {}
            return web.json_response({"read": 0, "write": 0, "byOperation": {}})
        if path == "/_local/settings" and method == "GET":
            return web.json_response(self.settings.to_json())
        if path == "/_local/settings" and method == "PUT":
            try:
                data = await request.json()
                self._apply_settings(data)
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            return web.json_response(self.settings.to_json())
        if path == "/_local/status" and method == "GET":
            return web.json_response(self.scheduler.status())
        return web.json_response({"error": f"no such path {path}"}, status=404)

    def _apply_settings(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise ValueError("settings must be a JSON object")
        s = self.settings
        for key, value in data.items():
            if key == "latencyMs":
                s.latency_ms = max(0.0, float(value))
            elif key == "faultRate":
                s.fault_rate = min(1.0, max(0.0, float(value)))
            elif key == "faultKinds":
                kinds = [str(k) for k in value]
                bad = set(kinds) - {"500", "503", "429", "drop"}
                if bad:
                    raise ValueError(f"unknown fault kinds {sorted(bad)}")
                s.fault_kinds = kinds
            elif key == "deleteDelay":
                s.delete_delay = max(0.0, float(value))
            elif key == "maxProcesses":
                s.max_processes = max(1, int(value))
                self.scheduler.wake()
            else:
                raise ValueError(f"unknown setting {key!r}")

    # ------------------------------------------------------------------ helpers

    def _pool(self, pool_id: str) -> Row:
        row = self.store.get("pool", "", pool_id)
        if row is None:
            raise BatchError(404, "PoolNotFound", "The specified pool does not exist.")
        return row

    def _job(self, job_id: str) -> Row:
        row = self.store.get("job", "", job_id)
        if row is None:
            raise BatchError(404, "JobNotFound", "The specified job does not exist.")
        return row

    def _task(self, job_id: str, task_id: str) -> Row:
        job = self._job(job_id)
        row = self.store.get("task", job.key, task_id)
        if row is None:
            raise BatchError(404, "TaskNotFound", "The specified task does not exist.")
        return row

    def _node(self, pool_id: str, node_id: str) -> Row:
        pool = self._pool(pool_id)
        row = self.store.get("node", pool.key, node_id)
        if row is None:
            raise BatchError(404, "NodeNotFound", "The specified node does not exist.")
        return row

    @staticmethod
    def _conditions(call: Call, body: dict[str, Any] | None, write: bool) -> None:
        """If-Match / If-None-Match / If-(Un)Modified-Since, as Batch applies them."""
        etag = body.get("eTag") if body else None
        fail = BatchError(
            412 if write else 304,
            "ConditionNotMet",
            "The condition specified using HTTP conditional header(s) is not met.",
        )
        if_match = call.header("If-Match")
        if if_match is not None:
            tags = {t.strip().strip('"') for t in if_match.split(",")}
            if body is None or ("*" not in tags and etag not in tags):
                fail.status = 412
                raise fail
        if_none = call.header("If-None-Match")
        if if_none is not None and body is not None:
            tags = {t.strip().strip('"') for t in if_none.split(",")}
            if "*" in tags or etag in tags:
                raise fail
        modified = body.get("lastModified") if body else None
        for name, newer in (("If-Modified-Since", True), ("If-Unmodified-Since", False)):
            value = call.header(name)
            if value is None or not modified:
                continue
            try:
                since = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                raise BatchError(
                    400, "InvalidHeaderValue", f"The value for {name} is not valid."
                ) from None
            changed = parse_iso(modified).replace(microsecond=0) > since
            if newer and not changed:
                raise fail
            if not newer and changed:
                fail.status = 412
                raise fail

    @staticmethod
    def _entity_headers(body: dict[str, Any], url: str | None = None) -> dict[str, str]:
        headers = {"ETag": str(body["eTag"]), "Last-Modified": http_date(body["lastModified"])}
        if url:
            headers["DataServiceId"] = url
        return headers

    def _entity(self, call: Call, body: dict[str, Any], kind: str) -> Reply:
        self._conditions(call, body, write=False)
        out = odata.select(body, self._select(call))
        out = {"odata.metadata": f"{call.base}/$metadata#{kind}/@Element", **out}
        return Reply(200, out, self._entity_headers(body))

    @staticmethod
    def _select(call: Call) -> list[str] | None:
        text = call.query.get("$select")
        return [s.strip() for s in text.split(",")] if text else None

    def _page(
        self,
        call: Call,
        kind: str,
        parent: str,
        allowed: frozenset[str],
        meta_name: str,
        shape: Callable[[Row], dict[str, Any]] | None = None,
    ) -> Reply:
        """One page of a list: filter, select, maxresults and the nextLink's skiptoken."""
        limit = self._maxresults(call)
        filter_text = call.query.get("$filter")
        try:
            node = odata.parse(filter_text, allowed) if filter_text else None
        except odata.FilterError as exc:
            raise self._bad_filter(filter_text, str(exc)) from None
        hint = odata.state_hint(filter_text) if kind in ("task", "job", "pool") else None
        # Shaped bodies (nodes) have derived fields the stored JSON lacks: no SQL prefilter.
        where = odata.to_sql(node) if node is not None and shape is None else None

        def pred(body: dict[str, Any]) -> bool:
            return node is None or odata.evaluate(node, body)

        after = self._skiptoken(call)
        fields = self._select(call)
        if not filter_text and not fields and shape is None:
            return self._raw_page(call, kind, parent, meta_name, after, limit)
        values: list[dict[str, Any]] = []
        cursor = returned = after
        more = False
        while not more:
            rows = list(
                self.store.iter(kind, parent, after=cursor, state=hint, limit=1000, where=where)
            )
            for row in rows:
                body = shape(row) if shape else row.body
                if pred(body):
                    if len(values) == limit:
                        more = True
                        break
                    values.append(odata.select(body, fields))
                    returned = row.seq
                cursor = row.seq
            if len(rows) < 1000:
                break
        out: dict[str, Any] = {
            "odata.metadata": f"{call.base}/$metadata#{meta_name}",
            "value": values,
        }
        if more:
            out["odata.nextLink"] = self.next_link(call, returned)
        return Reply(200, out)

    def _raw_page(
        self, call: Call, kind: str, parent: str, meta_name: str, after: int, limit: int
    ) -> Reply:
        """An unfiltered, unselected page, spliced from the stored JSON without decoding it."""
        rows = self.store.iter_raw(kind, parent, after=after, limit=limit + 1)
        more = len(rows) > limit
        rows = rows[:limit]
        head = json.dumps({"odata.metadata": f"{call.base}/$metadata#{meta_name}"})[:-1]
        text = head + ', "value": [' + ",".join(body for _seq, body in rows) + "]"
        if more:
            text += ', "odata.nextLink": ' + json.dumps(self.next_link(call, rows[-1][0]))
        return Reply(200, None, {"Content-Type": JSON_TYPE}, raw=(text + "}").encode())

    @staticmethod
    def _maxresults(call: Call) -> int:
        text = call.query.get("maxresults")
        if text is None:
            return 1000
        try:
            value = int(text)
        except ValueError:
            value = 0
        if not 1 <= value <= 1000:
            raise BatchError(
                400,
                "OutOfRangeQueryParameterValue",
                "One of the query "
                "parameters specified in the request URI is outside the "
                "permissible range.",
                {
                    "QueryParameterName": "maxresults",
                    "QueryParameterValue": text,
                    "MinLimit": "1",
                    "MaxLimit": "1000",
                },
            )
        return value

    @staticmethod
    def _skiptoken(call: Call) -> int:
        text = call.query.get("$skiptoken")
        if not text:
            return 0
        m = re.fullmatch(r"s(\d+)", text)
        if not m:
            raise BatchError(
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid.",
                {"QueryParameterName": "$skiptoken", "QueryParameterValue": text},
            )
        return int(m[1])

    @staticmethod
    def _bad_filter(text: str | None, reason: str) -> BatchError:
        return BatchError(
            400,
            "InvalidQueryParameterValue",
            "Value for one of the query parameters specified in the request URI is invalid.",
            {"QueryParameterName": "$filter", "QueryParameterValue": text or "", "Reason": reason},
        )

    @staticmethod
    def _touch(body: dict[str, Any]) -> None:
        body["eTag"] = new_etag()
        body["lastModified"] = iso()

    def _write_reply(self, status: int, body: dict[str, Any], url: str) -> Reply:
        return Reply(status, None, self._entity_headers(body, url))

    # ------------------------------------------------------------------ pools

    def create_pool(self, call: Call) -> Reply:
        req = call.json_body()
        pool_id = check_id("id", req.get("id"))
        if not req.get("vmSize"):
            raise missing("vmSize")
        existing = self.store.get("pool", "", pool_id)
        if existing is not None:
            if existing.body.get("state") == "deleting":
                raise BatchError(
                    409,
                    "PoolBeingDeleted",
                    "The specified pool has been marked for deletion and is being reclaimed.",
                )
            raise BatchError(409, "PoolExists", "The specified pool already exists.")
        dedicated = req.get("targetDedicatedNodes", 0) or 0
        low = req.get("targetLowPriorityNodes", 0) or 0
        check_int("targetDedicatedNodes", dedicated, 0, 1000)
        check_int("targetLowPriorityNodes", low, 0, 1000)
        slots = req.get("taskSlotsPerNode", 1)
        check_int("taskSlotsPerNode", slots, 1, 256)
        check_duration("resizeTimeout", req.get("resizeTimeout"))
        if req.get("startTask") is not None:
            self._check_start_task(req["startTask"])
        stamp = iso()
        url = f"{call.base}/pools/{pool_id}"
        body: dict[str, Any] = {"id": pool_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        autoscale = bool(req.get("enableAutoScale", False))
        body.update(
            {
                "url": url,
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
                "state": "active",
                "stateTransitionTime": stamp,
                "allocationState": "resizing" if (dedicated or low) and not autoscale else "steady",
                "allocationStateTransitionTime": stamp,
                "vmSize": str(req["vmSize"]).lower(),
            }
        )
        for key in ("virtualMachineConfiguration", "networkConfiguration", "resourceTags"):
            if req.get(key) is not None:
                body[key] = req[key]
        body["resizeTimeout"] = req.get("resizeTimeout") or "PT15M"
        body.update(
            {
                "currentDedicatedNodes": 0,
                "currentLowPriorityNodes": 0,
                "targetDedicatedNodes": 0 if autoscale else dedicated,
                "targetLowPriorityNodes": 0 if autoscale else low,
                "enableAutoScale": autoscale,
                "enableInterNodeCommunication": bool(
                    req.get("enableInterNodeCommunication", False)
                ),
            }
        )
        if autoscale:
            body["autoScaleFormula"] = req.get("autoScaleFormula", "")
            body["autoScaleEvaluationInterval"] = req.get("autoScaleEvaluationInterval", "PT15M")
        for key in (
            "startTask",
            "certificateReferences",
            "applicationPackageReferences",
            "userAccounts",
            "metadata",
            "mountConfiguration",
            "upgradePolicy",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body["taskSlotsPerNode"] = slots
        policy = dict(req.get("taskSchedulingPolicy") or {})
        policy.setdefault("nodeFillType", "spread")
        body["taskSchedulingPolicy"] = policy
        body["targetNodeCommunicationMode"] = req.get("targetNodeCommunicationMode", "default")
        body["currentNodeCommunicationMode"] = "simplified"
        row = Row("pool", "", pool_id, body, {})
        self.store.put(row)
        self.scheduler.pool_changed(row.key, "requeue")
        return Reply(201, None, {**self._entity_headers(body, url), "Location": url})

    def _check_start_task(self, start: Any) -> None:
        if not isinstance(start, dict):
            raise invalid("startTask", start, "The start task must be an object.")
        if not start.get("commandLine"):
            raise missing("startTask.commandLine")
        check_int("startTask.maxTaskRetryCount", start.get("maxTaskRetryCount"), -1, None)

    def get_pool(self, call: Call) -> Reply:
        row = self._pool(call.params["poolId"])
        return self._entity(call, row.body, "pools")

    def pool_exists(self, call: Call) -> Reply:
        row = self.store.get("pool", "", call.params["poolId"])
        if row is None:
            return Reply(404)
        self._conditions(call, row.body, write=False)
        return Reply(200, None, self._entity_headers(row.body))

    def list_pools(self, call: Call) -> Reply:
        return self._page(call, "pool", "", odata.POOL_PROPS, "pools")

    def _writable_pool(self, call: Call) -> Row:
        row = self._pool(call.params["poolId"])
        self._conditions(call, row.body, write=True)
        if row.body["state"] == "deleting":
            raise BatchError(
                409,
                "PoolBeingDeleted",
                "The specified pool has been marked for deletion and is being reclaimed.",
            )
        return row

    def update_pool(self, call: Call) -> Reply:
        row = self._writable_pool(call)
        req = call.json_body()
        body = row.body
        if req.get("startTask") is not None:
            self._check_start_task(req["startTask"])
        empty = (
            body["currentDedicatedNodes"] + body["currentLowPriorityNodes"] == 0
            and body["allocationState"] == "steady"
        )
        for key in (
            "vmSize",
            "taskSlotsPerNode",
            "virtualMachineConfiguration",
            "networkConfiguration",
            "enableInterNodeCommunication",
            "userAccounts",
            "mountConfiguration",
            "resourceTags",
            "taskSchedulingPolicy",
            "upgradePolicy",
            "displayName",
        ):
            if key in req and req[key] is not None and req[key] != body.get(key):
                if not empty:
                    raise BatchError(
                        409,
                        "OperationNotValidOnPool",
                        f"{key} can be changed only when the pool has no nodes.",
                        {"PropertyName": key},
                    )
                if key == "taskSlotsPerNode":
                    check_int(key, req[key], 1, 256)
                body[key] = str(req[key]).lower() if key == "vmSize" else req[key]
        for key in (
            "startTask",
            "metadata",
            "certificateReferences",
            "applicationPackageReferences",
            "targetNodeCommunicationMode",
        ):
            if key in req and req[key] is not None:
                if key == "startTask" and not req[key]:
                    body.pop(key, None)
                else:
                    body[key] = req[key]
        self._touch(body)
        self.store.put(row)
        return self._write_reply(200, body, body["url"])

    def replace_pool(self, call: Call) -> Reply:
        row = self._writable_pool(call)
        req = call.json_body()
        # The reference requires certificateReferences too, but azure-batch 15.x never sends
        # it (certificates are retired), and Batch accepts that.
        for key in ("applicationPackageReferences", "metadata"):
            if req.get(key) is None:
                raise missing(key)
        if req.get("startTask") is not None:
            self._check_start_task(req["startTask"])
            row.body["startTask"] = req["startTask"]
        else:
            row.body.pop("startTask", None)
        for key in ("certificateReferences", "applicationPackageReferences", "metadata"):
            if req.get(key):
                row.body[key] = req[key]
            else:
                row.body.pop(key, None)
        row.body["targetNodeCommunicationMode"] = req.get("targetNodeCommunicationMode", "default")
        self._touch(row.body)
        self.store.put(row)
        return self._write_reply(204, row.body, row.body["url"])

    def resize_pool(self, call: Call) -> Reply:
        row = self._writable_pool(call)
        req = call.json_body()
        body = row.body
        if body.get("enableAutoScale"):
            raise BatchError(409, "OperationNotValidOnPool", "The pool has autoscale enabled.")
        if body["allocationState"] != "steady":
            raise BatchError(409, "PoolBeingResized", "The specified pool is being resized.")
        dedicated = req.get("targetDedicatedNodes", body["targetDedicatedNodes"])
        low = req.get("targetLowPriorityNodes", body["targetLowPriorityNodes"])
        check_int("targetDedicatedNodes", dedicated, 0, 1000)
        check_int("targetLowPriorityNodes", low, 0, 1000)
        check_duration("resizeTimeout", req.get("resizeTimeout"))
        body["targetDedicatedNodes"] = dedicated
        body["targetLowPriorityNodes"] = low
        if req.get("resizeTimeout"):
            body["resizeTimeout"] = req["resizeTimeout"]
        body.pop("resizeErrors", None)
        body["allocationState"] = "resizing"
        body["allocationStateTransitionTime"] = iso()
        self._touch(body)
        self.store.put(row)
        self.scheduler.pool_changed(row.key, req.get("nodeDeallocationOption") or "requeue")
        return self._write_reply(202, body, body["url"])

    def stop_resize(self, call: Call) -> Reply:
        row = self._writable_pool(call)
        self.scheduler.stop_resize(row.key)
        row = self._pool(call.params["poolId"])
        return self._write_reply(202, row.body, row.body["url"])

    def remove_nodes(self, call: Call) -> Reply:
        row = self._writable_pool(call)
        req = call.json_body()
        nodes = req.get("nodeList")
        if not nodes:
            raise missing("nodeList")
        if not isinstance(nodes, list) or len(nodes) > 100:
            raise invalid("nodeList", nodes, "Up to 100 node ids may be removed at once.")
        if row.body["allocationState"] != "steady":
            raise BatchError(409, "PoolBeingResized", "The specified pool is being resized.")
        for node_id in nodes:
            if self.store.get("node", row.key, str(node_id)) is None:
                raise BatchError(404, "NodeNotFound", f"The node {node_id} does not exist.")
        self.scheduler.remove_nodes(
            row.key, [str(n) for n in nodes], req.get("nodeDeallocationOption") or "requeue"
        )
        row = self._pool(call.params["poolId"])
        return self._write_reply(202, row.body, row.body["url"])

    def delete_pool(self, call: Call) -> Reply:
        row = self._pool(call.params["poolId"])
        self._conditions(call, row.body, write=True)
        if row.body["state"] != "deleting":
            row.body["state"] = "deleting"
            row.body["stateTransitionTime"] = iso()
            self._touch(row.body)
            self.store.put(row)
            self.scheduler.delete_pool(row.key)
        return Reply(202)

    def node_counts(self, call: Call) -> Reply:
        limit = self._maxresults(call)
        filter_text = call.query.get("$filter")
        try:
            pred = odata.predicate(filter_text, odata.NODECOUNT_PROPS)
        except odata.FilterError as exc:
            raise self._bad_filter(filter_text, str(exc)) from None
        after = self._skiptoken(call)
        values: list[dict[str, Any]] = []
        last = after
        more = False
        for pool in self.store.iter("pool", "", after=after):
            counts = self.scheduler.node_counts(pool)
            if not pred(counts):
                continue
            if len(values) == limit:
                more = True
                break
            values.append(counts)
            last = pool.seq
        out: dict[str, Any] = {
            "odata.metadata": f"{call.base}/$metadata#nodecounts",
            "value": values,
        }
        if more:
            out["odata.nextLink"] = self.next_link(call, last)
        return Reply(200, out)

    # ------------------------------------------------------------------ nodes

    def list_nodes(self, call: Call) -> Reply:
        pool = self._pool(call.params["poolId"])
        return self._page(
            call, "node", pool.key, odata.NODE_PROPS, "nodes", shape=self.scheduler.shape_node
        )

    def get_node(self, call: Call) -> Reply:
        row = self._node(call.params["poolId"], call.params["nodeId"])
        out = odata.select(self.scheduler.shape_node(row), self._select(call))
        return Reply(200, {"odata.metadata": f"{call.base}/$metadata#nodes/@Element", **out})

    def reboot_node(self, call: Call) -> Reply:
        row = self._node(call.params["poolId"], call.params["nodeId"])
        req = call.body if isinstance(call.body, dict) else {}
        if row.body["state"] in ("creating", "starting", "rebooting", "leavingpool"):
            raise BatchError(
                409, "OperationNotValidOnNode", "The node is not in a state that allows a reboot."
            )
        self.scheduler.reboot_node(row.parent, row.key, req.get("nodeRebootOption") or "requeue")
        node = self._node(call.params["poolId"], call.params["nodeId"])
        return Reply(
            202,
            None,
            {
                "DataServiceId": node.body["url"],
                "ETag": new_etag(),
                "Last-Modified": http_date(node.body["stateTransitionTime"]),
            },
        )

    def disable_scheduling(self, call: Call) -> Reply:
        """No new tasks go to the node; `taskCompletion` (and the others, simplified here)
        lets running tasks finish."""
        row = self._node(call.params["poolId"], call.params["nodeId"])
        if row.body.get("schedulingState") == "disabled":
            raise BatchError(
                409,
                "NodeAlreadyInTargetSchedulingState",
                "The node is already in the requested scheduling state.",
            )
        req = call.body if isinstance(call.body, dict) else {}
        option = str(req.get("nodeDisableSchedulingOption") or "requeue").lower()
        self.scheduler.set_scheduling(row.parent, row.key, False, option)
        return Reply(200, None, {"DataServiceId": row.body["url"]})

    def enable_scheduling(self, call: Call) -> Reply:
        row = self._node(call.params["poolId"], call.params["nodeId"])
        if row.body.get("schedulingState", "enabled") == "enabled":
            raise BatchError(
                409,
                "NodeAlreadyInTargetSchedulingState",
                "The node is already in the requested scheduling state.",
            )
        self.scheduler.set_scheduling(row.parent, row.key, True, "")
        return Reply(200, None, {"DataServiceId": row.body["url"]})

    # ------------------------------------------------------------------ jobs

    def create_job(self, call: Call) -> Reply:
        req = call.json_body()
        job_id = check_id("id", req.get("id"))
        pool_info = req.get("poolInfo")
        if not isinstance(pool_info, dict):
            raise missing("poolInfo")
        if not pool_info.get("poolId"):
            if pool_info.get("autoPoolSpecification"):
                raise BatchError(
                    400,
                    "UnsupportedProperty",
                    "Auto pools are not supported by the local Batch service.",
                    {"PropertyName": "autoPoolSpecification"},
                )
            raise missing("poolInfo.poolId")
        existing = self.store.get("job", "", job_id)
        if existing is not None:
            if existing.body.get("state") == "deleting":
                raise BatchError(
                    409,
                    "JobBeingDeleted",
                    "The specified job has been marked "
                    "for deletion and is being garbage collected.",
                )
            raise BatchError(409, "JobExists", "The specified job already exists.")
        self._check_job_fields(req)
        stamp = iso()
        url = f"{call.base}/jobs/{job_id}"
        body: dict[str, Any] = {"id": job_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        body.update(
            {
                "usesTaskDependencies": bool(req.get("usesTaskDependencies", False)),
                "url": url,
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
                "state": "active",
                "stateTransitionTime": stamp,
                "priority": req.get("priority", 0),
                "allowTaskPreemption": bool(req.get("allowTaskPreemption", False)),
                "maxParallelTasks": req.get("maxParallelTasks", -1),
                "constraints": self._job_constraints(req.get("constraints")),
            }
        )
        for key in (
            "jobManagerTask",
            "jobPreparationTask",
            "jobReleaseTask",
            "commonEnvironmentSettings",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body["poolInfo"] = {"poolId": pool_info["poolId"]}
        body["onAllTasksComplete"] = req.get("onAllTasksComplete") or "noaction"
        body["onTaskFailure"] = req.get("onTaskFailure") or "noaction"
        if req.get("networkConfiguration") is not None:
            body["networkConfiguration"] = req["networkConfiguration"]
        if req.get("metadata") is not None:
            body["metadata"] = req["metadata"]
        body["executionInfo"] = {"startTime": stamp, "poolId": pool_info["poolId"]}
        row = Row("job", "", job_id, body, {})
        self.store.put(row)
        self.scheduler.job_changed(row.key)
        return Reply(201, None, {**self._entity_headers(body, url), "Location": url})

    @staticmethod
    def _check_job_fields(req: dict[str, Any]) -> None:
        check_int("priority", req.get("priority"), -1000, 1000)
        check_int("maxParallelTasks", req.get("maxParallelTasks"), -1, None)
        if req.get("maxParallelTasks") == 0:
            raise invalid("maxParallelTasks", 0, "The value must be -1 or greater than 0.")
        constraints = req.get("constraints") or {}
        if not isinstance(constraints, dict):
            raise invalid("constraints", constraints, "Constraints must be an object.")
        check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
        check_int("constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None)

    @staticmethod
    def _job_constraints(given: Any) -> dict[str, Any]:
        given = given or {}
        return {
            "maxWallClockTime": given.get("maxWallClockTime") or MAX_DURATION,
            "maxTaskRetryCount": given.get("maxTaskRetryCount", 0),
        }

    def get_job(self, call: Call) -> Reply:
        row = self._job(call.params["jobId"])
        return self._entity(call, row.body, "jobs")

    def list_jobs(self, call: Call) -> Reply:
        return self._page(call, "job", "", odata.JOB_PROPS, "jobs")

    def _writable_job(self, call: Call) -> Row:
        row = self._job(call.params["jobId"])
        self._conditions(call, row.body, write=True)
        state = row.body["state"]
        if state == "deleting":
            raise BatchError(
                409,
                "JobBeingDeleted",
                "The specified job has been marked for deletion and is being garbage collected.",
            )
        if state == "completed":
            raise BatchError(
                409, "JobCompleted", "The specified job is already in a completed state."
            )
        if state == "terminating":
            raise BatchError(409, "JobBeingTerminated", "The specified job is being terminated.")
        return row

    def _apply_job_update(self, row: Row, req: dict[str, Any], replace: bool) -> None:
        self._check_job_fields(req)
        body = row.body
        pool_info = req.get("poolInfo")
        if replace and not isinstance(pool_info, dict):
            raise missing("poolInfo")
        if (
            isinstance(pool_info, dict)
            and pool_info.get("poolId")
            and pool_info["poolId"].lower() != body["poolInfo"]["poolId"].lower()
        ):
            if body["state"] != "disabled":
                raise BatchError(
                    409,
                    "OperationInvalidForCurrentState",
                    "The pool of a job can be changed only while the job is disabled.",
                    {"PropertyName": "poolInfo"},
                )
            body["poolInfo"] = {"poolId": pool_info["poolId"]}
            body["executionInfo"]["poolId"] = pool_info["poolId"]
        mode = req.get("onAllTasksComplete")
        if body["onAllTasksComplete"] == "terminatejob" and mode == "noaction":
            raise invalid(
                "onAllTasksComplete",
                mode,
                "Once set to terminatejob it cannot be changed back to noaction.",
            )
        defaults: dict[str, Any] = {
            "priority": 0,
            "allowTaskPreemption": False,
            "maxParallelTasks": -1,
            "onAllTasksComplete": None,
            "metadata": None,
        }
        for key, default in defaults.items():
            if key in req and req[key] is not None:
                body[key] = req[key]
            elif replace and default is not None:
                body[key] = default
            elif replace and key == "metadata":
                body.pop("metadata", None)
        if ("constraints" in req and req["constraints"] is not None) or replace:
            body["constraints"] = self._job_constraints(req.get("constraints"))
        self._touch(body)
        self.store.put(row)
        self.scheduler.job_changed(row.key)

    def update_job(self, call: Call) -> Reply:
        row = self._writable_job(call)
        self._apply_job_update(row, call.json_body(), replace=False)
        return self._write_reply(200, row.body, row.body["url"])

    def replace_job(self, call: Call) -> Reply:
        row = self._writable_job(call)
        self._apply_job_update(row, call.json_body(), replace=True)
        return self._write_reply(200, row.body, row.body["url"])

    def delete_job(self, call: Call) -> Reply:
        row = self._job(call.params["jobId"])
        self._conditions(call, row.body, write=True)
        if row.body["state"] != "deleting":
            self.scheduler.delete_job(row.key)
        return Reply(202)

    def disable_job(self, call: Call) -> Reply:
        row = self._writable_job(call)
        req = call.json_body()
        option = req.get("disableTasks")
        if option is None:
            raise missing("disableTasks")
        if row.body["state"] not in ("active", "disabling", "disabled", "enabling"):
            raise BatchError(409, "JobNotActive", "The specified job is not active.")
        self.scheduler.disable_job(row.key, option)
        row = self._job(call.params["jobId"])
        return self._write_reply(202, row.body, row.body["url"])

    def enable_job(self, call: Call) -> Reply:
        row = self._writable_job(call)
        self.scheduler.enable_job(row.key)
        row = self._job(call.params["jobId"])
        return self._write_reply(202, row.body, row.body["url"])

    def terminate_job(self, call: Call) -> Reply:
        row = self._writable_job(call)
        req = call.body if isinstance(call.body, dict) else {}
        self.scheduler.terminate_job(row.key, req.get("terminateReason") or "UserTerminate")
        row = self._job(call.params["jobId"])
        return self._write_reply(202, row.body, row.body["url"])

    def task_counts(self, call: Call) -> Reply:
        row = self._job(call.params["jobId"])
        counts = self.scheduler.task_counts(row.key)
        return Reply(
            200, {"odata.metadata": f"{call.base}/$metadata#taskcounts/@Element", **counts}
        )

    # ------------------------------------------------------------------ tasks

    def _job_for_tasks(self, job_id: str) -> Row:
        job = self._job(job_id)
        state = job.body["state"]
        if state == "deleting":
            raise BatchError(
                409,
                "JobBeingDeleted",
                "The specified job has been marked for deletion and is being garbage collected.",
            )
        if state == "completed":
            raise BatchError(
                409, "JobCompleted", "The specified job is already in a completed state."
            )
        if state == "terminating":
            raise BatchError(409, "JobBeingTerminated", "The specified job is being terminated.")
        return job

    def _new_task(self, base: str, job: Row, req: Any) -> Row:
        """Validate one task's body and shape it as Batch stores it."""
        if not isinstance(req, dict):
            raise BatchError(400, "InvalidRequestBody", "A task must be a JSON object.")
        task_id = check_id("id", req.get("id"))
        if not req.get("commandLine"):
            raise missing("commandLine")
        if not isinstance(req["commandLine"], str):
            raise invalid("commandLine", req["commandLine"], "The command line must be a string.")
        constraints = req.get("constraints") or {}
        if not isinstance(constraints, dict):
            raise invalid("constraints", constraints, "Constraints must be an object.")
        check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
        check_duration("constraints.retentionTime", constraints.get("retentionTime"))
        check_int("constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None)
        slots = req.get("requiredSlots", 1)
        check_int("requiredSlots", slots, 1, 256)
        depends = req.get("dependsOn")
        if depends:
            if not job.body.get("usesTaskDependencies"):
                raise BatchError(
                    400,
                    "TaskDependenciesNotSpecifiedOnJob",
                    "The job does not "
                    "allow tasks with dependencies (usesTaskDependencies is not "
                    "set).",
                )
            if not isinstance(depends, dict):
                raise invalid("dependsOn", depends, "dependsOn must be an object.")
            ids = depends.get("taskIds") or []
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise invalid("dependsOn.taskIds", ids, "taskIds must be a list of ids.")
            if sum(len(i) for i in ids) > 64000:
                raise BatchError(
                    400, "TaskDependencyListTooLong", "The task's dependency list is too long."
                )
            ranges = depends.get("taskIdRanges") or []
            for r in ranges:
                if not isinstance(r, dict) or "start" not in r or "end" not in r:
                    raise missing("dependsOn.taskIdRanges.start")
                check_int("dependsOn.taskIdRanges.start", r["start"], 0, None)
                check_int("dependsOn.taskIdRanges.end", r["end"], 0, None)
                if r["start"] > r["end"]:
                    raise invalid("dependsOn.taskIdRanges", r, "start must not exceed end.")
        for rf in req.get("resourceFiles") or []:
            sources = [
                k
                for k in ("httpUrl", "storageContainerUrl", "autoStorageContainerName")
                if rf.get(k)
            ]
            if len(sources) != 1:
                raise invalid(
                    "resourceFiles",
                    rf,
                    "Exactly one of httpUrl, "
                    "storageContainerUrl or autoStorageContainerName is required.",
                )
        for of in req.get("outputFiles") or []:
            if not isinstance(of, dict) or not of.get("filePattern"):
                raise missing("outputFiles.filePattern")
            dest = (of.get("destination") or {}).get("container") or {}
            if not dest.get("containerUrl"):
                raise missing("outputFiles.destination.container.containerUrl")
            if not (of.get("uploadOptions") or {}).get("uploadCondition"):
                raise missing("outputFiles.uploadOptions.uploadCondition")
        stamp = iso()
        job_retries = job.body.get("constraints", {}).get("maxTaskRetryCount", 0)
        body: dict[str, Any] = {"id": task_id}
        if req.get("displayName") is not None:
            body["displayName"] = req["displayName"]
        body.update(
            {
                "url": f"{base}/jobs/{job.body['id']}/tasks/{task_id}",
                "eTag": new_etag(),
                "lastModified": stamp,
                "creationTime": stamp,
            }
        )
        if req.get("exitConditions") is not None:
            body["exitConditions"] = req["exitConditions"]
        body.update(
            {"state": "active", "stateTransitionTime": stamp, "commandLine": req["commandLine"]}
        )
        for key in (
            "containerSettings",
            "resourceFiles",
            "outputFiles",
            "environmentSettings",
            "affinityInfo",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        body["constraints"] = {
            "maxWallClockTime": constraints.get("maxWallClockTime") or MAX_DURATION,
            "retentionTime": constraints.get("retentionTime") or "P7D",
            "maxTaskRetryCount": constraints.get("maxTaskRetryCount", job_retries),
        }
        body["requiredSlots"] = slots
        body["userIdentity"] = req.get("userIdentity") or {
            "autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}
        }
        body["executionInfo"] = {"retryCount": 0, "requeueCount": 0}
        for key in (
            "multiInstanceSettings",
            "applicationPackageReferences",
            "authenticationTokenSettings",
        ):
            if req.get(key) is not None:
                body[key] = req[key]
        if depends:
            body["dependsOn"] = {k: v for k, v in depends.items() if v}
        return Row("task", job.key, task_id, body, {})

    def create_task(self, call: Call) -> Reply:
        job = self._job_for_tasks(call.params["jobId"])
        row = self._new_task(call.base, job, call.json_body())
        if self.store.get("task", job.key, row.key) is not None:
            raise BatchError(409, "TaskExists", "The specified task already exists.")
        self.store.put(row)
        self.scheduler.tasks_added(job.key)
        url = row.body["url"]
        return Reply(201, None, {**self._entity_headers(row.body, url), "Location": url})

    def create_task_collection(self, call: Call) -> Reply:
        job = self._job_for_tasks(call.params["jobId"])
        req = call.json_body()
        tasks = req.get("value")
        if not isinstance(tasks, list) or not tasks:
            raise missing("value")
        if len(tasks) > 100:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "A task collection may hold at most 100 tasks.",
                {
                    "PropertyName": "value",
                    "PropertyValue": str(len(tasks)),
                    "Reason": "At most 100 tasks may be added in one request.",
                },
            )
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        rows: list[Row] = []
        for raw in tasks:
            task_id = str(raw.get("id", "")) if isinstance(raw, dict) else ""
            try:
                row = self._new_task(call.base, job, raw)
                if row.key in seen or self.store.get("task", job.key, row.key) is not None:
                    raise BatchError(409, "TaskExists", "The specified task already exists.")
            except BatchError as exc:
                error = exc.body(str(uuid.uuid4()))
                results.append({"status": "clienterror", "taskId": task_id, "error": error})
                continue
            seen.add(row.key)
            rows.append(row)
            results.append(
                {
                    "status": "success",
                    "taskId": row.body["id"],
                    "eTag": row.body["eTag"],
                    "lastModified": row.body["lastModified"],
                    "location": row.body["url"],
                }
            )
        self.store.put_many(rows)
        if rows:
            self.scheduler.tasks_added(job.key)
        return Reply(
            200, {"odata.metadata": f"{call.base}/$metadata#taskaddresult", "value": results}
        )

    def list_tasks(self, call: Call) -> Reply:
        job = self._job(call.params["jobId"])
        return self._page(call, "task", job.key, odata.TASK_PROPS, "tasks")

    def get_task(self, call: Call) -> Reply:
        row = self._task(call.params["jobId"], call.params["taskId"])
        reply = self._entity(call, row.body, "tasks")
        reply.headers["DataServiceId"] = row.body["url"]
        return reply

    def replace_task(self, call: Call) -> Reply:
        row = self._task(call.params["jobId"], call.params["taskId"])
        self._conditions(call, row.body, write=True)
        req = call.json_body()
        constraints = req.get("constraints")
        if constraints is not None:
            if not isinstance(constraints, dict):
                raise invalid("constraints", constraints, "Constraints must be an object.")
            check_duration("constraints.maxWallClockTime", constraints.get("maxWallClockTime"))
            check_duration("constraints.retentionTime", constraints.get("retentionTime"))
            check_int(
                "constraints.maxTaskRetryCount", constraints.get("maxTaskRetryCount"), -1, None
            )
            row.body["constraints"] = {
                "maxWallClockTime": constraints.get("maxWallClockTime") or MAX_DURATION,
                "retentionTime": constraints.get("retentionTime") or "P7D",
                "maxTaskRetryCount": constraints.get("maxTaskRetryCount", 0),
            }
        self._touch(row.body)
        self.store.put(row)
        self.scheduler.task_constraints_changed(row)
        return self._write_reply(200, row.body, row.body["url"])

    def delete_task(self, call: Call) -> Reply:
        row = self._task(call.params["jobId"], call.params["taskId"])
        self._conditions(call, row.body, write=True)
        self.scheduler.delete_task(row.parent, row.key)
        return Reply(200)

    def terminate_task(self, call: Call) -> Reply:
        row = self._task(call.params["jobId"], call.params["taskId"])
        self._conditions(call, row.body, write=True)
        if row.body["state"] == "completed":
            raise BatchError(409, "TaskCompleted", "The specified task is already completed.")
        self.scheduler.terminate_task(row.parent, row.key)
        row = self._task(call.params["jobId"], call.params["taskId"])
        return self._write_reply(204, row.body, row.body["url"])

    def reactivate_task(self, call: Call) -> Reply:
        row = self._task(call.params["jobId"], call.params["taskId"])
        self._conditions(call, row.body, write=True)
        if row.body["state"] != "completed":
            raise BatchError(409, "TaskNotCompleted", "The specified task is not completed.")
        if row.body.get("executionInfo", {}).get("result") == "success":
            raise BatchError(
                409,
                "TaskSucceeded",
                "The specified task completed successfully and cannot be reactivated.",
            )
        job = self._job(call.params["jobId"])
        if job.body["state"] in ("completed", "terminating", "deleting"):
            raise BatchError(409, "JobCompleted", "The job of this task is completed.")
        self.scheduler.reactivate_task(row.parent, row.key)
        row = self._task(call.params["jobId"], call.params["taskId"])
        return self._write_reply(204, row.body, row.body["url"])

    # ------------------------------------------------------------------ files

    def _task_dir(self, call: Call) -> tuple[Row, Path]:
        row = self._task(call.params["jobId"], call.params["taskId"])
        if row.meta.get("cleaned"):
            raise BatchError(
                409,
                "TaskFilesCleanedup",
                "The task's files have been cleaned up after its retention time.",
            )
        where = self.scheduler.task_dir(row)
        if where is None:
            raise BatchError(
                409,
                "TaskFilesUnavailable",
                "The task has not been scheduled on a node yet, so it has no files.",
            )
        return row, where

    def _node_dir(self, call: Call) -> Path:
        row = self._node(call.params["poolId"], call.params["nodeId"])
        return self.scheduler.node_dir(row.parent, row.key)

    def list_task_files(self, call: Call) -> Reply:
        row, root = self._task_dir(call)
        return self._list_files(call, root, f"{row.body['url']}/files")

    def list_node_files(self, call: Call) -> Reply:
        root = self._node_dir(call)
        node = self._node(call.params["poolId"], call.params["nodeId"])
        return self._list_files(call, root, f"{node.body['url']}/files")

    def _list_files(self, call: Call, root: Path, url: str) -> Reply:
        limit = self._maxresults(call)
        filter_text = call.query.get("$filter")
        try:
            pred = odata.predicate(filter_text, odata.FILE_PROPS)
        except odata.FilterError as exc:
            raise self._bad_filter(filter_text, str(exc)) from None
        recursive = call.query.get("recursive", "false").lower() == "true"
        after = self._skiptoken(call)
        entries: list[dict[str, Any]] = []
        if root.is_dir():
            paths = sorted(root.rglob("*") if recursive else root.iterdir())
            for path in paths:
                rel = path.relative_to(root).as_posix()
                entries.append(self._file_entry(path, rel, url))
        matching = [e for e in entries if pred(e)]
        page = matching[after : after + limit]
        out: dict[str, Any] = {"odata.metadata": f"{call.base}/$metadata#files", "value": page}
        if after + limit < len(matching):
            out["odata.nextLink"] = self.next_link(call, after + limit)
        return Reply(200, out)

    @staticmethod
    def _file_entry(path: Path, rel: str, url: str) -> dict[str, Any]:
        info = path.stat()
        is_dir = stat.S_ISDIR(info.st_mode)
        props: dict[str, Any] = {
            "creationTime": iso(_mtime(info.st_ctime)),
            "lastModified": iso(_mtime(info.st_mtime)),
            "contentLength": "0" if is_dir else str(info.st_size),
            "fileMode": f"{stat.S_IMODE(info.st_mode) | (0o40000 if is_dir else 0o100000):o}",
        }
        if not is_dir:
            props["contentType"] = mimetypes.guess_type(rel)[0] or "application/octet-stream"
        return {
            "name": rel,
            "url": f"{url}/{quote(rel, safe='/')}",
            "isDirectory": is_dir,
            "properties": props,
        }

    def get_task_file(self, call: Call) -> Reply:
        row, root = self._task_dir(call)
        return self._serve_file(call, root, f"{row.body['url']}/files")

    def get_node_file(self, call: Call) -> Reply:
        root = self._node_dir(call)
        node = self._node(call.params["poolId"], call.params["nodeId"])
        return self._serve_file(call, root, f"{node.body['url']}/files")

    def _serve_file(self, call: Call, root: Path, url: str) -> Reply:
        rel = call.params["filePath"].replace("\\", "/").strip("/")
        parts = [p for p in rel.split("/") if p not in ("", ".")]
        if any(p == ".." for p in parts) or not parts:
            raise BatchError(
                400, "InvalidUri", "The file path must stay inside the task or node directory."
            )
        path = root.joinpath(*parts)
        try:
            resolved = path.resolve()
            resolved.relative_to(root.resolve())
        except (ValueError, OSError):
            raise BatchError(
                400, "InvalidUri", "The file path must stay inside the task or node directory."
            ) from None
        if not path.exists():
            raise BatchError(404, "FileNotFound", "The specified file does not exist.")
        entry = self._file_entry(path, "/".join(parts), url)
        props = entry["properties"]
        headers = {
            "ocp-creation-time": http_date(props["creationTime"]),
            "ocp-batch-file-isdirectory": str(entry["isDirectory"]).lower(),
            "ocp-batch-file-url": entry["url"],
            "ocp-batch-file-mode": props["fileMode"],
            "Last-Modified": http_date(props["lastModified"]),
            "ETag": f"0x8{int(path.stat().st_mtime_ns // 100):015X}"[:18],
            "Content-Type": props.get("contentType", "application/octet-stream"),
        }
        self._conditions(
            call, {"lastModified": props["lastModified"], "eTag": headers["ETag"]}, write=False
        )
        if entry["isDirectory"]:
            headers["Content-Length"] = "0"
            return Reply(200, None, headers, raw=b"" if call.request.method == "GET" else None)
        size = int(props["contentLength"])
        start, end = 0, size - 1
        text = call.header("ocp-range") or call.header("Range")
        if text:
            m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", text)
            if not m or (not m[1] and not m[2]):
                raise BatchError(416, "InvalidRange", "The range specified is invalid.")
            if m[1]:
                start = int(m[1])
                end = min(int(m[2]), size - 1) if m[2] else size - 1
            else:
                start = max(0, size - int(m[2]))
            if start >= size or start > end:
                raise BatchError(
                    416,
                    "InvalidRange",
                    "The range specified is invalid for the current size of the resource.",
                )
        length = max(0, end - start + 1)
        if call.request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return Reply(200, None, headers)
        with path.open("rb") as handle:
            handle.seek(start)
            data = handle.read(length)
        return Reply(200, None, headers, raw=data)

    def delete_task_file(self, call: Call) -> Reply:
        _row, root = self._task_dir(call)
        return self._delete_file(call, root)

    def delete_node_file(self, call: Call) -> Reply:
        return self._delete_file(call, self._node_dir(call))

    def _delete_file(self, call: Call, root: Path) -> Reply:
        path = self._inside(root, call.params["filePath"])
        if not path.exists():
            raise BatchError(404, "FileNotFound", "The specified file does not exist.")
        if path.is_dir():
            if call.query.get("recursive", "false").lower() != "true" and any(path.iterdir()):
                raise BatchError(
                    409,
                    "OperationInvalidForCurrentState",
                    "The directory is not empty; delete it with recursive=true.",
                )
            shutil.rmtree(path)
        else:
            path.unlink()
        return Reply(200)

    @staticmethod
    def _inside(root: Path, text: str) -> Path:
        """A file path under root, refusing anything that would step outside it."""
        parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise BatchError(
                400, "InvalidUri", "The file path must stay inside the task or node directory."
            )
        path = root.joinpath(*parts)
        try:
            path.resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            raise BatchError(
                400, "InvalidUri", "The file path must stay inside the task or node directory."
            ) from None
        return path

    # ------------------------------------------------------------------ paging links

    def next_link(self, call: Call, last: int) -> str:
        """The next page's URL: same path, same filter/select/maxresults, a new skiptoken."""
        path = call.request.raw_path.partition("?")[0]
        params = {k: v for k, v in call.query.items() if k not in ("$skiptoken", "api-version")}
        params["$skiptoken"] = f"s{last}"
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
        return f"{call.base}{path}?api-version={quote(call.query['api-version'])}&{query}"


def _mtime(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)
