"""Simulated latency and injected faults, for benchmarks and reliability tests."""

from __future__ import annotations

import asyncio
import random
import time
import uuid

from aiohttp import web

from ..resources import BatchError
from ..settings import Settings
from .protocol import error_response


async def delay(settings: Settings) -> None:
    """The simulated latency: other requests go on meanwhile."""
    if settings.latency_ms > 0:
        await asyncio.sleep(settings.latency_ms / 1000)


def fault(request: web.Request, settings: Settings) -> web.StreamResponse | None:
    """A fraction of requests answered 500/503/429 (with Retry-After) or dropped; a storm
    (`faultFor`) ends by itself."""
    rate = settings.fault_rate
    kinds = settings.fault_kinds
    if rate <= 0 or not kinds or random.random() >= rate:
        return None
    if settings.fault_until is not None and time.monotonic() >= settings.fault_until:
        return None
    kind = random.choice(kinds)
    request_id = str(uuid.uuid4())
    if kind == "drop":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # nothing more to say on a dropped connection
    if kind == "429":
        exc = BatchError(429, "TooManyRequests", "Too many requests.", headers={"Retry-After": "1"})
    elif kind == "503":
        exc = BatchError(503, "ServerBusy", "The server is busy.", headers={"Retry-After": "1"})
    else:
        exc = BatchError(
            500,
            "InternalError",
            "Server encountered an internal error. Please try again after some time.",
        )
    return error_response(request, exc, request_id)
