"""The formula language's run-time values and how Batch prints them in `results`.

double is a Python float, string a str; doubleVec, timestamp and timeinterval have their own
small classes so the evaluator can tell them apart with one `type(x) is` test. Times count
.NET ticks (100 ns), the unit of TimeInterval_100ns, so interval arithmetic stays exact.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

TICKS_PER_SECOND = 10_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class DoubleVec(tuple[float, ...]):
    """A doubleVec: an immutable sequence of doubles."""

    __slots__ = ()


@dataclass(frozen=True, slots=True, order=True)
class TimeInterval:
    ticks: int


@dataclass(frozen=True, slots=True, order=True)
class Timestamp:
    """A UTC instant, in ticks since the Unix epoch."""

    ticks: int

    @staticmethod
    def from_datetime(when: dt.datetime) -> Timestamp:
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        delta = when - _EPOCH
        return Timestamp(
            (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10
        )

    def to_datetime(self) -> dt.datetime:
        return _EPOCH + dt.timedelta(microseconds=self.ticks // 10)

    @property
    def seconds(self) -> float:
        return self.ticks / TICKS_PER_SECOND


Value = float | DoubleVec | str | TimeInterval | Timestamp

INTERVALS: dict[str, int] = {
    "TimeInterval_Zero": 0,
    "TimeInterval_100ns": 1,
    "TimeInterval_Microsecond": 10,
    "TimeInterval_Millisecond": 10_000,
    "TimeInterval_Second": TICKS_PER_SECOND,
    "TimeInterval_Minute": 60 * TICKS_PER_SECOND,
    "TimeInterval_Hour": 3_600 * TICKS_PER_SECOND,
    "TimeInterval_Day": 86_400 * TICKS_PER_SECOND,
    "TimeInterval_Week": 7 * 86_400 * TICKS_PER_SECOND,
    "TimeInterval_Year": 365 * 86_400 * TICKS_PER_SECOND,
}

# Timestamp members (.NET DateTime: DayOfWeek counts Sunday as 0, Monday as 1).
MEMBERS = ("year", "month", "day", "weekday", "hour", "minute", "second")


def member(when: Timestamp, name: str) -> float:
    d = when.to_datetime()
    if name == "weekday":
        return float((d.weekday() + 1) % 7)
    return float(getattr(d, name))


def type_name(value: Value) -> str:
    if type(value) is float:
        return "double"
    if type(value) is DoubleVec:
        return "doubleVec"
    if type(value) is str:
        return "string"
    if type(value) is Timestamp:
        return "timestamp"
    return "timeinterval"


def format_double(x: float) -> str:
    """.NET's shortest round-trip form: `1`, `0.5`, `1E+15`, `1E-05`, `NaN`."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    if x.is_integer() and abs(x) < 1e15:
        return str(int(x)) if x or math.copysign(1.0, x) > 0 else "-0"
    text = repr(x)
    if "e" not in text and abs(x) >= 1e15:
        mantissa, exponent = f"{x:.16e}".split("e")
        text = f"{float(mantissa)!r}e{exponent}"
        text = text.replace(".0e", "e")
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").rjust(2, "0")
        text = f"{mantissa}E{sign}{digits}"
    return text


def format_interval(ticks: int) -> str:
    """.NET TimeSpan's constant format: `[-][d.]hh:mm:ss[.fffffff]`."""
    sign = "-" if ticks < 0 else ""
    ticks = abs(ticks)
    seconds, fraction = divmod(ticks, TICKS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    days, hour = divmod(hours, 24)
    text = f"{sign}{f'{days}.' if days else ''}{hour:02d}:{minute:02d}:{second:02d}"
    return text + (f".{fraction:07d}" if fraction else "")


def format_value(value: Value) -> str:
    """A value as `results` shows it: `1`, `[1,2,3]`, `2016-10-13T19:18:47.805Z`, `requeue`."""
    if type(value) is float:
        return format_double(value)
    if type(value) is DoubleVec:
        return "[" + ",".join(format_double(x) for x in value) + "]"
    if type(value) is str:
        return value
    if type(value) is Timestamp:
        d = value.to_datetime()
        return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond // 1000:03d}Z"
    assert type(value) is TimeInterval
    return format_interval(value.ticks)
