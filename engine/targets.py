"""Where to connect: the local services or Azure, and with which credentials.

Both targets build the same providers over the same SDK clients; only endpoints and
credentials differ. Every client gets a counting policy, so `requests` in --json means
the same on both targets.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import HTTPPolicy, RetryPolicy
from azure.storage.blob import BlobServiceClient, ExponentialRetry
from bspec.errors import InputError
from bspec.providers.batch import BatchProvider
from bspec.providers.counting import CountingPolicy, RequestCounter
from bspec.providers.storage import StorageProvider

TARGETS = ("local", "azure")


def choose(flag: str | None, spec_target: str | None) -> str:
    """--target, then BSPEC_TARGET, then the spec's `target:`, then local."""
    for source, value in (
        ("--target", flag),
        ("BSPEC_TARGET", os.environ.get("BSPEC_TARGET")),
        ("target:", spec_target),
    ):
        if value:
            if value not in TARGETS:
                raise InputError(
                    f"{source} {value!r} is not a target; use local or azure", code="InvalidTarget"
                )
            return value
    return "local"


@dataclass
class Target:
    """Connected providers for one stack, and the request counter they share."""

    name: str
    batch: BatchProvider
    storage: StorageProvider
    counter: RequestCounter = field(default_factory=RequestCounter)
    _closers: list[Any] = field(default_factory=list, repr=False)
    local_url: str | None = None  # the local Batch service's URL (its /_local paths)

    def close(self) -> None:
        for c in self._closers:
            with contextlib.suppress(Exception):
                c.close()


RETRY_TOTAL = 6  # attempts after the first, per request; each waits out Retry-After


class BatchRetryPolicy(RetryPolicy):  # type: ignore[type-arg]
    """azure-core's retry, extended to Batch's POSTs (creates, task collections, resizes).

    azure-core retries POST only on 500/503/504 answers, not on 429 or a dropped connection,
    so one throttled or dropped task submission failed a whole apply. Batch creates are keyed
    by id, so a repeated POST cannot duplicate anything: it answers PoolExists, JobExists or
    TaskExists (which the engine counts as success when the fingerprint matches)."""

    def _is_method_retryable(
        self, settings: dict[str, Any], request: Any, response: Any = None
    ) -> bool:
        return True


def _clients_opts(counter: RequestCounter, service: str) -> dict[str, Any]:
    return {
        "per_retry_policies": [CountingPolicy(counter, service)],
        "retry_policy": BatchRetryPolicy(retry_total=RETRY_TOTAL),
    }


class ThrottleRetryPolicy(HTTPPolicy):  # type: ignore[type-arg]
    """Retries a storage request answered 429, after its Retry-After (at most 30 s).

    The storage SDK's retry policy retries 5xx and dropped connections but takes 429 for a
    final answer. Placed after that policy and before the counting one, so each repeat is
    counted and reported like the SDK's own retries."""

    def __init__(self, retry_total: int) -> None:
        super().__init__()
        self.retry_total = retry_total

    def send(self, request: PipelineRequest[Any]) -> PipelineResponse[Any, Any]:
        body = request.http_request.body
        start = body.tell() if hasattr(body, "seek") and hasattr(body, "tell") else None
        response = self.next.send(request)
        for attempt in range(self.retry_total):
            if response.http_response.status_code != 429:
                break
            if hasattr(body, "seek"):
                if start is None:
                    break
                body.seek(start)
            after = response.http_response.headers.get("Retry-After", "")
            time.sleep(min(30.0, float(after)) if after.isdigit() else 2.0**attempt)
            response = self.next.send(request)
        return response


class StorageRetryPolicy(ExponentialRetry):
    """The storage SDK's retry with shorter waits: its default waits 15 s before the first
    retry and makes three; bspec's commands are interactive, so 0.5 s, 1 s, 2 s... (±20%,
    at most 30 s) and as many retries as for Batch."""

    def get_backoff_time(self, settings: dict[str, Any]) -> float:
        base = min(30.0, 0.5 * 2.0 ** max(0, int(settings["count"]) - 1))
        return base * random.uniform(0.8, 1.2)


