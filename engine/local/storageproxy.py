"""A fault-injecting reverse proxy in front of Azurite: `python -m bspec.local.storageproxy`.

Azurite has no fault injection, so the reliability tests put this proxy between bspec and
Azurite (only when asked: `bspec local up --storage-faults RATE` or BSPEC_STORAGE_FAULTS).
It forwards every request byte for byte (method, raw path and query, every header
including Host, the body streamed both ways, no decompression), so SharedKey and SAS
signatures stay valid: their canonicalized resource is /account/path, never host or port.

At `faultRate` it answers instead with one of `faultKinds`: 500, 503 or 429 (both with
Retry-After), `drop` (the connection closes without an answer, before or after Azurite
saw the request) or `slow` (forwarded after `slowSeconds`). A `seed` makes the choices
repeatable. GET/PUT /_local/settings and GET /_local/requests are answered by the proxy
itself, to loopback clients only. Its log names method, path and outcome: never a query
(a SAS), never a header (Authorization).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientError, ClientSession, ClientTimeout, TCPConnector, web

KINDS = ("500", "503", "429", "drop", "slow")
# Hop-by-hop headers (RFC 9110 7.6.1) are the connection's, not the request's.
_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_SIG = re.compile(r"(sig=)[^&\s\"']*", re.IGNORECASE)
_AUTH = re.compile(r"(authorization:?\s*)\S.*", re.IGNORECASE)
_ERRORS = {
    "500": (500, "InternalError", "The server encountered an internal error (injected)."),
    "503": (503, "ServerBusy", "The server is currently unable to receive requests (injected)."),
    "429": (429, "ServerBusy", "Too many requests (injected)."),
}


def redact(text: str) -> str:
    """TEXT with SAS signatures and Authorization values replaced (for logs)."""
    return _AUTH.sub(r"\1REDACTED", _SIG.sub(r"\1REDACTED", text))


@dataclass
class Settings:
    """What the proxy injects; changed at run time through /_local/settings."""

    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: list(KINDS))
    seed: int | None = None
    slow_seconds: float = 0.5
    retry_after: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "faultRate": self.fault_rate,
            "faultKinds": list(self.fault_kinds),
            "seed": self.seed,
            "slowSeconds": self.slow_seconds,
            "retryAfter": self.retry_after,
        }

    def update(self, body: dict[str, Any]) -> None:
        """Apply the fields of BODY that are present; ValueError names a bad one."""
        rate = float(body.get("faultRate", self.fault_rate))
        kinds = [str(k) for k in body.get("faultKinds", self.fault_kinds)]
        if not 0.0 <= rate <= 1.0:
            raise ValueError("faultRate must be between 0 and 1")
        bad = [k for k in kinds if k not in KINDS]
        if bad or not kinds:
            raise ValueError(f"faultKinds must be a non-empty subset of {list(KINDS)}")
        slow = float(body.get("slowSeconds", self.slow_seconds))
        retry_after = int(body.get("retryAfter", self.retry_after))
        if not 0.0 <= slow <= 60.0 or not 0 <= retry_after <= 60:
            raise ValueError("slowSeconds and retryAfter must be between 0 and 60")
        self.fault_rate, self.fault_kinds = rate, kinds
        self.slow_seconds, self.retry_after = slow, retry_after
        if "seed" in body:
            self.seed = None if body["seed"] is None else int(body["seed"])


class Proxy:
    """The proxy's state: upstream, settings, the seeded chooser and the counts."""

    def __init__(self, upstream: str, settings: Settings) -> None:
        self.upstream = upstream.rstrip("/")
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.counts: Counter[str] = Counter()
        self.session: ClientSession | None = None

    def choose(self) -> str | None:
        """The fault for the next request, or None (seeded, so runs repeat)."""
        s = self.settings
        if s.fault_rate <= 0.0 or self.rng.random() >= s.fault_rate:
            return None
        return self.rng.choice(s.fault_kinds)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_local/"):
            return await self.control(request)
        self.counts["total"] += 1
        fault = self.choose()
        if fault:
            self.counts[fault] += 1
        log(f"{request.method} {request.path} {fault or '-'}")
        if fault in _ERRORS:
            await request.read()  # consume the body so the client sees the answer
            status, code, message = _ERRORS[fault]
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
            ).encode()
            headers = {"x-ms-error-code": code, "Content-Type": "application/xml"}
            if status != 500:
                headers["Retry-After"] = str(self.settings.retry_after)
            return web.Response(status=status, body=body, headers=headers)
        drop = self.rng.choice(("before", "after", "midway")) if fault == "drop" else None
        if drop == "before":
            _drop(request)  # Azurite never sees it
            return web.Response(status=500)
        if fault == "slow":
            await asyncio.sleep(self.settings.slow_seconds)
        response = await self.forward(request, drop)
        self.counts["forwarded"] += 1
        return response

    async def forward(self, request: web.Request, drop: str | None) -> web.StreamResponse:
        """Send REQUEST to Azurite as it came; stream the answer back. DROP "after": Azurite
        did the work but the client hears nothing; "midway": half the body, then nothing."""
        assert self.session is not None
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP]
        data = request.content if request.body_exists else None
        try:
            async with self.session.request(
                request.method,
                self.upstream + request.raw_path,
                headers=headers,
                data=data,
                allow_redirects=False,
                skip_auto_headers={"Accept-Encoding", "User-Agent", "Content-Type"},
            ) as upstream:
                if drop == "after" or (drop == "midway" and not upstream.content_length):
                    await upstream.read()
                    _drop(request)
                    return web.Response(status=500)
                out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for k, v in upstream.headers.items():
                    if k.lower() not in _HOP:
                        out.headers.add(k, v)
                await out.prepare(request)
                budget = (upstream.content_length or 0) // 2 if drop == "midway" else None
                async for chunk in upstream.content.iter_chunked(1 << 16):
                    if budget is not None and len(chunk) >= budget:
                        await out.write(chunk[:budget])
                        _drop(request)
                        return out
                    if budget is not None:
                        budget -= len(chunk)
                    await out.write(chunk)
                await out.write_eof()
                return out
        except (TimeoutError, ClientError) as exc:
            log(f"{request.method} {request.path} upstream failed: {type(exc).__name__}")
            _drop(request)
            return web.Response(status=502)

    async def control(self, request: web.Request) -> web.Response:
        if request.remote not in ("127.0.0.1", "::1"):
            return web.json_response({"error": "loopback only"}, status=403)
        if request.path == "/_local/health":
            return web.json_response({"status": "ok", "pid": os.getpid()})
        if request.path == "/_local/requests":
            return web.json_response(dict(self.counts))
        if request.path == "/_local/settings":
            if request.method in ("PUT", "POST", "PATCH"):
                try:
                    body = await request.json()
                    if not isinstance(body, dict):
                        raise ValueError("the body must be a JSON object")
                    reseed = "seed" in body
                    self.settings.update(body)
                except (ValueError, TypeError) as exc:
                    return web.json_response({"error": str(exc)}, status=400)
                if reseed:
                    self.rng = random.Random(self.settings.seed)
                log(f"settings {json.dumps(self.settings.to_json())}")
            return web.json_response(self.settings.to_json())
        return web.json_response({"error": "not found"}, status=404)


