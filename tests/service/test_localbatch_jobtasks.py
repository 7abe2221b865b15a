"""A job's manager, preparation and release tasks run, and task exit conditions act on the
job and on dependent tasks, as Azure Batch does; through the real azure-batch 15 SDK with
every response checked against the reference definition."""

from __future__ import annotations

import shlex
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from reference import Reference
from test_localbatch_api import IMAGE, uid, wait_for
from test_localbatch_clock import API, manual, post_json
from test_localbatch_restart import Server

POLL = {"polling_interval": 0.05}
__all__ = ["manual", "uid"]  # fixtures shared with test_localbatch_clock and _api


@pytest.fixture
def pool(checked_client: Any, uid: Callable[[str], str]) -> Iterator[str]:
    pool_id = uid("jtpool")
    checked_client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=2,
            task_slots_per_node=2,
        )
    )
    wait_for(
        lambda: sum(1 for n in checked_client.list_nodes(pool_id) if n.state == "idle") == 2,
        what="two idle nodes",
    )
    yield pool_id
    checked_client.begin_delete_pool(pool_id, **POLL)


def _done(client: Any, job_id: str, task_id: str, timeout: float = 20.0) -> Any:
    return wait_for(
        lambda: (lambda t: t if t.state == "completed" else None)(client.get_task(job_id, task_id)),
        timeout,
        what=f"{task_id} completed",
    )


def _job(client: Any, pool: str, job_id: str, **kw: Any) -> None:
    """A job on POOL that allows dependencies, with the options KW."""
    client.create_job(
        m.BatchJobCreateOptions(
            id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool), uses_task_dependencies=True, **kw
        )
    )


def _job_state(client: Any, job_id: str, state: str) -> Any:
    return wait_for(
        lambda: (lambda j: j if j.state == state else None)(client.get_job(job_id)),
        what=f"job {state}",
    )


def _terminate(client: Any, job_id: str) -> None:
    """Terminate with no body (no reason given), which the SDK cannot send."""
    reply = client.send_request(
        HttpRequest("POST", f"/jobs/{job_id}/terminate?api-version={API}", json=None)
    )
    assert reply.status_code == 202, reply.text()


def _sh(script: str) -> str:
    return f"/bin/sh -c '{script}'"


# ---------------------------------------------------------------------- job manager task


