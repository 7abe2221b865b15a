"""The local service's quota arithmetic without HTTP: settings parsing, the flags, and how many
new nodes fit the account's cores (the service tests cover the same through the SDK)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bspec.localbatch import quotas
from bspec.localbatch.resources import BatchError
from bspec.localbatch.store import Row, Store


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    quotas.add_quota_flags(parser)
    return parser.parse_args(list(argv))


def test_flags_and_settings_round_trip() -> None:
    q = quotas.quotas_from_flags(
        flags("--dedicated-core-quota", "8", "--family-core-quota", "standarddsv3family=4")
    )
    assert q.dedicated_cores == 8
    assert q.per_family == {"standardDSv3Family": 4}  # the family's own spelling
    again = quotas.Quotas()
    for key, value in q.to_json().items():
        again.apply(key, value)
    assert again == q
    with pytest.raises(ValueError, match="FAMILY=CORES"):
        quotas.quotas_from_flags(flags("--family-core-quota", "standardDSv3Family"))
    for key, value in (
        ("poolQuota", -1),
        ("poolQuota", True),
        ("allocationFailure", 1),
        ("dedicatedCoreQuotaPerVMFamily", {"nope": 1}),
    ):
        with pytest.raises(ValueError):
            quotas.Quotas().apply(key, value)


def test_sizes_and_slots() -> None:
    size = quotas.vm_size("STANDARD_D2S_V3")
    assert (size.vcpus, size.family) == (2, "standardDSv3Family")
    quotas.check_slots(8, size)
    with pytest.raises(BatchError) as err:
        quotas.check_slots(9, size)
    assert err.value.values["PropertyName"] == "taskSlotsPerNode"
    with pytest.raises(BatchError) as err:
        quotas.vm_size("standard_d1")  # retired: not in the table
    assert (err.value.code, err.value.values["PropertyName"]) == ("InvalidPropertyValue", "vmSize")
    big = quotas.vm_size("standard_d96s_v5")
    quotas.check_slots(256, big)
    with pytest.raises(BatchError):
        quotas.check_slots(257, big)


def _node(store: Store, pool: str, size: str, dedicated: bool, state: str = "idle") -> None:
    key = f"n{sum(1 for _ in store.iter_all('node'))}"
    body = {"id": key, "vmSize": size, "isDedicated": dedicated, "state": state}
    store.put(Row("node", pool, key, body, {}))


def test_fit_counts_the_accounts_nodes(tmp_path: Path) -> None:
    store = Store(tmp_path / "b.sqlite")
    try:
        pool = Row("pool", "", "p", {"id": "p", "vmSize": "standard_d4s_v3"}, {})
        q = quotas.Quotas(dedicated_cores=16, low_priority_cores=8)
        _node(store, "other", "standard_d2s_v3", True)
        _node(store, "other", "standard_e2s_v3", True)
        _node(store, "other", "standard_d2s_v3", True, "leavingpool")  # not counted
        assert quotas.fit(store, q, pool, True, 2) == (2, None)
        allowed, error = quotas.fit(store, q, pool, True, 4)
        assert allowed == 3 and error is not None
        assert error["code"] == "AccountCoreQuotaReached"
        assert error["values"] == [{"name": "NodesNotAllocated", "value": "1"}]

        q.per_family = {"standardDSv3Family": 6}  # 2 of its cores in use: one D4s v3
        allowed, error = quotas.fit(store, q, pool, True, 2)
        assert allowed == 1 and error is not None
        assert error["code"] == "AccountVMSeriesCoreQuotaReached"

        _node(store, "other", "standard_d2s_v3", False, "preempted")  # holds no cores
        allowed, error = quotas.fit(store, q, pool, False, 3)
        assert allowed == 2 and error is not None
        assert error["code"] == "AccountLowPriorityCoreQuotaReached"

        q.allocation_failure = True
        allowed, error = quotas.fit(store, q, pool, True, 1)
        assert allowed == 0 and error is not None and error["code"] == "AllocationFailed"
        assert quotas.fit(store, q, pool, True, 0) == (0, None)
    finally:
        store.close()
