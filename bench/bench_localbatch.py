"""Benchmarks of the local Batch service (issue 3), each against a baseline in the same run:

1. scheduling: 200 tasks of `sleep 0.2` on 4 nodes x 2 slots with the process cap at 8,
   from the first submission to all completed, against the ideal makespan (200 x 0.2 / 8).
2. overhead: 2,000 `/bin/true` tasks on the same pool against `xargs -P 8` running the same
   command lines in the same run.
3. footprint: the service's memory (RSS) and list latency through the SDK with 100,000
   completed tasks stored (inserted through the store, for setup speed).

    python -m bench localbatch [--quick]
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.rest import HttpRequest
from bspec.localbatch.resources import iso, new_etag
from bspec.localbatch.store import Row, Store

IMAGE = m.VirtualMachineConfiguration(
    image_reference=m.BatchVmImageReference(publisher="canonical", offer="ubuntu", sku="22"),
    node_agent_sku_id="batch.node.ubuntu 22.04",
)


@contextmanager
def service(
    home: Path,
    max_processes: int = 8,
    extra: tuple[str, ...] = (),
    on_url: Callable[[str], None] | None = None,
) -> Iterator[tuple[BatchClient, int]]:
    """A fresh service in its own state folder (EXTRA: more service arguments; ON_URL hears
    its URL); yields an SDK client and the service's PID."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with (home / "batch.log").open("ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bspec.localbatch",
                "--home",
                str(home),
                "--port",
                str(port),
                "--max-processes",
                str(max_processes),
                "--delete-delay",
                "0.1",
                *extra,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    if on_url is not None:
        on_url(url)
    deadline = time.monotonic() + 30
    while True:
        try:
            import urllib.request

            urllib.request.urlopen(f"{url}/_local/health", timeout=1)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    account = json.loads((home / "account.json").read_text())
    client = BatchClient(url, AzureNamedKeyCredential(account["name"], account["key"]))
    try:
        yield client, proc.pid
    finally:
        client.close()
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _pool(client: BatchClient, pool_id: str, nodes: int, slots: int) -> None:
    client.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=nodes,
            task_slots_per_node=slots,
        )
    )
    _wait(lambda: sum(1 for n in client.list_nodes(pool_id) if n.state == "idle") == nodes, 60)


def _wait(check: Callable[[], bool], timeout: float, poll: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark condition not reached")
        time.sleep(poll)


def _run_tasks(client: BatchClient, pool_id: str, job_id: str, count: int, command: str) -> float:
    """Seconds from the first submission to all tasks completed (polling task counts)."""
    client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id))
    )
    tasks = [m.BatchTaskCreateOptions(id=f"t{i:05d}", command_line=command) for i in range(count)]
    chunks = [tasks[i : i + 100] for i in range(0, count, 100)]
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(
            pool.map(
                lambda chunk: client.create_task_collection(
                    job_id, m.BatchTaskGroup(task_values=chunk)
                ),
                chunks,
            )
        )

    def finished() -> bool:
        counts = client.get_job_task_counts(job_id).task_counts
        return counts.completed == count

    _wait(finished, 600, poll=0.05)
    elapsed = time.perf_counter() - started
    failed = client.get_job_task_counts(job_id).task_counts.failed
    if failed:
        raise RuntimeError(f"{failed} benchmark tasks failed")
    return elapsed


