"""Autoscale pools without a service: the presets' formulas (rendered, then run by the local
service's own formula evaluator), the spec's rules around them, the planner's field rules
(in place, node counts not drift), the create body, and what plans and status say."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from bspec.cli import main
from bspec.errors import InputError, SpecError
from bspec.kinds import pool as pool_kind
from bspec.localbatch.autoscale import PoolSnapshot, SampleRecorder, evaluate
from bspec.model import ActualState, Address, AutoscaleSpec, Resource
from bspec.planning import plan
from bspec.providers.batch import BatchProvider
from bspec.reporting import plan_json, reason_text, render_plan
from bspec.reporting.autoscale import evaluation_lines, preemption_text
from bspec.spec import autoscale
from spec_helpers import POOL, render
from test_planning import converged, desired

SCHEMAS = Path(__file__).resolve().parents[2] / "schema"
NOW = dt.datetime(2026, 12, 7, 15, 30, tzinfo=dt.UTC)  # a Monday, 15:30 UTC


def queue(max_nodes: int, spot: float = 0.0, min_nodes: int = 0) -> str:
    params = autoscale.preset_parameters(
        "queue", {"min": min_nodes, "max": max_nodes, "spot": spot}
    )
    return autoscale.render_preset("queue", params, {})


def run(formula: str, at: dt.datetime = NOW, **counts: Any) -> tuple[int | None, int | None]:
    """The targets `formula` gives on a pool with `counts`, one sample of them recorded."""
    snapshot = PoolSnapshot(**counts)
    recorder = SampleRecorder()
    recorder.record(at, snapshot)
    out = evaluate(formula, replace(snapshot, samples=recorder.series()), at)
    assert out.error is None, out.error
    return out.target_dedicated, out.target_low_priority


@pytest.mark.parametrize(
    ("pending", "slots", "expected"),
    [(0, 1, 0), (1, 1, 1), (3, 1, 3), (7, 1, 5), (5, 2, 3), (4, 2, 2), (9, 4, 3), (100, 3, 5)],
)
def test_queue_preset_sizes_to_the_pending_tasks_between_min_and_max(
    pending: int, slots: int, expected: int
) -> None:
    got = run(queue(5), active_tasks=pending, task_slots_per_node=slots)
    assert got == (expected, 0)


def test_queue_preset_keeps_its_minimum() -> None:
    assert run(queue(5, min_nodes=2), active_tasks=0) == (2, 0)


@pytest.mark.parametrize(
    ("nodes", "spot", "expected"),
    [(4, 0.5, (2, 2)), (3, 0.5, (2, 1)), (5, 0.25, (4, 1)), (4, 1.0, (0, 4)), (1, 0.5, (1, 0))],
)
def test_queue_preset_splits_spot_and_dedicated_in_whole_nodes(
    nodes: int, spot: float, expected: tuple[int, int]
) -> None:
    assert run(queue(8, spot), active_tasks=nodes) == expected


def test_queue_preset_runs_dedicated_nodes_for_missing_or_preempted_spot_nodes() -> None:
    formula = queue(8, 0.5)
    steady = {"active_tasks": 4, "target_low_priority": 2, "current_low_priority": 2}
    assert run(formula, **steady) == (2, 2)
    # One of the two Spot nodes preempted (still counted in currentLowPriorityNodes).
    assert run(formula, **steady, preempted=1) == (3, 2)
    # Only one of the two came (no Spot capacity).
    assert run(formula, **{**steady, "current_low_priority": 1}) == (3, 2)
    # Growing: Spot nodes not yet asked for are not missing.
    assert run(formula, active_tasks=8, target_low_priority=2, current_low_priority=2) == (4, 4)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (NOW, 6),  # Monday 10:30 at -05:00
        (NOW.replace(hour=13, minute=59), 2),  # 08:59 there
        (NOW.replace(hour=14), 6),  # 09:00 there
        (NOW.replace(hour=22), 2),  # 17:00 there: the end is excluded
        (NOW + timedelta(days=5), 2),  # Saturday
    ],
)
def test_workday_preset_follows_the_schedule_in_its_zone(at: dt.datetime, expected: int) -> None:
    params = autoscale.preset_parameters(
        "workday", {"nodes": 6, "min": 2, "hours": [9, 17], "timezone": "-05:00"}
    )
    assert run(autoscale.render_preset("workday", params, {}), at) == (expected, 0)


def test_workday_preset_takes_the_day_in_its_zone() -> None:
    params = autoscale.preset_parameters(
        "workday", {"nodes": 6, "hours": [20, 24], "timezone": "-05:00"}
    )
    formula = autoscale.render_preset("workday", params, {})
    saturday_2am_utc = NOW.replace(hour=2) + timedelta(days=5)  # Friday 21:00 there
    assert run(formula, saturday_2am_utc) == (6, 0)
    assert run(formula, saturday_2am_utc + timedelta(days=1)) == (0, 0)  # Saturday there


def test_preset_parameters_are_checked() -> None:
    with pytest.raises(InputError, match="needs `max`"):
        autoscale.preset_parameters("queue", {})
    with pytest.raises(InputError, match="Spot share"):
        autoscale.preset_parameters("queue", {"max": 2, "spot": 1.5})
    with pytest.raises(InputError, match="unknown autoscale preset 'cpu'"):
        autoscale.preset_parameters("cpu", {})
    with pytest.raises(InputError, match="not a day"):
        autoscale.preset_parameters("workday", {"nodes": 1, "days": ["mon", "fri", "funday"]})
    with pytest.raises(InputError, match="0 <= start < end <= 24"):
        autoscale.preset_parameters("workday", {"nodes": 1, "hours": [18, 8]})


def test_the_formula_is_a_template_that_sees_vars_and_the_pool(tmp_path: Path) -> None:
    d = render(
        tmp_path,
        "apiVersion: bspec/v1\nname: s\nvars: {most: 3}\n"
        + POOL
        + "  taskSlotsPerNode: 4\n  autoscale:\n    interval: PT7M\n    formula: |\n"
        "      // {{ pool }} {{ pool.vmSize }}\n"
        "      $TargetDedicatedNodes = min({{ vars.most }}, $PendingTasks / {{ pool.taskSlotsPerNode }});\n",
    )
    assert d.pool is not None and d.pool.autoscale == AutoscaleSpec(
        formula="// p standard_d2s_v3\n$TargetDedicatedNodes = min(3, $PendingTasks / 4);",
        interval=timedelta(minutes=7),
    )


def test_a_preset_renders_with_its_parameters_from_templates(tmp_path: Path) -> None:
    d = render(
        tmp_path,
        "apiVersion: bspec/v1\nname: s\nvars: {top: 6}\n"
        + POOL
        + "  autoscale: {preset: queue, max: '{{ vars.top }}', spot: 0.5}\n",
    )
    assert d.pool is not None and d.pool.autoscale is not None
    a = d.pool.autoscale
    assert (a.preset, a.spot, a.interval) == ("queue", 0.5, timedelta(minutes=15))
    assert a.formula == queue(6, 0.5)
    assert "$need = min(6, max(0, " in a.formula


def test_bad_preset_values_are_spec_errors_at_their_line(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        render(
            tmp_path, "apiVersion: bspec/v1\nname: s\n" + POOL + "  autoscale: {preset: workday}\n"
        )
    (problem,) = err.value.problems
    assert problem.path == "$.pool.autoscale" and "needs `nodes`" in problem.message


def cli(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as exited:
        return int(exited.code or 0)
    return 0


def test_render_prints_a_preset_to_copy(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli("render", "--autoscale-preset", "queue", "--var", "max=6", "--var", "spot=0.5") == 0
    assert capsys.readouterr().out.strip() == queue(6, 0.5)
    assert cli("render", "--autoscale-preset", "workday", "--var", "nodes=2", "--json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["preset"] == "workday" and data["parameters"] == {"nodes": 2}
    output = json.loads((SCHEMAS / "output.schema.json").read_text())
    jsonschema.validate(data, output)
    assert cli("render", "--autoscale-preset", "cpu") == 2
    assert "unknown autoscale preset 'cpu'" in capsys.readouterr().err


# ------------------------------------------------------------------ the planner's rules

FORMULA = "$TargetDedicatedNodes = 2;"


def scaled(d: Any, formula: str = FORMULA, minutes: int = 15) -> Any:
    auto = AutoscaleSpec(formula, timedelta(minutes=minutes))
    return replace(d, pool=replace(d.pool, autoscale=auto, target_dedicated_nodes=0))


def with_pool(actual: dict[Address, Resource], **props: Any) -> dict[Address, Resource]:
    a = Address.pool("p")
    r = actual[a]
    return {**actual, a: Resource(a, {**r.props, **props}, r.owner, r.state, r.info)}


def test_fixed_to_autoscale_is_in_place() -> None:
    d = desired()
    (c,) = plan(scaled(d, minutes=5), ActualState(converged(d))).pending()
    assert (c.action.value, c.fields, c.forced_by) == ("update", ("autoScale",), ())
    assert reason_text(c.reasons) == (
        "enable autoscale (in place): the formula sizes the pool, evaluated every PT5M"
    )


def test_an_autoscale_pools_node_counts_are_not_drift() -> None:
    d = scaled(desired())
    actual = with_pool(converged(d), targetDedicatedNodes=7, targetLowPriorityNodes=3)
    assert plan(d, ActualState(actual)).empty()


def test_formula_and_interval_changes_are_in_place() -> None:
    d = scaled(desired())
    actual = converged(d)
    (c,) = plan(scaled(d, "$TargetDedicatedNodes = 3;", 30), ActualState(actual)).pending()
    assert (c.action.value, c.fields) == ("update", ("autoScale",))
    assert reason_text(c.reasons) == (
        "autoscale formula changed (in place); autoscale interval from PT15M to PT30M (in place)"
    )


def test_autoscale_to_fixed_disables_then_resizes() -> None:
    d = desired()  # 2 dedicated nodes
    actual = with_pool(converged(scaled(d)), targetDedicatedNodes=5)
    (c,) = plan(d, ActualState(actual)).pending()
    assert (c.action.value, c.fields) == ("update", ("targetDedicatedNodes", "autoScale"))
    assert reason_text(c.reasons) == (
        "disable autoscale (in place): the spec sets the node counts again;"
        " resize from 5 nodes to 2 nodes"
    )


def test_a_vm_size_change_still_replaces_an_autoscale_pool_with_nodes() -> None:
    d = scaled(desired())
    d2 = replace(d, pool=replace(d.pool, vm_size="standard_d4s_v3"))
    (c,) = plan(d2, ActualState(converged(d, nodes=2))).pending()
    assert (c.action.value, c.forced_by) == ("replace", ("vmSize",))


def test_an_evaluation_read_by_the_providers_is_in_the_plan_and_its_words() -> None:
    d = scaled(desired())
    actual = converged(d)
    a = Address.pool("p")
    run_ok = {
        "timestamp": "2026-12-07T15:30:00Z",
        "results": "$TargetDedicatedNodes=3.5;$TargetLowPriorityNodes=2;"
        "$NodeDeallocationOption=taskcompletion;$pending=7",
    }
    r = actual[a]
    info = {**r.info, "autoScaleEvaluation": pool_kind.evaluation_json(run_ok, "current")}
    actual[a] = Resource(a, r.props, r.owner, r.state, info)
    p = plan(d, ActualState(actual))
    assert p.empty()
    (e,) = p.autoscale
    assert e["address"] == "pool/p" and e["results"]["$pending"] == "7"
    assert (e["targetDedicatedNodes"], e["targetLowPriorityNodes"]) == (3, 2)
    assert plan_json(p, {})["autoscale"] == [e]
    lines = render_plan(p)
    assert "  pool/p (current formula) evaluates now to 3 dedicated nodes + 2 Spot nodes" in lines
    output = json.loads((SCHEMAS / "output.schema.json").read_text())
    jsonschema.validate(
        {
            "formatVersion": 1,
            **plan_json(p, {"batch": {"read": 1, "write": 0}, "storage": {"read": 0, "write": 0}}),
        },
        output,
    )


def test_a_refused_formula_reads_as_the_services_words() -> None:
    refused = {
        "code": "AutoScalingFormulaSyntaxError",
        "message": {"lang": "en-US", "value": "The formula has a syntax error.\nRequestId:x"},
        "values": [{"key": "Message", "value": "Line 1, Col 25: Unexpected ';'"}],
    }
    e = {"address": "pool/p", **pool_kind.evaluation_json({"error": refused}, "new")}
    assert e["error"] == {
        "code": "AutoScalingFormulaSyntaxError",
        "message": "The formula has a syntax error.",
        "details": ["Line 1, Col 25: Unexpected ';'"],
    }
    assert evaluation_lines([e])[1] == (
        "  pool/p (new formula) fails: AutoScalingFormulaSyntaxError: The formula has a syntax"
        " error. (Line 1, Col 25: Unexpected ';')"
    )


def test_the_create_body_of_an_autoscale_pool_has_no_node_counts() -> None:
    d = scaled(desired(), minutes=5)
    pool = pool_kind.from_spec(d.pool, d)
    batch = BatchProvider(client=None, blob_base="http://x/acct", stack="demo")  # type: ignore[arg-type]
    body = batch.pool_body(pool, lambda c, b, p: "url")
    assert "targetDedicatedNodes" not in body and "targetLowPriorityNodes" not in body
    assert body["enableAutoScale"] is True
    assert (body["autoScaleFormula"], body["autoScaleEvaluationInterval"]) == (FORMULA, "PT5M")
    # ... and read back as the same props.
    rest = {
        "id": "p",
        **body,
        "metadata": body["metadata"],
        "targetDedicatedNodes": 4,
        "virtualMachineConfiguration": body["virtualMachineConfiguration"],
    }
    back = pool_kind.from_rest(rest, lambda url: url)
    assert back.props["autoScale"] == pool.props["autoScale"]


def test_spot_handling_and_its_words() -> None:
    d = desired()
    assert pool_kind.spot_handling(d.pool) == "batchRestores"
    assert pool_kind.spot_handling(scaled(d).pool) == "formula"
    preset = replace(d.pool, autoscale=AutoscaleSpec(FORMULA, preset="queue", spot=0.5))
    assert pool_kind.spot_handling(preset) == "queueFallback"
    assert not pool_kind.may_have_spot(d.pool)
    assert pool_kind.may_have_spot(preset)
    assert preemption_text("p", 2, "batchRestores") == (
        "2 Spot nodes of pool p preempted; Batch re-allocates preempted Spot nodes when"
        " capacity returns"
    )


def test_docs_show_each_preset_in_full() -> None:
    docs = (SCHEMAS.parent / "docs" / "pools.md").read_text("utf-8")
    for name in autoscale.PRESETS:
        assert f"```jinja\n{autoscale.preset_source(name)}```" in docs


def test_a_saved_plan_keeps_the_pools_autoscale() -> None:
    from bspec import saved_plan
    from bspec.model import DesiredState

    d = desired()
    d = replace(d, pool=replace(d.pool, autoscale=AutoscaleSpec(FORMULA, preset="queue", spot=0.5)))
    back = saved_plan.from_data(DesiredState, json.loads(json.dumps(saved_plan.to_data(d))))
    assert back.pool.autoscale == d.pool.autoscale


def test_status_words_for_an_autoscale_pool() -> None:
    from bspec.reporting.autoscale import autoscale_status_text

    assert autoscale_status_text({"interval": "PT5M", "lastRun": None}) == (
        "autoscale every PT5M; not evaluated yet"
    )
    failed = {
        "timestamp": "T",
        "error": {"code": "InsufficientSampleData", "message": "m", "details": ["Line 1"]},
    }
    assert autoscale_status_text({"interval": "PT5M", "lastRun": failed}) == (
        "autoscale every PT5M; last evaluation at T: failed, InsufficientSampleData: m (Line 1)"
    )


def test_a_saved_plan_is_not_stale_when_the_formula_moved_the_node_counts() -> None:
    from bspec.planning import basis

    d = scaled(desired())
    before = basis(ActualState(converged(d)))
    after = basis(ActualState(with_pool(converged(d), targetDedicatedNodes=9)))
    assert before == after
    fixed = desired()
    assert basis(ActualState(converged(fixed))) != basis(
        ActualState(with_pool(converged(fixed), targetDedicatedNodes=9))
    )
