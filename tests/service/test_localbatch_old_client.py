"""An older client generation against the session's local Batch service: azure-batch 12.0.0
(msrest, api-version 2022-01-01.15.0, Microsoft's azure-batch-samples pin it) runs a pool, a
job and tasks to completion in .venv/compat, which `make install` builds."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPAT_PYTHON = ROOT / ".venv" / "compat" / "bin" / "python"
SCRIPT = Path(__file__).with_name("old_client_lifecycle.py")


def run_old_client(local_services: Any, script: Path) -> Any:
    """What SCRIPT, run by azure-batch 12 in .venv/compat against the session's service with a
    fresh id suffix, printed on its last line; its stderr when it fails."""
    if not COMPAT_PYTHON.exists():
        pytest.fail(f"{COMPAT_PYTHON} is missing: run `make install` (it builds .venv/compat)")
    done = subprocess.run(
        [
            str(COMPAT_PYTHON),
            str(script),
            local_services.batch_url,
            local_services.account,
            uuid.uuid4().hex[:8],
        ],
        env={**os.environ, "BSPEC_TEST_BATCH_KEY": local_services.key},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_azure_batch_12_pool_job_tasks_lifecycle(local_services: Any) -> None:
    seen = run_old_client(local_services, SCRIPT)
    assert seen["api"] == "2022-01-01.15.0"
    assert seen["added"] == ["success"] * 3
    assert seen["listed"] == ["t0", "t1", "t2"]
    assert seen["exitCode"] == 0
    assert seen["stdout"].strip() == "hello-1"
    assert seen["ranged"] == "hello"
    assert seen["images"] > 0
    assert any(c.startswith("old-pool-") for c in seen["counts"])
    assert seen["poolExists"] in (True, False)  # deleting or gone: either is Batch's answer


def _send(client: Any, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """Status and JSON body, error or not (azure-batch 15 raises on error statuses)."""
    from azure.core.exceptions import HttpResponseError
    from azure.core.rest import HttpRequest

    try:
        response = client.send_request(HttpRequest(method, url, json=body))
    except HttpResponseError as exc:
        assert exc.response is not None
        response = exc.response
    text = response.text()
    return response.status_code, json.loads(text) if text else None


def test_older_versions_over_raw_http(local_services: Any) -> None:
    """The oldest version is served; what an older version has and the current one dropped is
    refused by name; azure-batch 10-14's `timeout` spelling is read."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    with BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
        retry_total=0,
    ) as c:
        status, body = _send(c, "GET", "/pools?api-version=2020-09-01.12.0&timeout=30")
        assert status == 200 and "value" in body
        status, body = _send(c, "GET", "/lifetimepoolstats?api-version=2022-01-01.15.0")
        assert status == 501 and body["code"] == "OperationNotSupported"
        assert "not supported by the local Batch service" in body["message"]["value"]
        status, body = _send(c, "GET", "/lifetimepoolstats?api-version=2025-06-01")
        assert status == 404
        status, body = _send(
            c,
            "POST",
            "/pools?api-version=2022-01-01.15.0",
            {"id": "cloud-pool", "vmSize": "small", "cloudServiceConfiguration": {"osFamily": "6"}},
        )
        assert status == 400 and body["code"] == "UnsupportedProperty"
        assert {"key": "PropertyName", "value": "cloudServiceConfiguration"} in body["values"]
        status, body = _send(c, "GET", "/pools?api-version=2019-08-01.10.0")
        assert status == 400 and body["code"] == "UnsupportedRequestVersion"
