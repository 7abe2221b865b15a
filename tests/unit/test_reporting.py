"""The human plan (Terraform-like) and the --json shape."""

from __future__ import annotations

from bspec.model import (
    Action,
    ActualState,
    Address,
    BlobSpec,
    Change,
    ContainerSpec,
    DesiredState,
    ImageSpec,
    JobSpec,
    Plan,
    PoolSpec,
    Resource,
    TaskSpec,
    reason,
)
from bspec.planning import desired_job_props, desired_pool_props, desired_task_props, plan
from bspec.reporting import plan_json, render_plan, summary_line


def desired() -> DesiredState:
    return DesiredState(
        stack="demo",
        spec_file="/x/s.yaml",
        spec_hash="0",
        vars={},
        target=None,
        containers=(ContainerSpec("input", "demo-input"), ContainerSpec("output", "demo-output")),
        blobs=(
            BlobSpec("input", "a.txt", "/x/a", 1, "aa"),
            BlobSpec("input", "b.txt", "/x/b", 1, "bb"),
        ),
        pool=PoolSpec("p", "standard_d2s_v3", ImageSpec("c", "u", "22", "n"), 2),
        jobs=(JobSpec("j", "p"),),
        tasks=(
            TaskSpec("j", "ta", "x", "v1:a"),
            TaskSpec("j", "tb", "y", "v1:b"),
            TaskSpec("j", "tc", "z", "v1:c"),
        ),
    )


def converged(d: DesiredState) -> dict[Address, Resource]:
    res: dict[Address, Resource] = {}
    for c in (*d.containers, d.logs_container):
        res[Address.container(c.key)] = Resource(Address.container(c.key), {"name": c.name}, "demo")
    for b in d.blobs:
        res[b.address] = Resource(b.address, {"md5": b.md5}, "demo")
    assert d.pool is not None
    res[Address.pool("p")] = Resource(Address.pool("p"), desired_pool_props(d.pool, d), "demo")
    res[Address.job("j")] = Resource(Address.job("j"), desired_job_props(d.jobs[0]), "demo")
    for t in d.tasks:
        res[t.address] = Resource(t.address, desired_task_props(t), "demo", state="completed")
    return res


def _task(i: int, action: Action = Action.CREATE) -> Change:
    return Change(
        action, Address.task("j", f"t{i}"), None, None, reasons=(reason("new", noun="task"),)
    )


def test_no_changes() -> None:
    d = desired()
    p = plan(d, ActualState(converged(d)))
    assert render_plan(p) == ["No changes."]


def test_everything_new_is_grouped_by_kind_with_a_summary() -> None:
    lines = render_plan(plan(desired(), ActualState({})))
    assert lines[0] == "Containers:"
    assert "  + container/input" in lines
    assert (
        lines.index("Blobs:") < lines.index("Pool:") < lines.index("Jobs:") < lines.index("Tasks:")
    )
    assert lines[-1] == "Plan: 10 to create, 0 to update, 0 to replace, 0 to delete."


def test_long_task_lists_are_summarized() -> None:
    p = Plan("s", "local", tuple(_task(i) for i in range(10_000)))
    lines = render_plan(p)
    assert "  + 9,997 more tasks to create" in lines
    assert sum(1 for line in lines if line.startswith("  + task/")) == 3
    assert lines[-1] == "Plan: 10000 to create, 0 to update, 0 to replace, 0 to delete."


def test_replace_names_its_cause_and_what_it_destroys() -> None:
    before = Resource(Address.pool("p"), {}, owner="s")
    c = Change(
        Action.REPLACE,
        Address.pool("p"),
        before,
        None,
        fields=("vmSize",),
        forced_by=("vmSize",),
        reasons=(reason("emptyOnly", fields=["vmSize"], nodes=2),),
    )
    lines = render_plan(Plan("s", "local", (c,)))
    assert "  -/+ pool/p  (forced by: vmSize)" in lines
    assert (
        "      replaces pool: vmSize can only change on an empty pool; destroys 2 nodes,"
        " requeues running tasks"
    ) in lines
    assert lines[-1] == "Plan: 0 to create, 0 to update, 1 to replace, 0 to delete."


def test_warnings_are_shown() -> None:
    p = Plan("s", "local", (), warnings=("task/j/x was not created by bspec; left alone",))
    assert "Warning: task/j/x was not created by bspec; left alone" in render_plan(p)


def test_summary_line_for_destroy() -> None:
    assert summary_line(Plan("s", "local", ()), destroy=True) == "Nothing to destroy."


def test_json_shape() -> None:
    d = desired()
    p = plan(d, ActualState(converged(d)))
    data = plan_json(p, {"batch": {"read": 4, "write": 0}, "storage": {"read": 3, "write": 0}})
    assert data == {
        "stack": "demo",
        "target": "local",
        "changes": [],
        "summary": {"noop": 10, "create": 0, "update": 0, "replace": 0, "delete": 0},
        "requests": {"batch": {"read": 4, "write": 0}, "storage": {"read": 3, "write": 0}},
    }
    p2 = Plan("s", "local", (_task(1, Action.CREATE),))
    assert plan_json(p2, {})["changes"] == [
        {
            "action": "create",
            "address": "task/j/t1",
            "fields": [],
            "forcedBy": [],
            "reason": "new task",
        }
    ]
