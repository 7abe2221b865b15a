"""Job manager, preparation and release tasks and exit conditions through an older client
generation: azure-batch 12.0.0 (msrest, api-version 2022-01-01.15.0) runs
jobtasks_old_client.py in .venv/compat against the session's local Batch service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from test_localbatch_old_client import run_old_client

SCRIPT = Path(__file__).with_name("jobtasks_old_client.py")


def test_azure_batch_12_job_tasks_and_exit_conditions(local_services: Any) -> None:
    seen = run_old_client(local_services, SCRIPT)
    assert seen["api"] == "2022-01-01.15.0"
    assert seen["managerExitCode"] == 0
    assert seen["taskExitCode"] == 3 and seen["taskResult"] == "failure"
    assert seen["terminateReason"] == "TaskFailed"
    assert seen["prep"] == [["completed", "success", 0]]  # one node, prepared once
    assert seen["release"] == [["completed", 0]]