def _xargs(count: int, command: str, parallel: int) -> float:
    lines = (command + "\n") * count
    started = time.perf_counter()
    subprocess.run(
        ["xargs", "-P", str(parallel), "-I{}", "sh", "-c", "exec {}"],
        input=lines.encode(),
        check=True,
    )
    return time.perf_counter() - started


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fill(home: Path, job_id: str, count: int) -> None:
    """Insert completed tasks straight into the store (the service reads them like its own)."""
    store = Store(home / "batch" / "batch.sqlite")
    stamp = iso()
    rows = []
    for i in range(count):
        task_id = f"done{i:06d}"
        body: dict[str, Any] = {
            "id": task_id,
            "url": f"http://127.0.0.1/jobs/{job_id}/tasks/{task_id}",
            "eTag": new_etag(),
            "lastModified": stamp,
            "creationTime": stamp,
            "state": "completed",
            "stateTransitionTime": stamp,
            "previousState": "running",
            "previousStateTransitionTime": stamp,
            "commandLine": f"/bin/bash -c 'python3 work.py --item {i}'",
            "environmentSettings": [{"name": "BSPEC_FINGERPRINT", "value": f"v1:{i:064x}"}],
            "constraints": {
                "maxWallClockTime": "P10675199DT2H48M5.4775807S",
                "retentionTime": "P7D",
                "maxTaskRetryCount": 0,
            },
            "requiredSlots": 1,
            "userIdentity": {"autoUser": {"scope": "pool", "elevationLevel": "nonadmin"}},
            "executionInfo": {
                "startTime": stamp,
                "endTime": stamp,
                "exitCode": 0,
                "result": "success",
                "retryCount": 0,
                "requeueCount": 0,
            },
        }
        rows.append(Row("task", job_id.lower(), task_id, body, {}))
        if len(rows) == 5000:
            store.put_many(rows)
            rows = []
    store.put_many(rows)
    store.close()


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def run(quick: bool = False) -> str:
    n_sched, n_true, n_stored = (40, 200, 10_000) if quick else (200, 2000, 100_000)
    with tempfile.TemporaryDirectory(prefix="bspec-bench-lb-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        with service(home, max_processes=8) as (client, pid):
            _pool(client, "bench", nodes=4, slots=2)
            sched = _run_tasks(client, "bench", "sched", n_sched, "sleep 0.2")
            ideal = n_sched * 0.2 / 8
            overhead = _run_tasks(client, "bench", "overhead", n_true, "/bin/true")
            xargs = _xargs(n_true, "/bin/true", 8)
            rss_before = _rss_kib(pid)
            client.create_job(
                m.BatchJobCreateOptions(id="stored", pool_info=m.BatchPoolInfo(pool_id="nopool"))
            )
            fill_start = time.perf_counter()
            _fill(home, "stored", n_stored)
            fill = time.perf_counter() - fill_start
            full, listed = _timed(lambda: sum(1 for _ in client.list_tasks("stored")), 1)
            raw_page, _ = _timed(
                lambda: client.send_request(
                    HttpRequest("GET", "/jobs/stored/tasks?api-version=2025-06-01&maxresults=1000")
                ).read(),
                5,
            )
            assert listed == n_stored, listed
            page, _ = _timed(
                lambda: (
                    next(iter(client.list_tasks("stored", max_results=1000).by_page())) and None
                ),
                5,
            )
            selected, _ = _timed(
                lambda: sum(
                    1
                    for _ in client.list_tasks(
                        "stored", select=["id", "state", "environmentSettings"]
                    )
                ),
                1,
            )
            by_state, n_active = _timed(
                lambda: sum(1 for _ in client.list_tasks("stored", filter="state ne 'completed'")),
                5,
            )
            scan, n_failed = _timed(
                lambda: sum(
                    1 for _ in client.list_tasks("stored", filter="executionInfo/exitCode ne 0")
                ),
                3,
            )
            counts, _ = _timed(lambda: client.get_job_task_counts("stored"), 5)
            rss_after = _rss_kib(pid)
            assert n_active == 0 and n_failed == 0
    sched_ratio = sched / ideal
    over_ratio = overhead / xargs
    return f"""## Local Batch service

Measured by `bench/bench_localbatch.py` against a fresh service (`python -m bspec.localbatch`,
process cap 8) in a temporary state folder, through the real azure-batch SDK.

### 1. Scheduling: {n_sched} tasks of `sleep 0.2` on 4 nodes x 2 slots, cap 8

| measure | seconds |
| --- | --- |
| first submission to all completed | {sched:.2f} |
| ideal makespan ({n_sched} x 0.2 s / 8) | {ideal:.2f} |
| ratio (goal: within 1.15) | {sched_ratio:.2f} |

### 2. Overhead: {n_true:,} `/bin/true` tasks against `xargs -P 8`, same run

| measure | seconds | per task |
| --- | --- | --- |
| local Batch service, submission to all completed | {overhead:.2f} | {overhead / n_true * 1000:.1f} ms |
| `xargs -P 8` running the same command lines | {xargs:.2f} | {xargs / n_true * 1000:.1f} ms |
| ratio (goal: within 3) | {over_ratio:.2f} | |

### 3. Footprint with {n_stored:,} completed tasks stored

| measure | value |
| --- | --- |
| service RSS before / after storing and listing | {rss_before / 1024:.0f} MiB / {rss_after / 1024:.0f} MiB |
| inserting them through the store (setup) | {fill:.1f} s |
| list all through the SDK ({n_stored // 1000} pages of 1,000) | {full:.2f} s |
| first page of 1,000 through the SDK (its model deserialization included) | {page * 1000:.0f} ms |
| first page of 1,000 as raw HTTP (the service's own share) | {raw_page * 1000:.0f} ms |
| list all with `$select=id,state,environmentSettings` | {selected:.2f} s |
| `$filter=state ne 'completed'` (indexed, 0 results) | {by_state * 1000:.0f} ms |
| `$filter=executionInfo/exitCode ne 0` (SQL prefilter on the stored JSON, 0 results) | {scan:.2f} s |
| GetJobTaskCounts | {counts * 1000:.0f} ms |

Medians of 3-5 runs where repeated; the machine is shared, so figures vary run to run.
"""


if __name__ == "__main__":
    print(run(quick="--quick" in sys.argv))
