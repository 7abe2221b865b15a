"""Several pools (issue 13): `pools:` by key, a job's `pool: <key>`, templates, planning and
whenIdle per pool, the --json shapes; pure (no service)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from bspec.cli import main
from bspec.errors import SpecError
from bspec.model import Action, ActualState, Address, DesiredState, Resource, WhenIdle
from bspec.planning import plan, plan_destroy
from spec_helpers import render, write

IMAGE = (
    "{publisher: canonical, offer: ubuntu, sku: 22_04-lts, nodeAgentSku: batch.node.ubuntu 22.04}"
)

TWO_POOLS = f"""apiVersion: bspec/v1
name: two
storage:
  containers:
    out: {{}}
pools:
  prep:
    id: two-prep
    vmSize: standard_d2s_v3
    image: {IMAGE}
    lowPriorityNodes: 1
    whenIdle: scaleToZero
  big:
    id: two-big
    vmSize: standard_d4s_v3
    image: {IMAGE}
    nodes: 2
    taskSlotsPerNode: 4
jobs:
  - id: prep-job
    pool: prep
    tasks:
      - foreach: {{range: [0, 2]}}
        id: "p{{{{ item }}}}"
        commandLine: "echo {{{{ pool }}}} {{{{ pool.key }}}} {{{{ pool.vmSize }}}}"
  - id: big-job
    pool: big
    tasks:
      - id: wide
        requiredSlots: 4
        commandLine: "echo {{{{ pool }}}} {{{{ pool.taskSlotsPerNode }}}}"
  - id: more-big
    pool: big
    tasks: []
"""


def _two(tmp_path: Path, text: str = TWO_POOLS) -> DesiredState:
    return render(tmp_path, text)


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(SpecError) as raised:
        render(tmp_path, text)
    return [f"{p.line}:{p.path}: {p.message}" for p in raised.value.problems]


# --------------------------------------------------------------------------- loading, rendering


def test_two_pools_render_with_each_job_on_its_pool(tmp_path: Path) -> None:
    d = _two(tmp_path)
    assert [(p.key, p.id) for p in d.pools] == [("prep", "two-prep"), ("big", "two-big")]
    assert d.pool is None  # several: no single pool
    assert [(j.id, j.pool_id) for j in d.jobs] == [
        ("prep-job", "two-prep"),
        ("big-job", "two-big"),
        ("more-big", "two-big"),
    ]
    assert d.pool_of("big-job") is d.pools[1]
    assert [j.id for j in d.jobs_on("two-big")] == ["big-job", "more-big"]


def test_templates_see_the_jobs_pool_id_and_its_attributes(tmp_path: Path) -> None:
    d = _two(tmp_path)
    lines = {t.id: t.command_line for t in d.tasks}
    assert lines["p0"] == "echo two-prep prep standard_d2s_v3"
    assert lines["wide"] == "echo two-big 4"


def test_pool_shorthand_renders_pool_as_before_and_job_may_name_its_id(tmp_path: Path) -> None:
    spec = f"""apiVersion: bspec/v1
name: one
pool: {{id: one-pool, vmSize: standard_d2s_v3, image: {IMAGE}}}
jobs:
  - id: a
    tasks: [{{id: t, commandLine: "echo {{{{ pool }}}} {{{{ pool.key }}}}"}}]
  - id: b
    pool: One-Pool
    tasks: []
"""
    d = render(tmp_path, spec)
    assert d.pool is not None and d.pools == (d.pool,) and d.pool.key is None
    assert d.tasks[0].command_line == "echo one-pool None"
    assert {j.pool_id for j in d.jobs} == {"one-pool"}


def test_one_pool_under_pools_needs_no_job_key(tmp_path: Path) -> None:
    spec = f"""apiVersion: bspec/v1
name: one
pools:
  only: {{id: only-pool, vmSize: standard_d2s_v3, image: {IMAGE}}}
jobs:
  - id: a
    tasks: [{{id: t, commandLine: /bin/true}}]
