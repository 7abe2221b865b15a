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


def test_azure_batch_12_pool_job_tasks_lifecycle(local_services: Any) -> None:
    if not COMPAT_PYTHON.exists():
        pytest.fail(f"{COMPAT_PYTHON} is missing: run `make install` (it builds .venv/compat)")
    done = subprocess.run(
        [
            str(COMPAT_PYTHON),
            str(SCRIPT),
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
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["api"] == "2022-01-01.15.0"
    assert seen["added"] == ["success"] * 3
    assert seen["listed"] == ["t0", "t1", "t2"]
    assert seen["exitCode"] == 0
    assert seen["stdout"].strip() == "hello-1"
    assert seen["ranged"] == "hello"
    assert seen["images"] > 0
    assert any(c.startswith("old-pool-") for c in seen["counts"])
    assert seen["poolExists"] in (True, False)  # deleting or gone: either is Batch's answer
