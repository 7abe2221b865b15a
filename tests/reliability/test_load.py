"""A bounded load test on loopback: 50 concurrent SDK clients add tasks (one by one and in
collections), read them back and list pools, against one job on a one-node pool whose
scheduler runs the tasks meanwhile. The service keeps answering every request, and at the
end the job holds every task a client was told it created, exactly once, and nothing else.

It runs for BSPEC_LOAD_SECONDS (default 15 s, to keep `make test` in budget; the figures in
docs/reliability.md come from a run of 60 s).
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from typing import Any

from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from .conftest import batch_requests, record

CLIENTS = 50
SECONDS = float(os.environ.get("BSPEC_LOAD_SECONDS", "15"))
IMAGE = {"imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                            "sku": "22_04-lts"},
         "nodeAgentSkuId": "batch.node.ubuntu 22.04"}


def test_fifty_clients_no_lost_or_duplicated_task(local_services: Any, batch_client: Any,
                                                  unique_id: Any) -> None:
    pool, job = unique_id("load-pool"), unique_id("load-job")
    batch_client.create_pool({"id": pool, "vmSize": "standard_d2s_v3",
                              "virtualMachineConfiguration": IMAGE, "targetDedicatedNodes": 1})
    batch_client.create_job({"id": job, "poolInfo": {"poolId": pool}})
    before = batch_requests(local_services)
    created: list[list[str]] = [[] for _ in range(CLIENTS)]
    errors: list[str] = []
    answered = Counter[str]()
    lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def client(n: int) -> None:
        c = BatchClient(local_services.batch_url,
                        AzureNamedKeyCredential(local_services.account, local_services.key))
        i = 0
        try:
            while time.monotonic() < stop:
                try:
                    if i % 5 == 4:
                        ids = [f"c{n}-{i}-{k}" for k in range(5)]
                        result = c.create_task_collection(job, {"value": [  # type: ignore[arg-type]
                            {"id": t, "commandLine": "/bin/true"} for t in ids]})
                        ok = [r.task_id for r in result.result_values or ()
                              if str(r.status).lower().endswith("success")]
                        created[n].extend(ok)
                        kind = "collection"
                    else:
                        tid = f"c{n}-{i}"
                        c.create_task(job, {"id": tid, "commandLine": "/bin/true"})  # type: ignore[arg-type]
                        created[n].append(tid)
                        c.get_task(job, tid)
                        kind = "task"
                    if i % 10 == 0:
                        list(c.list_pools(max_results=10))
                    with lock:
                        answered[kind] += 1
                except Exception as exc:  # every error is a finding: record it, go on
                    with lock:
                        errors.append(f"client {n}: {type(exc).__name__}: {exc}"[:300])
                i += 1
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 120)
    assert not any(t.is_alive() for t in threads)
    assert not errors, errors[:5]
    want = [tid for ids in created for tid in ids]
    got = [t.id for t in batch_client.list_tasks(job, max_results=1000, select=["id"])]
    dupes = [tid for tid, k in Counter(got).items() if k > 1]
    assert not dupes, dupes[:5]
    assert sorted(got) == sorted(want), (len(got), len(want))
    after = batch_requests(local_services)
    requests = (after["read"] - before["read"]) + (after["write"] - before["write"])
    counts = batch_client.get_job_task_counts(job)
    record("load", {"clients": CLIENTS, "seconds": SECONDS, "tasks": len(want),
                    "requests": requests, "operations": dict(answered),
                    "completedMeanwhile": counts.task_counts.completed})
    batch_client.begin_delete_job(job)
    batch_client.begin_delete_pool(pool)
