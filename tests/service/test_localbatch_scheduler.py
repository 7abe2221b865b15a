"""Nodes, start tasks and tasks running as real processes, observed through the real SDK."""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from reference import get_json
from test_localbatch_api import IMAGE, wait_for

Ids = Callable[[str], str]


@pytest.fixture
def uid() -> Ids:
    counter = iter(range(10**6))
    stamp = f"{time.time_ns() % 10**9:x}"
    return lambda prefix: f"{prefix}-{stamp}-{next(counter)}"


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


def make_pool(
    client: Any, pool_id: str, nodes: int = 1, slots: int = 1, start: m.BatchStartTask | None = None
) -> list[Any]:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
            start_task=start,
        )
    )
    if start is not None and not start.wait_for_success:
        return list(client.list_nodes(pool_id))
    return wait_for(
        lambda: (
            lambda ns: (
                ns
                if len(ns) == nodes and all(n.state in ("idle", "starttaskfailed") for n in ns)
                else None
            )
        )(list(client.list_nodes(pool_id))),
        what="nodes ready",
    )


def make_job(client: Any, job_id: str, pool_id: str, **kw: Any) -> None:
    client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), **kw)
    )


def done(client: Any, job_id: str, task_id: str, timeout: float = 30) -> Any:
    return wait_for(
        lambda: (lambda t: t if t.state == "completed" else None)(client.get_task(job_id, task_id)),
        timeout,
        f"task {task_id} completed",
    )


def read(client: Any, job_id: str, task_id: str, name: str) -> str:
    return b"".join(client.download_task_file(job_id, task_id, name)).decode()


def running_pids(local_services: Any) -> dict[str, int]:
    status = get_json(f"{local_services.batch_url}/_local/status")
    return {t["taskId"]: t["pid"] for t in status["runningTasks"] if t["pid"]}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_nodes_start_task_and_environment(
    checked_client: Any, uid: Ids, local_services: Any
) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    start = m.BatchStartTask(
        command_line=sh("echo started > $AZ_BATCH_NODE_SHARED_DIR/mark; env | grep ^AZ_BATCH_"),
        wait_for_success=True,
    )
    nodes = make_pool(checked_client, pool_id, nodes=2, start=start)
    assert {n.state for n in nodes} == {"idle"}
    node = checked_client.get_node(pool_id, nodes[0].id)
    assert node.start_task_info.state == "completed" and node.start_task_info.exit_code == 0
    out = b"".join(checked_client.download_node_file(pool_id, node.id, "startup/stdout.txt"))
    assert f"AZ_BATCH_NODE_ID={node.id}".encode() in out
    names = {f.name for f in checked_client.list_node_files(pool_id, node.id, recursive=True)}
    assert {"shared/mark", "startup/stdout.txt"} <= names
    make_job(
        checked_client,
        job_id,
        pool_id,
        common_environment_settings=[m.EnvironmentSetting(name="COMMON", value="c")],
    )
    checked_client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="env",
            command_line=sh(
                "pwd; cat $AZ_BATCH_NODE_SHARED_DIR/mark; env | sort; echo oops >&2; exit 3"
            ),
            environment_settings=[m.EnvironmentSetting(name="MINE", value="a b")],
        ),
    )
    task = done(checked_client, job_id, "env")
    assert task.execution_info.exit_code == 3 and task.execution_info.result == "failure"
    assert task.execution_info.failure_info.code == "FailureExitCode"
    assert task.node_info.pool_id == pool_id and task.execution_info.start_time
    stdout = read(checked_client, job_id, "env", "stdout.txt")
    env = dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)
    assert stdout.splitlines()[0] == env["AZ_BATCH_TASK_WORKING_DIR"]
    assert stdout.splitlines()[1] == "started"
    for name, value in {
        "AZ_BATCH_JOB_ID": job_id,
        "AZ_BATCH_TASK_ID": "env",
        "AZ_BATCH_POOL_ID": pool_id,
        "AZ_BATCH_NODE_ID": task.node_info.node_id,
        "AZ_BATCH_ACCOUNT_NAME": local_services.account,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "MINE": "a b",
        "COMMON": "c",
    }.items():
        assert env[name] == value, name
    for name in (
        "AZ_BATCH_NODE_ROOT_DIR",
        "AZ_BATCH_NODE_SHARED_DIR",
        "AZ_BATCH_TASK_DIR",
        "AZ_BATCH_NODE_STARTUP_DIR",
        "AZ_BATCH_ACCOUNT_URL",
        "AZ_BATCH_TASK_USER",
    ):
        assert env[name], name
    assert read(checked_client, job_id, "env", "stderr.txt") == "oops\n"
    props = checked_client.get_task_file_properties(job_id, "env", "stderr.txt")
    assert props.content_length == 5 and props.is_directory is False
    assert props.file_mode and props.creation_time and props.url.endswith("/stderr.txt")
    ranged = b"".join(
        checked_client.download_task_file(job_id, "env", "stderr.txt", ocp_range="bytes=1-2")
    )
    assert ranged == b"op"
    files = {f.name: f for f in checked_client.list_task_files(job_id, "env")}
    assert {"stdout.txt", "stderr.txt", "wd"} <= set(files)
    assert files["stderr.txt"].properties.content_length == 5 and files["wd"].is_directory
    with pytest.raises(HttpResponseError) as err:
        b"".join(checked_client.download_task_file(job_id, "env", "../../../../account.json"))
    assert err.value.status_code in (400, 404)
    with pytest.raises(HttpResponseError) as err:
        b"".join(checked_client.download_task_file(job_id, "env", "nothere.txt"))
    assert err.value.status_code == 404


