"""`/_local/...`: loopback-only controls outside the Batch API, for tests and benchmarks.

health, request counts, settings, status, and the service clock: `GET /_local/clock` reads
it; with `--clock manual`, `POST /_local/clock` with {"advance": "PT10M"} or {"seconds": 600}
advances it and answers once everything that fell due has happened.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any

from aiohttp import web

from ..resources import BatchError, duration_seconds
from ..service import Batch


class Counter:
    """Requests by operationId, read and write."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[str, int]] = {}

    def add(self, op: str, method: str) -> None:
        entry = self.counts.setdefault(op, {"read": 0, "write": 0})
        entry["read" if method in ("GET", "HEAD") else "write"] += 1

    def to_json(self) -> dict[str, Any]:
        read = sum(v["read"] for v in self.counts.values())
        write = sum(v["write"] for v in self.counts.values())
        return {"read": read, "write": write, "byOperation": self.counts}


class LocalControls:
    def __init__(self, batch: Batch, counter: Counter, api_range: list[str]) -> None:
        self.batch = batch
        self.counter = counter
        self.api_range = api_range

    async def handle(self, request: web.Request) -> web.StreamResponse:
        peer = request.remote or ""
        try:
            loopback = ipaddress.ip_address(peer).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            return web.json_response({"error": "loopback only"}, status=403)
        path, method = request.path, request.method
        batch = self.batch
        if path == "/_local/health" and method == "GET":
            return web.json_response(
                {
                    "status": "ok",
                    "account": batch.account,
                    "pid": os.getpid(),
                    "apiVersions": self.api_range,
                }
            )
        if path == "/_local/requests" and method == "GET":
            return web.json_response(self.counter.to_json())
        if path == "/_local/requests/reset" and method == "POST":
            self.counter.counts = {}
            return web.json_response(self.counter.to_json())
        if path == "/_local/settings" and method == "GET":
            return web.json_response(batch.settings.to_json())
        if path == "/_local/settings" and method == "PUT":
            try:
                batch.settings.apply(await request.json())
            except (ValueError, TypeError) as exc:
                return web.json_response({"error": str(exc)}, status=400)
            batch.scheduler.wake()  # maxProcesses may have changed
            return web.json_response(batch.settings.to_json())
        if path == "/_local/status" and method == "GET":
            return web.json_response(batch.scheduler.status())
        if path == "/_local/recovery" and method == "GET":
            # what a predecessor that died left running, killed before any requeue (PIDs)
            return web.json_response({"leftoversKilled": batch.recovered})
        if path == "/_local/clock" and method == "GET":
            return web.json_response(batch.clock.to_json())
        if path == "/_local/clock" and method == "POST":
            return await self._advance(request)
        if path in ("/_local/preempt", "/_local/restore") and method == "POST":
            return await self._spot(request, path.rsplit("/", 1)[1])
        return web.json_response({"error": f"no such path {path}"}, status=404)

    async def _advance(self, request: web.Request) -> web.StreamResponse:
        clock = self.batch.clock
        if not clock.manual:
            return web.json_response(
                {"error": "the clock runs in real time; start the service with --clock manual"},
                status=409,
            )
        try:
            seconds = _seconds(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        await clock.advance(seconds)
        return web.json_response(clock.to_json())

    async def _spot(self, request: web.Request, action: str) -> web.StreamResponse:
        """{"poolId", "nodeIds" | "count"}: preempt Spot nodes, or restore preempted ones."""
        try:
            data = await request.json()
            if not isinstance(data, dict) or not isinstance(data.get("poolId"), str):
                raise ValueError('give {"poolId": ..., "nodeIds": [...]} or "count"')
            ids = data.get("nodeIds")
            if ids is not None and (
                not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)
            ):
                raise ValueError("nodeIds must be a list of node ids")
            count = data.get("count")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
                raise ValueError("count must be a whole number")
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        spot = self.batch.preemption
        try:
            if action == "preempt":
                if ids is None and count is None:
                    return web.json_response({"error": "give nodeIds or count"}, status=400)
                done = spot.preempt(data["poolId"], ids, count)
            else:
                done = spot.restore(data["poolId"], ids)
        except BatchError as exc:
            return web.json_response({"error": exc.message, "code": exc.code}, status=exc.status)
        return web.json_response(
            {"poolId": data["poolId"], "preempted" if action == "preempt" else "restored": done}
        )


def _seconds(data: Any) -> float:
    """{"advance": ISO 8601 duration} or {"seconds": number}, not negative."""
    if not isinstance(data, dict) or len(data) != 1 or not {"advance", "seconds"} & set(data):
        raise ValueError('give {"advance": "PT10M"} or {"seconds": 600}')
    if "advance" in data:
        seconds = duration_seconds(str(data["advance"]))
        if seconds is None:
            raise ValueError("the clock cannot advance by an unlimited duration")
    else:
        value = data["seconds"]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("seconds must be a number")
        seconds = float(value)
    if seconds < 0 or seconds != seconds:
        raise ValueError("the clock only goes forward")
    return seconds
