"""Run by tests/service/test_sharedkey_clients.py in .venv/compat (azure-batch 12.0.0, msrest):
send a handful of real client calls, and requests signed by its SharedKeyAuth, to a capture
server. Usage: python sharedkey_old_client.py <batch url> <account>; the key comes in
BSPEC_TEST_BATCH_KEY. Errors from the capture server's canned replies are expected and
ignored: only the requests matter."""

import os
import sys

import requests
from azure.batch import BatchServiceClient
from azure.batch import models as m
from azure.batch.batch_auth import SharedKeyAuth, SharedKeyCredentials


def main() -> int:
    url, account = sys.argv[1], sys.argv[2]
    key = os.environ["BSPEC_TEST_BATCH_KEY"]
    client = BatchServiceClient(SharedKeyCredentials(account, key), batch_url=url)
    client.config.retry_policy.retries = 0
    api = client.api_version
    calls = [
        lambda: list(client.job.list(m.JobListOptions(filter="state eq 'active'", max_results=10))),
        lambda: client.job.add(
            m.JobAddParameter(id="job-1", pool_info=m.PoolInformation(pool_id="pool-1"))
        ),
        lambda: client.task.delete("job-1", "task-1"),
        lambda: client.pool.disable_auto_scale("pool-1"),
        lambda: client.pool.exists("pool-1"),
        lambda: b"".join(
            client.file.get_from_task(
                "job-1", "task-1", "stdout.txt", m.FileGetFromTaskOptions(ocp_range="bytes=0-9")
            )
        ),
    ]
    raw = [
        ("GET", f"/jobs?api-version={api}&$Select=id&MaxResults=5&tag=b&tag=a&Empty=", {}),
        ("DELETE", f"/pools/pool%201?api-version={api}", {}),
        (
            "POST",
            f"/pools/pool-1/stopresize?api-version={api}",
            {"Content-Type": "application/json"},
        ),
    ]
    for method, path, headers in raw:
        request = requests.Request(method, url + path, headers=headers)
        request.auth = SharedKeyAuth("Authorization", account, key)
        calls.append(lambda r=request: requests.Session().send(r.prepare(), timeout=10))
    for call in calls:
        try:
            call()
        except Exception as exc:  # the canned replies are not what every call expects
            print(type(exc).__name__, file=sys.stderr)
    print(api)
    return 0


if __name__ == "__main__":
    sys.exit(main())
