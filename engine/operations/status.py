"""`bspec status`: the pools (allocation, nodes by state), the jobs, their task counts and
the spec's failed tasks, read without changing anything."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bspec.kinds import pool as pool_kind
from bspec.model import DesiredState, Kind, PoolSpec
from bspec.operations.schedules import schedule_status
from bspec.operations.session import Outcome, Vars, opened
from bspec.providers import autoscale, inspection
from bspec.reporting.reporter import Reporter
from bspec.reporting.status import render_status
from bspec.targets import Target


def status(
    spec: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    failed_limit: int = 100,
) -> Outcome:
    """The stack's status object (`bspec status --json`), shown through `reporter`."""
    with opened(spec, vars, target) as (desired, tgt):
        data: dict[str, Any] = {
            "stack": desired.stack,
            "target": tgt.name,
            "pool": None,
            "jobs": [],
        }
        pools = [{**_pool_status(tgt, p.id), "key": p.key} for p in desired.pools]
        _add_spot(tgt, desired.pools, pools)
        if desired.pool is not None:
            data["pool"] = {k: v for k, v in pools[0].items() if k != "key"}
        data["pools"] = pools
        for job in desired.jobs:
            data["jobs"].append(_job_status(tgt, desired, job.id, failed_limit))
        if desired.of_kind(Kind("schedule")):
            data["schedules"] = schedule_status(tgt, desired)
        data["requests"] = tgt.counter.snapshot()
    for line in render_status(data):
        reporter.show(line)
    return Outcome(data)


def _pool_status(tgt: Target, pool_id: str) -> dict[str, Any]:
    p = inspection.get_pool(tgt.batch, pool_id)
    if p is None:
        return {
            "id": pool_id,
            "exists": False,
            "state": None,
            "allocationState": None,
            "targetDedicatedNodes": 0,
            "currentDedicatedNodes": 0,
            "targetLowPriorityNodes": 0,
            "currentLowPriorityNodes": 0,
            "nodes": {},
            "owner": None,
        }
    nodes = Counter(
        str(n.get("state") or "unknown") for n in inspection.list_nodes(tgt.batch, pool_id)
    )
    owner = {m.get("name"): m.get("value") for m in p.get("metadata") or ()}.get("bspec-stack")
    return {
        "id": pool_id,
        "exists": True,
        "state": p.get("state"),
        "allocationState": p.get("allocationState"),
        "targetDedicatedNodes": int(p.get("targetDedicatedNodes") or 0),
        "currentDedicatedNodes": int(p.get("currentDedicatedNodes") or 0),
        "targetLowPriorityNodes": int(p.get("targetLowPriorityNodes") or 0),
        "currentLowPriorityNodes": int(p.get("currentLowPriorityNodes") or 0),
        "nodes": dict(sorted(nodes.items())),
        "owner": owner,
        **_autoscale_status(p),
    }


def _autoscale_status(p: dict[str, Any]) -> dict[str, Any]:
    """An autoscale pool's interval and last evaluation (absent on a fixed pool)."""
    if not p.get("enableAutoScale"):
        return {}
    run = p.get("autoScaleRun")
    last = pool_kind.evaluation_json(run, "current") if run else None
    if last is not None:
        last = {
            k: last[k]
            for k in ("timestamp", "targetDedicatedNodes", "targetLowPriorityNodes", "error")
        }
    return {"autoScale": {"interval": p.get("autoScaleEvaluationInterval"), "lastRun": last}}


def _add_spot(tgt: Target, specs: Sequence[PoolSpec], statuses: list[dict[str, Any]]) -> None:
    """Each pool's preempted Spot nodes (one node-counts request for all) and what the pool
    does about them, as `spot`; nothing on a pool that cannot have Spot nodes."""
    spot = [
        (spec, st)
        for spec, st in zip(specs, statuses, strict=True)
        if st["exists"]
        and (
            pool_kind.may_have_spot(spec)
            or st["targetLowPriorityNodes"]
            or st["currentLowPriorityNodes"]
        )
    ]
    if not spot:
        return
    counts = autoscale.node_counts(tgt.batch, [st["id"] for _, st in spot])
    for spec, st in spot:
        st["spot"] = {
            "preempted": autoscale.preempted(counts.get(st["id"])),
            "handling": pool_kind.spot_handling(spec),
        }


def _job_status(
    tgt: Target, desired: DesiredState, job_id: str, failed_limit: int
) -> dict[str, Any]:
    wanted = {t.id for t in desired.tasks_of(job_id)}
    j = inspection.get_job(tgt.batch, job_id)
    if j is None:
        return {
            "id": job_id,
            "exists": False,
            "state": None,
            "specTasks": len(wanted),
            "taskCounts": None,
            "failedTasks": [],
        }
    counts = inspection.task_counts(tgt.batch, job_id)
    failed = inspection.list_tasks(
        tgt.batch,
        job_id,
        flt="state eq 'completed' and executionInfo/result eq 'failure'",
        select="id,executionInfo,nodeInfo",
    )
    rows = []
    for t in failed:
        if t.get("id") not in wanted:
            continue
        info = t.get("executionInfo") or {}
        fi = info.get("failureInfo") or {}
        rows.append(
            {
                "address": f"task/{job_id}/{t.get('id')}",
                "taskId": t.get("id"),
                "exitCode": info.get("exitCode"),
                "failure": fi.get("message") or fi.get("code"),
                "nodeId": (t.get("nodeInfo") or {}).get("nodeId"),
            }
        )
    return {
        "id": job_id,
        "exists": True,
        "state": j.get("state"),
        "specTasks": len(wanted),
        "taskCounts": counts,
        "failedTasks": rows[:failed_limit],
        **({"failedTasksOmitted": len(rows) - failed_limit} if len(rows) > failed_limit else {}),
    }
