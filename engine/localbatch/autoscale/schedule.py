"""Batch's timing rules around evaluation, as pure functions of the service clock.

Batch evaluates at once when autoscale is enabled (pool creation or enableautoscale), then
every `autoScaleEvaluationInterval` from that moment (default 15 minutes, 5 minutes to 168
hours, else 400 InvalidPropertyValue); a new interval restarts the schedule from the request;
enableautoscale may come at most once per 30 seconds on a pool (TooManyEnableAutoScaleRequests).
"""

from __future__ import annotations

import datetime as dt

DEFAULT_INTERVAL = dt.timedelta(minutes=15)
MIN_INTERVAL = dt.timedelta(minutes=5)
MAX_INTERVAL = dt.timedelta(hours=168)
ENABLE_SPACING = dt.timedelta(seconds=30)


def interval_in_range(interval: dt.timedelta) -> bool:
    return MIN_INTERVAL <= interval <= MAX_INTERVAL


def enable_too_soon(last_enable: dt.datetime | None, now: dt.datetime) -> bool:
    """Whether an enableautoscale at `now` comes within 30 s of the pool's previous one."""
    return last_enable is not None and now - last_enable < ENABLE_SPACING


def next_evaluation(
    schedule_start: dt.datetime, interval: dt.timedelta, now: dt.datetime
) -> dt.datetime:
    """The first scheduled evaluation strictly after `now` (start + k * interval, k >= 1)."""
    if now < schedule_start:
        return schedule_start + interval
    k = (now - schedule_start) // interval + 1
    return schedule_start + k * interval


def evaluations_due(
    schedule_start: dt.datetime,
    interval: dt.timedelta,
    last_evaluation: dt.datetime,
    now: dt.datetime,
) -> bool:
    """Whether a scheduled evaluation fell in (last_evaluation, now]: a stepped clock that
    jumps over several only owes one (the formula reads the present, not the past)."""
    return next_evaluation(schedule_start, interval, last_evaluation) <= now
