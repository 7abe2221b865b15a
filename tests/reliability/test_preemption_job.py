"""Spot nodes preempted under a running job: a job of short tasks on lowPriorityNodes, with
seeded preemptions (the service's `preemptionRate`, ticked by stepping its manual clock while
`bspec wait` runs), finishes with every task succeeded once and its outputs from the
successful attempt. 50 tasks in `make test`, 500 in `make chaos`.

Each attempt writes `<task>-<pid>_OUTPUT.txt` naming its node, so every attempt that
uploaded is seen: the task's output names the node where Batch says it succeeded, and only
an attempt preempted while uploading (after its process ended) may have left another. Private services with a manual clock, never the session's.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .chaos import Private, private_services, task_results, temporaries
from .conftest import IMAGE, Bspec, assert_converged, desired_of, record, snapshot

SEED = 4242
RATE = 0.15  # the chance per Spot node and minute of service clock
TICK = 0.25  # seconds of real time between minutes of service clock


@pytest.fixture(scope="module")
def spot_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Private]:
    home = tmp_path_factory.mktemp("spot-home")
    args = ["--delete-delay", "0.2", "--clock", "manual", "--max-processes", "8"]
    with private_services(home, batch_args=args) as svc:
        yield svc


def spot_spec(folder: Path, name: str, tasks: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = 't="$AZ_BATCH_TASK_ID"; sleep 0.3; echo "$t $AZ_BATCH_NODE_ID" > "${t}-$$_OUTPUT.txt"'
    spec = {
        "apiVersion": "bspec/v1",
        "name": name,
        "storage": {"containers": {"output": {}}},
        "pool": {
            "id": f"{name}-pool",
            "vmSize": "standard_d2s_v3",
            "image": IMAGE,
            "lowPriorityNodes": 4,
            "taskSlotsPerNode": 2,
        },
        "jobs": [
            {
                "id": f"{name}-job",
                "tasks": [
                    {
                        "foreach": {"range": [0, tasks]},
                        "id": "t{{ item }}",
                        "commandLine": "/bin/sh -c " + shlex.quote(script),
                        "outputFiles": [{"pattern": "*_OUTPUT.txt", "container": "output"}],
                    }
                ],
                "outputs": [{"container": "output", "to": "out"}],
            }
        ],
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


class Preempter(threading.Thread):
    """Steps the service clock a minute at a time (each step a chance of preemption per
    Spot node) until stopped; counts the preempted nodes it sees after each step."""

    def __init__(self, svc: Private, pool_id: str) -> None:
        super().__init__(daemon=True)
        self.svc = svc
        self.pool_id = pool_id
        self.halt = threading.Event()
        self.steps = 0
        self.seen: set[tuple[int, str]] = set()  # (step, node id) preempted after the step
        self.error: BaseException | None = None

    def run(self) -> None:
        batch, _ = self.svc.clients()
        try:
            while not self.halt.wait(TICK):
                self.svc.post("/_local/clock", {"advance": "PT1M"})
                self.steps += 1
                for node in batch.list_nodes(self.pool_id):
                    if node.state == "preempted":
                        self.seen.add((self.steps, node.id))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            batch.close()


def run_preempted_job(svc: Private, folder: Path, name: str, tasks: int) -> dict[str, Any]:
    b = Bspec(svc)
    spec = spot_spec(folder, name, tasks)
    svc.settings(
        preemptionRate=RATE, preemptionSeed=SEED, preemptionRestoreAfter=60, maxProcesses=8
    )
    started = time.monotonic()
    applied = b("apply", str(spec), "--yes", "--no-wait", timeout=300)
    assert applied.returncode == 0, str(applied)
    driver = Preempter(svc, f"{name}-pool")
    driver.start()
    try:
        waited = b("wait", str(spec), timeout=600)
    finally:
        driver.halt.set()
        driver.join(10)
        svc.settings(preemptionRate=0)
    assert driver.error is None, driver.error
    assert waited.returncode == 0, str(waited)
    batch, blobs = svc.clients()
    try:
        assert_converged(snapshot(batch, blobs, name), desired_of(spec))
        results = task_results(batch, f"{name}-job")
        nodes = {t.id: t.node_info.node_id for t in batch.list_tasks(f"{name}-job")}
        cc = blobs.get_container_client(f"{name}-output")
        blobs_ = {b_.name: cc.download_blob(b_.name).readall() for b_ in cc.list_blobs()}
        counts = [c for c in batch.list_pool_node_counts() if c.pool_id == f"{name}-pool"]
    finally:
        batch.close()
        blobs.close()
    # every task succeeded, once
    assert sorted(results) == sorted(f"t{i}" for i in range(tasks))
    assert {r[:2] for r in results.values()} == {("completed", "success")}
    # The successful attempt's output is there, from the node Batch says it succeeded on. An
    # attempt preempted after its process ended, while its outputs were going up, may have
    # uploaded some already (Batch leaves those too: the VM is gone before it reports): only
    # a requeued task can have such a second blob. With the usual names (the task's id, no
    # PID) the successful attempt writes over it.
    by_task: dict[str, list[str]] = {}
    for blob in blobs_:
        by_task.setdefault(blob.split("-")[0], []).append(blob)
    assert sorted(by_task) == sorted(results), sorted(by_task)
    for task, names in by_task.items():
        assert f"{task} {nodes[task]}\n".encode() in [blobs_[n] for n in names], (task, names)
        assert len(names) == 1 or results[task][2] > 0, (task, names, results[task])
    late = sum(len(v) - 1 for v in by_task.values())
    downloaded = {p.name: p.read_bytes() for p in (spec.parent / "out").glob("*")}
    assert downloaded == blobs_
    assert temporaries(spec.parent) == []
    requeues = sum(r[2] for r in results.values())
    preempted = len(driver.seen)
    assert preempted > 0 and requeues > 0, (preempted, requeues)
    # `bspec wait` says the preemptions it sees in the pool's node counts (every fifth poll
    # and as it ends). Here the service gives a preempted node back after one step of its
    # clock (a quarter second), so a wait may see none: when it says one, it names the pool.
    assert counts and counts[0].low_priority is not None
    said = waited.stdout + waited.stderr
    if " Spot node" in said:  # (the test's own folder name has "preempted" in it)
        assert re.search(rf"\d+ Spot nodes? of pool {name}-pool preempted", said), said[-2000:]
    figures = {
        "tasks": tasks,
        "clockSteps": driver.steps,
        "preemptedNodesSeen": preempted,
        "requeues": requeues,
        "uploadsOfPreemptedAttempts": late,
        "seconds": round(time.monotonic() - started, 1),
    }
    clock = Preempter(svc, f"{name}-pool")  # no preemptions now: the deletes need the clock
    clock.start()
    try:
        destroyed = b("destroy", str(spec), "--yes", timeout=300)
    finally:
        clock.halt.set()
        clock.join(10)
    assert destroyed.returncode == 0, str(destroyed)
    assert svc.leftovers() == []
    return figures


def test_preempted_spot_nodes_under_a_running_job(spot_services: Private, tmp_path: Path) -> None:
    figures = run_preempted_job(spot_services, tmp_path / "s", "spot50", 50)
    record("preemption-50", figures)


@pytest.mark.chaos
def test_preempted_spot_nodes_under_a_running_job_500(
    spot_services: Private, tmp_path: Path
) -> None:
    figures = run_preempted_job(spot_services, tmp_path / "s", "spot500", 500)
    record("preemption-500", figures)
