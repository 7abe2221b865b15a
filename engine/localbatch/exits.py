"""Task exit conditions: which ExitOptions apply to a completed task, as Batch picks them.

Pure functions of a task's `exitConditions` and its outcome, so the tasks module can ask
without knowing the rules: an exit code listed in `exitCodes` or inside `exitCodeRanges`
wins (also over a later file upload error), then `preProcessingError` or `fileUploadError`
for those failures, then `default` for any other failure. What is not given defaults as the
definition says: jobAction none for exit code 0 and terminate otherwise, dependencyAction
satisfy for exit code 0 and block otherwise.
"""

from __future__ import annotations

from typing import Any

from .resources import BatchError, invalid

JOB_ACTIONS = ("none", "disable", "terminate")
DEPENDENCY_ACTIONS = ("satisfy", "block")
PERFORM = "performexitoptionsjobaction"


def options(conditions: Any, result: str, exit_code: int | None, stage: str) -> dict[str, str]:
    """The ExitOptions (jobAction, dependencyAction) for a task that completed so."""
    conds = conditions if isinstance(conditions, dict) else {}
    chosen: dict[str, Any] | None = None
    if exit_code is not None:
        for entry in conds.get("exitCodes") or []:
            if entry.get("code") == exit_code:
                chosen = entry.get("exitOptions") or {}
                break
        if chosen is None:
            for entry in conds.get("exitCodeRanges") or []:
                if int(entry.get("start", 0)) <= exit_code <= int(entry.get("end", -1)):
                    chosen = entry.get("exitOptions") or {}
                    break
    ok = result == "success"
    if chosen is None and not ok:
        if stage == "resourcefiles":
            chosen = conds.get("preProcessingError")
        elif stage == "outputfiles":
            chosen = conds.get("fileUploadError")
        if chosen is None:
            chosen = conds.get("default")
    chosen = chosen or {}
    clean = ok and exit_code in (0, None)
    return {
        "jobAction": str(chosen.get("jobAction") or ("none" if clean else "terminate")),
        "dependencyAction": str(
            chosen.get("dependencyAction") or ("satisfy" if clean else "block")
        ),
    }


def check(conditions: Any, on_task_failure: str) -> None:
    """Validate a task's exitConditions against its job as Batch does when adding it."""
    if conditions is None:
        return
    if not isinstance(conditions, dict):
        raise invalid("exitConditions", conditions, "exitConditions must be an object.")
    given: list[tuple[str, Any]] = []
    for i, entry in enumerate(conditions.get("exitCodes") or []):
        if not isinstance(entry, dict) or not isinstance(entry.get("code"), int):
            raise invalid(f"exitConditions.exitCodes[{i}].code", entry, "code is required.")
        given.append((f"exitConditions.exitCodes[{i}].exitOptions", entry.get("exitOptions")))
    for i, entry in enumerate(conditions.get("exitCodeRanges") or []):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("start"), int)
            or not isinstance(entry.get("end"), int)
        ):
            raise invalid(
                f"exitConditions.exitCodeRanges[{i}]", entry, "start and end are required."
            )
        if entry["start"] > entry["end"]:
            raise invalid(
                f"exitConditions.exitCodeRanges[{i}]", entry, "start must not exceed end."
            )
        given.append((f"exitConditions.exitCodeRanges[{i}].exitOptions", entry.get("exitOptions")))
    for name in ("preProcessingError", "fileUploadError", "default"):
        given.append((f"exitConditions.{name}", conditions.get(name)))
    for where, opts in given:
        if opts is None:
            continue
        if not isinstance(opts, dict):
            raise invalid(where, opts, "exitOptions must be an object.")
        action = opts.get("jobAction")
        if action is not None and str(action).lower() not in JOB_ACTIONS:
            raise invalid(f"{where}.jobAction", action, "Unknown job action.")
        if action is not None and on_task_failure.lower() != PERFORM:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "A jobAction may be given only when the job's onTaskFailure is "
                "performexitoptionsjobaction.",
                {
                    "PropertyName": f"{where}.jobAction",
                    "PropertyValue": str(action),
                    "Reason": "The job's onTaskFailure is noaction.",
                },
            )
        dep = opts.get("dependencyAction")
        if dep is not None and str(dep).lower() not in DEPENDENCY_ACTIONS:
            raise invalid(f"{where}.dependencyAction", dep, "Unknown dependency action.")
