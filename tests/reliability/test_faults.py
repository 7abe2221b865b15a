"""Injected faults: with the local Batch service answering 10% of requests with 500, 503 or
429 (with Retry-After) or dropping the connection, apply, plan and destroy still converge to
the same result, a plan never shows phantom changes, and retries are bounded.

Azurite has no fault injection, so the faults hit the Batch side only (docs/reliability.md).
Retries are counted by bspec itself: its `requests` figures count every attempt on the wire,
so an operation's requests under faults minus the same operation's requests without faults
is about the number of retries it made, and each retry is reported on stderr (exact).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bspec.commands.reconcile import run_apply, run_destroy, run_plan

from .conftest import Snapshot, assert_converged, desired_of, record

STACKS = 3
RATE = 0.1


def batch_requests(data: dict[str, Any]) -> int:
    return int(data["requests"]["batch"]["read"] + data["requests"]["batch"]["write"])


def test_apply_plan_destroy_converge_under_injected_faults(
        inproc: Any, state: Callable[[str], Snapshot], faults: Callable[..., Any],
        stack: Callable[..., tuple[str, Path]], capsys: pytest.CaptureFixture[str]) -> None:
    # Baseline without faults: what one stack's apply, plan and destroy cost.
    _base_name, base_spec = stack("fault-base", tasks=130)
    base = {"apply": batch_requests(run_apply(base_spec, yes=True, show=False,
                                              no_wait=True).data),
            "plan": batch_requests(run_plan(base_spec, show=False)[1]),
            "destroy": batch_requests(run_destroy(base_spec, yes=True, show=False).data)}
    faults(fault_rate=RATE, fault_kinds=["500", "503", "429", "drop"])
    capsys.readouterr()
    spent = {"apply": 0, "plan": 0, "destroy": 0}
    plans = 0
    for i in range(STACKS):
        name, spec = stack(f"fault-{i}", tasks=130)
        applied = run_apply(spec, yes=True, show=False, no_wait=True)
        assert applied.exit_code == 0
        spent["apply"] += batch_requests(applied.data)
        desired = desired_of(spec)
        faults(fault_rate=0.0)
        assert_converged(state(name), desired)
        faults(fault_rate=RATE)
        for _ in range(2):  # never a phantom change, whatever was retried
            p, data = run_plan(spec, show=False)
            assert p.empty(), [c["address"] for c in data["changes"]]
            spent["plan"] += batch_requests(data)
            plans += 1
        destroyed = run_destroy(spec, yes=True, show=False)
        assert destroyed.exit_code == 0
        spent["destroy"] += batch_requests(destroyed.data)
        faults(fault_rate=0.0)
        snap = state(name)
        assert not snap.pools and not snap.jobs and not snap.containers, snap
        faults(fault_rate=RATE)
    # Reported: each retry is a line on stderr naming the request and what it answered.
    reported = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("batch: retrying ")]
    # ~70 requests at 10% all but always meet a fault; should they not, more plans (reads
    # only, of a stack now gone) do, so the report of a retry is always checked.
    for _ in range(30):
        if reported:
            break
        run_plan(base_spec, show=False)
        reported = [line for line in capsys.readouterr().err.splitlines()
                    if line.startswith("batch: retrying ")]
    assert all(" after HTTP " in line or " after a dropped connection" in line
               for line in reported), reported
    assert not any("sig=" in line or "?" in line for line in reported)
    expected = {"apply": base["apply"] * STACKS, "plan": base["plan"] * plans,
                "destroy": base["destroy"] * STACKS}
    retries = {k: spent[k] - expected[k] for k in spent}
    # Bounded: retries stay near the fault rate, far from a retry storm.
    total = sum(spent.values())
    assert sum(retries.values()) <= total * 0.5, (spent, expected)
    # The figures from the counts are approximate (destroy polls until deletes finish); the
    # reported lines are exact. With ~70 requests at 10%, some were retried.
    assert 0 < len(reported) <= total * 0.5, reported
    record("faults", {"rate": RATE, "stacks": STACKS, "plans": plans, "requests": spent,
                      "withoutFaults": expected, "retries": retries,
                      "reported": [line.split(" after ")[1] for line in reported]})
