"""Session fixtures: the local Batch service and Azurite, started once, stopped by PID.

Tests that use `local_services`, `batch_client` or `blob_service` are marked `service`
automatically (so `pytest -m "not service"` runs only the pure tests) and must not live
under tests/unit/. The services run in a temporary BSPEC_HOME on free ports; tests share
them, so every test names its pools, jobs and containers with `unique_id(...)`.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from bspec import local as services

SERVICE_FIXTURES = {"local_services", "batch_client", "blob_service", "azurite"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that need the services as `service`; unit tests must never start them."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if not names & SERVICE_FIXTURES:
            continue
        if "tests/unit/" in item.path.as_posix():
            raise pytest.UsageError(
                f"{item.nodeid} is a unit test but uses {sorted(names & SERVICE_FIXTURES)}; "
                "move it to tests/service/ or tests/cli/"
            )
        item.add_marker(pytest.mark.service)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


@dataclass
class LocalServices:
    """What a test needs to reach the session's services (the key stays out of reprs)."""

    endpoints: services.Endpoints

    @property
    def home(self) -> Path:
        return self.endpoints.home

    @property
    def batch_url(self) -> str:
        return self.endpoints.batch_url

    @property
    def account(self) -> str:
        return self.endpoints.account

    @property
    def key(self) -> str:
        return self.endpoints.key

    @property
    def storage_connection_string(self) -> str:
        return self.endpoints.storage_connection_string

    @property
    def blob_url(self) -> str:
        return self.endpoints.blob_url

    @property
    def env(self) -> dict[str, str]:
        """Environment for a `bspec` subprocess that should reuse these services."""
        return {"BSPEC_HOME": str(self.home)}

    def get_settings(self) -> dict[str, Any]:
        result: dict[str, Any] = services.http_json("GET", f"{self.batch_url}/_local/settings")
        return result

    def set_settings(self, **kw: Any) -> dict[str, Any]:
        """Change injection at run time: latency_ms, fault_rate, fault_kinds, delete_delay,
        max_processes (snake_case or camelCase). Returns the settings now in force."""
        body = {_camel(k): v for k, v in kw.items()}
        result: dict[str, Any] = services.http_json(
            "PUT", f"{self.batch_url}/_local/settings", body
        )
        return result

    @contextlib.contextmanager
    def settings(self, **kw: Any) -> Iterator[dict[str, Any]]:
        """set_settings for the duration of a with-block, then put the old values back."""
        before = self.get_settings()
        try:
            yield self.set_settings(**kw)
        finally:
            self.set_settings(**{_camel(k): before[_camel(k)] for k in kw if _camel(k) in before})

    def request_counts(self) -> dict[str, Any]:
        result: dict[str, Any] = services.http_json("GET", f"{self.batch_url}/_local/requests")
        return result

    def reset_counts(self) -> None:
        services.http_json("POST", f"{self.batch_url}/_local/requests/reset", {})


@pytest.fixture(scope="session")
def bspec_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's temporary state folder; whatever ran in it is stopped at the end."""
    home = tmp_path_factory.mktemp("bspec-home")
    try:
        yield home
    finally:
        services.stop(home)


@pytest.fixture(scope="session")
def azurite(bspec_home: Path) -> services.StorageEndpoint:
    """Azurite alone (for tests that need blobs but not Batch), on a free port."""
    return services.ensure_storage(bspec_home, port=0)


@pytest.fixture(scope="session")
def local_services(bspec_home: Path, azurite: services.StorageEndpoint) -> LocalServices:
    """The Batch service and Azurite in the session's state folder, on free ports."""
    endpoints = services.ensure_running(
        bspec_home, batch_port=0, azurite_port=0, batch_args=["--delete-delay", "0.2"]
    )
    return LocalServices(endpoints)


@pytest.fixture
def batch_client(local_services: LocalServices) -> Iterator[Any]:
    """A real azure.batch.BatchClient, SharedKey-authenticated against the local service."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    client = BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def blob_service(local_services: LocalServices) -> Iterator[Any]:
    """A real BlobServiceClient on the session's Azurite."""
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(local_services.storage_connection_string)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def unique_id() -> Callable[[str], str]:
    """unique_id("pool") -> "pool-1a2b3c4d": valid as a Batch id and a container name."""

    def make(prefix: str = "t") -> str:
        base = re.sub(r"[^a-z0-9-]", "-", prefix.lower()).strip("-") or "t"
        return f"{base[:50]}-{uuid.uuid4().hex[:8]}"

    return make
