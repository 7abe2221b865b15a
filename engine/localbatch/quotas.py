"""The account's quotas and VM sizes, as Batch enforces them.

Batch checks a pool's vmSize against the sizes the region offers (400 InvalidPropertyValue)
and taskSlotsPerNode against the size (at most 4 x vCPUs, and 256); it refuses a pool or a
job over the account's pool quota or active job and schedule quota (409); and a resize that
needs more cores than the account has left allocates the nodes that fit and ends with the
pool's `resizeErrors` naming the quota (AccountCoreQuotaReached,
AccountVMSeriesCoreQuotaReached, AccountLowPriorityCoreQuotaReached). `allocationFailure`
makes every allocation fail outright (AllocationFailed), so clients can test that path.

The limits live in `Settings.quotas` (`/_local/settings`, `python -m bspec.localbatch`
flags); the defaults are far above what a local run uses.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from bspec.common import vmsizes

from .resources import BatchError, invalid
from .store import Row, Store

QUOTA_KEYS = (
    "dedicatedCoreQuota",
    "lowPriorityCoreQuota",
    "dedicatedCoreQuotaPerVMFamily",
    "poolQuota",
    "activeJobAndJobScheduleQuota",
    "allocationFailure",
)
MAX_SLOTS = 256
# Job states that count against the active job and job schedule quota.
INACTIVE_JOB_STATES = ("completed", "deleting")


@dataclass
class Quotas:
    """The account's limits; a family missing from `per_family` is limited only by the
    total dedicated quota."""

    dedicated_cores: int = 100_000
    low_priority_cores: int = 100_000
    per_family: dict[str, int] = field(default_factory=dict)
    pools: int = 10_000
    active_jobs: int = 100_000
    allocation_failure: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "dedicatedCoreQuota": self.dedicated_cores,
            "lowPriorityCoreQuota": self.low_priority_cores,
            "dedicatedCoreQuotaPerVMFamily": dict(self.per_family),
            "poolQuota": self.pools,
            "activeJobAndJobScheduleQuota": self.active_jobs,
            "allocationFailure": self.allocation_failure,
        }

    def apply(self, key: str, value: Any) -> None:
        """One `/_local/settings` key; ValueError says what is wrong with the value."""
        if key == "allocationFailure":
            if not isinstance(value, bool):
                raise ValueError("allocationFailure must be true or false")
            self.allocation_failure = value
        elif key == "dedicatedCoreQuotaPerVMFamily":
            if not isinstance(value, dict):
                raise ValueError("dedicatedCoreQuotaPerVMFamily must map families to cores")
            known = {f.lower(): f for f in vmsizes.families()}
            out: dict[str, int] = {}
            for name, cores in value.items():
                family = known.get(str(name).lower())
                if family is None:
                    raise ValueError(f"unknown VM family {name!r} (e.g. standardDSv3Family)")
                out[family] = _count(f"{key}.{name}", cores)
            self.per_family = out
        elif key == "dedicatedCoreQuota":
            self.dedicated_cores = _count(key, value)
        elif key == "lowPriorityCoreQuota":
            self.low_priority_cores = _count(key, value)
        elif key == "poolQuota":
            self.pools = _count(key, value)
        elif key == "activeJobAndJobScheduleQuota":
            self.active_jobs = _count(key, value)
        else:
            raise ValueError(f"unknown setting {key!r}")


def _count(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a whole number, 0 or more")
    return value


def add_quota_flags(parser: argparse.ArgumentParser) -> None:
    """`python -m bspec.localbatch` flags for the quotas (`/_local/settings` changes them)."""
    d = Quotas()
    parser.add_argument("--dedicated-core-quota", type=int, default=d.dedicated_cores)
    parser.add_argument("--low-priority-core-quota", type=int, default=d.low_priority_cores)
    parser.add_argument(
        "--family-core-quota",
        action="append",
        default=[],
        metavar="FAMILY=CORES",
        help="dedicated cores of one VM family, e.g. standardDSv3Family=16 (repeatable)",
    )
    parser.add_argument("--pool-quota", type=int, default=d.pools)
    parser.add_argument("--active-job-quota", type=int, default=d.active_jobs)
    parser.add_argument(
        "--allocation-failure",
        action="store_true",
        help="every node allocation fails (resizeErrors AllocationFailed)",
    )


def quotas_from_flags(args: argparse.Namespace) -> Quotas:
    """The flags as Quotas; ValueError names a bad one."""
    out = Quotas()
    out.apply("dedicatedCoreQuota", args.dedicated_core_quota)
    out.apply("lowPriorityCoreQuota", args.low_priority_core_quota)
    out.apply("poolQuota", args.pool_quota)
    out.apply("activeJobAndJobScheduleQuota", args.active_job_quota)
    out.apply("allocationFailure", bool(args.allocation_failure))
    families: dict[str, int] = {}
    for item in args.family_core_quota:
        name, sep, cores = str(item).partition("=")
        if not sep or not cores.strip().isdigit():
            raise ValueError(f"--family-core-quota {item!r}: give FAMILY=CORES")
        families[name.strip()] = int(cores)
    out.apply("dedicatedCoreQuotaPerVMFamily", families)
    return out


# ---------------------------------------------------------------------- requests


def vm_size(value: Any) -> vmsizes.VmSize:
    """The size a pool asks for, or Batch's 400 for one the region does not offer."""
    size = vmsizes.lookup(str(value))
    if size is None:
        raise invalid("vmSize", value, "The specified VM size is not available in this region.")
    return size