"""
    d = render(tmp_path, spec)
    assert d.pool is not None and d.pool.key == "only" and d.jobs[0].pool_id == "only-pool"


def test_task_slots_are_checked_against_the_jobs_own_pool(tmp_path: Path) -> None:
    bad = TWO_POOLS.replace(
        "  - id: prep-job\n    pool: prep\n    tasks:\n",
        (
            "  - id: prep-job\n    pool: prep\n    tasks:\n"
            "      - {id: two-slots, requiredSlots: 2, commandLine: /bin/true}\n"
        ),
    )
    (problem,) = _problems(tmp_path, bad)
    assert "requiredSlots 2 is more than the pool's taskSlotsPerNode (1)" in problem
    assert "$.jobs[0].tasks[0].requiredSlots" in problem


def test_pools_are_rendered_with_templates(tmp_path: Path) -> None:
    text = TWO_POOLS.replace("nodes: 2\n", 'nodes: "{{ vars.n }}"\n').replace(
        "name: two\n", "name: two\nvars: {n: 3}\n"
    )
    d = _two(tmp_path, text)
    assert d.pools[1].target_dedicated_nodes == 3


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ("pool: big\n    tasks:\n      - id: wide", "pool: bigg\n    tasks:\n      - id: wide"),
            "$.jobs[1].pool: unknown pool 'bigg'; did you mean 'big'?",
        ),
        (
            ("pool: big\n    tasks:\n      - id: wide", "pool: zzz\n    tasks:\n      - id: wide"),
            "$.jobs[1].pool: unknown pool 'zzz' (pools: prep, big)",
        ),
        (
            ("    pool: prep\n", ""),
            "$.jobs[0]: missing required key 'pool': the spec has 2 pools; name the job's pool"
            " by its key (one of: prep, big)",
        ),
        (
            ("id: two-big", "id: TWO-PREP"),
            "$.pools.big.id: pool id 'TWO-PREP' is used twice (ids ignore case; first by pools.prep)",
        ),
    ],
)
def test_bad_pool_references_are_clear_errors(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    problems = _problems(tmp_path, TWO_POOLS.replace(*edit))
    assert any(p.endswith(expected) for p in problems), problems


def test_pool_and_pools_together_is_an_error_at_pools(tmp_path: Path) -> None:
    text = TWO_POOLS.replace(
        "pools:\n", f"pool: {{id: x, vmSize: standard_d2s_v3, image: {IMAGE}}}\npools:\n"
    )
    problems = _problems(tmp_path, text)
    assert any("$.pools: give either `pool` (one pool) or `pools`" in p for p in problems)


def test_shorthand_job_naming_another_pool_is_an_error(tmp_path: Path) -> None:
    spec = f"""apiVersion: bspec/v1
name: one
pool: {{id: one-pool, vmSize: standard_d2s_v3, image: {IMAGE}}}
jobs:
  - id: a
    pool: gpu
    tasks: []