def _storage_opts(counter: RequestCounter) -> dict[str, Any]:
    return {
        "retry_policy": StorageRetryPolicy(retry_total=RETRY_TOTAL),
        "_additional_pipeline_policies": [
            ThrottleRetryPolicy(RETRY_TOTAL),
            CountingPolicy(counter, "storage"),
        ],
    }


def _connection_key(conn: str) -> str | None:
    parts = dict(p.split("=", 1) for p in conn.split(";") if "=" in p)
    return parts.get("AccountKey")


def connect(name: str, stack: str, *, home: Path | None = None) -> Target:
    """Providers for target `name` ("local" starts the local services when needed)."""
    counter = RequestCounter()
    storage_opts = _storage_opts(counter)
    local_url: str | None = None
    if name == "local":
        from bspec import local as services

        ep = services.ensure_running(home)
        local_url = ep.batch_url
        batch_client = BatchClient(
            ep.batch_url,
            AzureNamedKeyCredential(ep.account, ep.key),
            **_clients_opts(counter, "batch"),
        )
        blob = BlobServiceClient.from_connection_string(
            ep.storage_connection_string, **storage_opts
        )
        key = _connection_key(ep.storage_connection_string)
    else:
        batch_client, blob, key = _azure_clients(counter, storage_opts)
    batch = BatchProvider(batch_client, str(blob.url), stack)
    storage = StorageProvider(blob, stack, account_key=key)
    return Target(name, batch, storage, counter, [batch_client, blob], local_url)


def _azure_clients(counter: RequestCounter, storage_opts: dict[str, Any]) -> tuple[Any, Any, Any]:
    env = os.environ
    endpoint = env.get("AZURE_BATCH_ENDPOINT")
    if not endpoint:
        raise InputError(
            "the azure target needs AZURE_BATCH_ENDPOINT (and AZURE_BATCH_ACCOUNT"
            " with AZURE_BATCH_ACCESS_KEY, or an Entra ID login)",
            code="MissingConfiguration",
        )
    if not endpoint.startswith(("http://", "https://")):
        endpoint = "https://" + endpoint
    account, key = env.get("AZURE_BATCH_ACCOUNT"), env.get("AZURE_BATCH_ACCESS_KEY")
    credential: Any
    credential = AzureNamedKeyCredential(account, key) if account and key else _default_credential()
    batch_client = BatchClient(endpoint, credential, **_clients_opts(counter, "batch"))
    conn = env.get("AZURE_STORAGE_CONNECTION_STRING")
    if conn:
        blob = BlobServiceClient.from_connection_string(conn, **storage_opts)
        return batch_client, blob, _connection_key(conn)
    storage_account = env.get("AZURE_STORAGE_ACCOUNT")
    if not storage_account:
        raise InputError(
            "the azure target needs AZURE_STORAGE_CONNECTION_STRING or AZURE_STORAGE_ACCOUNT",
            code="MissingConfiguration",
        )
    url = (
        env.get("AZURE_STORAGE_BLOB_ENDPOINT") or f"https://{storage_account}.blob.core.windows.net"
    )
    blob = BlobServiceClient(url, credential=_default_credential(), **storage_opts)
    return batch_client, blob, None


def _default_credential() -> Any:
    """DefaultAzureCredential, or a static bearer token (BSPEC_TEST_BEARER_TOKEN) that the
    local service's TLS test mode accepts, so the Entra ID path is tested offline."""
    token = os.environ.get("BSPEC_TEST_BEARER_TOKEN")
    if token:
        return _StaticToken(token)
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


class _StaticToken:
    """A TokenCredential that always answers the same token (tests only)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, 2**31 - 1)
