"""`bspec status` for people: the pool, its nodes, the jobs and their failed tasks."""

from __future__ import annotations

from typing import Any

from bspec.reporting.autoscale import autoscale_status_text, preemption_text


def render_status(data: dict[str, Any]) -> list[str]:
    """The status object as lines for people."""
    lines = [f"Stack {data['stack']} ({data['target']})"]
    p = data.get("pool")
    if p is not None:
        if not p["exists"]:
            lines.append(f"Pool {p['id']}: does not exist")
        else:
            nodes = ", ".join(f"{n} {s}" for s, n in p["nodes"].items()) or "no nodes"
            lines.append(
                f"Pool {p['id']}: {p['state']}, {p['allocationState']},"
                f" {p['currentDedicatedNodes']}/{p['targetDedicatedNodes']} dedicated"
                f" nodes ({nodes})"
            )
            if p["targetLowPriorityNodes"] or p["currentLowPriorityNodes"]:
                lines.append(
                    f"  {p['currentLowPriorityNodes']}/{p['targetLowPriorityNodes']}"
                    " low-priority nodes"
                )
            if p.get("autoScale"):
                lines.append(f"  {autoscale_status_text(p['autoScale'])}")
            if (p.get("spot") or {}).get("preempted"):
                spot = p["spot"]
                lines.append(f"  {preemption_text(p['id'], spot['preempted'], spot['handling'])}")
    for j in data["jobs"]:
        if not j["exists"]:
            lines.append(f"Job {j['id']}: does not exist ({j['specTasks']} tasks in the spec)")
            continue
        c = j["taskCounts"] or {}
        lines.append(
            f"Job {j['id']}: {j['state']}; tasks: {c.get('active', 0)} active,"
            f" {c.get('running', 0)} running, {c.get('completed', 0)} completed"
            f" ({c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed)"
        )
        for f in j["failedTasks"]:
            lines.append(
                f"  failed: {f['address']} (exit code {f['exitCode']})"
                + (f": {f['failure']}" if f["failure"] else "")
            )
        if j.get("failedTasksOmitted"):
            lines.append(f"  ... and {j['failedTasksOmitted']} more failed tasks")
    return lines
