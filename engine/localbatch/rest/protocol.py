"""A request as handlers see it (`Call`), what they answer (`Reply`), and the wire forms:
request bodies read within Batch's limits, JSON answers, Batch's error body."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..resources import BatchError, lenient
from ..versions import CURRENT, ApiVersion

JSON_TYPE = "application/json;odata=minimalmetadata"
MAX_BODY = 4 * 1024 * 1024
MAX_COLLECTION_BODY = 1024 * 1024


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
    api_version: ApiVersion = CURRENT

    def header(self, name: str) -> str | None:
        return self.request.headers.get(name)

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise BatchError(
                400, "InvalidRequestBody", "The request body is missing or is not a JSON object."
            )
        return self.body

    def optional_body(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


async def read_body(request: web.Request, op: str) -> Any:
    """The JSON body, leniently typed as Batch accepts it; 413 over the size limits."""
    if request.method in ("GET", "HEAD", "DELETE") or not request.can_read_body:
        return None
    limit = MAX_COLLECTION_BODY if op == "Tasks_CreateTaskCollection" else MAX_BODY
    too_large = BatchError(
        413,
        "RequestBodyTooLarge",
        "The request body is too large and exceeds the maximum permissible limit.",
        {"MaxLimit": str(limit)},
    )
    if (request.content_length or 0) > limit:
        raise too_large
    raw = await request.read()
    if len(raw) > limit:
        raise too_large
    if not raw.strip():
        return None
    try:
        return lenient(json.loads(raw))
    except (ValueError, UnicodeDecodeError):
        raise BatchError(
            400, "InvalidRequestBody", "The specified Request Body is not syntactically valid."
        ) from None


def _common(request: web.Request, request_id: str, headers: dict[str, str]) -> None:
    headers["request-id"] = request_id
    client_id = request.headers.get("client-request-id")
    if client_id:
        headers["client-request-id"] = client_id


def respond(request: web.Request, reply: Reply, request_id: str) -> web.StreamResponse:
    headers = dict(reply.headers)
    _common(request, request_id, headers)
    if reply.raw is not None:
        return web.Response(status=reply.status, body=reply.raw, headers=headers)
    if reply.body is None or request.method == "HEAD":
        return web.Response(status=reply.status, headers=headers)
    headers["Content-Type"] = JSON_TYPE
    return web.Response(status=reply.status, headers=headers, body=json.dumps(reply.body).encode())


def error_response(request: web.Request, exc: BatchError, request_id: str) -> web.Response:
    """Batch's error body (no body for HEAD and 304), with the request's ids."""
    headers = dict(exc.headers)
    _common(request, request_id, headers)
    if request.method == "HEAD" or exc.status == 304:
        return web.Response(status=exc.status, headers=headers)
    body = {
        "odata.metadata": f"{request.scheme}://{request.host}/$metadata#Microsoft.Azure"
        ".Batch.Protocol.Entities.Container.errors/@Element",
        **exc.body(request_id),
    }
    headers["Content-Type"] = JSON_TYPE
    return web.Response(status=exc.status, headers=headers, body=json.dumps(body).encode())