def test_start_task_failure_leaves_node_unusable(checked_client: Any, uid: Ids) -> None:
    pool_id = uid("pool")
    start = m.BatchStartTask(
        command_line=sh("echo broken >&2; exit 7"), wait_for_success=True, max_task_retry_count=1
    )
    nodes = make_pool(checked_client, pool_id, nodes=1, start=start)
    assert nodes[0].state == "starttaskfailed"
    info = checked_client.get_node(pool_id, nodes[0].id).start_task_info
    assert info.exit_code == 7 and info.result == "failure" and info.retry_count == 1
    err = b"".join(checked_client.download_node_file(pool_id, nodes[0].id, "startup/stderr.txt"))
    assert err == b"broken\n"
    counts = list(checked_client.list_pool_node_counts(filter=f"poolId eq '{pool_id}'"))
    assert counts[0].dedicated.start_task_failed == 1


def test_retries_wall_clock_and_slots(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=1, slots=2)
    make_job(checked_client, job_id, pool_id)
    checked_client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(
                id="retry",
                command_line="false",
                constraints=m.BatchTaskConstraints(max_task_retry_count=2),
            ),
            m.BatchTaskCreateOptions(
                id="slow",
                command_line="sleep 30",
                constraints=m.BatchTaskConstraints(max_wall_clock_time="PT1S"),
            ),
            m.BatchTaskCreateOptions(id="wide", command_line="true", required_slots=2),
        ],
    )
    retry = done(checked_client, job_id, "retry")
    assert retry.execution_info.retry_count == 2 and retry.execution_info.exit_code == 1
    slow = done(checked_client, job_id, "slow")
    assert slow.execution_info.result == "failure"
    assert slow.execution_info.failure_info.code == "MaxWallClockTimeExpiry"
    assert done(checked_client, job_id, "wide").execution_info.result == "success"
    counts = checked_client.get_job_task_counts(job_id)
    assert counts.task_counts.completed == 3 and counts.task_counts.failed == 2
    assert counts.task_slot_counts.completed == 4
    node = next(iter(checked_client.list_nodes(pool_id)))
    assert node.total_tasks_run >= 5 and node.state == "idle"


