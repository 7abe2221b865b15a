"""Autoscale in the local service, through azure-batch 15 against a private manual-clock
service: a pending-tasks formula grows the pool when tasks are queued and shrinks it to zero
once they are done, each evaluation reached by stepping the clock; and Batch's rules around
enable, evaluate, disable and resize."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from reference import Reference
from test_localbatch_api import IMAGE, wait_for
from test_localbatch_clock import post_json
from test_localbatch_restart import Server

PENDING = (
    "$TargetDedicatedNodes = min(3, $PendingTasks);\n$NodeDeallocationOption = taskcompletion;"
)


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[Server]:
    with Server(tmp_path / "home", "--clock", "manual").running() as srv:
        yield srv


def step(server: Server, duration: str) -> None:
    status, _ = post_json(f"{server.url}/_local/clock", {"advance": duration})
    assert status == 200


def autoscale_pool(c: Any, pool_id: str, formula: str = PENDING) -> None:
    c.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            enable_auto_scale=True,
            auto_scale_formula=formula,
            auto_scale_evaluation_interval="PT5M",
        )
    )


def code(exc: pytest.ExceptionInfo[HttpResponseError]) -> tuple[int | None, str | None]:
    error = exc.value.error
    return exc.value.status_code, error.code if error is not None else None


def test_pending_tasks_formula_grows_the_pool_and_shrinks_it_to_zero(
    manual: Server, reference: Reference
) -> None:
    with manual.client(reference) as c:
        autoscale_pool(c, "p")
        pool = c.get_pool("p")
        # Evaluated at once: nothing pending, no nodes.
        assert pool.enable_auto_scale and pool.auto_scale_evaluation_interval is not None
        assert pool.auto_scale_run is not None and pool.auto_scale_run.error is None
        assert "$TargetDedicatedNodes=0" in (pool.auto_scale_run.results or "")
        assert pool.target_dedicated_nodes == 0
        first = pool.auto_scale_run.timestamp

        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        for i in range(3):
            c.create_task("j", m.BatchTaskCreateOptions(id=f"t{i}", command_line="true"))
        # Not yet: the next evaluation is 5 minutes after the first.
        step(manual, "PT4M")
        assert c.get_pool("p").target_dedicated_nodes == 0
        step(manual, "PT1M")
        pool = c.get_pool("p")
        assert pool.auto_scale_run is not None and pool.auto_scale_run.timestamp > first
        assert "$TargetDedicatedNodes=3" in (pool.auto_scale_run.results or "")
        assert pool.target_dedicated_nodes == 3
        wait_for(
            lambda: all(t.state == "completed" for t in c.list_tasks("j")),
            30,
            "the queued tasks done on the new nodes",
        )
        assert c.get_pool("p").current_dedicated_nodes == 3

        # Done: the next evaluation takes the pool back to zero.
        step(manual, "PT5M")
        assert c.get_pool("p").target_dedicated_nodes == 0
        wait_for(
            lambda: (lambda p: p.current_dedicated_nodes == 0 and p.allocation_state == "steady")(
                c.get_pool("p")
            ),
            30,
            "the pool back to zero nodes",
        )


def test_autoscale_rules_enable_evaluate_disable_resize(
    manual: Server, reference: Reference
) -> None:
    with manual.client(reference, retry_total=0) as c:
        autoscale_pool(c, "p", "$TargetDedicatedNodes = 0;")

        with pytest.raises(HttpResponseError) as err:
            c.begin_resize_pool("p", m.BatchPoolResizeOptions(target_dedicated_nodes=2)).result()
        assert code(err) == (409, "OperationNotValidOnPool")

        # At most one enableautoscale per 30 s (creation counts as one).
        new = m.BatchPoolEnableAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = 1;")
        with pytest.raises(HttpResponseError) as err:
            c.enable_pool_auto_scale("p", new)
        assert code(err) == (503, "TooManyEnableAutoScaleRequests")
        step(manual, "PT30S")
        c.enable_pool_auto_scale("p", new)
        pool = c.get_pool("p")
        assert pool.target_dedicated_nodes == 1  # evaluated at once
        assert pool.auto_scale_formula == "$TargetDedicatedNodes = 1;"

        # evaluateautoscale answers the run and changes nothing.
        run = c.evaluate_pool_auto_scale(
            "p",
            m.BatchPoolEvaluateAutoScaleOptions(
                auto_scale_formula="x = $PendingTasks + 4; $TargetDedicatedNodes = x;"
            ),
        )
        assert run.error is None and run.results is not None
        assert run.results.startswith("$TargetDedicatedNodes=4;")
        assert "$x=4" in run.results
        assert c.get_pool("p").target_dedicated_nodes == 1
        # A formula that fails as it runs: 200, the error in the run.
        run = c.evaluate_pool_auto_scale(
            "p",
            m.BatchPoolEvaluateAutoScaleOptions(
                auto_scale_formula="$TargetDedicatedNodes = $PendingTasks - 1;"
            ),
        )
        assert run.error is not None and run.error.code
        # One that does not parse: 400, nothing changed.
        with pytest.raises(HttpResponseError) as err:
            c.evaluate_pool_auto_scale(
                "p",
                m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes = "),
            )
        assert code(err) == (400, "AutoScalingFormulaSyntaxError")
        step(manual, "PT30S")
        with pytest.raises(HttpResponseError) as err:
            c.enable_pool_auto_scale(
                "p",
                m.BatchPoolEnableAutoScaleOptions(auto_scale_evaluation_interval="PT1M"),
            )
        assert code(err) == (400, "InvalidPropertyValue")

        c.disable_pool_auto_scale("p")
        pool = c.get_pool("p")
        assert not pool.enable_auto_scale and pool.target_dedicated_nodes == 1
        with pytest.raises(HttpResponseError) as err:
            c.evaluate_pool_auto_scale(
                "p",
                m.BatchPoolEvaluateAutoScaleOptions(auto_scale_formula="$TargetDedicatedNodes=1;"),
            )
        assert code(err) == (409, "OperationNotValidOnPool")
        # Disabled, it no longer evaluates: stepping past intervals changes nothing.
        step(manual, "PT20M")
        assert c.get_pool("p").target_dedicated_nodes == 1

        # A create with both a target and autoscale, or without a formula, is refused.
        both = m.BatchPoolCreateOptions(
            id="both",
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            enable_auto_scale=True,
            auto_scale_formula="$TargetDedicatedNodes = 1;",
            target_dedicated_nodes=1,
        )
        with pytest.raises(HttpResponseError) as err:
            c.create_pool(both)
        assert code(err) == (400, "InvalidAutoScalingSettings")
        bad = m.BatchPoolCreateOptions(
            id="bad",
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            enable_auto_scale=True,
            auto_scale_formula="$TargetDedicatedNodes = $Nope;",
        )
        with pytest.raises(HttpResponseError) as err:
            c.create_pool(bad)
        assert code(err)[0] == 400
        assert [p.id for p in c.list_pools()] == ["p"]


def test_autoscale_schedule_survives_a_restart(manual: Server, reference: Reference) -> None:
    with manual.client(reference) as c:
        autoscale_pool(c, "p", "$TargetDedicatedNodes = 0;")
        first = c.get_pool("p").auto_scale_run
        assert first is not None
    manual.stop()
    manual.start()
    with manual.client(reference) as c:
        assert c.get_pool("p").auto_scale_run == first
        step(manual, "PT5M")
        run = c.get_pool("p").auto_scale_run
        assert run is not None and run.timestamp > first.timestamp
