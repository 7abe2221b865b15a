"""Which api-versions the service answers, and where a request's version changes the answer.

The table of published versions and their differences lives in `..versions` (pure); this
module holds the range the service was started with (`--min-api-version`,
`--max-api-version`) and applies the table to one request.
"""

from __future__ import annotations

from typing import Any

from .. import versions
from ..resources import BatchError
from ..versions import ApiVersion


def parse_range_end(text: str) -> ApiVersion:
    """A `--min/--max-api-version` value; ValueError when it is not a published version."""
    parsed = versions.parse_version(text)
    if parsed is None:
        known = ", ".join(v.text for v in versions.VERSIONS)
        raise ValueError(f"{text!r} is not a published Batch api-version (known: {known})")
    return parsed


class ApiVersions:
    def __init__(self, low: str = versions.OLDEST.text, high: str = versions.CURRENT.text) -> None:
        self.low = parse_range_end(low)
        self.high = parse_range_end(high)
        self.range = [low, high]

    def check(self, query: dict[str, str]) -> ApiVersion:
        """The request's api-version, or Batch's error when it is missing or outside."""
        return versions.check_api_version(query.get("api-version"), self.low, self.high)

    @staticmethod
    def refusal(v: ApiVersion, method: str, raw_path: str) -> BatchError | None:
        """Batch's refusal of an operation this version has and the current one dropped."""
        return versions.operation_refusal(v, method, raw_path)

    @staticmethod
    def request(v: ApiVersion, op: str, body: Any) -> Any:
        return versions.request_adapter(v, op, body)

    @staticmethod
    def response(v: ApiVersion, op: str, body: Any) -> Any:
        return versions.response_adapter(v, op, body)
