"""bspec.common: the duration parser and formatter both sides share."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bspec.common import durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT30M", 1800.0),
        ("P1D", 86400.0),
        ("pt1h30m", 5400.0),
        ("P1W", 7 * 86400.0),
        ("PT0.5S", 0.5),
        ("P1DT2H3M4.5S", 93784.5),
    ],
)
def test_parse_seconds(text: str, seconds: float) -> None:
    assert durations.parse_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "1D", "PT1X", "P1Y", "P1M", "PT-1S"])
def test_rejects_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="not an ISO 8601 duration"):
        durations.parse_seconds(text)


def test_unlimited_is_batch_max_and_fits_a_timedelta() -> None:
    secs = durations.parse_seconds(durations.MAX_DURATION)
    assert durations.is_unlimited(secs)
    assert durations.parse(durations.MAX_DURATION) > timedelta(days=10_000_000)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(minutes=5), "PT5M"),
        (timedelta(days=7), "P7D"),
        (timedelta(hours=1, minutes=30), "PT1H30M"),
        (timedelta(seconds=0.5), "PT0.5S"),
        (timedelta(0), "PT0S"),
        (93784.5, "P1DT2H3M4.5S"),
    ],
)
def test_format_round_trips(value: timedelta | float, text: str) -> None:
    assert durations.format(value) == text
    expected = value.total_seconds() if isinstance(value, timedelta) else value
    assert durations.parse_seconds(text) == expected