def _drop(request: web.Request) -> None:
    """Close the client's connection without an answer."""
    if request.transport is not None:
        request.transport.abort()


def log(line: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    sys.stdout.write(f"{stamp} {redact(line)}\n")
    sys.stdout.flush()


def build_app(upstream: str, settings: Settings) -> web.Application:
    """The aiohttp application (used by main() and by tests in-process)."""
    proxy = Proxy(upstream, settings)
    app = web.Application(client_max_size=0)

    async def session(app: web.Application) -> Any:
        proxy.session = ClientSession(
            connector=TCPConnector(limit=64),
            auto_decompress=False,
            timeout=ClientTimeout(total=None, sock_connect=10),
        )
        yield
        await proxy.session.close()

    app.cleanup_ctx.append(session)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bspec.local.storageproxy")
    parser.add_argument("--upstream", required=True, help="Azurite's base URL (scheme://host:port)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    settings = Settings()
    try:
        settings.update(
            {"faultRate": args.rate, "faultKinds": args.kinds.split(","), "seed": args.seed}
        )
    except ValueError as exc:
        parser.error(str(exc))
    log(f"storage proxy pid {os.getpid()} -> {args.upstream} {json.dumps(settings.to_json())}")
    web.run_app(
        build_app(args.upstream, settings),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        handle_signals=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
