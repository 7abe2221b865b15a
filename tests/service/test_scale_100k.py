"""Issue 16 at test scale: waiting costs the same requests per poll at 10,000 tasks, a
second `bspec outputs` with nothing new only lists, and a 429 storm slows a submission
without failing it or duplicating a task. The 100,000-task runs are in `make bench`."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec.errors import WaitTimeoutError
from bspec.operations import tasks as task_ops
from bspec.reporting.reporter import QuietReporter
from bspec.spec import load
from bspec.targets import connect
from bspec.watching import wait_for_tasks
from engine_support import Stack


@pytest.fixture
def home(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    return local_services


@pytest.fixture
def storm(home: Any) -> Iterator[Callable[..., Any]]:
    """Fault settings for one test; always reset afterwards."""
    try:
        yield home.set_settings
    finally:
        home.set_settings(faultRate=0.0, faultKinds=["500", "503", "429", "drop"], faultFor=None)


@pytest.mark.slow
def test_waiting_on_10000_tasks_makes_the_same_few_requests_each_poll(
    home: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    name = unique_id("wait10k")
    s = Stack(tmp_path / name, name)
    s.range_tasks = 10_000  # 0 nodes: every task stays active
    assert s.apply().data["outcome"]["tasksSubmitted"] == 10_000
    desired = load(s.spec)
    tgt = connect("local", desired.stack)
    seen: list[int] = []
    try:
        with pytest.raises(WaitTimeoutError):
            wait_for_tasks(
                tgt.batch,
                desired,
                timeout=2.0,
                poll=0.02,
                on_progress=lambda done, total: seen.append(tgt.counter.total()),
            )
    finally:
        tgt.close()
        s.destroy()
    # Between two progress updates: the incomplete check (one page, stopped at the first
    # task of the spec), the nodes check every third poll (pool, nodes), the next counts.
    # Listing the 10,000 incomplete tasks would take 10 pages.
    per_poll = [b - a for a, b in itertools.pairwise(seen)]
    assert len(per_poll) >= 10, per_poll  # the every-10th-poll check ran
    assert max(per_poll) <= 4, per_poll


def test_a_second_outputs_with_nothing_new_only_lists(
    home: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    name = unique_id("outs")
    s = Stack(tmp_path / name, name)
    s.job_extra = {"outputs": [{"container": "output", "to": "results"}]}
    s.apply()
    desired = load(s.spec)
    tgt = connect("local", desired.stack)
    try:
        container = desired.container("output").name
        for i in range(120):
            tgt.storage.client.get_blob_client(container, f"out/{i:03d}.txt").upload_blob(
                f"result {i}\n".encode(), overwrite=True
            )
    finally:
        tgt.close()
    try:
        first = task_ops.outputs(s.spec, QuietReporter())
        assert first.data["outputs"]["downloaded"] == 120
        again = task_ops.outputs(s.spec, QuietReporter())
        assert again.data["outputs"]["downloaded"] == 0
        # one list request (a page holds 5,000 blobs); nothing downloaded, nothing on Batch
        assert again.data["requests"] == {
            "batch": {"read": 0, "write": 0},
            "storage": {"read": 1, "write": 0},
        }
        assert (tmp_path / name / "results" / "out" / "007.txt").read_text() == "result 7\n"
    finally:
        s.destroy()


def test_a_429_storm_slows_a_submission_without_failing_or_duplicating(
    home: Any, storm: Callable[..., Any], tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    name = unique_id("storm")
    s = Stack(tmp_path / name, name)
    s.range_tasks = 1
    s.apply()  # the pool, the job and r0
    s.range_tasks = 600
    storm(faultRate=0.3, faultKinds=["429"], faultFor=3.0)
    try:
        out = s.apply()
    finally:
        storm(faultRate=0.0, faultFor=None)
    assert out.data["outcome"]["tasksSubmitted"] == 599
    desired = load(s.spec)
    tgt = connect("local", desired.stack)
    try:
        ids = [
            t["id"]
            for t in tgt.batch.list_raw(
                "list tasks", f"jobs/{s.job_id}/tasks", {"$select": "id", "maxresults": "1000"}
            )
        ]
    finally:
        tgt.close()
        s.destroy()
    assert sorted(ids) == sorted(f"r{i}" for i in range(600))
    assert json.dumps(out.data["requests"])  # counted, retries included
