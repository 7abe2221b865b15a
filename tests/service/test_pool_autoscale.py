"""Autoscale and Spot pools through bspec's operations, for real: a private local Batch
service on a manual clock (each evaluation reached by stepping it), the session's Azurite,
the real SDKs. The queue preset grows the pool with the queue, splits it into Spot and
dedicated nodes, stands in with dedicated nodes for a preempted Spot node and for Spot
capacity that never came (the account's Spot core quota) and shrinks to zero; plan shows what a formula evaluates to now and the service's words for one it
refuses; fixed size -> autoscale -> fixed size changes the pool in place; status and wait
count preempted nodes and say what the pool does about them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from bspec import operations
from bspec.errors import ServiceError
from bspec.local import http_json
from engine_support import IMAGE
from test_localbatch_api import wait_for
from test_localbatch_restart import Server
from test_operations import Recorder

pytestmark = pytest.mark.service

GATE_WAIT = "/bin/sh -c 'while [ ! -e {gate} ]; do sleep 0.05; done'"


@pytest.fixture
def manual(tmp_path: Path, azurite: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A private manual-clock service that bspec reaches as its azure target."""
    with Server(tmp_path / "home", "--clock", "manual").running() as srv:
        account = json.loads((srv.home / "account.json").read_text())
        monkeypatch.setenv("AZURE_BATCH_ENDPOINT", srv.url)
        monkeypatch.setenv("AZURE_BATCH_ACCOUNT", account["name"])
        monkeypatch.setenv("AZURE_BATCH_ACCESS_KEY", account["key"])
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        monkeypatch.setenv("BSPEC_TARGET", "azure")
        # Tasks wait on a gate: let them all run at once; preempted nodes stay preempted.
        http_json(
            "PUT",
            f"{srv.url}/_local/settings",
            {"maxProcesses": 8, "preemptionRestoreAfter": None},
        )
        yield srv


def step(server: Server, duration: str) -> None:
    http_json("POST", f"{server.url}/_local/clock", {"advance": duration})


def write_spec(folder: Path, name: str, pool: dict[str, Any], tasks: int, gate: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {
        "apiVersion": "bspec/v1",
        "name": name,
        "pool": {"id": f"{name}-pool", "vmSize": "standard_d2s_v3", "image": IMAGE, **pool},
        "jobs": [
            {
                "id": f"{name}-job",
                "tasks": [
                    {
                        "foreach": {"range": [0, tasks]},
                        "id": "t{{ item }}",
                        "commandLine": GATE_WAIT.format(gate=gate),
                    }
                ],
            }
        ]
        if tasks
        else [],
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec))
    return path


OUTPUT = json.loads(
    (Path(__file__).resolve().parents[2] / "schema" / "output.schema.json").read_text()
)


def valid(outcome: operations.Outcome) -> operations.Outcome:
    """The outcome, its --json object checked against the output schema."""
    jsonschema.validate({"formatVersion": 1, **outcome.data}, OUTPUT)
    return outcome


def pool_json(status: operations.Outcome) -> dict[str, Any]:
    pool: dict[str, Any] = valid(status).data["pool"]
    return pool


def open_gate_and_wait(spec: Path, gate: Path, tasks: int, handling: str) -> list[str]:
    """Let the tasks finish; `bspec wait` counts the one preempted node. What it said."""
    gate.touch()
    rec = Recorder()
    waited = valid(operations.wait(spec, rec, timeout=60))
    assert waited.exit_code == 0 and waited.data["tasks"]["succeeded"] == tasks
    assert waited.data["spot"] == {"preempted": 1, "handling": handling}
    return rec.said


def nodes_in(spec: Path, state: str, count: int, what: str) -> None:
    """Wait until `count` of the pool's nodes are in `state`, as status reports them."""
    eventually(
        lambda: pool_json(operations.status(spec, Recorder()))["nodes"].get(state) == count, what
    )


def eventually(check: Callable[[], bool], what: str) -> None:
    wait_for(check, 30, what)


