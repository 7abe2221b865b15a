"""The aiohttp application: the pipeline every Batch API request goes through.

count by operationId -> latency -> fault injection -> auth -> api-version -> route ->
body -> handler -> reply or Batch's error body. `/_local/` paths go to the controls.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs

from aiohttp import web

from ..resources import BatchError
from ..service import Batch
from ..settings import MAX_API, MIN_API, Settings
from ..versions import normalize_query
from . import faults
from .account_api import AccountApi, account_table
from .auth import Authenticator
from .coverage import Refusals, check_properties
from .files_api import FilesApi
from .jobs_api import JobsApi
from .jobschedules_api import JobSchedulesApi
from .local import Counter, LocalControls
from .pools_api import PoolsApi
from .protocol import MAX_BODY, Call, Handler, Reply, error_response, read_body, respond
from .routes import Router, table
from .versions import ApiVersions


def route_rows(batch: Batch) -> list[tuple[str, str, str, Handler]]:
    """Every route of the service: the one list that says which operations of the definition
    are implemented (coverage.Refusals refuses the others by name)."""
    return table(
        PoolsApi(batch), JobsApi(batch), FilesApi(batch), JobSchedulesApi(batch)
    ) + account_table(AccountApi(batch))


def routed_operations() -> set[str]:
    """The operationIds route_rows answers, without a running service (for the docs table)."""

    class Stand:
        def __getattr__(self, _name: str) -> Stand:
            return self

    return {op for _m, _p, op, _h in route_rows(cast(Batch, Stand()))}


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
        self.router = Router(route_rows(self.batch))
        self.refusals = Refusals(op for _m, _p, op, _h in self.router.routes)
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
            if self.refusals.refusal(request.method, raw_path) is None:
                self.counter.add("Unknown", request.method)
                return error_response(request, exc, request_id)
            matched = None  # another verb of a routed path: refused by name below
        self.counter.add(matched[0] if matched else "Unknown", request.method)
        try:
            await faults.delay(self.settings)
            fault = faults.fault(request, self.settings)
            if fault is not None:
                return fault
            scope = self.auth.check(request, raw_path, raw_query)
            if scope is not None:  # a task's authentication token: its job's operations only
                self.batch.runtime.tokens.allow(scope, matched[2] if matched else None)
            query = normalize_query({k: v[0] for k, v in parse_qs(raw_query).items()})
            version = self.versions.check(query)
            if matched is None:
                refusal = self.versions.refusal(version, request.method, raw_path)
                if refusal is None:
                    refusal = self.refusals.refusal(request.method, raw_path)
                if refusal is not None:
                    raise refusal
                raise BatchError(404, "ResourceNotFound", "The specified resource does not exist.")
            op, handler, params = matched
            call = Call(request, op, params, query, f"{request.scheme}://{request.host}")
            call.api_version = version
            call.body = self.versions.request(version, op, await read_body(request, op))
            check_properties(op, call.body)
            result = handler(call)
            reply = await result if asyncio.iscoroutine(result) else result
            assert isinstance(reply, Reply)
            if reply.body is not None:
                reply.body = self.versions.response(version, op, reply.body)
            return respond(request, reply, request_id)
        except BatchError as exc:
            return error_response(request, exc, request_id)
