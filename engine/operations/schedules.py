"""What `status` shows of the spec's job schedules: state, next run time, the recent runs
(their jobs, states and task counts) and when the schedule's SAS tokens run out."""

from __future__ import annotations

from typing import Any

from bspec.kinds import schedule as schedule_kind
from bspec.model import DesiredState
from bspec.providers import inspection
from bspec.providers import schedules as provider
from bspec.targets import Target

RECENT_RUNS = 5  # the newest runs status shows (each costs a task-counts request)


def schedule_status(tgt: Target, desired: DesiredState) -> list[dict[str, Any]]:
    """One entry per scheduled job of the spec (`bspec status --json`'s `schedules`)."""
    out = []
    for spec in desired.of_kind(schedule_kind.SCHEDULE):
        s = provider.get_schedule(tgt.batch, spec.id)
        if s is None:
            out.append(
                {
                    "id": spec.id,
                    "exists": False,
                    "state": None,
                    "nextRunTime": None,
                    "sasExpiry": None,
                    "runs": [],
                }
            )
            continue
        info = s.get("executionInfo") or {}
        runs = provider.recent_runs(tgt.batch, spec.id)
        shown = []
        for run in runs[:RECENT_RUNS]:
            counts = inspection.task_counts(tgt.batch, str(run["id"]))
            shown.append({**run, "taskCounts": counts})
        out.append(
            {
                "id": spec.id,
                "exists": True,
                "state": s.get("state"),
                "nextRunTime": schedule_kind.utc_text(info.get("nextRunTime")),
                "sasExpiry": provider.sas_expiry(s),
                "runs": shown,
                **({"runsOmitted": len(runs) - RECENT_RUNS} if len(runs) > RECENT_RUNS else {}),
            }
        )
    return out


__all__ = ["RECENT_RUNS", "schedule_status"]
