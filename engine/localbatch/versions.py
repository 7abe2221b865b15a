"""The Batch data-plane api-versions the local service speaks, and where they differ.

Every stable version from 2020-09-01.12.0 to 2025-06-01 is accepted. Older clients ignore
response properties they don't know, so one superset of shapes (the current definition)
serves them; this module holds only the differences a client would notice, distilled by
comparing each version's published definition and the SDK generation that pinned it
(azure-batch 10.0.0 to 15.1.0 for Python, @azure/batch 10.2.0 for JavaScript) with the
current definition:

- operations an older version has and the current one dropped (`OPERATIONS`, `last` set):
  the account-wide lifetime statistics (until 2022-10-01.16.0) and a Cloud Services node's
  RDP file (until 2024-02-01.19.0);
- request properties an older client sends that the current definition dropped
  (`REMOVED_PROPERTIES`): `cloudServiceConfiguration` and `applicationLicenses` on every pool
  specification (pools, auto pools of jobs and of job schedules), until 2024-02-01.19.0;
- an enum value whose spelling changed (`ENUM_SPELLINGS`): the ephemeral OS disk placement,
  `CacheDisk` until 2024-02-01.19.0, `cachedisk` since;
- query parameter names whose spelling changed (`QUERY_NAMES`): `timeout` became `timeOut`
  and `starttime` became `startTime` in 2024-07-01.20.0 (Batch reads names in any case).

Operations and properties that only newer versions have need nothing: an older client never
sends them. Everything here is pure: the HTTP layer calls `check_api_version`,
`operation_refusal`, `normalize_query`, `request_adapter` and `response_adapter`.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .resources import BatchError


@dataclass(frozen=True, order=True)
class ApiVersion:
    """One published api-version; ordered by release date."""

    released: dt.date
    text: str = field(compare=False)
    clients: tuple[str, ...] = field(default=(), compare=False)  # generations that pin it

    def __str__(self) -> str:
        return self.text


def _v(text: str, *clients: str) -> ApiVersion:
    return ApiVersion(dt.date.fromisoformat(text[:10]), text, clients)


VERSIONS: tuple[ApiVersion, ...] = (
    _v("2020-09-01.12.0", "azure-batch 10.0.0 (Python)"),
    _v("2021-01-01.13.0"),  # published; no Python generation pinned it (11.0.0 went 12 to 14)
    _v("2021-06-01.14.0", "azure-batch 11.0.0 (Python; Microsoft's Python quickstart)"),
    _v("2022-01-01.15.0", "azure-batch 12.0.0 (Python; Microsoft's azure-batch-samples)"),
    _v("2022-10-01.16.0", "azure-batch 13.0.0 (Python)", "@azure/batch 10.2.0 (JavaScript)"),
    _v("2023-05-01.17.0", "azure-batch 14.0.0 (Python)"),
    _v("2023-11-01.18.0", "azure-batch 14.1.0 (Python)"),
    _v("2024-02-01.19.0", "azure-batch 14.2.0, 15.0.0b1 (Python)"),
    _v("2024-07-01.20.0", "azure-batch 15.0.0b2 (Python)"),
    _v("2025-06-01", "azure-batch 15.1.0 (Python)"),
)
OLDEST = VERSIONS[0]
CURRENT = VERSIONS[-1]
# 2025-06-01 dropped the ".21.0" suffix; the name with it is what bspec's reference file uses.
ALIASES: dict[str, ApiVersion] = {"2025-06-01.21.0": CURRENT}
_BY_TEXT = {v.text: v for v in VERSIONS} | ALIASES
_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}(\.\d+\.\d+)?")


def version(text: str) -> ApiVersion:
    """A known version by its text (for tables and tests); KeyError if not published."""
    return _BY_TEXT[text]


def parse_version(text: str | None) -> ApiVersion | None:
    """The published version `text` names, or None (malformed, or not a published version)."""
    if text is None or not _SHAPE.fullmatch(text.strip()):
        return None
    return _BY_TEXT.get(text.strip())


def supported(
    value: ApiVersion | str | None, low: ApiVersion = OLDEST, high: ApiVersion = CURRENT
) -> bool:
    """Whether the service accepts this version, within the range it was started with."""
    parsed = parse_version(value) if not isinstance(value, ApiVersion) else value
    return parsed is not None and low <= parsed <= high


def check_api_version(
    value: str | None, low: ApiVersion = OLDEST, high: ApiVersion = CURRENT
) -> ApiVersion:
    """The request's version, or Batch's error: missing parameter, or unsupported version."""
    if not value:
        raise BatchError(
            400,
            "MissingRequiredQueryParameter",
            "A query parameter that's mandatory for this request is not specified.",
            {"QueryParameterName": "api-version"},
        )
    parsed = parse_version(value)
    if parsed is None or not low <= parsed <= high:
        raise BatchError(
            400,
            "UnsupportedRequestVersion",
            f"The specified api-version is not supported; this service accepts the published "
            f"versions {low} to {high}.",
            {"QueryParameterName": "api-version", "QueryParameterValue": value},
        )
    return parsed


def _between(v: ApiVersion, first: str | None, last: str | None) -> bool:
    return (first is None or version(first) <= v) and (last is None or v <= version(last))


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class OperationSpan:
    """An operation that not every supported version has (`first`/`last`: None = open)."""

    method: str
    path: str  # the definition's template, e.g. /pools/{poolId}/nodes/{nodeId}/rdp
    operation_id: str  # the current id, or the last id it had
    first: str | None
    last: str | None
    why: str  # for people: what it was and why the local service answers as it does

    def exists_in(self, v: ApiVersion) -> bool:
        return _between(v, self.first, self.last)

    def matches(self, method: str, path: str) -> bool:
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(self.path))
        return method.upper() == self.method and re.fullmatch(pattern, path) is not None


OPERATIONS: tuple[OperationSpan, ...] = (
    OperationSpan(
        "GET",
        "/lifetimepoolstats",
        "Pool_GetAllLifetimeStatistics",
        None,
        "2022-10-01.16.0",
        "Account-wide pool usage and resource statistics; removed in 2023-05-01.17.0.",
    ),
    OperationSpan(
        "GET",
        "/lifetimejobstats",
        "Job_GetAllLifetimeStatistics",
        None,
        "2022-10-01.16.0",
        "Account-wide job statistics; removed in 2023-05-01.17.0.",
    ),
    OperationSpan(
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/rdp",
        "ComputeNode_GetRemoteDesktop",
        None,
        "2024-02-01.19.0",
        "The RDP file of a Cloud Services node; removed with cloudServiceConfiguration in "
        "2024-07-01.20.0. The local service has no Cloud Services nodes.",
    ),
    OperationSpan(
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/extensions",
        "Nodes_ListNodeExtensions",
        "2021-06-01.14.0",
        None,
        "VM extensions on a node (first pinned by azure-batch 11.0.0).",
    ),
    OperationSpan(
        "GET",
        "/pools/{poolId}/nodes/{nodeId}/extensions/{extensionName}",
        "Nodes_GetNodeExtension",
        "2021-06-01.14.0",
        None,
        "One VM extension on a node (first pinned by azure-batch 11.0.0).",
    ),
    OperationSpan(
        "POST",
        "/pools/{poolId}/nodes/{nodeId}/deallocate",
        "Nodes_DeallocateNode",
        "2024-07-01.20.0",
        None,
        "Deallocate a node.",
    ),
    OperationSpan(
        "POST",
        "/pools/{poolId}/nodes/{nodeId}/start",
        "Nodes_StartNode",
        "2024-07-01.20.0",
        None,
        "Start a deallocated node.",
    ),
)


def old_operation(method: str, path: str) -> OperationSpan | None:
    """The operation a path names that the current definition no longer has, if any."""
    for op in OPERATIONS:
        if op.last is not None and op.matches(method, path):
            return op
    return None


def operation_refusal(v: ApiVersion, method: str, path: str) -> BatchError | None:
    """Batch-style refusal for an operation this version has but the local service does not
    (the dropped operations); None when the path is not one of them or the version predates
    or postdates it (then the router answers as for any unknown path)."""
    op = old_operation(method, path)
    if op is None or not op.exists_in(v):
        return None
    return BatchError(
        501,
        "OperationNotSupported",
        f"The operation {op.operation_id} ({op.method} {op.path}) of api-version {v} is not "
        "supported by the local Batch service.",
        {"OperationId": op.operation_id, "Reason": op.why},
    )


# ---------------------------------------------------------------------------- query names

# Batch reads query parameter names in any case; handlers read the current spelling.
QUERY_NAMES: dict[str, str] = {
    name.lower(): name
    for name in (
        "api-version",
        "timeOut",
        "maxresults",
        "$filter",
        "$select",
        "$expand",
        "recursive",
        "force",
        "startTime",
        "endtime",
    )
}


def normalize_query(query: Mapping[str, str]) -> dict[str, str]:
    """The query with every known name in the current definition's spelling (`timeout` of
    azure-batch 10-14 becomes `timeOut`); unknown names are left as sent."""
    return {QUERY_NAMES.get(k.lower(), k): v for k, v in query.items()}


# ---------------------------------------------------------------------------- bodies

# Where a pool specification sits in each operation's request and response bodies.
POOL_SPEC_ROOTS: dict[str, tuple[str, ...]] = {
    "Pools_CreatePool": ("",),
    "Pools_GetPool": ("",),
    "Pools_ListPools": ("value[]",),
    "Jobs_CreateJob": ("poolInfo.autoPoolSpecification.pool",),
    "Jobs_UpdateJob": ("poolInfo.autoPoolSpecification.pool",),
    "Jobs_ReplaceJob": ("poolInfo.autoPoolSpecification.pool",),
    "Jobs_GetJob": ("poolInfo.autoPoolSpecification.pool",),
    "Jobs_ListJobs": ("value[].poolInfo.autoPoolSpecification.pool",),
    "Jobs_ListJobsFromSchedule": ("value[].poolInfo.autoPoolSpecification.pool",),
    "JobSchedules_CreateJobSchedule": ("jobSpecification.poolInfo.autoPoolSpecification.pool",),
    "JobSchedules_UpdateJobSchedule": ("jobSpecification.poolInfo.autoPoolSpecification.pool",),
    "JobSchedules_ReplaceJobSchedule": ("jobSpecification.poolInfo.autoPoolSpecification.pool",),
    "JobSchedules_GetJobSchedule": ("jobSpecification.poolInfo.autoPoolSpecification.pool",),
    "JobSchedules_ListJobSchedules": (
        "value[].jobSpecification.poolInfo.autoPoolSpecification.pool",
    ),
}


@dataclass(frozen=True)
class RemovedProperty:
    """A pool-specification property older versions define and the current one dropped."""

    name: str
    last: str  # the last version that defines it
    empty_ok: bool  # an empty value asks for nothing, so it is dropped rather than refused
    why: str


REMOVED_PROPERTIES: tuple[RemovedProperty, ...] = (
    RemovedProperty(
        "cloudServiceConfiguration",
        "2024-02-01.19.0",
        False,
        "Cloud Services pools: Batch retired them on 29 February 2024 and removed the "
        "property in 2024-07-01.20.0; the local service runs nodes as local processes, as "
        "virtualMachineConfiguration pools.",
    ),
    RemovedProperty(
        "applicationLicenses",
        "2024-02-01.19.0",
        True,
        "Pay-per-use application licenses (for example maya, vray): the local service has "
        "none to give; removed in 2024-07-01.20.0.",
    ),
)


@dataclass(frozen=True)
class EnumSpelling:
    """An enum value whose spelling changed: `old` until `last`, `new` after."""

    path: str  # relative to a pool specification
    old: str
    new: str
    last: str


ENUM_SPELLINGS: tuple[EnumSpelling, ...] = (
    EnumSpelling(
        "virtualMachineConfiguration.osDisk.ephemeralOSDiskSettings.placement",
        "CacheDisk",
        "cachedisk",
        "2024-02-01.19.0",
    ),
)


def _nodes(body: Any, path: str) -> list[dict[str, Any]]:
    """The objects at a dotted path (`a[].b` walks each item of list `a`)."""
    found: list[Any] = [body]
    for part in [p for p in path.split(".") if p]:
        many = part.endswith("[]")
        key = part.removesuffix("[]")
        nxt: list[Any] = []
        for node in found:
            if isinstance(node, dict) and key in node:
                value = node[key]
                if many and isinstance(value, list):
                    nxt.extend(value)
                elif not many:
                    nxt.append(value)
        found = nxt
    return [n for n in found if isinstance(n, dict)]


def _respell(spec: dict[str, Any], path: str, old: str, new: str) -> None:
    *parents, leaf = path.split(".")
    for node in _nodes(spec, ".".join(parents)):
        value = node.get(leaf)
        if isinstance(value, str) and value.lower() == old.lower():
            node[leaf] = new


def request_adapter(v: ApiVersion, operation_id: str, body: Any) -> Any:
    """The request body as the current definition reads it, or Batch's error naming the
    property the local service cannot honour. The input is not changed."""
    roots = POOL_SPEC_ROOTS.get(operation_id)
    if not roots or not isinstance(body, dict):
        return body
    out = copy.deepcopy(body)
    for root in roots:
        for spec in _nodes(out, root):
            prefix = f"{root.replace('[]', '')}." if root else ""
            for prop in REMOVED_PROPERTIES:
                if prop.name not in spec:
                    continue
                value = spec[prop.name]
                defined = v <= version(prop.last)
                if defined and prop.empty_ok and value in (None, [], {}):
                    del spec[prop.name]
                    continue
                reason = (
                    prop.why
                    if defined
                    else f"The property is not part of api-version {v} "
                    f"(the last version that defines it is {prop.last})."
                )
                raise BatchError(
                    400,
                    "UnsupportedProperty",
                    f"The property {prefix}{prop.name} is not supported by the local Batch "
                    "service.",
                    {"PropertyName": prefix + prop.name, "Reason": reason},
                )
            for spelling in ENUM_SPELLINGS:
                _respell(spec, spelling.path, spelling.old, spelling.new)
    return out


def response_adapter(v: ApiVersion, operation_id: str, body: Any) -> Any:
    """The response body as version `v`'s service would write it (enum spellings of that
    version); properties newer than `v` stay, as older clients ignore what they don't know.
    The input is not changed."""
    roots = POOL_SPEC_ROOTS.get(operation_id)
    wanted = [s for s in ENUM_SPELLINGS if v <= version(s.last)]
    if not roots or not wanted or not isinstance(body, dict):
        return body
    out = copy.deepcopy(body)
    for root in roots:
        for spec in _nodes(out, root):
            for spelling in wanted:
                _respell(spec, spelling.path, spelling.new, spelling.old)
    return out


def differences(v: ApiVersion) -> tuple[str, ...]:
    """What a client of version `v` meets that differs from the current definition, one line
    each, for docs/local-target.md and for people."""
    lines = [
        f"{op.method} {op.path} ({op.operation_id}): refused with 501 OperationNotSupported"
        for op in OPERATIONS
        if op.last is not None and op.exists_in(v)
    ]
    if v <= version(REMOVED_PROPERTIES[0].last):
        for prop in REMOVED_PROPERTIES:
            answer = "dropped when empty, else refused" if prop.empty_ok else "refused"
            lines.append(f"pool specification {prop.name}: {answer} (400 UnsupportedProperty)")
    lines += [
        f"{s.path.rsplit('.', 1)[-1]} {s.old!r}: read as {s.new!r}, answered as {s.old!r}"
        for s in ENUM_SPELLINGS
        if v <= version(s.last)
    ]
    if v < version("2024-07-01.20.0"):
        lines.append("query names timeout and starttime: read as timeOut and startTime")
    return tuple(lines)
