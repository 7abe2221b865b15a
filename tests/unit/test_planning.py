"""The planner over every action and rule of DESIGN.md "Reconcile semantics" (pure)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from bspec.errors import OwnershipError
from bspec.model import (
    Action,
    ActualState,
    Address,
    BlobSpec,
    ContainerSpec,
    DesiredState,
    ImageSpec,
    JobSpec,
    PoolSpec,
    Resource,
    ResourceFileSpec,
    TaskConstraintsSpec,
    TaskSpec,
    WhenIdle,
)
from bspec.planning import (
    LOGS_KEY,
    PlanOptions,
    basis,
    desired_job_props,
    desired_pool_props,
    desired_task_props,
    plan,
    plan_destroy,
    seconds,
)
from bspec.reporting import reason_text

STACK = "demo"


def desired(
    *,
    blobs: tuple[BlobSpec, ...] | None = None,
    pool: PoolSpec | None = None,
    jobs: tuple[JobSpec, ...] | None = None,
    tasks: tuple[TaskSpec, ...] | None = None,
) -> DesiredState:
    return DesiredState(
        stack=STACK,
        spec_file="/x/spec.yaml",
        spec_hash="0" * 64,
        vars={},
        target=None,
        containers=(ContainerSpec("input", "demo-input"), ContainerSpec("output", "demo-output")),
        blobs=blobs
        if blobs is not None
        else (
            BlobSpec("input", "a.txt", "/x/a.txt", 1, "aa"),
            BlobSpec("input", "b.txt", "/x/b.txt", 1, "bb"),
        ),
        pool=pool
        if pool is not None
        else PoolSpec(
            id="p",
            vm_size="STANDARD_D2S_V3",
            image=ImageSpec("canonical", "ubuntu", "22_04-lts", "batch.node.ubuntu 22.04"),
            target_dedicated_nodes=2,
        ),
        jobs=jobs if jobs is not None else (JobSpec(id="j", pool_id="p"),),
        tasks=tasks
        if tasks is not None
        else (
            TaskSpec("j", "ta", "cat a.txt", "v1:a", (ResourceFileSpec("input", "a.txt"),)),
            TaskSpec("j", "tb", "cat b.txt", "v1:b", (ResourceFileSpec("input", "b.txt"),)),
            TaskSpec("j", "reduce", "sum", "v1:r", depends_on=("ta", "tb")),
        ),
    )


def converged(
    d: DesiredState, *, nodes: int = 2, task_state: str = "completed"
) -> dict[Address, Resource]:
    """The actual state exactly as applying `d` leaves it."""
    res: dict[Address, Resource] = {}
    for c in (*d.containers, d.logs_container):
        a = Address.container(c.key)
        res[a] = Resource(a, {"name": c.name}, owner=STACK)
    for b in d.blobs:
        res[b.address] = Resource(b.address, {"md5": b.md5}, owner=STACK)
    if d.pool:
        a = Address.pool(d.pool.id)
        res[a] = Resource(
            a,
            desired_pool_props(d.pool, d),
            owner=STACK,
            state="active",
            info={"currentDedicatedNodes": nodes},
        )
    for j in d.jobs:
        a = Address.job(j.id)
        res[a] = Resource(a, desired_job_props(j), owner=STACK, state="active")
    for t in d.tasks:
        res[t.address] = Resource(t.address, desired_task_props(t), owner=STACK, state=task_state)
    return res


def changes_of(p: Any) -> list[tuple[str, str]]:
    return [(c.action.value, str(c.address)) for c in p.pending()]


def test_nothing_exists_creates_everything_in_order() -> None:
    d = desired()
    p = plan(d, ActualState({}))
    assert changes_of(p) == [
        ("create", "container/input"),
        ("create", "container/output"),
        ("create", f"container/{LOGS_KEY}"),
        ("create", "blob/input/a.txt"),
        ("create", "blob/input/b.txt"),
        ("create", "pool/p"),
        ("create", "job/j"),
        ("create", "task/j/ta"),
        ("create", "task/j/tb"),
        ("create", "task/j/reduce"),
    ]
    assert p.summary() == {"noop": 0, "create": 10, "update": 0, "replace": 0, "delete": 0}


@pytest.mark.parametrize("task_state", ["active", "running", "completed"])
def test_converged_is_all_noop_whatever_the_task_state(task_state: str) -> None:
    d = desired()
    p = plan(d, ActualState(converged(d, task_state=task_state)))
    assert p.empty()
    assert p.summary()["noop"] == 10
    assert p.warnings == ()


def test_edited_input_replaces_its_reader_and_dependents() -> None:
    d = desired()
    actual = converged(d)
    d2 = desired(
        blobs=(
            BlobSpec("input", "a.txt", "/x/a.txt", 1, "aa"),
            BlobSpec("input", "b.txt", "/x/b.txt", 2, "b2"),
        ),
        tasks=(
            TaskSpec("j", "ta", "cat a.txt", "v1:a", (ResourceFileSpec("input", "a.txt"),)),
            TaskSpec("j", "tb", "cat b.txt", "v1:b2", (ResourceFileSpec("input", "b.txt"),)),
            TaskSpec("j", "reduce", "sum", "v1:r2", depends_on=("ta", "tb")),
        ),
    )
    p = plan(d2, ActualState(actual))
    assert changes_of(p) == [
        ("update", "blob/input/b.txt"),
        ("replace", "task/j/tb"),
        ("replace", "task/j/reduce"),
    ]
    by = {str(c.address): c for c in p.pending()}
    assert by["blob/input/b.txt"].fields == ("md5",)
    assert by["task/j/tb"].forced_by == ("fingerprint",)
    assert reason_text(by["task/j/tb"].reasons) == "input blob input/b.txt changed"
    assert reason_text(by["task/j/reduce"].reasons) == "depends on task tb, which runs again"


def test_added_file_creates_one_blob_and_one_task() -> None:
    d = desired()
    actual = converged(d)
    d2 = desired(
        blobs=(*d.blobs, BlobSpec("input", "c.txt", "/x/c.txt", 1, "cc")),
        tasks=(
            *d.tasks,
            TaskSpec("j", "tc", "cat c.txt", "v1:c", (ResourceFileSpec("input", "c.txt"),)),
        ),
    )
    p = plan(d2, ActualState(actual))
    assert changes_of(p) == [("create", "blob/input/c.txt"), ("create", "task/j/tc")]


def test_uploaded_blob_gone_from_spec_is_pruned_but_outputs_never() -> None:
    d = desired()
    actual = converged(d)
    gone = Address.blob("input", "old.txt")
    out = Address.blob("output", "a_OUTPUT.txt")
    actual[gone] = Resource(gone, {"md5": "zz"}, owner=STACK)
    actual[out] = Resource(out, {"md5": "yy"}, owner=None)
    p = plan(d, ActualState(actual))
    assert changes_of(p) == [("delete", "blob/input/old.txt")]


def test_resize_is_an_update() -> None:
    d = desired()
    actual = converged(d)
    d2 = replace(d, pool=replace(d.pool, target_dedicated_nodes=3))  # type: ignore[arg-type]
    p = plan(d2, ActualState(actual))
    (c,) = p.pending()
    assert (c.action, c.fields, c.forced_by) == (Action.UPDATE, ("targetDedicatedNodes",), ())
    assert reason_text(c.reasons) == "resize from 2 nodes to 3 nodes"


def test_vm_size_on_a_pool_with_nodes_replaces_it() -> None:
    d = desired()
    actual = converged(d, nodes=2)
    d2 = replace(d, pool=replace(d.pool, vm_size="standard_d4s_v3"))  # type: ignore[arg-type]
    (c,) = plan(d2, ActualState(actual)).pending()
    assert (c.action, c.forced_by) == (Action.REPLACE, ("vmSize",))
    assert "destroys 2 nodes, requeues running tasks" in reason_text(c.reasons)


def test_vm_size_on_an_empty_pool_is_an_update() -> None:
    d = desired()
    actual = converged(d, nodes=0)
    d2 = replace(d, pool=replace(d.pool, vm_size="standard_d4s_v3"))  # type: ignore[arg-type]
    (c,) = plan(d2, ActualState(actual)).pending()
    assert (c.action, c.fields) == (Action.UPDATE, ("vmSize",))


def test_vm_size_compared_without_case() -> None:
    d = desired()
    d2 = replace(d, pool=replace(d.pool, vm_size="Standard_D2s_V3"))  # type: ignore[arg-type]
    assert plan(d2, ActualState(converged(d))).empty()


def test_start_task_and_metadata_change_in_place() -> None:
    d = desired()
    d2 = replace(d, pool=replace(d.pool, metadata=(("team", "x"),)))  # type: ignore[arg-type]
    (c,) = plan(d2, ActualState(converged(d))).pending()
    assert (c.action, c.fields) == (Action.UPDATE, ("metadata",))


def test_task_removed_added_and_constraint_changed() -> None:
    d = desired()
    actual = converged(d)
    ta, tb, _reduce = d.tasks
    d2 = desired(
        tasks=(
            replace(ta, constraints=TaskConstraintsSpec(max_wall_clock_time=timedelta(minutes=5))),
            tb,
            TaskSpec("j", "new", "echo", "v1:n"),
        )
    )
    p = plan(d2, ActualState(actual))
    assert changes_of(p) == [
        ("delete", "task/j/reduce"),
        ("update", "task/j/ta"),
        ("create", "task/j/new"),
    ]
    upd = p.pending()[1]
    assert upd.fields == ("maxWallClockTime",)


def test_batch_defaults_are_not_a_difference() -> None:
    d = desired()
    actual = converged(d)
    a = Address.task("j", "ta")
    # Batch answers unlimited and 7 days where the spec said nothing.
    actual[a] = replace(
        actual[a], props={**actual[a].props, "maxWallClockTime": None, "retentionTime": 604800.0}
    )
    assert plan(d, ActualState(actual)).empty()


def test_foreign_task_in_owned_job_is_reported_and_left_alone() -> None:
    d = desired()
    actual = converged(d)
    a = Address.task("j", "someone-elses")
    actual[a] = Resource(a, {"fingerprint": None}, owner=None, state="active")
    p = plan(d, ActualState(actual))
    assert p.empty()
    assert p.warnings == ("task/j/someone-elses was not created by bspec; left alone",)


@pytest.mark.parametrize("address", ["pool/p", "job/j", "container/input"])
@pytest.mark.parametrize("owner", [None, "other"])
def test_unowned_resources_are_refused_then_adopted(address: str, owner: str | None) -> None:
    d = desired()
    actual = converged(d)
    addr = Address.parse(address)
    actual[addr] = replace(actual[addr], owner=owner)
    with pytest.raises(OwnershipError) as info:
        plan(d, ActualState(actual))
    assert address in info.value.message
    assert "--adopt" in (info.value.hint or "")
    p = plan(d, ActualState(actual), PlanOptions(adopt=True))
    (c,) = p.pending()
    assert (c.action, str(c.address), c.fields[-1]) == (Action.UPDATE, address, "owner")


def test_unowned_task_with_a_spec_id_is_refused_then_replaced() -> None:
    d = desired()
    actual = converged(d)
    a = Address.task("j", "ta")
    actual[a] = Resource(a, {"fingerprint": None}, owner=None, state="completed")
    with pytest.raises(OwnershipError):
        plan(d, ActualState(actual))
    (c,) = plan(d, ActualState(actual), PlanOptions(adopt=True)).pending()
    assert (c.action, str(c.address)) == (Action.REPLACE, "task/j/ta")


def test_job_pool_change_replaces_job_and_reruns_its_tasks() -> None:
    d = desired()
    actual = converged(d)
    actual[Address.pool("q")] = replace(actual[Address.pool("p")], address=Address.pool("q"))
    d2 = replace(d, jobs=(JobSpec(id="j", pool_id="q"),), pool=replace(d.pool, id="q"))  # type: ignore[arg-type]
    p = plan(d2, ActualState(actual))
    acts = changes_of(p)
    assert ("delete", "pool/p") in acts
    assert ("replace", "job/j") in acts
    job = next(c for c in p.pending() if str(c.address) == "job/j")
    assert job.forced_by == ("poolId",)
    assert reason_text(job.reasons).endswith("3 tasks rerun")
    assert [a for a in acts if a[1].startswith("task/")] == [
        ("replace", "task/j/ta"),
        ("replace", "task/j/tb"),
        ("replace", "task/j/reduce"),
    ]


def test_dependencies_switched_on_replace_the_job_but_off_does_not() -> None:
    d = desired()
    actual = converged(d)
    d_on = replace(d, jobs=(JobSpec(id="j", pool_id="p", uses_task_dependencies=True),))
    job = next(
        c for c in plan(d_on, ActualState(actual)).pending() if c.address.kind.value == "job"
    )
    assert (job.action, job.forced_by) == (Action.REPLACE, ("usesTaskDependencies",))
    actual_on = converged(d_on)
    assert plan(d, ActualState(actual_on)).empty()


@pytest.mark.parametrize("state", ["completed", "terminating"])
def test_job_completed_outside_bspec_is_replaced(state: str) -> None:
    d = desired()
    actual = converged(d)
    actual[Address.job("j")] = replace(actual[Address.job("j")], state=state)
    job = next(c for c in plan(d, ActualState(actual)).pending() if c.address.kind.value == "job")
    assert job.action is Action.REPLACE
    assert f"the job was {state} outside bspec" in reason_text(job.reasons)


def test_job_priority_updates_in_place() -> None:
    d = desired()
    d2 = replace(d, jobs=(JobSpec(id="j", pool_id="p", priority=5),))
    (c,) = plan(d2, ActualState(converged(d))).pending()
    assert (c.action, c.fields) == (Action.UPDATE, ("priority",))


def test_deleting_resources_are_planned_as_creates() -> None:
    d = desired()
    actual = converged(d)
    for a in (Address.pool("p"), Address.job("j")):
        actual[a] = replace(actual[a], state="deleting")
    for t in d.tasks:
        del actual[t.address]
    acts = changes_of(plan(d, ActualState(actual)))
    assert ("create", "pool/p") in acts and ("create", "job/j") in acts


def test_when_idle_delete_is_not_drift_once_everything_completed() -> None:
    d = desired()
    d = replace(d, pool=replace(d.pool, when_idle=WhenIdle.DELETE))  # type: ignore[arg-type]
    actual = converged(d)
    del actual[Address.pool("p")]
    assert plan(d, ActualState(actual)).empty()
    # ... until there is work again.
    d2 = desired(tasks=(*d.tasks, TaskSpec("j", "more", "x", "v1:m")))
    d2 = replace(d2, pool=d.pool)
    acts = changes_of(plan(d2, ActualState(actual)))
    assert ("create", "pool/p") in acts


def test_when_idle_scale_to_zero_is_not_drift() -> None:
    d = desired()
    d = replace(d, pool=replace(d.pool, when_idle=WhenIdle.SCALE_TO_ZERO))  # type: ignore[arg-type]
    actual = converged(d, nodes=0)
    pa = Address.pool("p")
    actual[pa] = replace(actual[pa], props={**actual[pa].props, "targetDedicatedNodes": 0})
    assert plan(d, ActualState(actual)).empty()
    actual_running = {
        **actual,
        **{t.address: replace(actual[t.address], state="active") for t in d.tasks},
    }
    (c,) = plan(d, ActualState(actual_running)).pending()
    assert (c.action, c.fields) == (Action.UPDATE, ("targetDedicatedNodes",))


def test_owned_job_gone_from_spec_is_deleted() -> None:
    d = desired()
    actual = converged(d)
    a = Address.job("old")
    actual[a] = Resource(a, {}, owner=STACK, state="active", info={"taskCount": 4})
    other = Address.job("theirs")
    actual[other] = Resource(other, {}, owner="other", state="active")
    (c,) = plan(d, ActualState(actual)).pending()
    assert (c.action, str(c.address)) == (Action.DELETE, "job/old")
    assert "deletes its 4 tasks" in reason_text(c.reasons)


def test_destroy_deletes_only_what_the_stack_owns_in_reverse_order() -> None:
    d = desired()
    actual = converged(d)
    other = Address.job("theirs")
    actual[other] = Resource(other, {}, owner="other", state="active")
    p = plan_destroy(d, ActualState(actual))
    assert changes_of(p) == [
        ("delete", "job/j"),
        ("delete", "pool/p"),
        ("delete", "container/input"),
        ("delete", "container/output"),
        ("delete", f"container/{LOGS_KEY}"),
    ]
    assert "destroys 2 nodes" in reason_text(p.changes[1].reasons)
    assert plan_destroy(d, ActualState({})).empty()


def test_plans_are_deterministic() -> None:
    d = desired()
    actual = converged(d)
    shuffled = dict(reversed(list(actual.items())))
    assert plan(d, ActualState(actual)) == plan(d, ActualState(shuffled))


def test_basis_ignores_task_state() -> None:
    d = desired()
    assert basis(ActualState(converged(d, task_state="running"))) == basis(
        ActualState(converged(d, task_state="completed"))
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), (timedelta(seconds=90), 90.0), (timedelta(days=10675199), None), (3.5, 3.5)],
)
def test_seconds(value: Any, expected: float | None) -> None:
    assert seconds(value) == expected
