"""The aiohttp application: the pipeline every Batch API request goes through.

count by operationId -> latency -> fault injection -> auth -> api-version -> route ->
body -> handler -> reply or Batch's error body. `/_local/` paths go to the controls.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from aiohttp import web

from ..resources import BatchError
from ..service import Batch
from ..settings import MAX_API, MIN_API, Settings
from . import faults
from .auth import Authenticator
from .files_api import FilesApi
from .jobs_api import JobsApi
from .local import Counter, LocalControls
from .pools_api import PoolsApi
from .protocol import MAX_BODY, Call, Reply, error_response, read_body, respond
from .routes import Router, table
from .versions import ApiVersions


class Service:
    """The local Batch service as an aiohttp application."""

    def __init__(
        self,
        home: Path,
        account: str,
        key: str,
        settings: Settings,
        *,
        min_api: str = MIN_API,
        max_api: str = MAX_API,
        bearer_token: str | None = None,
    ) -> None:
        self.batch = Batch(home, account, settings)
        self.account = account
        self.settings = settings
        self.auth = Authenticator(account, key, bearer_token)
        self.auth.job_token = self.batch.runtime.tokens.job_of
        self.versions = ApiVersions(min_api, max_api)
        self.counter = Counter()
        self.local = LocalControls(self.batch, self.counter, self.versions.range)
        self.router = Router(table(PoolsApi(self.batch), JobsApi(self.batch), FilesApi(self.batch)))
        self.app = web.Application(client_max_size=MAX_BODY + 1)
        self.app.router.add_route("*", "/{tail:.*}", self.dispatch)
        self.app.on_startup.append(self._startup)
        self.app.on_shutdown.append(self._shutdown)

    def set_base_url(self, url: str) -> None:
        """Where clients reach the service: node URLs and AZ_BATCH_ACCOUNT_URL use it."""
        self.batch.runtime.base_url = url

    async def _startup(self, _app: web.Application) -> None:
        await self.batch.start()

    async def _shutdown(self, _app: web.Application) -> None:
        await self.batch.stop()

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/_local/"):
            return await self.local.handle(request)
        request_id = str(uuid.uuid4())
        raw_path, _, raw_query = request.raw_path.partition("?")
        try:
            matched = self.router.match(request.method, raw_path)
        except BatchError as exc:
            self.counter.add("Unknown", request.method)
            return error_response(request, exc, request_id)
        self.counter.add(matched[0] if matched else "Unknown", request.method)
        try:
            await faults.delay(self.settings)
            fault = faults.fault(request, self.settings)
            if fault is not None:
                return fault
            scope = self.auth.check(request, raw_path, raw_query)
            if scope is not None:  # a task's authentication token: its job's operations only
                self.batch.runtime.tokens.allow(scope, matched[2] if matched else None)
            query = {k: v[0] for k, v in parse_qs(raw_query).items()}
            self.versions.check(query)
            if matched is None:
                raise BatchError(404, "ResourceNotFound", "The specified resource does not exist.")
            op, handler, params = matched
            call = Call(request, op, params, query, f"{request.scheme}://{request.host}")
            call.body = await read_body(request, op)
            result = handler(call)
            reply = await result if asyncio.iscoroutine(result) else result
            assert isinstance(reply, Reply)
            return respond(request, reply, request_id)
        except BatchError as exc:
            return error_response(request, exc, request_id)
