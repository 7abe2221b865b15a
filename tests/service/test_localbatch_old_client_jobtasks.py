"""Job manager, preparation and release tasks and exit conditions through an older client
generation: azure-batch 12.0.0 (msrest, api-version 2022-01-01.15.0) runs
jobtasks_old_client.py in .venv/compat against the session's local Batch service."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from test_localbatch_old_client import COMPAT_PYTHON

SCRIPT = Path(__file__).with_name("jobtasks_old_client.py")


def test_azure_batch_12_job_tasks_and_exit_conditions(local_services: Any) -> None:
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
    assert seen["managerExitCode"] == 0
    assert seen["taskExitCode"] == 3 and seen["taskResult"] == "failure"
    assert seen["terminateReason"] == "TaskFailed"
    assert seen["prep"] == [["completed", "success", 0]]  # one node, prepared once
    assert seen["release"] == [["completed", 0]]
