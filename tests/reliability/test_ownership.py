"""Ownership: with foreign pools, jobs, tasks and containers of the same names present, no
bspec command modifies or deletes them without --adopt; destroying one stack leaves every
other stack's resources byte-identical (same ETags, same last-modified times, same blobs).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import IMAGE, Bspec, Snapshot, assert_converged, desired_of, write_spec


def fingerprint_of_world(batch: Any, blobs: Any, pools: list[str], jobs: list[str],
                         containers: list[str]) -> dict[str, Any]:
    """ETags and last-modified times of everything named, task by task and blob by blob."""
    world: dict[str, Any] = {}
    for pid in pools:
        p = batch.get_pool(pid)
        world[f"pool/{pid}"] = (p.etag, p.last_modified, p.target_dedicated_nodes,
                                sorted((m.name, m.value) for m in p.metadata or ()))
    for jid in jobs:
        j = batch.get_job(jid)
        world[f"job/{jid}"] = (j.etag, j.last_modified, str(j.state))
        for t in batch.list_tasks(jid):
            world[f"task/{jid}/{t.id}"] = (t.etag, t.last_modified, t.command_line)
    for name in containers:
        cc = blobs.get_container_client(name)
        props = cc.get_container_properties()
        world[f"container/{name}"] = (props.etag, props.last_modified, dict(props.metadata))
        for b in cc.list_blobs(include=["metadata"]):
            world[f"blob/{name}/{b.name}"] = (b.etag, b.last_modified, b.size)
    return world


def make_foreign(batch: Any, blobs: Any, pool_id: str, job_id: str, container: str) -> None:
    """A pool, a job with a task, and a container with a blob that nobody's bspec made."""
    batch.create_pool({"id": pool_id, "vmSize": "standard_d2s_v3",
                       "virtualMachineConfiguration": {
                           "imageReference": {"publisher": IMAGE["publisher"],
                                              "offer": IMAGE["offer"], "sku": IMAGE["sku"]},
                           "nodeAgentSkuId": IMAGE["nodeAgentSku"]},
                       "targetDedicatedNodes": 0,
                       "metadata": [{"name": "team", "value": "someone-else"}]})
    batch.create_job({"id": job_id, "poolInfo": {"poolId": pool_id}})
    batch.create_task(job_id, {"id": "theirs", "commandLine": "/bin/true"})
    cc = blobs.create_container(container, metadata={"team": "someone_else"})
    cc.upload_blob("theirs.txt", b"their data\n")


def test_foreign_resources_of_the_same_names_are_never_touched(
        bspec: Bspec, batch_client: Any, blob_service: Any,
        stack: Callable[..., tuple[str, Path]]) -> None:
    _name, spec = stack("own", tasks=5)
    desired = desired_of(spec)
    assert desired.pool is not None
    pool_id, job_id = desired.pool.id, desired.jobs[0].id
    input_container = desired.container("input").name
    make_foreign(batch_client, blob_service, pool_id, job_id, input_container)
    names = ([pool_id], [job_id], [input_container])
    before = fingerprint_of_world(batch_client, blob_service, *names)

    plan = bspec("plan", str(spec), "--json")
    assert plan.returncode == 3 and plan.json()["error"]["code"] == "NotOwned", str(plan)
    applied = bspec("apply", str(spec), "--yes", "--no-wait", "--json")
    assert applied.returncode == 3, str(applied)
    assert applied.json()["error"]["code"] == "NotOwned"
    human = bspec("apply", str(spec), "--yes", "--no-wait")
    assert human.returncode == 3 and "--adopt" in human.stderr, str(human)
    destroyed = bspec("destroy", str(spec), "--yes", "--json")
    assert destroyed.returncode == 0, str(destroyed)
    assert fingerprint_of_world(batch_client, blob_service, *names) == before

    # With --adopt it takes them over; their foreign task is reported and left alone.
    adopted = bspec("apply", str(spec), "--yes", "--no-wait", "--adopt", "--json")
    assert adopted.returncode == 0, str(adopted)
    tasks = {t.id for t in batch_client.list_tasks(job_id)}
    assert "theirs" in tasks and {t.id for t in desired.tasks} <= tasks
    assert blob_service.get_container_client(input_container).get_blob_client(
        "theirs.txt").download_blob().readall() == b"their data\n"


def test_foreign_task_in_an_owned_job_is_left_alone(
        bspec: Bspec, batch_client: Any, stack: Callable[..., tuple[str, Path]]) -> None:
    name, spec = stack("own-task", files=0, tasks=4)
    assert bspec("apply", str(spec), "--yes", "--no-wait").returncode == 0
    job_id = desired_of(spec).jobs[0].id
    batch_client.create_task(job_id, {"id": "r1x", "commandLine": "/bin/true"})
    foreign = batch_client.get_task(job_id, "r1x")
    write_spec(spec.parent, name, files=0, tasks=2)
    applied = bspec("apply", str(spec), "--yes", "--no-wait", "--json")
    assert applied.returncode == 0, str(applied)
    left = {t.id for t in batch_client.list_tasks(job_id)}
    assert left == {"r0", "r1", "r1x"}, left
    assert batch_client.get_task(job_id, "r1x").etag == foreign.etag


def test_destroy_leaves_other_stacks_byte_identical(
        bspec: Bspec, inproc: Any, batch_client: Any, blob_service: Any,
        state: Callable[[str], Snapshot], stack: Callable[..., tuple[str, Path]]) -> None:
    a_name, a_spec = stack("own-a", tasks=8)
    b_name, b_spec = stack("own-b", tasks=8)
    for s in (a_spec, b_spec):
        assert bspec("apply", str(s), "--yes", "--no-wait").returncode == 0
    b = desired_of(b_spec)
    assert b.pool is not None
    b_names = ([b.pool.id], [j.id for j in b.jobs],
               [c.name for c in b.containers] + [b.logs_container.name])
    before = fingerprint_of_world(batch_client, blob_service, *b_names)
    # A third stack that names B's pool: refused, B's pool untouched.
    _c_name, c_spec = stack("own-c", tasks=2, pool_id=b.pool.id)
    grab = bspec("apply", str(c_spec), "--yes", "--no-wait", "--json")
    assert grab.returncode == 3 and grab.json()["error"]["code"] == "NotOwned", str(grab)
    assert bspec("destroy", str(c_spec), "--yes").returncode == 0
    destroyed = bspec("destroy", str(a_spec), "--yes", "--json")
    assert destroyed.returncode == 0, str(destroyed)
    gone = state(a_name)
    assert not gone.pools and not gone.jobs and not gone.containers
    assert fingerprint_of_world(batch_client, blob_service, *b_names) == before
    assert_converged(state(b_name), b)
