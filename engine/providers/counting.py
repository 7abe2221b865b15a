"""Count the HTTP requests bspec makes, per service, inside the SDK pipelines.

An azure-core policy placed after the retry policy sees every request that goes on the
wire (retries included), so the figures mean the same on the local and the azure target.
Reads are GET and HEAD; everything else is a write.
"""

from __future__ import annotations

import threading
from typing import Any

from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

SERVICES = ("batch", "storage")


class RequestCounter:
    """Thread-safe read/write counts per service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {s: {"read": 0, "write": 0} for s in SERVICES}

    def add(self, service: str, method: str) -> None:
        kind = "read" if method.upper() in ("GET", "HEAD") else "write"
        with self._lock:
            self._counts.setdefault(service, {"read": 0, "write": 0})[kind] += 1

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {s: dict(c) for s, c in self._counts.items()}

    def writes(self) -> int:
        with self._lock:
            return sum(c["write"] for c in self._counts.values())

    def total(self) -> int:
        with self._lock:
            return sum(c["read"] + c["write"] for c in self._counts.values())


class CountingPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts each request that goes out, into `counter` under `service`."""

    def __init__(self, counter: RequestCounter, service: str) -> None:
        super().__init__()
        self.counter = counter
        self.service = service

    def on_request(self, request: PipelineRequest[Any]) -> None:
        self.counter.add(self.service, request.http_request.method)
