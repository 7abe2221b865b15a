"""Issue 4's engine tests 1-8 against the local Batch service and Azurite, through the real
SDKs. Each asserts the plan's exact changes and the requests made. Tests 1-4 and 7 run on
both targets: the azure target pointed at the local services is the same code path."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec.errors import OwnershipError, StalePlanError
from bspec.reporting import reason_text
from engine_support import Stack, azure_env, changes, writes

TARGETS = ["local", "azure"]


@pytest.fixture
def env(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    with azure_env(monkeypatch, local_services):
        yield local_services


@pytest.fixture
def make_stack(env: Any, tmp_path: Path, unique_id: Callable[[str], str]) -> Callable[..., Stack]:
    def make(target: str = "local", files: dict[str, str] | None = None) -> Stack:
        name = unique_id("s")
        s = Stack(tmp_path / name, name, target)
        s.files = dict(files if files is not None else {"a.txt": "one two", "b.txt": "three"})
        return s

    return make


def _reads_of_plan(data: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {s: dict(v) for s, v in data["requests"].items()}


@pytest.mark.parametrize("target", TARGETS)
def test_apply_on_nothing_then_nothing_to_do(make_stack: Callable[..., Stack], target: str) -> None:
    s = make_stack(target)
    p, data = s.plan()
    assert changes(p) == [
        ("create", "container/input"),
        ("create", "container/output"),
        ("create", "container/_bspec"),
        ("create", "blob/input/a.txt"),
        ("create", "blob/input/b.txt"),
        ("create", f"pool/{s.pool_id}"),
        ("create", f"job/{s.job_id}"),
        ("create", f"task/{s.job_id}/wc-a"),
        ("create", f"task/{s.job_id}/wc-b"),
    ]
    # 1 list of pools, 1 of jobs (no tasks: the job does not exist); containers, 2 blob lists.
    assert _reads_of_plan(data) == {
        "batch": {"read": 2, "write": 0},
        "storage": {"read": 3, "write": 0},
    }
    first = s.apply()
    assert first.data["outcome"]["tasksSubmitted"] == 2
    assert first.data["outcome"]["blobsUploaded"] == 2
    # pool, job, one task collection
    assert writes(first.data)["batch"] == 3
    p2, data2 = s.plan()
    assert p2.empty()
    assert data2["summary"]["noop"] == 9
    assert _reads_of_plan(data2) == {
        "batch": {"read": 3, "write": 0},
        "storage": {"read": 3, "write": 0},
    }
    again = s.apply()
    assert again.data["applied"] is False
    assert writes(again.data) == {"batch": 0, "storage": 0}
    assert again.data["requests"] == data2["requests"]


@pytest.mark.parametrize("target", TARGETS)
def test_edit_and_add_a_file(make_stack: Callable[..., Stack], target: str) -> None:
    s = make_stack(target)
    s.reduce = True
    s.apply()
    s.files["b.txt"] = "three four"
    p, _ = s.plan()
    assert changes(p) == [
        ("update", "blob/input/b.txt"),
        ("replace", f"task/{s.job_id}/wc-b"),
        ("replace", f"task/{s.job_id}/reduce"),
    ]
    by = {str(c.address): c for c in p.pending()}
    assert reason_text(by[f"task/{s.job_id}/wc-b"].reasons) == "input blob input/b.txt changed"
    assert (
        reason_text(by[f"task/{s.job_id}/reduce"].reasons)
        == "depends on task wc-b, which runs again"
    )
    out = s.apply()
    assert out.data["outcome"] == {
        "bytesUploaded": 10,
        "blobsUploaded": 1,
        "tasksSubmitted": 2,
        "tasksDeleted": 2,
    }
    # 2 task deletes + 2 waves of task collections (wc-b, then reduce that depends on it)
    assert writes(out.data)["batch"] == 4
    assert s.plan()[0].empty()

    s.files["c.txt"] = "five"
    p, _ = s.plan()
    assert changes(p) == [
        ("create", "blob/input/c.txt"),
        ("create", f"task/{s.job_id}/wc-c"),
        ("replace", f"task/{s.job_id}/reduce"),
    ]
    # the reduce step depends on every wc-* task, so it reruns; no other task is touched
    s.apply()
    assert s.plan()[0].empty()


def _wait_nodes(batch_client: Any, pool_id: str, n: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pool = batch_client.get_pool(pool_id)
        # Steady too: a resize still settling makes the next one stop it first (3 writes).
        if (pool.current_dedicated_nodes or 0) >= n and pool.allocation_state == "steady":
            return
        time.sleep(0.2)
    raise AssertionError(f"pool {pool_id} did not reach {n} nodes")


@pytest.mark.parametrize("target", TARGETS)
def test_pool_resize_and_vm_size(
    make_stack: Callable[..., Stack], batch_client: Any, target: str
) -> None:
    s = make_stack(target)
    s.apply()
    # vmSize on an empty pool: in place
    s.vm_size = "standard_d4s_v3"
    (c,) = s.plan()[0].pending()
    assert (c.action.value, str(c.address), c.fields) == (
        "update",
        f"pool/{s.pool_id}",
        ("vmSize",),
    )
    s.apply()
    assert s.plan()[0].empty()
    # nodes 0 -> 2 -> 3: updates (resize)
    s.nodes = 2
    (c,) = s.plan()[0].pending()
    assert (c.action.value, c.fields) == ("update", ("targetDedicatedNodes",))
    s.apply()
    _wait_nodes(batch_client, s.pool_id, 2)
    s.nodes = 3
    (c,) = s.plan()[0].pending()
    assert (c.action.value, c.fields, reason_text(c.reasons)) == (
        "update",
        ("targetDedicatedNodes",),
        "resize from 2 nodes to 3 nodes",
    )
    out = s.apply()
    assert writes(out.data)["batch"] == 1
    _wait_nodes(batch_client, s.pool_id, 3)
    # vmSize on a pool with nodes: a replace, said in words
    s.vm_size = "standard_d2s_v3"
    (c,) = s.plan()[0].pending()
    assert (c.action.value, c.forced_by) == ("replace", ("vmSize",))
    assert "destroys 3 nodes, requeues running tasks" in reason_text(c.reasons)
    s.apply()
    assert s.plan()[0].empty()


@pytest.mark.parametrize("target", TARGETS)
def test_task_removed_added_constraint_and_foreign(
    make_stack: Callable[..., Stack], batch_client: Any, target: str
) -> None:
    from azure.batch import models

    s = make_stack(target)
    s.extra_tasks = [{"id": "extra", "commandLine": "/bin/true"}]
    s.apply()
    s.extra_tasks = [{"id": "added", "commandLine": "/bin/true"}]
    s.per_file_constraints = {"maxWallClockTime": "PT5M"}
    batch_client.create_task(
        s.job_id, models.BatchTaskCreateOptions({"id": "theirs", "commandLine": "/bin/true"})
    )
    p, _ = s.plan()
    assert changes(p) == [
        ("delete", f"task/{s.job_id}/extra"),
        ("update", f"task/{s.job_id}/wc-a"),
        ("update", f"task/{s.job_id}/wc-b"),
        ("create", f"task/{s.job_id}/added"),
    ]
    assert p.pending()[1].fields == ("maxWallClockTime",)
    assert p.warnings == (f"task/{s.job_id}/theirs was not created by bspec; left alone",)
    out = s.apply()
    assert writes(out.data)["batch"] == 4  # 1 delete, 2 updates, 1 collection
    p2, _ = s.plan()
    assert p2.empty()
    ids = {t.id for t in batch_client.list_tasks(s.job_id)}
    assert ids == {"wc-a", "wc-b", "added", "theirs"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("kind", ["pool", "job", "container"])
def test_unowned_resources_are_refused_then_adopted(
    make_stack: Callable[..., Stack],
    batch_client: Any,
    blob_service: Any,
    kind: str,
    target: str,
) -> None:
    from azure.batch import models

    s = make_stack(target)
    if kind == "pool":
        batch_client.create_pool(
            models.BatchPoolCreateOptions(
                {
                    "id": s.pool_id,
                    "vmSize": "standard_d2s_v3",
                    "virtualMachineConfiguration": {
                        "imageReference": {
                            "publisher": "canonical",
                            "offer": "0001-com-ubuntu-server-jammy",
                            "sku": "22_04-lts",
                            "version": "latest",
                        },
                        "nodeAgentSKUId": "batch.node.ubuntu 22.04",
                    },
                    "targetDedicatedNodes": 0,
                }
            )
        )
        address = f"pool/{s.pool_id}"
    elif kind == "job":
        batch_client.create_job(
            models.BatchJobCreateOptions({"id": s.job_id, "poolInfo": {"poolId": s.pool_id}})
        )
        address = f"job/{s.job_id}"
    else:
        blob_service.create_container(f"{s.name}-input")
        address = "container/input"
    with pytest.raises(OwnershipError) as info:
        s.apply()
    assert info.value.exit_code == 3
    assert f"{address} ({kind}) exists and belongs to no bspec stack" in info.value.message
    out = s.apply(adopt=True)
    assert ("update", address) in [(c["action"], c["address"]) for c in out.data["changes"]]
    assert s.plan()[0].empty()


@pytest.mark.parametrize("target", TARGETS)
def test_two_stacks_destroy_one_then_apply_again(
    make_stack: Callable[..., Stack], target: str
) -> None:
    a, b = make_stack(target), make_stack(target)
    a.apply()
    b.apply()
    gone = a.destroy()
    assert changes(gone.data) == [
        ("delete", f"job/{a.job_id}"),
        ("delete", f"pool/{a.pool_id}"),
        ("delete", "container/input"),
        ("delete", "container/output"),
        ("delete", "container/_bspec"),
    ]
    assert b.plan()[0].empty()
    nothing = a.destroy()
    assert nothing.data["changes"] == []
    assert writes(nothing.data) == {"batch": 0, "storage": 0}
    # destroy then apply again at once: the being-deleted codes are waited out
    a.apply()
    a.destroy()
    a.apply()
    assert a.plan()[0].empty()
    assert b.plan()[0].empty()


@pytest.mark.parametrize("target", TARGETS)
def test_saved_plan_applies_exactly_and_stale_is_refused(
    make_stack: Callable[..., Stack], batch_client: Any, target: str
) -> None:
    s = make_stack(target)
    saved = s.folder / "plan.json"
    p, _ = s.plan(out_file=saved)
    assert "sig=" not in saved.read_text()
    out = s.apply(path=saved)
    assert [(c["action"], c["address"]) for c in out.data["changes"]] == changes(p)
    assert s.plan()[0].empty()
    # stale: the pool was resized by someone else after the plan was made
    s.files["a.txt"] = "changed"
    s.plan(out_file=saved)
    from azure.batch import models

    batch_client.update_pool(
        s.pool_id,
        models.BatchPoolUpdateOptions(
            {"metadata": [{"name": "bspec-stack", "value": s.name}, {"name": "x", "value": "y"}]}
        ),
    )
    with pytest.raises(StalePlanError) as info:
        s.apply(path=saved)
    assert f"pool/{s.pool_id}" in info.value.message
    assert info.value.exit_code == 3


def test_a_task_runs_and_its_logs_survive(
    make_stack: Callable[..., Stack], blob_service: Any
) -> None:
    s = make_stack(files={"a.txt": "one two three"})
    s.nodes = 1
    out = s.apply(no_wait=False, wait_timeout=120)
    assert out.exit_code == 0
    assert out.data["outcome"]["tasks"] == {"succeeded": 1, "failed": 0, "failedTasks": []}
    outputs = blob_service.get_container_client(f"{s.name}-output")
    assert outputs.download_blob("a_OUTPUT.txt").readall().split()[0] == b"3"
    logs = blob_service.get_container_client(f"{s.name}-bspec")
    names = {b.name for b in logs.list_blobs(name_starts_with="logs/")}
    assert names == {f"logs/{s.job_id}/wc-a/stdout.txt", f"logs/{s.job_id}/wc-a/stderr.txt"}
    # outputs bspec did not upload are never pruned; a converged apply writes nothing
    again = s.apply(no_wait=False)
    assert writes(again.data) == {"batch": 0, "storage": 0}


@pytest.mark.parametrize("when_idle", ["delete", "scaleToZero"])
def test_when_idle_is_done_and_not_undone(
    make_stack: Callable[..., Stack], batch_client: Any, when_idle: str
) -> None:
    s = make_stack(files={"a.txt": "one"})
    s.nodes = 1
    s.when_idle = when_idle
    out = s.apply(no_wait=False, wait_timeout=120)
    assert (
        out.data["outcome"]["pool"]
        == {"delete": "deleted", "scaleToZero": "scaledToZero"}[when_idle]
    )
    assert s.plan()[0].empty()  # the idle pool is not drift
    s.files["b.txt"] = "two"  # work again: the pool comes back
    p, _ = s.plan()
    expected = (
        ("create", f"pool/{s.pool_id}")
        if when_idle == "delete"
        else ("update", f"pool/{s.pool_id}")
    )
    assert expected in changes(p)


def test_a_failed_task_fails_the_apply(make_stack: Callable[..., Stack]) -> None:
    s = make_stack(files={})
    s.nodes = 1
    s.extra_tasks = [
        {"id": "bad", "commandLine": "/bin/false"},
        {"id": "good", "commandLine": "/bin/true"},
    ]
    out = s.apply(no_wait=False, wait_timeout=120)
    assert out.exit_code == 1
    tasks = out.data["outcome"]["tasks"]
    assert (tasks["succeeded"], tasks["failed"]) == (1, 1)
    assert tasks["failedTasks"][0]["address"] == f"task/{s.job_id}/bad"
    assert tasks["failedTasks"][0]["exitCode"] == 1
    # a failure from an earlier apply still fails the next one; nothing is resubmitted
    again = s.apply(no_wait=False, wait_timeout=60)
    assert again.exit_code == 1
    assert writes(again.data) == {"batch": 0, "storage": 0}


def test_resubmitting_the_same_tasks_counts_task_exists_as_success(
    make_stack: Callable[..., Stack], env: Any
) -> None:
    import datetime as dt

    from bspec.applying import _Sas
    from bspec.errors import ServiceError
    from bspec.kinds import task as task_kind
    from bspec.spec import load
    from bspec.targets import connect

    s = make_stack()
    s.apply()
    desired = load(s.spec)
    tgt = connect("local", desired.stack)
    try:
        sas = _Sas(tgt, dt.timedelta(hours=1))
        bodies = [tgt.batch.task_body(task_kind.from_spec(t, desired), sas) for t in desired.tasks]
        tgt.batch.add_tasks(s.job_id, bodies)  # an interrupted submission, sent again
        changed = [
            {**b, "environmentSettings": [{"name": "BSPEC_FINGERPRINT", "value": "v1:x"}]}
            for b in bodies
        ]
        with pytest.raises(ServiceError, match="TaskExists with a different definition"):
            tgt.batch.add_tasks(s.job_id, changed)
    finally:
        tgt.close()
    assert s.plan()[0].empty()


def test_job_and_pool_properties_change_in_place(make_stack: Callable[..., Stack]) -> None:
    s = make_stack()
    s.apply()
    s.job_extra = {"priority": 10, "constraints": {"maxWallClockTime": "PT1H"}}
    s.pool_extra = {
        "metadata": {"team": "x"},
        "startTask": {"commands": ["echo hi"], "resourceFiles": [{"container": "input"}]},
    }
    p, _ = s.plan()
    assert [(a, addr, c.fields) for (a, addr), c in zip(changes(p), p.pending(), strict=True)] == [
        ("update", f"pool/{s.pool_id}", ("startTask", "metadata")),
        ("update", f"job/{s.job_id}", ("priority", "maxWallClockTime")),
    ]
    assert "start task changed; it reaches existing nodes when they restart" in reason_text(
        p.pending()[0].reasons
    )
    out = s.apply()
    assert writes(out.data)["batch"] == 2
    assert s.plan()[0].empty()
    s.job_extra = {}
    s.pool_extra = {}
    assert [c.fields for c in s.plan()[0].pending()] == [
        ("startTask", "metadata"),
        ("priority", "maxWallClockTime"),
    ]
    s.apply()
    assert s.plan()[0].empty()