def test_queue_preset_grows_falls_back_from_preempted_spot_and_shrinks_to_zero(
    manual: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    queue = {"autoscale": {"preset": "queue", "max": 4, "spot": 0.5, "interval": "PT5M"}}
    spec = write_spec(tmp_path / "q", "queue", queue, 4, gate)
    applied = operations.apply(spec, Recorder(), yes=True, wait=False)
    assert applied.exit_code == 0
    # Evaluated at once on creation, before the tasks were queued: no nodes.
    status = pool_json(operations.status(spec, Recorder()))
    assert (status["targetDedicatedNodes"], status["targetLowPriorityNodes"]) == (0, 0)

    # The next evaluation sees 4 pending tasks: 4 nodes, half of them Spot.
    step(manual, "PT5M")
    nodes_in(spec, "running", 4, "four nodes running the four tasks")
    status = pool_json(operations.status(spec, Recorder()))
    assert (status["targetDedicatedNodes"], status["targetLowPriorityNodes"]) == (2, 2)
    assert "spot" in status and status["spot"]["preempted"] == 0
    assert status["autoScale"]["interval"] == "PT5M"
    last = status["autoScale"]["lastRun"]
    assert (last["targetDedicatedNodes"], last["targetLowPriorityNodes"], last["error"]) == (
        2,
        2,
        None,
    )

    # plan: the pool's formula now (an existing autoscale pool), nothing to change.
    rec = Recorder()
    planned = valid(operations.plan(spec, rec))
    assert planned.plan is not None and planned.plan.empty()
    (evaluation,) = planned.data["autoscale"]
    assert evaluation["address"] == "pool/queue-pool" and evaluation["formula"] == "current"
    assert (evaluation["targetDedicatedNodes"], evaluation["targetLowPriorityNodes"]) == (2, 2)
    assert evaluation["error"] is None and evaluation["results"]["$pending"] == "4"
    assert (
        "  pool/queue-pool (current formula) evaluates now to 2 dedicated nodes + 2 Spot nodes"
        in rec.shown
    )

    # A Spot node is preempted: status counts it and says what the pool does about it.
    preempted = http_json(
        "POST", f"{manual.url}/_local/preempt", {"poolId": "queue-pool", "count": 1}
    )
    assert len(preempted["preempted"]) == 1
    rec = Recorder()
    status = pool_json(operations.status(spec, rec))
    assert status["spot"] == {"preempted": 1, "handling": "queueFallback"}
    assert any(
        line.startswith("  autoscale every PT5M; last evaluation at ")
        and line.endswith(": 2 dedicated nodes + 2 Spot nodes")
        for line in rec.shown
    )
    assert (
        "  1 Spot node of pool queue-pool preempted; autoscale will replace it with"
        " dedicated nodes (queue preset fallback)"
    ) in rec.shown
    # ... and the next evaluation runs a dedicated node instead (the preset's fallback).
    step(manual, "PT5M")
    status = pool_json(operations.status(spec, Recorder()))
    assert (status["targetDedicatedNodes"], status["targetLowPriorityNodes"]) == (3, 2)

    # Done: wait says what happened to the Spot node; then the pool goes to zero.
    said = open_gate_and_wait(spec, gate, 4, "queueFallback")
    assert any("1 Spot node of pool queue-pool preempted" in line for line in said)
    step(manual, "PT5M")
    eventually(
        lambda: (
            lambda p: (
                p["currentDedicatedNodes"] + p["currentLowPriorityNodes"] == 0
                and (p["targetDedicatedNodes"], p["targetLowPriorityNodes"]) == (0, 0)
            )
        )(pool_json(operations.status(spec, Recorder()))),
        "the pool back to zero nodes",
    )


def test_fixed_to_autoscale_and_back_in_place_with_the_services_words_for_bad_formulas(
    manual: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    gate.touch()
    folder = tmp_path / "f"
    spec = write_spec(folder, "flip", {"nodes": 1}, 0, gate)
    assert operations.apply(spec, Recorder(), yes=True, wait=False).exit_code == 0
    nodes_in(spec, "idle", 1, "the fixed pool's node")
    created = _creation_time(manual, "flip-pool")

    # A fixed pool turning to autoscale with a formula Batch refuses: the error comes at
    # apply, from the service, naming the pool and quoting Batch's details.
    write_spec(
        folder, "flip", {"autoscale": {"formula": "$TargetDedicatedNodes = $Nope;"}}, 0, gate
    )
    planned = operations.plan(spec, Recorder())
    assert "autoscale" not in planned.data  # nothing to evaluate on a fixed pool
    with pytest.raises(ServiceError) as refused:
        operations.apply(spec, Recorder(), yes=True, wait=False)
    assert refused.value.exit_code == 1
    message = refused.value.message
    assert "enable autoscale on pool flip-pool" in message
    assert "AutoScalingFormulaSyntaxError" in message and "Line 1, Col 25" in message

    # A good one: in place, no replace, the pool kept (its creation time too).
    formula = "// {{ pool }} with {{ pool.taskSlotsPerNode }} slot\n$TargetDedicatedNodes = 2;"
    write_spec(folder, "flip", {"autoscale": {"formula": formula, "interval": "PT10M"}}, 0, gate)
    rec = Recorder()
    applied = operations.apply(spec, rec, yes=True, wait=False)
    (change,) = applied.data["changes"]
    assert (change["action"], change["fields"]) == ("update", ["autoScale"])
    assert change["reason"] == (
        "enable autoscale (in place): the formula sizes the pool, evaluated every PT10M"
    )
    status = pool_json(operations.status(spec, Recorder()))
    assert status["targetDedicatedNodes"] == 2
    assert _creation_time(manual, "flip-pool") == created
    # Converged: the node counts belong to the formula.
    again = operations.plan(spec, Recorder())
    assert again.plan is not None and again.plan.empty()
    assert again.data["autoscale"][0]["targetDedicatedNodes"] == 2

    # plan with a new formula that does not parse: the service's message, no traceback.
    bad = {"autoscale": {"formula": "$TargetDedicatedNodes = ;", "interval": "PT10M"}}
    write_spec(folder, "flip", bad, 0, gate)
    rec = Recorder()
    planned = valid(operations.plan(spec, rec))
    (evaluation,) = planned.data["autoscale"]
    assert evaluation["formula"] == "new"
    assert evaluation["error"]["code"] == "AutoScalingFormulaSyntaxError"
    assert evaluation["error"]["details"] and evaluation["error"]["details"][0].startswith("Line 1")
    assert any(
        line.startswith("  pool/flip-pool (new formula) fails: AutoScalingFormulaSyntaxError: ")
        for line in rec.shown
    )

    # Back to a fixed size: disable autoscale, then resize; still the same pool.
    write_spec(folder, "flip", {"nodes": 1}, 0, gate)
    applied = operations.apply(spec, Recorder(), yes=True, wait=False)
    (change,) = applied.data["changes"]
    assert change["action"] == "update"
    assert change["fields"] == ["targetDedicatedNodes", "autoScale"]
    assert change["reason"] == (
        "disable autoscale (in place): the spec sets the node counts again;"
        " resize from 2 nodes to 1 node"
    )
    status = pool_json(operations.status(spec, Recorder()))
    assert status["targetDedicatedNodes"] == 1
    assert _creation_time(manual, "flip-pool") == created
    assert operations.plan(spec, Recorder()).plan.empty()  # type: ignore[union-attr]


def test_fixed_spot_pool_status_and_wait_count_preempted_nodes(
    manual: Server, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    spec = write_spec(tmp_path / "s", "spot", {"lowPriorityNodes": 2}, 2, gate)
    assert operations.apply(spec, Recorder(), yes=True, wait=False).exit_code == 0
    nodes_in(spec, "running", 2, "two Spot nodes running the tasks")
    http_json("POST", f"{manual.url}/_local/preempt", {"poolId": "spot-pool", "count": 1})
    rec = Recorder()
    status = operations.status(spec, rec)
    assert pool_json(status)["spot"] == {"preempted": 1, "handling": "batchRestores"}
    assert (
        "  1 Spot node of pool spot-pool preempted; Batch re-allocates preempted Spot nodes"
        " when capacity returns"
    ) in rec.shown
    said = open_gate_and_wait(spec, gate, 2, "batchRestores")
    assert any("Batch re-allocates preempted Spot nodes" in line for line in said)


def _creation_time(server: Server, pool_id: str) -> str:
    """The pool's creationTime, straight from the service (bspec never reads it)."""
    account = json.loads((server.home / "account.json").read_text())
    credential = AzureNamedKeyCredential(account["name"], account["key"])
    with BatchClient(server.url, credential) as c:
        return str(c.get_pool(pool_id).creation_time)


def test_queue_preset_runs_dedicated_nodes_for_spot_capacity_that_never_came(
    manual: Server, tmp_path: Path
) -> None:
    # Spot core quota for one standard_d2s_v3 node: the second Spot node is never allocated.
    http_json("PUT", f"{manual.url}/_local/settings", {"lowPriorityCoreQuota": 2})
    queue = {"autoscale": {"preset": "queue", "max": 4, "spot": 0.5, "interval": "PT5M"}}
    spec = write_spec(tmp_path / "m", "short", queue, 4, tmp_path / "gate")
    assert operations.apply(spec, Recorder(), yes=True, wait=False).exit_code == 0
    step(manual, "PT5M")
    nodes_in(
        spec, "running", 3, "two dedicated nodes and the one Spot node that fits running tasks"
    )
    status = pool_json(operations.status(spec, Recorder()))
    assert (status["targetDedicatedNodes"], status["targetLowPriorityNodes"]) == (2, 2)
    assert status["currentLowPriorityNodes"] == 1
    step(manual, "PT5M")
    status = pool_json(operations.status(spec, Recorder()))
    assert (status["targetDedicatedNodes"], status["targetLowPriorityNodes"]) == (3, 2)
    nodes_in(spec, "running", 4, "the fourth task on the stand-in dedicated node")
