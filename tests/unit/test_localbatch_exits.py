"""Which exit options apply to a completed task, and which exitConditions a task may carry."""

from __future__ import annotations

from typing import Any

import pytest
from bspec.localbatch import exits
from bspec.localbatch.resources import BatchError

TERMINATE = {"jobAction": "terminate", "dependencyAction": "block"}
NONE_SATISFY = {"jobAction": "none", "dependencyAction": "satisfy"}
CONDITIONS: dict[str, Any] = {
    "exitCodes": [{"code": 3, "exitOptions": {"jobAction": "disable"}}],
    "exitCodeRanges": [
        {"start": 2, "end": 9, "exitOptions": {"dependencyAction": "satisfy"}},
    ],
    "preProcessingError": {"jobAction": "none"},
    "fileUploadError": {"dependencyAction": "satisfy"},
    "default": {"jobAction": "disable", "dependencyAction": "block"},
}


@pytest.mark.parametrize(
    ("conditions", "result", "code", "stage", "expected"),
    [
        (None, "success", 0, "done", NONE_SATISFY),
        (None, "failure", 1, "process", TERMINATE),
        (None, "failure", None, "resourcefiles", TERMINATE),
        # An exit code listed wins over a range holding it, and takes defaults for the rest.
        (
            CONDITIONS,
            "failure",
            3,
            "process",
            {"jobAction": "disable", "dependencyAction": "block"},
        ),
        (
            CONDITIONS,
            "failure",
            5,
            "process",
            {"jobAction": "terminate", "dependencyAction": "satisfy"},
        ),
        (
            CONDITIONS,
            "failure",
            42,
            "process",
            {"jobAction": "disable", "dependencyAction": "block"},
        ),
        (
            CONDITIONS,
            "failure",
            None,
            "resourcefiles",
            {"jobAction": "none", "dependencyAction": "block"},
        ),
        # A file upload error after an exit code that is listed: the exit code's options.
        (
            CONDITIONS,
            "failure",
            3,
            "outputfiles",
            {"jobAction": "disable", "dependencyAction": "block"},
        ),
        (
            CONDITIONS,
            "failure",
            0,
            "outputfiles",
            {"jobAction": "terminate", "dependencyAction": "satisfy"},
        ),
        (
            CONDITIONS,
            "failure",
            None,
            "timeout",
            {"jobAction": "disable", "dependencyAction": "block"},
        ),
        # Exit code 0 is a success: `default` does not apply, an exitCodes entry does.
        (CONDITIONS, "success", 0, "done", NONE_SATISFY),
        (
            {"exitCodes": [{"code": 0, "exitOptions": {"dependencyAction": "block"}}]},
            "success",
            0,
            "done",
            {"jobAction": "none", "dependencyAction": "block"},
        ),
    ],
)
def test_options(
    conditions: Any, result: str, code: int | None, stage: str, expected: dict[str, str]
) -> None:
    assert exits.options(conditions, result, code, stage) == expected


def test_a_job_action_needs_performexitoptionsjobaction() -> None:
    exits.check(CONDITIONS, "performexitoptionsjobaction")
    exits.check({"default": {"dependencyAction": "satisfy"}}, "noaction")
    with pytest.raises(BatchError) as err:
        exits.check({"default": {"jobAction": "terminate"}}, "noaction")
    assert err.value.status == 400
    assert err.value.values["PropertyName"] == "exitConditions.default.jobAction"


@pytest.mark.parametrize(
    "conditions",
    [
        [],
        {"exitCodes": [{"exitOptions": {}}]},
        {"exitCodeRanges": [{"start": 5, "end": 1}]},
        {"default": {"jobAction": "explode"}},
        {"default": {"dependencyAction": "cancel"}},
        {"fileUploadError": "block"},
    ],
)
def test_bad_conditions_are_refused(conditions: Any) -> None:
    with pytest.raises(BatchError) as err:
        exits.check(conditions, "performexitoptionsjobaction")
    assert err.value.status == 400
