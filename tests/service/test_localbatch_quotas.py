"""The account's quotas and VM sizes in the local service, through azure-batch 15 against a
private service started with low quotas: unknown sizes and too many task slots refused, the
pool and job quotas answered with Batch's 409s, a resize over the core quota allocating the
nodes that fit with Batch's resizeErrors, and an allocation set to fail outright."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from bspec import local as services
from reference import Reference, get_json
from test_localbatch_api import IMAGE, wait_for
from test_localbatch_restart import Server


@pytest.fixture
def quota(tmp_path: Path) -> Iterator[Server]:
    flags = {
        "--dedicated-core-quota": "6",
        "--low-priority-core-quota": "2",
        "--pool-quota": "3",
        "--active-job-quota": "1",
    }
    with Server(tmp_path / "home", *(x for kv in flags.items() for x in kv)).running() as srv:
        yield srv


def put_settings(server: Server, body: dict[str, Any]) -> tuple[int, Any]:
    try:
        return 200, services.http_json("PUT", f"{server.url}/_local/settings", body)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def pool(pool_id: str, size: str = "standard_d2s_v3", **kw: Any) -> m.BatchPoolCreateOptions:
    return m.BatchPoolCreateOptions(
        id=pool_id, vm_size=size, virtual_machine_configuration=IMAGE, **kw
    )


def refused(call: Any) -> tuple[int | None, str | None, dict[str, str]]:
    with pytest.raises(HttpResponseError) as err:
        call()
    error = err.value.error
    assert error is not None
    assert err.value.response is not None
    body = err.value.response.json()
    values = {v["key"]: v["value"] for v in body.get("values", [])}
    return err.value.status_code, error.code, values


def settled(c: Any, pool_id: str) -> Any:
    return wait_for(
        lambda: (lambda p: p if p.allocation_state == "steady" else None)(c.get_pool(pool_id)),
        30,
        f"{pool_id} steady",
    )


def test_sizes_slots_and_the_pool_and_job_quotas(quota: Server, reference: Reference) -> None:
    settings = get_json(f"{quota.url}/_local/settings")
    assert settings["dedicatedCoreQuota"] == 6 and settings["poolQuota"] == 3
    assert settings["allocationFailure"] is False
    with quota.client(reference, retry_total=0) as c:
        status, code, values = refused(lambda: c.create_pool(pool("a", "standard_nope")))
        assert (status, code, values.get("PropertyName")) == (400, "InvalidPropertyValue", "vmSize")
        # 4 x 2 vCPUs = 8 slots at most on a D2s v3.
        status, code, values = refused(lambda: c.create_pool(pool("a", task_slots_per_node=9)))
        assert (status, code, values.get("PropertyName")) == (
            400,
            "InvalidPropertyValue",
            "taskSlotsPerNode",
        )
        c.create_pool(pool("a", task_slots_per_node=8))
        c.create_pool(pool("b"))
        c.create_pool(pool("c"))
        assert refused(lambda: c.create_pool(pool("d")))[:2] == (409, "PoolQuotaReached")

        c.create_job(m.BatchJobCreateOptions(id="j1", pool_info=m.BatchPoolInfo(pool_id="a")))
        job2 = m.BatchJobCreateOptions(id="j2", pool_info=m.BatchPoolInfo(pool_id="a"))
        assert refused(lambda: c.create_job(job2))[:2] == (
            409,
            "ActiveJobAndScheduleQuotaReached",
        )
        c.begin_terminate_job("j1", {"terminateReason": "done"}, polling_interval=0.05).result()
        assert c.get_job("j1").state == "completed"
        c.create_job(job2)  # a completed job no longer counts


def test_resizes_over_the_core_quotas_and_a_failed_allocation(
    quota: Server, reference: Reference
) -> None:
    with quota.client(reference, retry_total=0) as c:
        # 6 dedicated cores: 3 of the 4 D2s v3 nodes fit.
        c.create_pool(pool("a", target_dedicated_nodes=4))
        a = settled(c, "a")
        assert a.current_dedicated_nodes == 3 and a.target_dedicated_nodes == 4
        assert [e.code for e in a.resize_errors or []] == ["AccountCoreQuotaReached"]

        # 2 low-priority cores: 1 of 2 nodes.
        c.create_pool(pool("low", target_low_priority_nodes=2))
        low = settled(c, "low")
        assert low.current_low_priority_nodes == 1
        assert [e.code for e in low.resize_errors or []] == ["AccountLowPriorityCoreQuotaReached"]

        # A family quota below the total: the family's limit is the one reached.
        status, body = put_settings(
            quota,
            {"dedicatedCoreQuota": 100, "dedicatedCoreQuotaPerVMFamily": {"standardDSv3Family": 8}},
        )
        assert status == 200 and body["dedicatedCoreQuotaPerVMFamily"] == {"standardDSv3Family": 8}
        c.create_pool(pool("b", target_dedicated_nodes=2))
        b = settled(c, "b")
        assert b.current_dedicated_nodes == 1
        assert [e.code for e in b.resize_errors or []] == ["AccountVMSeriesCoreQuotaReached"]
        # Another family is limited by the total only.
        c.begin_resize_pool("low", m.BatchPoolResizeOptions(target_low_priority_nodes=1)).result()
        settled(c, "low")

        # Allocation set to fail: no node comes, AllocationFailed; a resize clears it.
        assert put_settings(quota, {"allocationFailure": True})[0] == 200
        c.begin_delete_pool("low", polling_interval=0.05).result()
        c.create_pool(pool("f", "standard_e2s_v3", target_dedicated_nodes=1))
        f = settled(c, "f")
        assert f.current_dedicated_nodes == 0
        assert [e.code for e in f.resize_errors or []] == ["AllocationFailed"]
        assert put_settings(quota, {"allocationFailure": False})[0] == 200
        c.begin_resize_pool("f", m.BatchPoolResizeOptions(target_dedicated_nodes=1)).result()
        f = settled(c, "f")
        assert f.current_dedicated_nodes == 1 and not f.resize_errors

        assert put_settings(quota, {"dedicatedCoreQuotaPerVMFamily": {"nope": 1}})[0] == 400
        assert put_settings(quota, {"poolQuota": -1})[0] == 400
