"""ISO 8601 durations as Batch reads and writes them (PT30M, P1D, P10675199DT2H48M5.4775807S).

One parser and one formatter for the spec, the providers and the local service: the spec
reports a bad value with its line, the providers read what Batch returns, the local service
checks what clients send. Weeks are accepted (the spec allows P1W); years and months are not,
since their length depends on the calendar.
"""

from __future__ import annotations

import re
from datetime import timedelta

# TimeSpan.MaxValue: what Batch shows for "unlimited".
MAX_DURATION = "P10675199DT2H48M5.4775807S"
MAX_SECONDS = 10675199 * 86400 + 2 * 3600 + 48 * 60 + 5.4775807

_NUMBER = r"(\d+(?:\.\d+)?)"
_PATTERN = re.compile(
    rf"^P(?:{_NUMBER}W)?(?:{_NUMBER}D)?(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?$",
    re.IGNORECASE,
)


def parse_seconds(text: str) -> float:
    """Seconds in an ISO 8601 duration; ValueError with a readable message when it is not one."""
    value = text.strip()
    m = _PATTERN.match(value)
    # "P" and "PT" match the pattern with nothing in them; "P1DT" has a T with nothing after it.
    if not m or not any(m.groups()) or value.upper().endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration like PT30M, P1D or PT1H30M")
    weeks, days, hours, minutes, secs = (float(g) if g else 0.0 for g in m.groups())
    return (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * 60 + secs


def parse(text: str) -> timedelta:
    """An ISO 8601 duration as a timedelta (capped at what a timedelta can hold)."""
    return timedelta(seconds=min(parse_seconds(text), MAX_SECONDS))


def is_unlimited(seconds: float) -> bool:
    """Whether a duration is Batch's "unlimited" (TimeSpan.MaxValue, give or take rounding)."""
    return seconds >= MAX_SECONDS - 1


def format(value: timedelta | float) -> str:
    """A duration as the shortest ISO 8601 text Batch accepts (P1D, PT1H30M, PT0.5S, PT0S)."""
    total = value.total_seconds() if isinstance(value, timedelta) else float(value)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    text = "P" + (f"{int(days)}D" if days else "")
    clock = (f"{int(hours)}H" if hours else "") + (f"{int(minutes)}M" if minutes else "")
    if secs:
        clock += f"{secs:.7f}".rstrip("0").rstrip(".") + "S"
    if clock:
        text += "T" + clock
    return text if text != "P" else "PT0S"
