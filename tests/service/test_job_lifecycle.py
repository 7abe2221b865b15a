"""Issue 14 (items 1, 3 and 4): how a job lives, applied for real on the local target
through the SDKs: a preparation task whose effect the tasks see and a release task that
runs when the job ends; onAllTasksComplete switched on after the tasks are in (also by
the next apply after a stop in between), never back without a replace; maxParallelTasks
in place; exit rules that end the job, satisfy dependents, and what `--rerun-failed` does
with a job an exit rule ended."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec import operations
from bspec.commands.reconcile import run_apply
from bspec.commands.unlock import run_unlock
from bspec.errors import RefusedError, ServiceError, TaskFailedError
from bspec.model import Action
from bspec.operations.session import opened
from bspec.reporting import reason_text
from engine_support import Stack, changes

PREP = {
    "commands": ['echo "prepared $MARK" > "$AZ_BATCH_NODE_SHARED_DIR/$AZ_BATCH_JOB_ID.prep"'],
    "environment": {"MARK": "x"},
}


@pytest.fixture
def make_stack(
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> Iterator[Callable[[], Stack]]:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    made: list[Stack] = []

    def make() -> Stack:
        name = unique_id("jl")
        s = Stack(tmp_path / name, name)
        s.nodes = 1
        made.append(s)
        return s

    yield make
    for s in made:
        s.destroy()


def _val(x: Any) -> str:
    """An SDK enum (or string) as the REST value, lower case."""
    return str(getattr(x, "value", x)).lower()


def _job(batch_client: Any, job_id: str) -> Any:
    return batch_client.get_job(job_id)


def _wait_state(batch_client: Any, job_id: str, state: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = _job(batch_client, job_id)
        if _val(job.state).endswith(state):
            return job
        assert time.monotonic() < deadline, f"job {job_id} is {job.state}, not {state}"
        time.sleep(0.2)


def _reasons(plan: Any, address: str) -> str:
    c = next(c for c in plan.pending() if str(c.address) == address)
    return reason_text(c.reasons)


def test_preparation_release_and_completion(
    make_stack: Callable[[], Stack], batch_client: Any
) -> None:
    s = make_stack()
    s.job_extra = {
        "preparation": {**PREP, "constraints": {"maxTaskRetryCount": 1}},
        "release": {
            "commands": ['echo released > "$AZ_BATCH_NODE_SHARED_DIR/$AZ_BATCH_JOB_ID.rel"']
        },
        "onAllTasksComplete": "terminateJob",
    }
    # Each task reads what the preparation wrote: it fails when the file is not there.
    s.extra_tasks = [
        {
            "id": f"read{i}",
            "commands": ['grep -q "prepared x" "$AZ_BATCH_NODE_SHARED_DIR/$AZ_BATCH_JOB_ID.prep"'],
        }
        for i in range(2)
    ]
    out = s.apply(no_wait=False)
    assert out.exit_code == 0, out.data
    assert out.data["outcome"]["tasks"]["failed"] == 0
    # terminatejob was switched on after the tasks: the job ended itself, and its release ran.
    job = _wait_state(batch_client, s.job_id, "completed")
    assert _val(job.all_tasks_complete_mode).endswith("terminatejob")
    assert job.execution_info.termination_reason == "AllTasksComplete"
    status = list(batch_client.list_job_preparation_and_release_task_status(s.job_id))
    assert status and all(
        _val(x.job_release_task_execution_info.state).endswith("completed")
        and x.job_release_task_execution_info.exit_code == 0
        for x in status
    )
    assert all(x.job_preparation_task_execution_info.exit_code == 0 for x in status)
    # The release's own marker, in the node's shared folder beside the preparation's.
    node = status[0]
    marker = b"".join(
        batch_client.download_node_file(node.pool_id, node.node_id, f"shared/{s.job_id}.rel")
    )
    assert marker == b"released\n"
    # Converged: the job ended as the spec says and holds every task.
    p, _ = s.plan()
    assert changes(p) == []

    # A later apply that must add a task replaces the completed job, and says so.
    s.extra_tasks.append({"id": "more", "commandLine": "/bin/true"})
    p, _ = s.plan()
    assert ("replace", f"job/{s.job_id}") in changes(p)
    words = _reasons(p, f"job/{s.job_id}")
    assert "completed" in words and "1 task must be added" in words and "3 tasks rerun" in words

    # Undoing terminateJob: Batch cannot switch it back, so the job is replaced.
    s.extra_tasks.pop()
    s.job_extra["onAllTasksComplete"] = "noAction"
    p, _ = s.plan()
    assert ("replace", f"job/{s.job_id}") in changes(p)
    assert "back to noAction" in _reasons(p, f"job/{s.job_id}")


def test_changed_preparation_replaces_the_job_naming_the_task_count(
    make_stack: Callable[[], Stack], batch_client: Any, local_services: Any
) -> None:
    s = make_stack()
    s.job_extra = {"preparation": PREP, "maxParallelTasks": 1}
    s.range_tasks = 3
    assert s.apply().exit_code == 0
    job = _job(batch_client, s.job_id)
    assert job.max_parallel_tasks == 1
    assert job.job_preparation_task.command_line.startswith("/bin/bash")
    p, _ = s.plan()
    assert changes(p) == [], "a job read back equals the one created (prep included)"

    # maxParallelTasks changes in place.
    s.job_extra["maxParallelTasks"] = 2
    p, _ = s.plan()
    assert changes(p) == [("update", f"job/{s.job_id}")]
    assert "maxParallelTasks 1 -> 2" in _reasons(p, f"job/{s.job_id}")
    s.apply()
    assert _job(batch_client, s.job_id).max_parallel_tasks == 2

    # An account without maxParallelTasks (Azure enables it per account): said plainly.
    s.job_extra["maxParallelTasks"] = 3
    with (
        local_services.settings(max_parallel_tasks_enabled=False),
        pytest.raises(ServiceError) as refused,
    ):
        s.apply()
    assert f"job {s.job_id}: the Batch account refused maxParallelTasks (3)" in str(refused.value)
    assert refused.value.hint is not None and "remove maxParallelTasks" in refused.value.hint
    assert _job(batch_client, s.job_id).max_parallel_tasks == 2
    s.job_extra["maxParallelTasks"] = 2

    # The preparation cannot change on a live job: a replace, rerunning the 3 tasks.
    s.job_extra["preparation"] = {**PREP, "environment": {"MARK": "y"}}
    p, _ = s.plan()
    job_change = next(c for c in p.pending() if c.address.kind.value == "job")
    assert job_change.action is Action.REPLACE
    assert job_change.forced_by == ("preparation",)
    words = _reasons(p, f"job/{s.job_id}")
    assert "preparation task changed" in words and "3 tasks rerun" in words
    assert sum(1 for c in p.pending() if c.address.kind.value == "task") == 3


def test_crash_before_the_switch_is_completed_by_the_next_apply(
    make_stack: Callable[[], Stack], batch_client: Any
) -> None:
    s = make_stack()
    s.range_tasks = 2
    assert s.apply(no_wait=False).exit_code == 0
    # The state a stop between adding the tasks and the switch leaves: tasks all there,
    # the job still noaction. The next plan switches it in place.
    s.job_extra = {"onAllTasksComplete": "terminateJob"}
    p, _ = s.plan()
    assert changes(p) == [("update", f"job/{s.job_id}")]
    assert "onAllTasksComplete set to terminateJob" in _reasons(p, f"job/{s.job_id}")
    s.apply()
    _wait_state(batch_client, s.job_id, "completed")
    p, _ = s.plan()
    assert changes(p) == []


def test_killed_between_the_tasks_and_the_switch_the_next_apply_switches(
    make_stack: Callable[[], Stack], batch_client: Any, local_services: Any
) -> None:
    """A real crash: the apply SIGKILLs itself once its last task submission is answered
    (the testing hook of providers/counting.py), before the switch."""
    plain = make_stack()
    plain.range_tasks = 2
    writes = sum(v["write"] for v in plain.apply().data["requests"].values())
    s = make_stack()
    s.range_tasks = 2
    s.job_extra = {"onAllTasksComplete": "terminateJob"}
    s.write()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BSPEC_"))},
        **local_services.env,
        # the plain apply's writes, less its last (the lock's release): the task submission
        "BSPEC_TEST_KILL_AFTER_WRITES": str(writes - 1),
    }
    bspec = str(Path(sys.executable).parent / "bspec")
    run = subprocess.run(
        [bspec, "apply", str(s.spec), "--yes", "--no-wait", "--target", "local"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    job = _job(batch_client, s.job_id)
    assert _val(job.all_tasks_complete_mode) == "noaction"
    assert len(list(batch_client.list_tasks(s.job_id))) == 2
    run_unlock(s.spec, yes=True, show=False)
    p, _ = s.plan()
    assert changes(p) == [("update", f"job/{s.job_id}")]
    s.apply()
    _wait_state(batch_client, s.job_id, "completed")


def test_exit_rules_end_the_job_satisfy_dependents_and_rerun_failed_replaces(
    make_stack: Callable[[], Stack], batch_client: Any
) -> None:
    s = make_stack()
    s.extra_tasks = [
        # exit 1 fails, but its dependent runs anyway
        {
            "id": "soft",
            "commandLine": "/bin/false",
            "onExit": [{"exitCodes": [1], "dependencyAction": "satisfy"}],
        },
        {"id": "after", "dependsOn": ["soft"], "commandLine": "/bin/true"},
    ]
    assert s.apply(no_wait=False).exit_code == 1  # soft failed
    after = batch_client.get_task(s.job_id, "after")
    assert _val(after.execution_info.result).endswith("success")
    assert _val(_job(batch_client, s.job_id).task_failure_mode) == "noaction"

    # The first rule with a jobAction: the job's onTaskFailure is fixed at creation.
    s.extra_tasks.append(
        {
            "id": "fatal",
            "commands": ["exit 3"],
            "onExit": [{"exitCodes": [3], "jobAction": "terminate"}],
        }
    )
    s.extra_tasks.append({"id": "late", "dependsOn": ["fatal"], "commandLine": "/bin/true"})
    p, _ = s.plan()
    job_change = next(c for c in p.pending() if c.address.kind.value == "job")
    assert job_change.action is Action.REPLACE
    assert "performExitOptionsJobAction" in _reasons(p, f"job/{s.job_id}")
    out = s.apply(no_wait=False)  # does not hang on `late`, which never runs
    assert out.exit_code == 1
    job = _wait_state(batch_client, s.job_id, "completed")
    assert job.execution_info.termination_reason == "TaskFailed"
    # A job ended as its rules say, holding every task: converged.
    p, _ = s.plan()
    assert changes(p) == []

    # --rerun-failed says what it must do instead of failing on Batch's refusal...
    with opened(s.spec, None, "local") as (desired, target), pytest.raises(RefusedError) as refused:
        operations.rerun_failed(target.batch, desired)
    assert "terminated by task fatal's exit rule" in str(refused.value)
    # ...and through apply, plans the job's replacement.
    out = s.apply(rerun_failed=True)
    assert ("replace", f"job/{s.job_id}") in changes(out.data)


def test_a_preparation_failing_on_every_node_ends_the_wait(
    make_stack: Callable[[], Stack], capsys: pytest.CaptureFixture[str]
) -> None:
    s = make_stack()
    s.job_extra = {"preparation": {"commands": ["echo no model >&2", "exit 7"]}}
    s.range_tasks = 1
    s.write()
    with pytest.raises(TaskFailedError) as failed:
        run_apply(s.spec, target="local", yes=True, show=True)
    assert f"tasks of job {s.job_id}: its preparation task failed on 1 node" in str(failed.value)
    said = capsys.readouterr().err
    assert f"Preparation task of job {s.job_id} failed on node" in said
    assert "(exit code 7)" in said and "| no model" in said


def test_an_exit_rule_that_disables_the_job_ends_the_wait(
    make_stack: Callable[[], Stack], batch_client: Any
) -> None:
    s = make_stack()
    s.extra_tasks = [
        {
            "id": "stop",
            "commands": ["exit 2"],
            "onExit": [{"exitCodes": [2], "jobAction": "disable"}],
        },
        {"id": "later", "dependsOn": ["stop"], "commandLine": "/bin/true"},
    ]
    out = s.apply(no_wait=False)  # `later` never starts: the wait ends on the disabled job
    assert out.exit_code == 1
    assert _val(_job(batch_client, s.job_id).state) == "disabled"
    p, _ = s.plan()
    assert changes(p) == []
