"""Which api-versions the service answers, and Batch's errors for the others."""

from __future__ import annotations

import re

from ..resources import BatchError


def api_key(version: str) -> tuple[int, ...]:
    """An api-version's date as a comparable tuple; ValueError when it is not one."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:\.(\d+)\.(\d+))?", version.strip())
    if not m:
        raise ValueError(version)
    return (int(m[1]), int(m[2]), int(m[3]))


class ApiVersions:
    def __init__(self, low: str, high: str) -> None:
        self.low = api_key(low)
        self.high = api_key(high)
        self.range = [low, high]

    def check(self, query: dict[str, str]) -> str:
        """The request's api-version, or Batch's error when it is missing or outside."""
        version = query.get("api-version")
        if not version:
            raise BatchError(
                400,
                "MissingRequiredQueryParameter",
                "A query parameter that's mandatory for this request is not specified.",
                {"QueryParameterName": "api-version"},
            )
        try:
            key = api_key(version)
        except ValueError:
            key = (0,)
        if not self.low <= key <= self.high:
            raise BatchError(
                400,
                "UnsupportedRequestVersion",
                "The specified api-version is "
                f"not supported; this service accepts {self.range[0]} to "
                f"{self.range[1]}.",
                {"QueryParameterName": "api-version", "QueryParameterValue": version},
            )
        return version