def check_slots(slots: Any, size: vmsizes.VmSize) -> None:
    """taskSlotsPerNode: at most the smaller of 4 x the size's vCPUs and 256."""
    limit = min(4 * size.vcpus, MAX_SLOTS)
    if isinstance(slots, int) and not isinstance(slots, bool) and slots > limit:
        raise invalid(
            "taskSlotsPerNode",
            slots,
            f"The value must be at most {limit}: 4 times the {size.vcpus} cores of "
            f"{size.name}, and at most {MAX_SLOTS}.",
        )


def check_pool_quota(store: Store, quotas: Quotas) -> None:
    count = sum(1 for _ in store.iter("pool", ""))
    if count >= quotas.pools:
        raise BatchError(
            409,
            "PoolQuotaReached",
            "The specified account has reached its pool quota.",
            {"Quota": str(quotas.pools)},
        )


def check_job_quota(store: Store, quotas: Quotas) -> None:
    active = sum(
        1 for job in store.iter("job", "") if job.body.get("state") not in INACTIVE_JOB_STATES
    )
    if active >= quotas.active_jobs:
        raise BatchError(
            409,
            "ActiveJobAndScheduleQuotaReached",
            "The specified account has reached its quota of active jobs and job schedules.",
            {"Quota": str(quotas.active_jobs)},
        )


# ---------------------------------------------------------------------- allocation


def fit(
    store: Store, quotas: Quotas, pool: Row, dedicated: bool, wanted: int
) -> tuple[int, dict[str, Any] | None]:
    """How many of `wanted` new nodes the account's cores allow for POOL, and the resize
    error to record when that is fewer (or when allocation is set to fail)."""
    if wanted <= 0:
        return max(wanted, 0), None
    if quotas.allocation_failure:
        return 0, _error(
            "AllocationFailed", "Desired number of nodes could not be allocated.", wanted
        )
    size = vmsizes.lookup(str(pool.body.get("vmSize", "")))
    if size is None or size.vcpus <= 0:
        return wanted, None
    used_total, used_family = _used_cores(store, dedicated, size.family)
    if not dedicated:
        room = (quotas.low_priority_cores - used_total) // size.vcpus
        code = "AccountLowPriorityCoreQuotaReached"
        message = "The specified account has reached its low-priority core quota."
    else:
        room = (quotas.dedicated_cores - used_total) // size.vcpus
        code = "AccountCoreQuotaReached"
        message = "The specified account has reached its dedicated core quota."
        family_quota = quotas.per_family.get(size.family)
        if family_quota is not None:
            family_room = (family_quota - used_family) // size.vcpus
            if family_room < room:
                room = family_room
                code = "AccountVMSeriesCoreQuotaReached"
                message = f"The specified account has reached its core quota for {size.family}."
    room = max(0, room)
    if room >= wanted:
        return wanted, None
    return room, _error(code, message, wanted - room)


def _used_cores(store: Store, dedicated: bool, family: str) -> tuple[int, int]:
    """Cores the account's nodes of that kind hold: in total, and of FAMILY."""
    total = in_family = 0
    for node in store.iter_all("node"):
        body = node.body
        if body.get("isDedicated", True) != dedicated or body.get("state") in (
            "leavingpool",
            "preempted",
        ):
            continue
        size = vmsizes.lookup(str(body.get("vmSize", "")))
        if size is None:
            continue
        total += size.vcpus
        if size.family == family:
            in_family += size.vcpus
    return total, in_family


def _error(code: str, message: str, short: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "values": [{"name": "NodesNotAllocated", "value": str(short)}],
    }