def test_job_manager_runs_first_exclusive_and_ends_the_job(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("jm")
    _job(
        c,
        pool,
        job_id,
        common_environment_settings=[m.EnvironmentSetting(name="COMMON", value="c")],
        job_manager_task=m.BatchJobManagerTask(
            id="manager",
            command_line=_sh("echo $AZ_BATCH_TASK_ID $MINE $COMMON; sleep 1"),
            environment_settings=[m.EnvironmentSetting(name="MINE", value="m")],
        ),
    )
    # The manager is a task of the job, in its task list.
    assert [t.id for t in c.list_tasks(job_id)] == ["manager"]
    running = wait_for(
        lambda: (lambda t: t if t.state == "running" else None)(c.get_task(job_id, "manager")),
        what="manager running",
    )
    c.create_task(job_id, m.BatchTaskCreateOptions(id="worker", command_line="sleep 0"))
    worker = _done(c, job_id, "worker")
    # runExclusive (true by default): nothing else ran on the manager's node.
    assert worker.node_info.node_id != running.node_info.node_id
    manager = _done(c, job_id, "manager")
    assert manager.execution_info.exit_code == 0
    out = b"".join(c.download_task_file(job_id, "manager", "stdout.txt"))
    assert out.decode().split() == ["manager", "m", "c"]
    # killJobOnCompletion (true by default): the job ends with the manager.
    job = _job_state(c, job_id, "completed")
    assert job.execution_info.termination_reason == "JMComplete"
    c.begin_delete_job(job_id, **POLL).result()


def test_job_manager_that_does_not_kill_the_job(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("jmkeep")
    _job(
        c,
        pool,
        job_id,
        job_manager_task=m.BatchJobManagerTask(
            id="mgr", command_line="sleep 0", kill_job_on_completion=False, run_exclusive=False
        ),
    )
    _done(c, job_id, "mgr")
    assert c.get_job(job_id).state == "active"
    c.begin_delete_job(job_id, **POLL).result()


def test_job_manager_body_is_validated(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    job_id = uid("jmbad")
    with pytest.raises(HttpResponseError) as err:
        checked_client.create_job(
            {
                "id": job_id,
                "poolInfo": {"poolId": pool},
                "jobManagerTask": {"id": "mgr", "commandLine": ""},
            }
        )
    assert err.value.status_code == 400
    with pytest.raises(ResourceNotFoundError):
        checked_client.get_job(job_id)


# ---------------------------------------------------------------- preparation and release


def test_preparation_runs_once_per_node_before_tasks_and_release_on_terminate(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("prep")
    _job(
        c,
        pool,
        job_id,
        job_preparation_task=m.BatchJobPreparationTask(
            command_line=_sh("echo ready > marker; echo $AZ_BATCH_TASK_ID"),
        ),
        job_release_task=m.BatchJobReleaseTask(command_line=_sh("echo bye $AZ_BATCH_JOB_ID")),
    )
    with pytest.raises(ResourceNotFoundError):
        list(c.list_job_preparation_and_release_task_status(uid("none")))
    stored = c.get_job(job_id)
    assert stored.job_preparation_task.id == "jobpreparation"
    assert stored.job_preparation_task.wait_for_success is True
    assert stored.job_release_task.id == "jobrelease"
    c.create_task_collection(
        job_id,
        m.BatchTaskGroup(
            task_values=[
                m.BatchTaskCreateOptions(
                    id=f"t{i}",
                    command_line=_sh("cat $AZ_BATCH_JOB_PREP_WORKING_DIR/marker"),
                )
                for i in range(4)
            ]
        ),
    )
    tasks = [_done(c, job_id, f"t{i}") for i in range(4)]
    assert all(t.execution_info.result == "success" for t in tasks)
    assert b"".join(c.download_task_file(job_id, "t0", "stdout.txt")).strip() == b"ready"
    statuses = list(c.list_job_preparation_and_release_task_status(job_id))
    nodes = {t.node_info.node_id for t in tasks}
    assert {s.node_id for s in statuses} == nodes  # once on each node that ran a task
    for s in statuses:
        assert s.pool_id == pool and s.node_url
        prep = s.job_preparation_task_execution_info
        assert prep.state == "completed" and prep.result == "success" and prep.exit_code == 0
        assert prep.task_root_directory.endswith(f"workitems/{job_id}/job-1/jobpreparation")
        assert s.job_release_task_execution_info is None
    one = list(c.list_job_preparation_and_release_task_status(job_id, max_results=1))
    assert len(one) == len(statuses)  # paged one at a time, all there
    node_id = statuses[0].node_id
    (only,) = c.list_job_preparation_and_release_task_status(
        job_id, filter=f"nodeId eq '{node_id}'", select=["nodeId"]
    )
    assert only.node_id == node_id and only.pool_id is None
    failed = "jobPreparationTaskExecutionInfo/result eq 'failure'"
    assert not list(c.list_job_preparation_and_release_task_status(job_id, filter=failed))

    _terminate(c, job_id)
    job = _job_state(c, job_id, "completed")
    assert job.execution_info.termination_reason == "UserTerminate"
    for s in c.list_job_preparation_and_release_task_status(job_id):
        rel = s.job_release_task_execution_info
        assert rel is not None and rel.state == "completed" and rel.exit_code == 0
        node_file = f"workitems/{job_id}/job-1/jobrelease/stdout.txt"
        text = b"".join(c.download_node_file(pool, s.node_id, node_file)).decode()
        assert text.strip() == f"bye {job_id}"
    c.begin_delete_job(job_id, **POLL).result()


def test_failed_preparation_blocks_the_job_on_that_node(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("prepfail")
    _job(
        c,
        pool,
        job_id,
        job_preparation_task=m.BatchJobPreparationTask(command_line=_sh("exit 3")),
    )
    c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
    wait_for(
        lambda: (
            len(
                [
                    s
                    for s in c.list_job_preparation_and_release_task_status(job_id)
                    if s.job_preparation_task_execution_info.state == "completed"
                ]
            )
            == 2
        ),
        what="preparation failed on both nodes",
    )
    for s in c.list_job_preparation_and_release_task_status(job_id):
        assert s.job_preparation_task_execution_info.exit_code == 3
        assert s.job_preparation_task_execution_info.result == "failure"
    assert c.get_task(job_id, "t").state == "active"  # waitForSuccess: never scheduled
    c.begin_delete_job(job_id, **POLL).result()

    # waitForSuccess false: the job's tasks run after a failed preparation.
    job_id = uid("prepgo")
    _job(
        c,
        pool,
        job_id,
        job_preparation_task=m.BatchJobPreparationTask(
            command_line=_sh("exit 3"), wait_for_success=False
        ),
    )
    c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
    assert _done(c, job_id, "t").execution_info.result == "success"
    c.begin_delete_job(job_id, **POLL).result()


def test_release_runs_when_the_job_is_deleted(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("reldel")
    _job(
        c,
        pool,
        job_id,
        job_preparation_task=m.BatchJobPreparationTask(command_line="sleep 0"),
        job_release_task=m.BatchJobReleaseTask(
            command_line=_sh("echo released >> $AZ_BATCH_NODE_SHARED_DIR/" + job_id)
        ),
    )
    c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
    node_id = _done(c, job_id, "t").node_info.node_id
    c.begin_delete_job(job_id, **POLL).result()
    with pytest.raises(ResourceNotFoundError):
        c.get_job(job_id)
    text = b"".join(c.download_node_file(pool, node_id, f"shared/{job_id}")).decode()
    assert text.split() == ["released"]  # once, on the node that ran the preparation task


@pytest.mark.parametrize("rerun", [True, False])
def test_preparation_after_a_node_reboot(
    checked_client: Any, pool: str, uid: Callable[[str], str], rerun: bool
) -> None:
    c = checked_client
    job_id = uid("reboot")
    _job(
        c,
        pool,
        job_id,
        job_preparation_task=m.BatchJobPreparationTask(
            command_line=_sh("echo x >> $AZ_BATCH_NODE_SHARED_DIR/" + job_id),
            rerun_on_node_reboot_after_success=rerun,
        ),
    )
    c.create_task(job_id, m.BatchTaskCreateOptions(id="first", command_line="sleep 0"))
    node_id = _done(c, job_id, "first").node_info.node_id
    c.begin_reboot_node(pool, node_id, {"nodeRebootOption": "requeue"}, **POLL).result()
    wait_for(lambda: c.get_node(pool, node_id).state == "idle", what="node back")
    c.disable_node_scheduling(
        pool,
        next(n.id for n in c.list_nodes(pool) if n.id != node_id),
        {"nodeDisableSchedulingOption": "requeue"},
    )
    try:
        c.create_task(job_id, m.BatchTaskCreateOptions(id="second", command_line="sleep 0"))
        assert _done(c, job_id, "second").node_info.node_id == node_id
        runs = b"".join(c.download_node_file(pool, node_id, f"shared/{job_id}")).split()
        assert len(runs) == (2 if rerun else 1)
    finally:
        c.enable_node_scheduling(pool, next(n.id for n in c.list_nodes(pool) if n.id != node_id))
    c.begin_delete_job(job_id, **POLL).result()


def test_a_node_reboot_kills_a_running_preparation_task_which_runs_again(
    checked_client: Any, pool: str, uid: Callable[[str], str], tmp_path: Path
) -> None:
    c = checked_client
    node_id, other = (n.id for n in c.list_nodes(pool))
    c.disable_node_scheduling(pool, other, {"nodeDisableSchedulingOption": "requeue"})
    marker = tmp_path / "prepared-once"
    job_id = uid("prepboot")
    try:
        _job(
            c,
            pool,
            job_id,
            job_preparation_task=m.BatchJobPreparationTask(
                # the first run hangs; the run after the reboot succeeds
                command_line=_sh(f"[ -e {marker} ] && exit 0; touch {marker}; sleep 600"),
            ),
        )
        c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
        wait_for(marker.exists, what="the preparation task running")
        c.begin_reboot_node(pool, node_id, {"nodeRebootOption": "requeue"}, **POLL).result()
        task = _done(c, job_id, "t")
        assert task.execution_info.result == "success" and task.node_info.node_id == node_id
        (status,) = c.list_job_preparation_and_release_task_status(job_id)
        prep = status.job_preparation_task_execution_info
        assert prep.state == "completed" and prep.exit_code == 0
    finally:
        c.enable_node_scheduling(pool, other)
    c.begin_delete_job(job_id, **POLL).result()


def test_status_of_a_job_without_preparation_is_a_conflict(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    job_id = uid("noprep")
    checked_client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool))
    )
    with pytest.raises(HttpResponseError) as err:
        list(checked_client.list_job_preparation_and_release_task_status(job_id))
    assert err.value.status_code == 409
    assert err.value.error.code == "JobPreparationTaskNotSpecified"
    with pytest.raises(HttpResponseError) as bad:
        checked_client.create_job(
            {
                "id": uid("relonly"),
                "poolInfo": {"poolId": pool},
                "jobReleaseTask": {"commandLine": "sleep 0"},
            }
        )
    assert bad.value.status_code == 400
    checked_client.begin_delete_job(job_id, **POLL).result()


def test_release_task_is_killed_after_its_wall_clock_on_the_service_clock(
    manual: Server, reference: Reference
) -> None:
    with manual.client(reference) as c:
        c.create_pool(
            m.BatchPoolCreateOptions(
                id="p",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=IMAGE,
                target_dedicated_nodes=1,
            )
        )
        c.create_job(
            m.BatchJobCreateOptions(
                id="j",
                pool_info=m.BatchPoolInfo(pool_id="p"),
                job_preparation_task=m.BatchJobPreparationTask(command_line="sleep 0"),
                job_release_task=m.BatchJobReleaseTask(command_line="sleep 600"),
            )
        )
        c.create_task("j", m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
        _done(c, "j", "t")
        _terminate(c, "j")
        wait_for(
            lambda: any(
                s.job_release_task_execution_info is not None
                and s.job_release_task_execution_info.state == "running"
                for s in c.list_job_preparation_and_release_task_status("j")
            ),
            what="release running",
        )
        assert c.get_job("j").state == "terminating"
        # Still within the default 15 minutes: the job waits for its release task.
        assert post_json(f"{manual.url}/_local/clock", {"advance": "PT14M"})[0] == 200
        assert c.get_job("j").state == "terminating"
        assert post_json(f"{manual.url}/_local/clock", {"advance": "PT2M"})[0] == 200
        job = _job_state(c, "j", "completed")
        assert job.execution_info.termination_reason == "UserTerminate"
        (status,) = list(c.list_job_preparation_and_release_task_status("j"))
        rel = status.job_release_task_execution_info
        assert rel.state == "completed" and rel.result == "failure"
        assert rel.failure_info.code == "MaxWallClockTimeExpiry"


# ------------------------------------------------------------------- exit conditions


def test_exit_code_terminates_the_job_under_performexitoptionsjobaction(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("exitterm")
    _job(c, pool, job_id, task_failure_mode="performexitoptionsjobaction")
    c.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="fails",
            command_line=_sh("exit 4"),
            exit_conditions=m.ExitConditions(
                exit_codes=[
                    m.ExitCodeMapping(code=4, exit_options=m.ExitOptions(job_action="terminate"))
                ]
            ),
        ),
    )
    _done(c, job_id, "fails")
    job = _job_state(c, job_id, "completed")
    assert job.execution_info.termination_reason == "TaskFailed"
    c.begin_delete_job(job_id, **POLL).result()

    # Under noaction a failure does nothing to the job, and a jobAction is refused.
    job_id = uid("exitnone")
    _job(c, pool, job_id)
    with pytest.raises(HttpResponseError) as err:
        c.create_task(
            job_id,
            m.BatchTaskCreateOptions(
                id="x",
                command_line="sleep 0",
                exit_conditions=m.ExitConditions(default=m.ExitOptions(job_action="terminate")),
            ),
        )
    assert err.value.status_code == 400
    c.create_task(job_id, m.BatchTaskCreateOptions(id="fails", command_line=_sh("exit 1")))
    _done(c, job_id, "fails")
    assert c.get_job(job_id).state == "active"
    c.begin_delete_job(job_id, **POLL).result()


def test_default_job_action_terminates_and_ranges_and_none_do_not(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("exitrange")
    _job(c, pool, job_id, task_failure_mode="performexitoptionsjobaction")
    c.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="ranged",
            command_line=_sh("exit 7"),
            exit_conditions=m.ExitConditions(
                exit_code_ranges=[
                    m.ExitCodeRangeMapping(
                        start=5, end=9, exit_options=m.ExitOptions(job_action="none")
                    )
                ]
            ),
        ),
    )
    _done(c, job_id, "ranged")
    assert c.get_job(job_id).state == "active"
    # No exit conditions: a failure's jobAction defaults to terminate.
    c.create_task(job_id, m.BatchTaskCreateOptions(id="plain", command_line=_sh("exit 2")))
    _done(c, job_id, "plain")
    assert _job_state(c, job_id, "completed").execution_info.termination_reason == "TaskFailed"
    c.begin_delete_job(job_id, **POLL).result()


def test_job_action_disable_and_preprocessing_error(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("exitdis")
    _job(c, pool, job_id, task_failure_mode="performexitoptionsjobaction")
    c.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="nofile",
            command_line="sleep 0",
            resource_files=[m.ResourceFile(http_url="http://127.0.0.1:9/none", file_path="x")],
            exit_conditions=m.ExitConditions(
                pre_processing_error=m.ExitOptions(job_action="disable")
            ),
        ),
    )
    # the node agent tries an unreachable resource file for about 20 s (it outlasts a
    # storage restart) before the task fails with its preprocessing error
    task = _done(c, job_id, "nofile", timeout=60)
    assert task.execution_info.failure_info is not None
    _job_state(c, job_id, "disabled")
    c.begin_delete_job(job_id, **POLL).result()


def test_dependency_action_satisfy_and_block(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("exitdep")
    _job(c, pool, job_id)
    satisfy = m.ExitConditions(default=m.ExitOptions(dependency_action="satisfy"))
    c.create_task_collection(
        job_id,
        m.BatchTaskGroup(
            task_values=[
                m.BatchTaskCreateOptions(
                    id="soft", command_line=_sh("exit 1"), exit_conditions=satisfy
                ),
                m.BatchTaskCreateOptions(id="hard", command_line=_sh("exit 1")),
                m.BatchTaskCreateOptions(
                    id="ok",
                    command_line="sleep 0",
                    exit_conditions=m.ExitConditions(
                        exit_codes=[
                            m.ExitCodeMapping(
                                code=0, exit_options=m.ExitOptions(dependency_action="block")
                            )
                        ]
                    ),
                ),
                m.BatchTaskCreateOptions(
                    id="after-soft",
                    command_line="sleep 0",
                    depends_on=m.BatchTaskDependencies(task_ids=["soft"]),
                ),
                m.BatchTaskCreateOptions(
                    id="after-hard",
                    command_line="sleep 0",
                    depends_on=m.BatchTaskDependencies(task_ids=["hard"]),
                ),
                m.BatchTaskCreateOptions(
                    id="after-ok",
                    command_line="sleep 0",
                    depends_on=m.BatchTaskDependencies(task_ids=["ok"]),
                ),
            ]
        ),
    )
    for task_id in ("soft", "hard", "ok"):
        _done(c, job_id, task_id)
    assert _done(c, job_id, "after-soft").execution_info.result == "success"
    assert c.get_task(job_id, "after-hard").state == "active"  # block (the default)
    assert c.get_task(job_id, "after-ok").state == "active"  # block, on exit code 0
    c.begin_delete_job(job_id, **POLL).result()


def test_all_tasks_complete_terminates_an_empty_job_and_after_patch(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id = uid("empty")
    _job(
        c,
        pool,
        job_id,
        all_tasks_complete_mode="terminatejob",
    )
    assert (
        _job_state(c, job_id, "completed").execution_info.termination_reason == "AllTasksComplete"
    )
    c.begin_delete_job(job_id, **POLL).result()
    job_id = uid("patched")
    _job(c, pool, job_id)
    c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 0"))
    _done(c, job_id, "t")
    assert c.get_job(job_id).state == "active"
    c.update_job(job_id, m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob"))
    assert (
        _job_state(c, job_id, "completed").execution_info.termination_reason == "AllTasksComplete"
    )
    c.begin_delete_job(job_id, **POLL).result()


# ------------------------------------------------------------------ authentication tokens

# What a task does with its token: call the service as Batch's own tools would, with
# AZ_BATCH_ACCOUNT_URL and the bearer token, and print each answer's status.
CALLER = """
import os, sys, urllib.request, urllib.error, json
url = os.environ["AZ_BATCH_ACCOUNT_URL"]
token = os.environ.get("AZ_BATCH_AUTHENTICATION_TOKEN")
if token is None:
    print("no-token"); sys.exit(0)
job = os.environ["AZ_BATCH_JOB_ID"]
def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url + path + "?api-version=2025-06-01.21.0", data=data,
        method=method, headers={"Authorization": "Bearer " + token,
        "Content-Type": "application/json; odata=minimalmetadata"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
print(call("GET", "/jobs/" + job), call("POST", "/jobs/" + job + "/tasks",
    {"id": "child", "commandLine": "sleep 0"}), call("GET", "/jobs/" + job + "/tasks"),
    call("GET", "/pools"), call("GET", "/jobs"), call("GET", "/jobs/" + sys.argv[1]))
"""


def test_authentication_token_grants_the_tasks_job_and_nothing_else(
    checked_client: Any, pool: str, uid: Callable[[str], str]
) -> None:
    c = checked_client
    job_id, other = uid("tok"), uid("other")
    for jid in (job_id, other):
        c.create_job(m.BatchJobCreateOptions(id=jid, pool_info=m.BatchPoolInfo(pool_id=pool)))
    command = f"{sys.executable} -c {shlex.quote(CALLER)} {other}"
    # azure-batch 15 has no model for authenticationTokenSettings: the body as JSON.
    c.create_task(
        job_id,
        {
            "id": "caller",
            "commandLine": command,
            "authenticationTokenSettings": {"access": ["job"]},
        },
    )
    c.create_task(other, m.BatchTaskCreateOptions(id="plain", command_line=command))
    caller = _done(c, job_id, "caller")
    assert caller.execution_info.exit_code == 0
    out = b"".join(c.download_task_file(job_id, "caller", "stdout.txt")).decode().split()
    assert out == ["200", "201", "200", "403", "403", "403"]
    assert _done(c, job_id, "child").execution_info.result == "success"  # added by the token
    _done(c, other, "plain")
    plain = b"".join(c.download_task_file(other, "plain", "stdout.txt")).decode().split()
    assert plain == ["no-token"]  # without the settings, no token
    for jid in (job_id, other):
        c.begin_delete_job(jid, **POLL).result()


def test_a_made_up_bearer_token_is_refused(local_services: Any) -> None:
    request = urllib.request.Request(
        f"{local_services.batch_url}/jobs?api-version={API}",
        headers={"Authorization": "Bearer " + "x" * 43},
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=10)
    with err.value:
        assert err.value.code == 401
