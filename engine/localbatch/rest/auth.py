"""Who may call: SharedKey, verified as Batch signs it, or a bearer token (the test Entra
mode's, or a task's authentication token, good for its job only).

A signed request is good for 15 minutes either side of its ocp-date (or Date), measured on
the machine's real clock (not the service clock, which a test may have stepped), so that a
captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs

from aiohttp import web

from ..resources import BatchError

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
BAD_SIGNATURE = (
    "Server failed to authenticate the request. Make sure the value of Authorization header "
    "is formed correctly including the signature."
)


class Authenticator:
    def __init__(self, account: str, key: str, bearer_token: str | None = None) -> None:
        self.account = account
        self.key = base64.b64decode(key)
        self.bearer_token = bearer_token
        # A task's authentication token -> its job's key (set by the app; None: no tokens).
        self.job_token: Callable[[str], str | None] | None = None

    def check(self, request: web.Request, raw_path: str, raw_query: str) -> str | None:
        """Authenticate; the job key a task's token is limited to, or None (the account)."""
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer ") and (self.bearer_token is not None or self.job_token):
            given = auth[len("Bearer ") :]
            if self.bearer_token is not None and hmac.compare_digest(given, self.bearer_token):
                return None
            job = self.job_token(given) if self.job_token else None
            if job is not None:
                return job
            raise BatchError(
                401,
                "AuthenticationFailed",
                "Server failed to authenticate the request. The access token is invalid.",
            )
        if not auth:
            raise BatchError(401, "AuthenticationFailed", BAD_SIGNATURE)
        if not auth.startswith("SharedKey ") or ":" not in auth:
            raise BatchError(
                400,
                "InvalidAuthenticationInfo",
                "Authentication information "
                "is not given in the correct format. Check the value of "
                "Authorization header.",
            )
        name, _, signature = auth[len("SharedKey ") :].partition(":")
        expected = self.signature(request, raw_path, raw_query, name)
        if name != self.account or not hmac.compare_digest(signature.strip(), expected):
            raise BatchError(
                403,
                "AuthenticationFailed",
                BAD_SIGNATURE,
                {
                    "AuthenticationErrorDetail": "The MAC signature found in the "
                    "HTTP request is not the same as any computed signature."
                },
            )
        _check_date(request)
        return None

    def signature(self, request: web.Request, raw_path: str, raw_query: str, name: str) -> str:
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


def _check_date(request: web.Request) -> None:
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
