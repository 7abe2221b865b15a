"""Issue 4's test 9: the converged plan of a 10,000-task, 1,000-blob stack makes at most 30
requests in all (list calls, paged and $selected; never a GET per resource)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from engine_support import Stack, total_requests, writes


@pytest.mark.slow
def test_converged_plan_of_10000_tasks_and_1000_blobs(
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> None:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    name = unique_id("big")
    s = Stack(tmp_path / name, name)
    s.files = {f"f{i:04d}.txt": f"file {i}" for i in range(1000)}
    s.range_tasks = 9000  # + 1,000 per-file tasks = 10,000 tasks; 0 nodes: nothing runs
    first = s.apply()
    assert first.data["outcome"]["tasksSubmitted"] == 10_000
    assert first.data["outcome"]["blobsUploaded"] == 1000
    # <= 100 tasks per request: at least 100 task collections
    assert writes(first.data)["batch"] >= 2 + 100
    p, data = s.plan()
    assert p.empty()
    assert data["summary"]["noop"] == 3 + 1000 + 1 + 1 + 10_000
    # pools 1, jobs 1, tasks 10 pages; containers 1, blobs 1 + 1
    assert data["requests"] == {
        "batch": {"read": 12, "write": 0},
        "storage": {"read": 3, "write": 0},
    }
    assert total_requests(data) <= 30
    again = s.apply()
    assert writes(again.data) == {"batch": 0, "storage": 0}
    s.destroy()
