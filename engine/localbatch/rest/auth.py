"""Who may call: SharedKey, verified as Batch verifies it (`..sharedkey`), or a bearer token
(the test Entra mode's, or a task's authentication token, good for its job only).

A signed request is good for 15 minutes either side of its ocp-date (or Date), measured on
the machine's real clock (not the service clock, which a test may have stepped), so that a
captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
from collections.abc import Callable

from aiohttp import web

from .. import sharedkey
from ..resources import BatchError


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
        sharedkey.verify(
            request.method,
            raw_path,
            raw_query,
            request.headers.items(),
            account=self.account,
            key=self.key,
            now=dt.datetime.now(dt.UTC),
            require_date=True,
        )
        return None