"""
    (problem,) = _problems(tmp_path, spec)
    assert "$.jobs[0].pool: the spec has one pool" in problem


@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_bad_pool_spec_exits_2_and_touches_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: str,
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BSPEC_HOME", str(home))
    spec = write(tmp_path, TWO_POOLS.replace("    pool: prep\n", ""))
    args = [command, str(spec), "--json"] + (["--yes"] if command == "apply" else [])
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    problems = error.get("problems") or [error]
    assert [(p["line"], p["path"]) for p in problems] == [(20, "$.jobs[0]")]  # `- id: prep-job`
    assert not home.exists()  # no service started, nothing written


# --------------------------------------------------------------------------- --json shapes


def test_validate_and_render_json_list_every_pool(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(tmp_path, TWO_POOLS)
    main(["validate", str(spec), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["pool"] is None
    assert [(p["key"], p["id"], p["nodes"]) for p in summary["pools"]] == [
        ("prep", "two-prep", 0),
        ("big", "two-big", 2),
    ]
    main(["render", str(spec), "--json"])
    rendered = json.loads(capsys.readouterr().out)
    assert rendered["pool"] is None
    assert [(p["key"], p["vmSize"]) for p in rendered["pools"]] == [
        ("prep", "standard_d2s_v3"),
        ("big", "standard_d4s_v3"),
    ]
    assert [j["poolId"] for j in rendered["jobs"]] == ["two-prep", "two-big", "two-big"]
    main(["render", str(spec)])
    text = capsys.readouterr().out
    assert "pool/two-prep  vmSize=standard_d2s_v3 nodes=0 key=prep" in text


def test_one_pool_json_keeps_pool_and_adds_pools(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = write(
        tmp_path, f"apiVersion: bspec/v1\nname: one\npool: {{id: p, vmSize: v, image: {IMAGE}}}\n"
    )
    main(["validate", str(spec), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["pool"] == {
        "id": "p",
        "vmSize": "v",
        "nodes": 0,
        "lowPriorityNodes": 0,
        "taskSlotsPerNode": 1,
    }
    assert summary["pools"] == [{**summary["pool"], "key": None}]


# --------------------------------------------------------------------------- planning


def _converged(d: DesiredState, task_state: str = "completed") -> dict[Address, Resource]:
    """The actual state as applying `d` leaves it, from its plan against nothing."""
    created = plan(d, ActualState({}))
    state = {"task": task_state}
    return {
        c.address: Resource(
            c.address,
            dict(c.after.props),
            owner=d.stack,
            state=state.get(c.address.kind.value, "active"),
        )
        for c in created.changes
        if c.after is not None
    }


def test_plan_creates_every_pool_before_the_jobs(tmp_path: Path) -> None:
    d = _two(tmp_path)
    p = plan(d, ActualState({}))
    order = [str(c.address) for c in p.pending() if c.address.kind.value in ("pool", "job")]
    assert order == ["pool/two-prep", "pool/two-big", "job/prep-job", "job/big-job", "job/more-big"]
    by = {str(c.address): c for c in p.pending()}
    assert by["job/big-job"].after is not None
    assert by["job/big-job"].after.props["poolId"] == "two-big"
    assert by["pool/two-big"].after is not None
    assert by["pool/two-big"].after.props["taskSlotsPerNode"] == 4
    assert plan(d, ActualState(_converged(d))).empty()


def test_two_jobs_share_a_pool_and_moving_a_job_replaces_only_it(tmp_path: Path) -> None:
    d = _two(tmp_path)
    actual = _converged(d)
    moved = _two(
        tmp_path, TWO_POOLS.replace("id: more-big\n    pool: big", "id: more-big\n    pool: prep")
    )
    acts = [(c.action.value, str(c.address)) for c in plan(moved, ActualState(actual)).pending()]
    assert acts == [("replace", "job/more-big")]


def test_when_idle_is_per_pool(tmp_path: Path) -> None:
    d = _two(tmp_path)
    actual = _converged(d)
    prep = Address.pool("two-prep")
    actual[prep] = replace(actual[prep], props={**actual[prep].props, "targetLowPriorityNodes": 0})
    # prep's tasks completed and it scaled to zero: not drift, though big has work to run
    for t in d.tasks_of("big-job"):
        actual[t.address] = replace(actual[t.address], state="running")
    assert plan(d, ActualState(actual)).empty()
    # work for prep again: it is resized back
    for t in d.tasks_of("prep-job"):
        actual[t.address] = replace(actual[t.address], state="active")
    (c,) = plan(d, ActualState(actual)).pending()
    assert (c.action, str(c.address), c.fields) == (
        Action.UPDATE,
        "pool/two-prep",
        ("targetLowPriorityNodes",),
    )


def test_when_idle_delete_pool_is_not_recreated_while_only_the_other_pool_has_work(
    tmp_path: Path,
) -> None:
    d = _two(tmp_path, TWO_POOLS.replace("whenIdle: scaleToZero", "whenIdle: delete"))
    assert d.pools[0].when_idle is WhenIdle.DELETE
    actual = _converged(d)
    del actual[Address.pool("two-prep")]
    for t in d.tasks_of("big-job"):
        actual[t.address] = replace(actual[t.address], state="active")
    assert plan(d, ActualState(actual)).empty()


def test_pool_gone_from_the_spec_is_deleted_and_destroy_removes_every_pool(
    tmp_path: Path,
) -> None:
    d = _two(tmp_path)
    actual = _converged(d)
    acts = plan_destroy(d, ActualState(actual)).pending()
    pools = [str(c.address) for c in acts if c.address.kind.value == "pool"]
    assert sorted(pools) == ["pool/two-big", "pool/two-prep"]
    only_big = _two(
        tmp_path,
        TWO_POOLS.replace(
            TWO_POOLS[TWO_POOLS.index("  prep:\n") : TWO_POOLS.index("  big:\n")], ""
        ).replace("pool: prep", "pool: big"),
    )
    changes = {str(c.address): c.action for c in plan(only_big, ActualState(actual)).pending()}
    assert changes["pool/two-prep"] is Action.DELETE
    assert changes["job/prep-job"] is Action.REPLACE


def test_pools_survive_a_saved_plan_round_trip(tmp_path: Path) -> None:
    from bspec import saved_plan

    d = _two(tmp_path)
    back = saved_plan.from_data(DesiredState, json.loads(json.dumps(saved_plan.to_data(d))))
    assert back.pools == d.pools and back.pool is None


def test_status_text_shows_every_pool() -> None:
    from bspec.reporting.status import render_status

    def pool(pid: str, key: str | None, exists: bool = True) -> dict[str, Any]:
        return {
            "id": pid,
            "key": key,
            "exists": exists,
            "state": "active",
            "allocationState": "steady",
            "targetDedicatedNodes": 1,
            "currentDedicatedNodes": 1,
            "targetLowPriorityNodes": 0,
            "currentLowPriorityNodes": 0,
            "nodes": {"idle": 1},
        }

    data = {
        "stack": "two",
        "target": "local",
        "pool": None,
        "pools": [pool("two-prep", "prep", exists=False), pool("two-big", "big")],
        "jobs": [],
    }
    assert render_status(data) == [
        "Stack two (local)",
        "Pool two-prep: does not exist",
        "Pool two-big: active, steady, 1/1 dedicated nodes (1 idle)",
    ]
    one = {**data, "pool": pool("p", None), "pools": [pool("p", None)]}
    old = {k: v for k, v in one.items() if k != "pools"}  # a status object before `pools`
    assert render_status(one) == render_status(old)


class _FakeBatch:
    """bspec's own BatchProvider surface that whenIdle uses, over an in-memory pool list."""

    def __init__(self, d: DesiredState, nodes: int) -> None:
        self.pools = {
            p.id: Resource(
                Address.pool(p.id),
                {"targetDedicatedNodes": nodes, "targetLowPriorityNodes": 0},
                owner=d.stack,
                state="active",
            )
            for p in d.pools
        }
        self.calls: list[str] = []

    def read_pools(self) -> list[Resource]:
        self.calls.append("list")
        return list(self.pools.values())

    def resize_pool(self, pool_id: str, dedicated: int, low: int) -> None:
        self.calls.append(f"resize {pool_id} {dedicated} {low}")

    def delete_pool(self, pool_id: str) -> None:
        self.calls.append(f"delete {pool_id}")


def test_idle_pools_fire_as_their_own_jobs_complete(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from bspec.operations.tasks import IdlePools

    d = _two(
        tmp_path,
        TWO_POOLS.replace(
            "    taskSlotsPerNode: 4\n", "    taskSlotsPerNode: 4\n    whenIdle: delete\n"
        ),
    )
    batch = _FakeBatch(d, nodes=1)
    said: list[str] = []
    idle = IdlePools(d, SimpleNamespace(batch=batch), said.append)  # type: ignore[arg-type]
    idle.job_done("prep-job")  # prep's only job: prep scales to zero now
    assert batch.calls == ["list", "resize two-prep 0 0"]
    assert said == [
        "The tasks of the jobs on pool two-prep completed: scaling pool two-prep to zero"
        " (whenIdle: scaleToZero)"
    ]
    idle.job_done("big-job")  # more-big has no tasks: big is idle too
    assert batch.calls[-2:] == ["list", "delete two-big"]
    assert idle.finish(said.append) == {
        "pools": [
            {"id": "two-prep", "key": "prep", "outcome": "scaledToZero"},
            {"id": "two-big", "key": "big", "outcome": "deleted"},
        ]
    }
    assert len(batch.calls) == 4  # finish had nothing left to do