def test_dependencies_and_terminatejob(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=1, slots=4)
    make_job(checked_client, job_id, pool_id, uses_task_dependencies=True)
    deps = m.BatchTaskDependencies
    checked_client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(
                id="reduce",
                command_line=sh("cat ../../1/wd/x ../../2/wd/x"),
                depends_on=deps(task_id_ranges=[m.BatchTaskIdRange(start=1, end=2)]),
            ),
            m.BatchTaskCreateOptions(id="1", command_line=sh("sleep 0.3; echo one > x")),
            m.BatchTaskCreateOptions(id="2", command_line=sh("echo two > x")),
            m.BatchTaskCreateOptions(id="bad", command_line="false"),
            m.BatchTaskCreateOptions(
                id="blocked", command_line="true", depends_on=deps(task_ids=["bad"])
            ),
        ],
    )
    reduce = done(checked_client, job_id, "reduce")
    assert read(checked_client, job_id, "reduce", "stdout.txt") == "one\ntwo\n"
    one = checked_client.get_task(job_id, "1")
    assert reduce.execution_info.start_time >= one.execution_info.end_time
    done(checked_client, job_id, "bad")
    assert checked_client.get_task(job_id, "blocked").state == "active"
    checked_client.delete_task(job_id, "blocked")
    checked_client.update_job(
        job_id, m.BatchJobUpdateOptions(all_tasks_complete_mode="terminatejob")
    )
    job = wait_for(
        lambda: (lambda j: j if j.state == "completed" else None)(checked_client.get_job(job_id)),
        what="job completed",
    )
    assert job.execution_info.termination_reason == "AllTasksComplete"


def test_terminate_and_delete_kill_processes(
    checked_client: Any, uid: Ids, local_services: Any
) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=1, slots=2)
    make_job(checked_client, job_id, pool_id)
    for task_id in ("a", "b"):
        checked_client.create_task(
            job_id, m.BatchTaskCreateOptions(id=task_id, command_line="sleep 60")
        )
    pids = wait_for(
        lambda: (lambda p: p if {"a", "b"} <= set(p) else None)(running_pids(local_services)),
        what="both running",
    )
    assert checked_client.get_task(job_id, "a").state == "running"
    (node,) = checked_client.list_nodes(pool_id)
    assert node.state == "running" and node.running_tasks_count == 2
    assert node.running_task_slots_count == 2
    checked_client.terminate_task(job_id, "a")
    a = checked_client.get_task(job_id, "a")
    assert a.state == "completed" and a.execution_info.failure_info.code == "TaskEnded"
    wait_for(lambda: not alive(pids["a"]), what="a's process gone")
    with pytest.raises(HttpResponseError) as err:
        checked_client.terminate_task(job_id, "a")
    assert err.value.error.code == "TaskCompleted"
    checked_client.begin_delete_pool(pool_id, polling_interval=0.05)
    wait_for(lambda: not alive(pids["b"]), what="b's process gone")
    b = wait_for(
        lambda: (lambda t: t if t.state == "active" else None)(
            checked_client.get_task(job_id, "b")
        ),
        what="b requeued",
    )
    assert b.execution_info.requeue_count == 1
    assert not (local_services.home / "batch" / "nodes" / pool_id.lower()).exists() or wait_for(
        lambda: not (local_services.home / "batch" / "nodes" / pool_id.lower()).exists(),
        what="pool folders removed",
    )


def test_resize_down_requeues_and_retention_cleans(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=2, slots=1)
    make_job(checked_client, job_id, pool_id)
    checked_client.create_tasks(
        job_id,
        [
            m.BatchTaskCreateOptions(id="long", command_line="sleep 2"),
            m.BatchTaskCreateOptions(
                id="short",
                command_line="echo hi",
                constraints=m.BatchTaskConstraints(retention_time="PT1S"),
            ),
        ],
    )
    done(checked_client, job_id, "short")
    wait_for(lambda: checked_client.get_task(job_id, "long").state == "running")
    checked_client.begin_resize_pool(
        pool_id,
        m.BatchPoolResizeOptions(target_dedicated_nodes=1, node_deallocation_option="requeue"),
        polling_interval=0.05,
    ).result()
    wait_for(lambda: len(list(checked_client.list_nodes(pool_id))) == 1, what="one node left")
    long = done(checked_client, job_id, "long")
    assert long.execution_info.result == "success"

    def cleaned() -> bool:
        try:
            list(checked_client.list_task_files(job_id, "short"))
        except HttpResponseError as exc:
            return exc.status_code in (404, 409)
        return False

    wait_for(cleaned, what="short's files cleaned after retention")


