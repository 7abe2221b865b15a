"""Run by tests/service/test_localbatch_old_client_jobtasks.py in .venv/compat (azure-batch
12.0.0, msrest, api-version 2022-01-01.15.0) against the session's local Batch service: a job
with a manager, a preparation and a release task, and a task whose exit code 3 terminates the
job. Usage: python jobtasks_old_client.py <batch url> <account> <suffix>; the key comes in
BSPEC_TEST_BATCH_KEY. Prints one JSON line of what it saw; any error is a failure."""

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from azure.batch import BatchServiceClient
from azure.batch import models as m
from azure.batch.batch_auth import SharedKeyCredentials
from old_client_lifecycle import add_pool


def wait(what: str, probe: Callable[[], Any], seconds: float = 60) -> Any:
    """PROBE's first truthy answer, polled; a timeout names WHAT."""
    deadline = time.monotonic() + seconds
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def main() -> int:
    url, account, suffix = sys.argv[1], sys.argv[2], sys.argv[3]
    c = BatchServiceClient(SharedKeyCredentials(account, os.environ["BSPEC_TEST_BATCH_KEY"]), url)
    c.config.retry_policy.retries = 0
    pool_id, job_id = f"old-jtpool-{suffix}", f"old-jt-{suffix}"
    add_pool(c, pool_id)
    c.job.add(
        m.JobAddParameter(
            id=job_id,
            pool_info=m.PoolInformation(pool_id=pool_id),
            on_task_failure=m.OnTaskFailure.perform_exit_options_job_action,
            job_manager_task=m.JobManagerTask(
                id="manager",
                command_line="/bin/sh -c 'echo managing'",
                kill_job_on_completion=False,
                run_exclusive=False,
            ),
            job_preparation_task=m.JobPreparationTask(command_line="/bin/sh -c 'echo ready'"),
            job_release_task=m.JobReleaseTask(command_line="/bin/sh -c 'echo bye'"),
        )
    )
    seen = {"api": c.api_version}
    manager = wait(
        "manager completed",
        lambda: (lambda t: t if t.state == m.TaskState.completed else None)(
            c.task.get(job_id, "manager")
        ),
    )
    seen["managerExitCode"] = manager.execution_info.exit_code
    mapping = m.ExitCodeMapping(
        code=3, exit_options=m.ExitOptions(job_action=m.JobAction.terminate)
    )
    c.task.add(
        job_id,
        m.TaskAddParameter(
            id="fails",
            command_line="/bin/sh -c 'exit 3'",
            exit_conditions=m.ExitConditions(exit_codes=[mapping]),
        ),
    )
    job = wait(
        "job completed",
        lambda: (lambda j: j if j.state == m.JobState.completed else None)(c.job.get(job_id)),
    )
    seen["terminateReason"] = job.execution_info.terminate_reason
    task = c.task.get(job_id, "fails")
    seen["taskExitCode"] = task.execution_info.exit_code
    seen["taskResult"] = str(task.execution_info.result.value)
    statuses = wait(
        "release completed",
        lambda: (lambda s: s if s and all(x.job_release_task_execution_info for x in s) else None)(
            list(c.job.list_preparation_and_release_task_status(job_id))
        ),
    )
    seen["prep"] = [
        [
            str(s.job_preparation_task_execution_info.state.value),
            str(s.job_preparation_task_execution_info.result.value),
            s.job_preparation_task_execution_info.exit_code,
        ]
        for s in statuses
    ]
    seen["release"] = [
        [
            str(s.job_release_task_execution_info.state.value),
            s.job_release_task_execution_info.exit_code,
        ]
        for s in statuses
    ]
    c.job.delete(job_id)
    c.pool.delete(pool_id)
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
