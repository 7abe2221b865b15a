"""Auto pools: the pool a job (or a job schedule) asks for with `autoPoolSpecification`.

The pool is made through the pools module's own create path (so its validation is the
pools' one), with an id as Batch assigns it: `<autoPoolIdPrefix>_<GUID>` (the GUID alone
without a prefix). It is deleted when its lifetime ends: the job's completion or deletion
(`poolLifetimeOption` job) or the schedule's (jobschedule), unless `keepAlive`.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from .resources import check_duration, invalid, missing
from .store import Row

if TYPE_CHECKING:  # the jobs module uses the checks below; only the service wires pools in
    from .pools import Pools

LIFETIMES = ("job", "jobschedule")


def check_spec(prop: str, spec: Any, in_schedule: bool) -> dict[str, Any]:
    """The autoPoolSpecification at PROP, as Batch checks it before creating anything."""
    if not isinstance(spec, dict):
        raise invalid(prop, spec, "The auto pool specification must be an object.")
    lifetime = spec.get("poolLifetimeOption")
    if lifetime is None:
        raise missing(f"{prop}.poolLifetimeOption")
    if lifetime not in LIFETIMES:
        raise invalid(f"{prop}.poolLifetimeOption", lifetime, "Use job or jobschedule.")
    if lifetime == "jobschedule" and not in_schedule:
        raise invalid(
            f"{prop}.poolLifetimeOption",
            lifetime,
            "The jobschedule lifetime applies only to job schedules, not to jobs.",
        )
    prefix = spec.get("autoPoolIdPrefix")
    if prefix is not None and (
        not isinstance(prefix, str)
        or len(prefix) > 20
        or not all(c.isalnum() or c in "-_" for c in prefix)
    ):
        raise invalid(
            f"{prop}.autoPoolIdPrefix",
            prefix,
            "The prefix may contain letters, digits, hyphens and underscores, up to 20.",
        )
    if not isinstance(spec.get("keepAlive", False), bool):
        raise invalid(f"{prop}.keepAlive", spec.get("keepAlive"), "keepAlive is a boolean.")
    pool = spec.get("pool")
    if not isinstance(pool, dict):
        raise missing(f"{prop}.pool")
    if not pool.get("vmSize"):
        raise missing(f"{prop}.pool.vmSize")
    check_duration(f"{prop}.pool.resizeTimeout", pool.get("resizeTimeout"))
    return spec


def new_id(spec: dict[str, Any]) -> str:
    guid = str(uuid.uuid4()).upper()
    prefix = spec.get("autoPoolIdPrefix")
    return f"{prefix}_{guid}" if prefix else guid


class AutoPools:
    def __init__(self, pools: Pools) -> None:
        self.pools = pools

    def create(self, base: str, spec: dict[str, Any]) -> str:
        """Create the pool SPEC describes; its id."""
        pool_id = new_id(spec)
        self.pools.create(base, {**spec["pool"], "id": pool_id})
        return pool_id

    def release(self, pool_id: str | None) -> None:
        """The auto pool's lifetime is over: delete it (if it is still there)."""
        if not pool_id:
            return
        row = self.pools.store.get("pool", "", pool_id)
        if row is not None and row.body["state"] != "deleting":
            self.pools.delete(row)

    def job_changed(self, job: Row) -> None:
        """A job with its own auto pool (lifetime job, no keepAlive) completed or is
        being deleted: its pool goes."""
        if job.body["state"] in ("completed", "deleting") and "autoPool" in job.meta:
            self.release(job.meta.pop("autoPool"))
            self.pools.store.put(job)