def test_job_max_wall_clock_time_terminates_it(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=1)
    make_job(
        checked_client,
        job_id,
        pool_id,
        constraints=m.BatchJobConstraints(max_wall_clock_time="PT1S"),
    )
    checked_client.create_task(job_id, m.BatchTaskCreateOptions(id="long", command_line="sleep 30"))
    job = wait_for(
        lambda: (lambda j: j if j.state == "completed" else None)(checked_client.get_job(job_id)),
        what="job terminated",
    )
    assert job.execution_info.termination_reason == "MaxWallClockTimeExpiry"
    task = done(checked_client, job_id, "long")
    assert task.execution_info.result == "failure"


@pytest.mark.parametrize("option,result", [("taskcompletion", "success"), ("terminate", "failure")])
def test_resize_down_deallocation_options(
    checked_client: Any, uid: Ids, option: str, result: str
) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    make_pool(checked_client, pool_id, nodes=1)
    make_job(checked_client, job_id, pool_id)
    checked_client.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 1.5"))
    wait_for(lambda: checked_client.get_task(job_id, "t").state == "running")
    checked_client.begin_resize_pool(
        pool_id,
        m.BatchPoolResizeOptions(target_dedicated_nodes=0, node_deallocation_option=option),
        polling_interval=0.05,
    )
    if option == "taskcompletion":  # the node waits for its task before it goes
        (node,) = checked_client.list_nodes(pool_id)
        assert node.state == "leavingpool"
    task = done(checked_client, job_id, "t")
    assert task.execution_info.result == result
    if option == "terminate":
        assert task.execution_info.failure_info.code == "TaskEnded"
    wait_for(lambda: not list(checked_client.list_nodes(pool_id)), what="node gone")
    wait_for(
        lambda: checked_client.get_pool(pool_id).allocation_state == "steady",
        what="resize finished",
    )


def test_reboot_requeues_running_task(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    (node,) = make_pool(checked_client, pool_id, nodes=1)
    make_job(checked_client, job_id, pool_id)
    checked_client.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line="sleep 1"))
    wait_for(lambda: checked_client.get_task(job_id, "t").state == "running")
    checked_client.begin_reboot_node(
        pool_id, node.id, {"nodeRebootOption": "requeue"}, polling_interval=0.05
    )
    task = done(checked_client, job_id, "t")
    assert task.execution_info.requeue_count == 1 and task.execution_info.result == "success"
    assert checked_client.get_node(pool_id, node.id).state == "idle"


def test_node_scheduling_and_file_delete(checked_client: Any, uid: Ids) -> None:
    pool_id, job_id = uid("pool"), uid("job")
    (node,) = make_pool(checked_client, pool_id, nodes=1)
    make_job(checked_client, job_id, pool_id)
    checked_client.disable_node_scheduling(
        pool_id, node.id, {"nodeDisableSchedulingOption": "taskcompletion"}
    )
    assert checked_client.get_node(pool_id, node.id).scheduling_state == "disabled"
    checked_client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="t", command_line=sh("mkdir -p sub; echo x > sub/f; echo y > g")
        ),
    )
    time.sleep(0.3)
    assert checked_client.get_task(job_id, "t").state == "active"
    checked_client.enable_node_scheduling(pool_id, node.id)
    done(checked_client, job_id, "t")
    checked_client.delete_task_file(job_id, "t", "wd/g")
    with pytest.raises(HttpResponseError) as err:
        checked_client.delete_task_file(job_id, "t", "wd/sub")
    assert err.value.status_code == 409
    checked_client.delete_task_file(job_id, "t", "wd/sub", recursive=True)
    names = {f.name for f in checked_client.list_task_files(job_id, "t", recursive=True)}
    assert "wd/g" not in names and "wd/sub" not in names and "stdout.txt" in names
