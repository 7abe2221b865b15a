"""Count the HTTP requests bspec makes, per service, inside the SDK pipelines.

An azure-core policy placed after the retry policy sees every request that goes on the
wire (retries included), so the figures mean the same on the local and the azure target.
Reads are GET and HEAD, and the POSTs that only read (evaluate-autoscale, which asks what a
formula gives now); everything else is a write. It also sees retries (the same request
going out again after a transient answer), counts them, and reports each on stderr with
the method, the path (never the query, which may hold a SAS) and what it answered.

Testing hook: with `BSPEC_TEST_KILL_AFTER_WRITES=k` in the environment, the process
SIGKILLs itself as soon as the answer to its k-th write request (both services counted
together) arrives, before acting on it, so reliability tests pick crash points exactly.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

SERVICES = ("batch", "storage")
KILL_ENV = "BSPEC_TEST_KILL_AFTER_WRITES"


def _kill_after() -> int | None:
    value = os.environ.get(KILL_ENV, "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


class RequestCounter:
    """Thread-safe read/write counts per service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = {s: {"read": 0, "write": 0} for s in SERVICES}
        self._retries = {s: 0 for s in SERVICES}

    def add_retry(self, service: str) -> None:
        with self._lock:
            self._retries[service] = self._retries.get(service, 0) + 1

    def retries(self) -> dict[str, int]:
        """Requests sent again after a transient answer, per service (included in the counts)."""
        with self._lock:
            return dict(self._retries)

    def add(self, service: str, method: str, path: str = "") -> int:
        """Count one request; returns its ordinal among all writes (0 for a read)."""
        reads = method.upper() in ("GET", "HEAD") or path.lower().endswith(READING_POSTS)
        kind = "read" if reads else "write"
        with self._lock:
            self._counts.setdefault(service, {"read": 0, "write": 0})[kind] += 1
            if kind == "read":
                return 0
            return sum(c["write"] for c in self._counts.values())

    def snapshot(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {s: dict(c) for s, c in self._counts.items()}

    def writes(self) -> int:
        with self._lock:
            return sum(c["write"] for c in self._counts.values())

    def total(self) -> int:
        with self._lock:
            return sum(c["read"] + c["write"] for c in self._counts.values())


READING_POSTS = ("/evaluateautoscale",)  # POSTs that change nothing


class CountingPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Counts each request that goes out, into `counter` under `service`."""

    def __init__(self, counter: RequestCounter, service: str) -> None:
        super().__init__()
        self.counter = counter
        self.service = service
        self.kill_after = _kill_after()

    def on_request(self, request: PipelineRequest[Any]) -> None:
        method = request.http_request.method
        ordinal = self.counter.add(self.service, method, urlsplit(request.http_request.url).path)
        if "bspec_answer" in request.context:  # the retry policy is sending it again
            self.counter.add_retry(self.service)
            path = urlsplit(request.http_request.url).path
            sys.stderr.write(
                f"{self.service}: retrying {method} {path} after"
                f" {request.context['bspec_answer']}\n"
            )
        if self.kill_after is not None and ordinal == self.kill_after:
            request.context["bspec_kill"] = True

    def on_response(
        self, request: PipelineRequest[Any], response: PipelineResponse[Any, Any]
    ) -> None:
        request.context["bspec_answer"] = f"HTTP {response.http_response.status_code}"
        if request.context.get("bspec_kill"):
            os.kill(os.getpid(), signal.SIGKILL)

    def on_exception(self, request: PipelineRequest[Any]) -> None:
        request.context["bspec_answer"] = "a dropped connection"
