"""Run by tests/service/test_localbatch_old_client.py in .venv/compat (azure-batch 12.0.0,
api-version 2022-01-01.15.0) against the session's local Batch service: a pool, a job, tasks,
list and get, wait for completion, read a task file, delete the job and the pool. Usage:
python old_client_lifecycle.py <batch url> <account> <suffix>; the key in BSPEC_TEST_BATCH_KEY.
Prints one JSON line of what it saw; any error is a failure (exit status 1)."""

import json
import os
import sys
import time

from azure.batch import BatchServiceClient
from azure.batch import models as m
from azure.batch.batch_auth import SharedKeyCredentials


def add_pool(client: BatchServiceClient, pool_id: str) -> None:
    """A one-node Ubuntu pool, as an azure-batch 12 user writes it."""
    image = m.ImageReference(
        publisher="canonical", offer="0001-com-ubuntu-server-jammy", sku="22_04-lts"
    )
    client.pool.add(
        m.PoolAddParameter(
            id=pool_id,
            vm_size="STANDARD_D2S_V3",
            virtual_machine_configuration=m.VirtualMachineConfiguration(
                image_reference=image, node_agent_sku_id="batch.node.ubuntu 22.04"
            ),
            target_dedicated_nodes=1,
        )
    )


def main() -> int:
    url, account, suffix = sys.argv[1], sys.argv[2], sys.argv[3]
    client = BatchServiceClient(
        SharedKeyCredentials(account, os.environ["BSPEC_TEST_BATCH_KEY"]), batch_url=url
    )
    pool_id, job_id = f"old-pool-{suffix}", f"old-job-{suffix}"
    add_pool(client, pool_id)
    client.job.add(m.JobAddParameter(id=job_id, pool_info=m.PoolInformation(pool_id=pool_id)))
    tasks = [
        m.TaskAddParameter(id=f"t{i}", command_line=f"/bin/sh -c 'echo hello-{i}'")
        for i in range(3)
    ]
    result = client.task.add_collection(job_id, tasks)
    added = sorted(r.status for r in result.value)
    deadline = time.monotonic() + 60
    while True:
        listed = list(client.task.list(job_id))
        if all(t.state == m.TaskState.completed for t in listed):
            break
        if time.monotonic() > deadline:
            raise TimeoutError([t.state for t in listed])
        time.sleep(0.3)
    got = client.task.get(job_id, "t1")
    text = b"".join(client.file.get_from_task(job_id, "t1", "stdout.txt")).decode()
    ranged = b"".join(
        client.file.get_from_task(
            job_id, "t1", "stdout.txt", m.FileGetFromTaskOptions(ocp_range="bytes=0-4")
        )
    ).decode()
    images = [i.node_agent_sku_id for i in client.account.list_supported_images()]
    counts = [c.pool_id for c in client.account.list_pool_node_counts()]
    client.job.delete(job_id)
    client.pool.delete(pool_id)
    print(
        json.dumps(
            {
                "api": client.api_version,
                "added": added,
                "listed": sorted(t.id for t in listed),
                "exitCode": got.execution_info.exit_code,
                "stdout": text,
                "ranged": ranged,
                "images": len(images),
                "counts": counts,
                "poolExists": client.pool.exists(pool_id),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
