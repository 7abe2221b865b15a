"""Spot preemption (issue 12): a job of short tasks on 4 Spot nodes x 2 slots while a seeded
10% of the nodes per minute of service clock are preempted (the clock stepped a minute every
half second of real time, so a run of seconds sees several minutes), against the same job
with no preemption in the same run. Every task must end succeeded exactly once: each attempt
marks a file outside the node, and a task's successful attempts are counted.

    python -m bench spot [--quick]
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from azure.batch import BatchClient
from azure.batch import models as m

from bench.bench_localbatch import IMAGE, _wait, service

RATE = 0.10  # preemptions per Spot node and minute
STEP = 0.5  # real seconds between one-minute clock steps


def _local(url: str, method: str, path: str, body: object) -> None:
    request = urllib.request.Request(
        f"{url}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=60) as resp:
        resp.read()


def _job(client: BatchClient, job_id: str, count: int, marks: Path) -> float:
    """Seconds from submission to every task completed; RuntimeError unless all succeeded."""
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="p")))
    (marks / job_id).mkdir()
    script = f"sleep 0.2 && touch {marks}/{job_id}/$AZ_BATCH_TASK_ID.$$"
    tasks = [
        m.BatchTaskCreateOptions(id=f"t{i:04d}", command_line=f"/bin/sh -c '{script}'")
        for i in range(count)
    ]
    started = time.perf_counter()
    for i in range(0, count, 100):
        client.create_task_collection(job_id, m.BatchTaskGroup(task_values=tasks[i : i + 100]))
    _wait(lambda: client.get_job_task_counts(job_id).task_counts.completed == count, 600)
    elapsed = time.perf_counter() - started
    counts = client.get_job_task_counts(job_id).task_counts
    if counts.succeeded != count:
        raise RuntimeError(f"{count - counts.succeeded} tasks of {job_id} did not succeed")
    return elapsed


def run(quick: bool = False) -> str:
    count = 40 if quick else 200
    with tempfile.TemporaryDirectory(prefix="bspec-bench-spot-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        marks = Path(tmp) / "marks"
        marks.mkdir()
        urls: list[str] = []
        with service(home, 8, ("--clock", "manual"), urls.append) as (client, _pid):
            url = urls[0]
            client.create_pool(
                m.BatchPoolCreateOptions(
                    id="p",
                    vm_size="standard_d2s_v3",
                    virtual_machine_configuration=IMAGE,
                    target_low_priority_nodes=4,
                    task_slots_per_node=2,
                )
            )
            _wait(lambda: [n.state for n in client.list_nodes("p")] == ["idle"] * 4, 60)
            baseline = _job(client, "calm", count, marks)

            settings = {
                "preemptionRate": RATE,
                "preemptionSeed": 12,
                "preemptionRestoreAfter": 60,
            }
            _local(url, "PUT", "/_local/settings", settings)
            stop = threading.Event()
            minutes = [0]

            def stepper() -> None:
                while not stop.wait(STEP):
                    _local(url, "POST", "/_local/clock", {"seconds": 60})
                    minutes[0] += 1

            thread = threading.Thread(target=stepper, daemon=True)
            thread.start()
            try:
                stormy = _job(client, "spot", count, marks)
            finally:
                stop.set()
                thread.join()
            tasks = list(client.list_tasks("spot"))
            infos = [t.execution_info for t in tasks if t.execution_info is not None]
            requeues = sum(int(i.requeue_count or 0) for i in infos)
            retries = sum(int(i.retry_count or 0) for i in infos)
            done = sorted(p.name.split(".")[0] for p in (marks / "spot").iterdir())
            once = len(set(done)) == count and len(done) == count
    if not once:
        raise RuntimeError("a task succeeded more than once, or not at all")
    return f"""## Spot preemption (issue 12)

{count} tasks of `sleep 0.2` on 4 Spot nodes x 2 slots, process cap 8; the service clock is
manual and stepped one minute every {STEP} s of real time, with a seeded preemption rate of
{RATE:.0%} per Spot node and minute and preempted nodes restored after a minute. Baseline: the
same job on the same pool before preemption is switched on.

| run | makespan | clock minutes | requeues | retries | succeeded exactly once |
| --- | ---: | ---: | ---: | ---: | --- |
| no preemption (baseline) | {baseline:.2f} s | - | 0 | 0 | yes |
| {RATE:.0%} per node-minute | {stormy:.2f} s | {minutes[0]} | {requeues} | {retries} | {"yes" if once else "NO"} |
"""
