"""Shared vocabulary of the service: errors, timestamps, ETags, durations, lenient input.

The server and the scheduler both shape Batch bodies; the helpers that keep those bodies the
same shape (times as ISO 8601 with a Z, ETags like Batch's `0x8D...`) live here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from typing import Any

from bspec.common import durations

MAX_DURATION = durations.MAX_DURATION  # what Batch shows for "unlimited"
ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class BatchError(Exception):
    """An error answered with Batch's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        values: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.values = values or {}
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        stamp = now().strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
        out: dict[str, Any] = {
            "code": self.code,
            "message": {
                "lang": "en-US",
                "value": f"{self.message}\nRequestId:{request_id}\nTime:{stamp}",
            },
        }
        if self.values:
            out["values"] = [{"key": k, "value": v} for k, v in self.values.items()]
        return out


def invalid(prop: str, value: Any, reason: str) -> BatchError:
    return BatchError(
        400,
        "InvalidPropertyValue",
        "The value provided for one of the properties in the request body is invalid.",
        {"PropertyName": prop, "PropertyValue": str(value), "Reason": reason},
    )


def missing(prop: str) -> BatchError:
    return BatchError(
        400,
        "MissingRequiredProperty",
        "A required property was not specified in the request body.",
        {"PropertyName": prop},
    )


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(when: dt.datetime | None = None) -> str:
    return (when or now()).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def http_date(text: str) -> str:
    """ISO body timestamp -> RFC 1123 for Last-Modified."""
    return parse_iso(text).strftime("%a, %d %b %Y %H:%M:%S GMT")


_etag_counter = itertools.count()
_last_etag = [0]


def new_etag() -> str:
    """Monotonic, unique per change, shaped like Batch's (`0x8DC...`)."""
    value = max(time.time_ns() // 100, _last_etag[0] + 1)
    _last_etag[0] = value
    return f"0x8{value:015X}"[:18]


def touch(body: dict[str, Any], stamp: str) -> None:
    """A change: a new ETag and lastModified."""
    body["eTag"] = new_etag()
    body["lastModified"] = stamp


def transition(body: dict[str, Any], state: str, stamp: str) -> None:
    """A new state, remembering the previous one as Batch shows it; then a change."""
    if body["state"] != state:
        body["previousState"] = body["state"]
        body["previousStateTransitionTime"] = body["stateTransitionTime"]
        body["state"] = state
        body["stateTransitionTime"] = stamp
    touch(body, stamp)


def duration_seconds(text: str | None) -> float | None:
    """ISO 8601 duration (days and smaller, as Batch uses) -> seconds; None for unlimited."""
    if text is None:
        return None
    if "W" in text.upper():
        raise ValueError(text)  # .NET's TimeSpan, which Batch parses with, knows no weeks
    secs = durations.parse_seconds(text)
    return None if durations.is_unlimited(secs) else secs


def check_duration(prop: str, text: Any) -> None:
    if text is None:
        return
    try:
        duration_seconds(str(text))
    except ValueError:
        raise invalid(prop, text, "The value is not a valid ISO 8601 duration.") from None


INT_KEYS = frozenset(
    {
        "targetDedicatedNodes",
        "targetLowPriorityNodes",
        "taskSlotsPerNode",
        "requiredSlots",
        "maxTaskRetryCount",
        "priority",
        "maxParallelTasks",
        "start",
        "end",
        "numberOfInstances",
        "exitCode",
    }
)
BOOL_KEYS = frozenset(
    {
        "waitForSuccess",
        "usesTaskDependencies",
        "enableAutoScale",
        "enableInterNodeCommunication",
        "allowTaskPreemption",
        "runExclusive",
    }
)
ENUMS: dict[str, tuple[str, ...]] = {
    "nodeDeallocationOption": ("requeue", "terminate", "taskcompletion", "retaineddata"),
    "onAllTasksComplete": ("noaction", "terminatejob"),
    "onTaskFailure": ("noaction", "performexitoptionsjobaction"),
    "elevationLevel": ("nonadmin", "admin"),
    "scope": ("task", "pool"),
    "uploadCondition": ("tasksuccess", "taskfailure", "taskcompletion"),
    "disableTasks": ("requeue", "terminate", "wait"),
    "nodeRebootOption": ("requeue", "terminate", "taskcompletion", "retaineddata"),
    "nodeFillType": ("spread", "pack"),
    "targetNodeCommunicationMode": ("default", "classic", "simplified"),
    "dependencyAction": ("satisfy", "block"),
    "jobAction": ("none", "disable", "terminate"),
}


def lenient(value: Any, key: str = "") -> Any:
    """Accept what Batch accepts: numbers as numeric strings, booleans as strings, enums in any
    case; return the canonical form."""
    if isinstance(value, dict):
        return {k: lenient(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [lenient(v, key) for v in value]
    if key in INT_KEYS and isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise invalid(key, value, "The value is not a valid integer.") from None
    if key in INT_KEYS and isinstance(value, float) and value.is_integer():
        return int(value)
    if key in BOOL_KEYS and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if key in ENUMS and isinstance(value, str):
        for canonical in ENUMS[key]:
            if canonical.lower() == value.lower():
                return canonical
        raise invalid(key, value, f"Allowed values: {', '.join(ENUMS[key])}.")
    return value


def check_id(prop: str, value: Any) -> str:
    if value is None:
        raise missing(prop)
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid(
            prop,
            value,
            "Ids may contain letters, digits, hyphens and underscores, up to 64 characters.",
        )
    return value


def check_int(prop: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(prop, value, "The value must be an integer.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise invalid(prop, value, f"The value must be between {low} and {high}.")
