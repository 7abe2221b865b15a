"""The dashboard's walls: a token in the printed URL traded for a cookie, 401 for everything
else, a CSRF token on every POST, a Host check (no DNS rebinding), a Content-Security-Policy
without inline scripts, and SAS signatures redacted from every text answer."""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

COOKIE = "bspec_ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
# a signature ends at the next parameter, space, quote, tag or backslash (JSON's escapes)
_SIG = re.compile(r"((?:^|[?&;\s\"'])sig=)[^&\s\"'<\\]+", re.IGNORECASE)
_SIG_ENCODED = re.compile(r"(sig%3D)[^&\s\"'<%\\]+(?:%[0-9A-F]{2}[^&\s\"'<%\\]*)*", re.IGNORECASE)

TEXT_TYPES = ("text/html", "text/plain", "application/json", "text/event-stream")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def redact(text: str) -> str:
    """Remove SAS signatures (plain or URL-encoded) from text the browser gets."""
    return _SIG_ENCODED.sub(r"\1REDACTED", _SIG.sub(r"\1REDACTED", text))


def redact_tree(value: Any) -> Any:
    """`redact` every string in a JSON-like value."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [redact_tree(v) for v in value]
    if isinstance(value, dict):
        return {k: redact_tree(v) for k, v in value.items()}
    return value


@dataclass
class Guard:
    """The secrets of one `bspec ui` process: the URL token and the sessions it opened."""

    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    sessions: dict[str, str] = field(default_factory=dict)  # cookie value -> CSRF token
    port: int = 0

    @property
    def cookie(self) -> str:
        """The session cookie's name: one per port, as browsers share cookies across ports."""
        return f"{COOKIE}_{self.port}"

    def session_of(self, request: web.Request) -> str | None:
        value = request.cookies.get(self.cookie, "")
        for known in self.sessions:
            if hmac.compare_digest(known, value):
                return known
        return None

    def csrf_of(self, request: web.Request) -> str:
        session = self.session_of(request)
        return self.sessions.get(session or "", "")

    def host_ok(self, request: web.Request) -> bool:
        host = request.headers.get("Host", "")
        return host in (f"127.0.0.1:{self.port}", f"localhost:{self.port}") or not self.port

    async def check_csrf(self, request: web.Request) -> bool:
        want = self.csrf_of(request)
        got = request.headers.get("X-CSRF-Token", "")
        if not got and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            got = str((await request.post()).get("csrf", ""))
        return bool(want) and hmac.compare_digest(want, got)


def middleware(guard: Guard) -> Any:
    @web.middleware
    async def guarded(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guard.host_ok(request):
            return headers(web.Response(status=403, text="403: wrong Host header\n"))
        token = request.query.get("token")
        if token is not None and hmac.compare_digest(token, guard.token):
            session = secrets.token_urlsafe(24)
            guard.sessions[session] = secrets.token_urlsafe(24)
            query = {k: v for k, v in request.query.items() if k != "token"}
            target = str(request.rel_url.with_query(query))
            moved = web.Response(status=303, headers={"Location": target})
            moved.set_cookie(guard.cookie, session, httponly=True, samesite="Strict", path="/")
            return headers(moved)
        if guard.session_of(request) is None:
            return headers(
                web.Response(
                    status=401,
                    text="401: open the address `bspec ui` printed (it carries the token)\n",
                )
            )
        if request.method not in ("GET", "HEAD") and not await guard.check_csrf(request):
            return headers(web.Response(status=403, text="403: missing or wrong CSRF token\n"))
        resp: web.StreamResponse
        try:
            resp = await handler(request)
        except web.HTTPException as exc:  # answered as a plain response (redirects, 404s)
            resp = web.Response(
                status=exc.status,
                text=exc.text or "",
                content_type="text/plain",
                headers={k: v for k, v in exc.headers.items() if k.lower() == "location"},
            )
        if (
            isinstance(resp, web.Response)
            and not resp.prepared
            and resp.content_type in TEXT_TYPES
            and isinstance(resp.body, bytes)
        ):
            resp.text = redact(resp.body.decode(resp.charset or "utf-8", errors="replace"))
        return headers(resp)

    return guarded


def headers(resp: web.StreamResponse) -> web.StreamResponse:
    """The security headers every answer carries (streams set them before they start)."""
    if resp.prepared:
        return resp
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers.setdefault("Cache-Control", "no-store")
    return resp
