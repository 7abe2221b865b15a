"""Issue 13's figure: the converged plan of a 10,000-task spec on two pools (two jobs of
5,000 tasks, one per pool) in requests, as test_engine_scale.py does for one pool: list
calls, paged and $selected, never a GET per resource; a second pool costs no request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bspec.cli  # noqa: F401  (loads every command module first, as `bspec` does)
import pytest
from bspec.commands.reconcile import run_apply, run_plan
from engine_support import IMAGE, total_requests, use_services, writes


def _spec(name: str) -> dict[str, Any]:
    pool = {"vmSize": "standard_d2s_v3", "image": IMAGE, "nodes": 0}  # 0 nodes: nothing runs
    return {
        "apiVersion": "bspec/v1",
        "name": name,
        "storage": {"containers": {"output": {}}},
        "pools": {
            "small": {"id": f"{name}-small", **pool},
            "big": {"id": f"{name}-big", **pool, "taskSlotsPerNode": 4},
        },
        "jobs": [
            {
                "id": f"{name}-{key}",
                "pool": key,
                "tasks": [
                    {
                        "foreach": {"range": [0, 5000]},
                        "id": "t{{ item }}",
                        "commandLine": "/bin/echo {{ pool }} {{ item }}",
                    }
                ],
            }
            for key in ("small", "big")
        ],
    }


@pytest.mark.slow
def test_converged_plan_of_10000_tasks_on_two_pools(
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> None:
    use_services(monkeypatch, local_services)
    name = unique_id("pools-big")
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(_spec(name)))
    first = run_apply(spec, yes=True, no_wait=True, show=False)
    assert first.data["outcome"]["tasksSubmitted"] == 10_000
    p, data = run_plan(spec, show=False)
    assert p.empty()
    assert data["summary"]["noop"] == 2 + 2 + 2 + 10_000  # containers (with logs), pools, jobs
    # pools 1, jobs 1, tasks 5 pages per job; containers 1, blobs 1
    assert data["requests"] == {
        "batch": {"read": 12, "write": 0},
        "storage": {"read": 2, "write": 0},
    }
    assert total_requests(data) <= 30
    again = run_apply(spec, yes=True, no_wait=True, show=False)
    assert writes(again.data) == {"batch": 0, "storage": 0}
