"""Who may call: SharedKey, verified as Batch verifies it (`..sharedkey`), or a bearer token.

A signed request is good for 15 minutes either side of its ocp-date (or Date), measured on
the machine's real clock (not the service clock, which a test may have stepped), so that a
captured request cannot be replayed later.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac

from aiohttp import web

from .. import sharedkey
from ..resources import BatchError


class Authenticator:
    def __init__(self, account: str, key: str, bearer_token: str | None = None) -> None:
        self.account = account
        self.key = base64.b64decode(key)
        self.bearer_token = bearer_token

    def check(self, request: web.Request, raw_path: str, raw_query: str) -> None:
        auth = request.headers.get("Authorization", "")
        if self.bearer_token is not None and auth.startswith("Bearer "):
            if hmac.compare_digest(auth[len("Bearer ") :], self.bearer_token):
                return
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
