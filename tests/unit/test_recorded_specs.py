"""The example specs keep their meaning: task fingerprints and plans equal recorded values.

`recorded/<spec>.json` was written from main's code before several pools, containers,
autoscale and secrets joined the language. For each of specs/topwords.yaml and
specs/sweep.yaml it holds:

- `fingerprints`: every task's address -> its fingerprint;
- `createPlan`: the plan against an empty actual state (nothing exists yet): each change's
  action, address, fields and reason words, and the summary;
- `props`: every planned resource's desired props in its kind's normal form;
- `convergedSummary`: the summary of the plan against the state that applying leaves (every
  resource as desired, the tasks completed): all no-ops.

A later feature may add a prop to a kind's normal form (a new field at its "off" value);
the recorded props must still be there with the same values. Re-record only on purpose:
`python tests/unit/test_recorded_specs.py` (from the repository root).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from bspec.model import ActualState, Address, DesiredState, Plan, Resource
from bspec.planning import plan
from bspec.reporting.plan import change_json
from bspec.spec import load

ROOT = Path(__file__).resolve().parents[2]
RECORDED = Path(__file__).parent / "recorded"
SPECS = ("topwords", "sweep")


def _plan_record(p: Plan) -> dict[str, Any]:
    return {"changes": [change_json(c) for c in p.pending()], "summary": p.summary()}


def _converged(p: Plan, stack: str) -> ActualState:
    """The actual state as applying the create plan `p` leaves it (tasks completed)."""
    res: dict[Address, Resource] = {}
    for c in p.changes:
        assert c.after is not None
        state = "completed" if c.address.kind.value == "task" else "active"
        res[c.address] = Resource(c.address, dict(c.after.props), owner=stack, state=state)
    return ActualState(res)


def _relative(value: Any) -> Any:
    """Local paths (a blob's source file) relative to the checkout, so records travel."""
    text = json.dumps(value).replace(json.dumps(str(ROOT))[1:-1] + "/", "<root>/")
    return json.loads(text)


def record_of(desired: DesiredState) -> dict[str, Any]:
    created = plan(desired, ActualState({}))
    record = {
        "fingerprints": {str(t.address): t.fingerprint for t in desired.tasks},
        "createPlan": _plan_record(created),
        "props": {str(c.address): c.after.props for c in created.changes if c.after is not None},
        "convergedSummary": plan(desired, _converged(created, desired.stack)).summary(),
    }
    relative: dict[str, Any] = _relative(record)
    return relative


def _load(name: str) -> DesiredState:
    return load(ROOT / "specs" / f"{name}.yaml")


def _recorded(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RECORDED / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("name", SPECS)
def test_task_fingerprints_are_the_recorded_ones(name: str) -> None:
    now = record_of(_load(name))
    assert now["fingerprints"] == _recorded(name)["fingerprints"]


@pytest.mark.parametrize("name", SPECS)
def test_plan_from_nothing_is_the_recorded_one(name: str) -> None:
    now, then = record_of(_load(name)), _recorded(name)
    assert now["createPlan"] == then["createPlan"]
    assert set(now["props"]) == set(then["props"])
    for address, props in then["props"].items():
        kept = {k: v for k, v in now["props"][address].items() if k in props}
        assert kept == props, address


@pytest.mark.parametrize("name", SPECS)
def test_converged_plan_is_the_recorded_one(name: str) -> None:
    now, then = record_of(_load(name)), _recorded(name)
    assert now["convergedSummary"] == then["convergedSummary"]
    assert set(now["convergedSummary"]) - {"noop"} == {"create", "update", "replace", "delete"}
    assert now["convergedSummary"]["noop"] == len(then["props"])


if __name__ == "__main__":  # re-record, on purpose only
    RECORDED.mkdir(exist_ok=True)
    for spec in SPECS:
        text = json.dumps(record_of(_load(spec)), indent=1, sort_keys=True)
        (RECORDED / f"{spec}.json").write_text(text + "\n")
        print(f"recorded {RECORDED / spec}.json", file=sys.stderr)
