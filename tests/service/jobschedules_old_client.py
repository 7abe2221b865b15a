"""Run by tests/service/test_localbatch_jobschedules.py in .venv/compat (azure-batch 12.0.0,
msrest): every job schedule operation of that client generation against a local service.
Usage: python jobschedules_old_client.py <batch url> <account>; the key comes in
BSPEC_TEST_BATCH_KEY. Prints one JSON line of what it saw; fails on any error."""

import json
import os
import sys

from azure.batch import BatchServiceClient
from azure.batch import models as m
from azure.batch.batch_auth import SharedKeyCredentials


def main() -> int:
    url, account = sys.argv[1], sys.argv[2]
    c = BatchServiceClient(SharedKeyCredentials(account, os.environ["BSPEC_TEST_BATCH_KEY"]), url)
    c.config.retry_policy.retries = 0
    spec = m.JobSpecification(pool_info=m.PoolInformation(pool_id="p"))
    c.job_schedule.add(
        m.JobScheduleAddParameter(
            id="old", schedule=m.Schedule(recurrence_interval="PT1H"), job_specification=spec
        )
    )
    seen = {"api": c.api_version}
    got = c.job_schedule.get("old")
    seen["recentJob"] = got.execution_info.recent_job.id
    seen["exists"] = c.job_schedule.exists("old")
    seen["list"] = [s.id for s in c.job_schedule.list()]
    seen["jobs"] = [j.id for j in c.job.list_from_job_schedule("old")]
    c.job_schedule.patch(
        "old", m.JobSchedulePatchParameter(metadata=[m.MetadataItem(name="a", value="b")])
    )
    c.job_schedule.update(
        "old",
        m.JobScheduleUpdateParameter(
            schedule=m.Schedule(recurrence_interval="PT2H"), job_specification=spec
        ),
    )
    seen["interval"] = str(c.job_schedule.get("old").schedule.recurrence_interval)
    states = []
    for step in (
        c.job_schedule.disable,
        c.job_schedule.enable,
        c.job_schedule.terminate,
        c.job_schedule.delete,
    ):
        step("old")
        states.append(str(c.job_schedule.get("old").state.value))
    seen["states"] = states
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
