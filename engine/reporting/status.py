"""`bspec status` for people: the pools, their nodes, the jobs and their failed tasks."""

from __future__ import annotations

from typing import Any

from bspec.reporting.autoscale import autoscale_status_text, preemption_text


def render_status(data: dict[str, Any]) -> list[str]:
    """The status object as lines for people."""
    lines = [f"Stack {data['stack']} ({data['target']})"]
    pools = data.get("pools") or ([data["pool"]] if data.get("pool") else [])
    for p in pools:
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
    lines.extend(schedule_lines(data.get("schedules") or ()))
    return lines


def schedule_lines(schedules: Any) -> list[str]:
    """Each scheduled job: its state, next run, SAS expiry and recent runs."""
    lines = []
    for s in schedules:
        if not s["exists"]:
            lines.append(f"Schedule {s['id']}: does not exist")
            continue
        nxt = s["nextRunTime"] or "none"
        lines.append(
            f"Schedule {s['id']}: {s['state']}; next run {nxt}; SAS tokens run out"
            f" {s['sasExpiry'] or 'never'}"
        )
        if not s["runs"]:
            lines.append("  no runs yet")
        for r in s["runs"]:
            c = r.get("taskCounts") or {}
            lines.append(
                f"  run {r['id']}: {r['state']}, created {r['created']}; tasks:"
                f" {c.get('completed', 0)} completed ({c.get('succeeded', 0)} succeeded,"
                f" {c.get('failed', 0)} failed), {c.get('active', 0) + c.get('running', 0)}"
                " to go"
            )
        if s.get("runsOmitted"):
            lines.append(f"  ... and {s['runsOmitted']} older runs")
    return lines
