"""SharedKey with the real Python clients: requests signed by azure-batch 15 (in process, sync
over requests and async over aiohttp) and by azure-batch 12 (msrest, in .venv/compat, which
`make install` builds) reach a capture server on loopback exactly as sent, and verify with
bspec.localbatch.sharedkey with the account's key, and fail with another key.

No local Batch service is needed: the capture server answers canned replies, and the clients'
complaints about them are ignored; only the requests they signed matter.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from azure.batch import BatchClient
from azure.batch import models as bm
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from bspec.localbatch import sharedkey, versions
from bspec.localbatch.resources import BatchError

ACCOUNT = "compatacct"
KEY = base64.b64encode(b"compat-key-" * 6).decode()
WRONG_KEY = base64.b64encode(b"other-key!!" * 6).decode()
ROOT = Path(__file__).resolve().parents[2]
COMPAT_PYTHON = ROOT / ".venv" / "compat" / "bin" / "python"
OLD_CLIENT = Path(__file__).with_name("sharedkey_old_client.py")


@dataclass(frozen=True)
class Captured:
    method: str
    target: str  # the request-target as sent: encoded path and raw query
    headers: tuple[tuple[str, str], ...]

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> str:
        return urlsplit(self.target).query

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class _Capture(BaseHTTPRequestHandler):
    """Records every request; answers what a list, a create or a delete expects."""

    seen: list[Captured]
    protocol_version = "HTTP/1.1"

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.seen.append(Captured(self.command, self.path, tuple(self.headers.items())))
        status = {"POST": 201, "DELETE": 202}.get(self.command, 200)
        body = b'{"value": []}' if self.command == "GET" else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json;odata=minimalmetadata")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def capture() -> Iterator[tuple[str, list[Captured]]]:
    seen: list[Captured] = []
    handler = type("Capture", (_Capture,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _verify(request: Captured, key: str) -> sharedkey.Variant:
    return sharedkey.verify(
        request.method,
        request.path,
        request.query,
        request.headers,
        account=ACCOUNT,
        key=key,
        now=dt.datetime.now(dt.UTC),
    )


def _assert_all_verify(seen: list[Captured]) -> dict[str, str]:
    """Every captured request verifies with the key and fails with another; returns which
    variant each request matched, by method and target, for the assertions that follow."""
    assert seen, "the client sent nothing"
    matched = {}
    for request in seen:
        assert (request.header("Authorization") or "").startswith(f"SharedKey {ACCOUNT}:")
        matched[f"{request.method} {request.target}"] = _verify(request, KEY).name
        with pytest.raises(BatchError) as caught:
            _verify(request, WRONG_KEY)
        assert caught.value.code == "AuthenticationFailed"
    return matched


def test_azure_batch_15_requests_verify(capture: tuple[str, list[Captured]]) -> None:
    url, seen = capture
    client = BatchClient(url, AzureNamedKeyCredential(ACCOUNT, KEY), retry_total=0)
    calls = [
        lambda: list(client.list_jobs(filter="state eq 'active'", max_results=10)),
        lambda: client.get_job("job-1", service_timeout=30),
        lambda: client.create_job(
            bm.BatchJobCreateOptions(id="job-1", pool_info=bm.BatchPoolInfo(pool_id="pool-1"))
        ),
        lambda: client.delete_task("job-1", "task-1"),
        lambda: client.disable_pool_auto_scale("pool-1"),
        lambda: client.pool_exists("pool-1"),
        lambda: client.get_task_file_properties("job-1", "task-1", "stdout.txt"),
        lambda: client.send_request(
            HttpRequest("GET", f"{url}/jobs?api-version=2025-06-01&$Select=id&tag=b&tag=a&E=")
        ),
        lambda: client.send_request(
            HttpRequest("DELETE", f"{url}/pools/pool%201?api-version=2025-06-01")
        ),
    ]
    for call in calls:
        with contextlib.suppress(AzureError):  # a canned reply a call did not expect
            call()
    client.close()
    matched = _assert_all_verify(seen)
    methods = {key.split()[0] for key in matched}
    assert methods == {"GET", "POST", "DELETE", "HEAD"}
    # azure-batch 15 sends `timeOut` and signs the name as sent, where the page lower-cases it
    assert matched["GET /jobs/job-1?api-version=2025-06-01&timeOut=30"] == "azure-batch-python"
    for request in seen:
        if request.target.startswith("/jobs?") and "api-version=" in request.target:
            version = request.target.split("api-version=")[1].split("&")[0]
            assert versions.parse_version(version) is versions.CURRENT


def test_azure_batch_15_async_requests_verify(capture: tuple[str, list[Captured]]) -> None:
    """The aio client signs "0" for a missing Content-Length before aiohttp sends the request;
    aiohttp (3.14) then sends `Content-Length: 0` on a bodiless DELETE and POST, so the page's
    rule (the value as sent) holds for it too."""
    url, seen = capture

    async def run() -> None:
        async with AsyncBatchClient(
            url, AzureNamedKeyCredential(ACCOUNT, KEY), retry_total=0
        ) as client:
            for call in (
                client.delete_task("job-1", "task-1"),
                client.disable_pool_auto_scale("pool-1"),
                client.pool_exists("pool-1"),
            ):
                with contextlib.suppress(AzureError):
                    await call

    asyncio.run(run())
    _assert_all_verify(seen)
    bodiless = [r for r in seen if r.method in ("DELETE", "POST")]
    assert bodiless and all(r.header("Content-Length") == "0" for r in bodiless)


def test_azure_batch_12_requests_verify(capture: tuple[str, list[Captured]]) -> None:
    if not COMPAT_PYTHON.exists():
        pytest.fail(f"{COMPAT_PYTHON} is missing: run `make install` (it builds .venv/compat)")
    url, seen = capture
    done = subprocess.run(
        [str(COMPAT_PYTHON), str(OLD_CLIENT), url, ACCOUNT],
        env={**os.environ, "BSPEC_TEST_BATCH_KEY": KEY},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2022-01-01.15.0"
    assert versions.supported(done.stdout.strip())
    matched = _assert_all_verify(seen)
    assert {key.split()[0] for key in matched} == {"GET", "POST", "DELETE", "HEAD"}
    ranged = [r for r in seen if r.header("ocp-range")]
    assert ranged and ranged[0].header("ocp-range") == "bytes=0-9"
    deletes = [r for r in seen if r.method == "DELETE"]
    assert all(
        r.header("Content-Length") == "0" for r in deletes
    )  # requests adds it, then msrest signs
    assert sys.executable != str(COMPAT_PYTHON)
