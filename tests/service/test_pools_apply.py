"""Several pools (issue 13) applied for real on the local target through the SDKs: the
two-pool spec in specs/two-pools.yaml (existing features only) is planned, applied and
waited for, its Spot pool scaled to zero once its own job's tasks completed while the other
pool's tasks still ran, shown by `status`, converged, and destroyed (every pool)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from engine_support import copy_spec, run_json, use_services
from jsonschema import Draft202012Validator

HERE = Path(__file__).parent
SCHEMA = json.loads((HERE.parents[1] / "schema" / "output.schema.json").read_text("utf-8"))


def _check(data: dict[str, Any], shape: str) -> None:
    errors = list(Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{shape}"}).iter_errors(data))
    assert not errors, [e.message for e in errors]


def _when(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


@pytest.mark.slow
def test_two_pools_apply_wait_status_converge_and_destroy(
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
    batch_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use_services(monkeypatch, local_services)
    name = unique_id("pools")
    spec = copy_spec(HERE / "specs" / "two-pools.yaml", tmp_path / "spec.yaml", "two-pools", name)
    spot, main_pool = f"{name}-spot", f"{name}-main"
    wide = ["--var", "wide_seconds=4"]

    code, planned = run_json(capsys, "plan", str(spec), *wide)
    assert code == 0
    _check(planned, "plan")
    creates = [c["address"] for c in planned["changes"] if c["action"] == "create"]
    assert creates.index(f"pool/{spot}") < creates.index(f"pool/{main_pool}")
    assert creates.index(f"pool/{main_pool}") < creates.index(f"job/{name}-prep")

    code, applied = run_json(capsys, "apply", str(spec), "--yes", *wide)
    assert code == 0, applied
    _check(applied, "apply")
    outcome = applied["outcome"]
    assert outcome["tasks"]["succeeded"] == 4 and outcome["tasks"]["failed"] == 0
    assert "pool" not in outcome  # several pools: per pool in `pools`
    assert outcome["pools"] == [
        {"id": spot, "key": "spot", "outcome": "scaledToZero"},
        {"id": main_pool, "key": "main", "outcome": "kept"},
    ]
    # The Spot pool was scaled down once its job's tasks completed, before the wide task
    # on the other pool ended.
    spot_pool = batch_client.get_pool(spot)
    assert (spot_pool.target_dedicated_nodes, spot_pool.target_low_priority_nodes) == (0, 0)
    wide_task = batch_client.get_task(f"{name}-wide", "wide")
    assert _when(spot_pool.allocation_state_transition_time) < _when(
        wide_task.execution_info.end_time
    )
    assert batch_client.get_pool(main_pool).target_dedicated_nodes == 1
    # each task ran on its job's pool and saw it as `pool`
    out = batch_client.get_job(f"{name}-reduce").pool_info.pool_id
    assert out == main_pool

    code, status = run_json(capsys, "status", str(spec), *wide)
    assert code == 0
    _check(status, "status")
    assert status["pool"] is None
    assert [(p["key"], p["id"], p["exists"]) for p in status["pools"]] == [
        ("spot", spot, True),
        ("main", main_pool, True),
    ]
    assert status["pools"][0]["targetLowPriorityNodes"] == 0

    # converged: the Spot pool at zero is not drift; nothing to write
    code, again = run_json(capsys, "plan", str(spec), *wide)
    assert (code, again["changes"]) == (0, [])
    assert again["requests"]["batch"]["write"] == 0

    code, destroyed = run_json(capsys, "destroy", str(spec), "--yes")
    assert code == 0
    gone = {c["address"] for c in destroyed["changes"]}
    assert {f"pool/{spot}", f"pool/{main_pool}"} <= gone
    pools = {p.id for p in batch_client.list_pools()}
    assert not {spot, main_pool} & pools or all(
        batch_client.get_pool(p).state.lower() == "deleting" for p in {spot, main_pool} & pools
    )
