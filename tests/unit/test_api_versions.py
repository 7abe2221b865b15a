"""The api-version table and its pure adapters (bspec.localbatch.versions)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from bspec.localbatch import versions
from bspec.localbatch.resources import BatchError
from bspec.localbatch.versions import (
    CURRENT,
    OLDEST,
    VERSIONS,
    check_api_version,
    normalize_query,
    operation_refusal,
    parse_version,
    request_adapter,
    response_adapter,
    supported,
    version,
)

PUBLISHED = [
    "2020-09-01.12.0",
    "2021-01-01.13.0",
    "2021-06-01.14.0",
    "2022-01-01.15.0",
    "2022-10-01.16.0",
    "2023-05-01.17.0",
    "2023-11-01.18.0",
    "2024-02-01.19.0",
    "2024-07-01.20.0",
    "2025-06-01",
]
BEFORE_20 = PUBLISHED[:8]
FROM_20 = PUBLISHED[8:]


def test_the_table_lists_every_published_version_in_order() -> None:
    assert [v.text for v in VERSIONS] == PUBLISHED
    assert list(VERSIONS) == sorted(VERSIONS)
    assert OLDEST.text == "2020-09-01.12.0"
    assert CURRENT.text == "2025-06-01"


@pytest.mark.parametrize("text", PUBLISHED)
def test_every_published_version_parses_and_is_supported(text: str) -> None:
    parsed = parse_version(text)
    assert parsed is not None and parsed.text == text
    assert supported(text)
    assert check_api_version(text) is parsed


def test_the_current_version_answers_to_its_old_suffixed_name() -> None:
    assert parse_version("2025-06-01.21.0") is CURRENT
    assert check_api_version("2025-06-01.21.0") is CURRENT


@pytest.mark.parametrize(
    "text",
    [
        "2019-08-01.10.0",  # before the range
        "2020-03-01.11.0",  # before the range
        "2023-05-01.16.0",  # real date, wrong service number
        "2024-07-01",  # the suffix is only optional on 2025-06-01
        "2026-01-01",  # not published
        "latest",
        "2025-06-01; drop",
        "",
    ],
)
def test_other_versions_get_batch_error(text: str) -> None:
    assert parse_version(text) is None
    assert not supported(text)
    with pytest.raises(BatchError) as caught:
        check_api_version(text)
    assert caught.value.status == 400
    if text:
        assert caught.value.code == "UnsupportedRequestVersion"
        assert caught.value.values["QueryParameterValue"] == text
    else:
        assert caught.value.code == "MissingRequiredQueryParameter"


def test_a_missing_version_is_a_missing_parameter() -> None:
    with pytest.raises(BatchError) as caught:
        check_api_version(None)
    assert caught.value.code == "MissingRequiredQueryParameter"
    assert caught.value.values == {"QueryParameterName": "api-version"}


def test_the_service_can_narrow_the_range_it_accepts() -> None:
    low, high = version("2023-05-01.17.0"), CURRENT
    assert supported("2023-05-01.17.0", low, high)
    assert not supported("2022-10-01.16.0", low, high)
    with pytest.raises(BatchError) as caught:
        check_api_version("2022-10-01.16.0", low, high)
    assert "2023-05-01.17.0 to 2025-06-01" in caught.value.message


def test_every_version_names_the_clients_that_pin_it_but_13() -> None:
    assert all(v.clients for v in VERSIONS if v.text != "2021-01-01.13.0")
    assert not version("2021-01-01.13.0").clients


# ---------------------------------------------------------------------------- operations


@pytest.mark.parametrize(
    ("method", "path", "last"),
    [
        ("GET", "/lifetimepoolstats", "2022-10-01.16.0"),
        ("GET", "/lifetimejobstats", "2022-10-01.16.0"),
        ("GET", "/pools/p1/nodes/tvm-1/rdp", "2024-02-01.19.0"),
    ],
)
def test_dropped_operations_are_refused_by_name_where_they_exist(
    method: str, path: str, last: str
) -> None:
    for v in VERSIONS:
        refusal = operation_refusal(v, method, path)
        if v <= version(last):
            assert refusal is not None, v
            assert refusal.status == 501
            assert refusal.code == "OperationNotSupported"
            assert "not supported by the local Batch service" in refusal.message
            assert str(v) in refusal.message
        else:
            assert refusal is None, v


def test_current_operations_are_never_refused_for_the_version() -> None:
    for v in VERSIONS:
        assert operation_refusal(v, "GET", "/pools") is None
        assert operation_refusal(v, "POST", "/pools/p/nodes/n/start") is None
        assert operation_refusal(v, "GET", "/pools/p/nodes/n/extensions") is None
        assert operation_refusal(v, "POST", "/lifetimepoolstats") is None  # wrong verb
        assert operation_refusal(v, "GET", "/pools/p/nodes/n/rdp/x") is None


def test_newer_operations_record_their_first_version() -> None:
    spans = {op.operation_id: op for op in versions.OPERATIONS}
    assert not spans["Nodes_StartNode"].exists_in(version("2024-02-01.19.0"))
    assert spans["Nodes_StartNode"].exists_in(CURRENT)
    assert spans["Nodes_ListNodeExtensions"].exists_in(version("2021-06-01.14.0"))
    assert not spans["Nodes_ListNodeExtensions"].exists_in(OLDEST)


# ---------------------------------------------------------------------------- query names


def test_query_names_take_the_current_spelling_in_any_case() -> None:
    sent = {"api-version": "2022-01-01.15.0", "timeout": "30", "MaxResults": "5", "x": "1"}
    assert normalize_query(sent) == {
        "api-version": "2022-01-01.15.0",
        "timeOut": "30",
        "maxresults": "5",
        "x": "1",
    }
    assert normalize_query({"starttime": "a", "ENDTIME": "b"}) == {"startTime": "a", "endtime": "b"}


# ---------------------------------------------------------------------------- request bodies

CLOUD_SERVICE = {"osFamily": "6", "osVersion": "*"}


def _auto_pool(spec: dict[str, Any]) -> dict[str, Any]:
    return {"autoPoolSpecification": {"poolLifetimeOption": "job", "pool": spec}}


CASES = [
    ("Pools_CreatePool", lambda spec: {"id": "p", **spec}, ""),
    ("Jobs_CreateJob", lambda s: {"id": "j", "poolInfo": _auto_pool(s)}, "poolInfo."),
    ("Jobs_UpdateJob", lambda s: {"poolInfo": _auto_pool(s)}, "poolInfo."),
    ("Jobs_ReplaceJob", lambda s: {"poolInfo": _auto_pool(s)}, "poolInfo."),
    (
        "JobSchedules_CreateJobSchedule",
        lambda s: {"id": "s", "jobSpecification": {"poolInfo": _auto_pool(s)}},
        "jobSpecification.poolInfo.",
    ),
    (
        "JobSchedules_UpdateJobSchedule",
        lambda s: {"jobSpecification": {"poolInfo": _auto_pool(s)}},
        "jobSpecification.poolInfo.",
    ),
    (
        "JobSchedules_ReplaceJobSchedule",
        lambda s: {"jobSpecification": {"poolInfo": _auto_pool(s)}},
        "jobSpecification.poolInfo.",
    ),
]


@pytest.mark.parametrize(("op", "build", "prefix"), CASES)
@pytest.mark.parametrize("text", PUBLISHED)
def test_cloud_service_configuration_is_refused_by_name(
    op: str, build: Any, prefix: str, text: str
) -> None:
    body = build({"vmSize": "standard_d1", "cloudServiceConfiguration": CLOUD_SERVICE})
    with pytest.raises(BatchError) as caught:
        request_adapter(version(text), op, body)
    error = caught.value
    assert (error.status, error.code) == (400, "UnsupportedProperty")
    auto = "autoPoolSpecification.pool." if prefix else ""
    assert error.values["PropertyName"] == f"{prefix}{auto}cloudServiceConfiguration"
    if text in FROM_20:
        assert "not part of api-version" in error.values["Reason"]
    else:
        assert "retired" in error.values["Reason"]


@pytest.mark.parametrize(("op", "build", "prefix"), CASES)
def test_empty_application_licenses_are_dropped_where_the_version_defines_them(
    op: str, build: Any, prefix: str
) -> None:
    body = build({"vmSize": "standard_d1", "applicationLicenses": []})
    before = copy.deepcopy(body)
    for text in BEFORE_20:
        out = request_adapter(version(text), op, body)
        assert "applicationLicenses" not in str(out)
        assert body == before  # the input is not changed
    with pytest.raises(BatchError) as caught:
        request_adapter(CURRENT, op, body)
    assert caught.value.code == "UnsupportedProperty"


def test_application_licenses_asked_for_are_refused_by_name() -> None:
    body = {"id": "p", "vmSize": "standard_d1", "applicationLicenses": ["maya"]}
    with pytest.raises(BatchError) as caught:
        request_adapter(version("2022-01-01.15.0"), "Pools_CreatePool", body)
    assert caught.value.values["PropertyName"] == "applicationLicenses"
    assert "licenses" in caught.value.values["Reason"]


def test_the_old_spelling_of_the_ephemeral_disk_placement_is_read() -> None:
    vm = {"osDisk": {"ephemeralOSDiskSettings": {"placement": "CacheDisk"}}}
    body = {"id": "p", "virtualMachineConfiguration": vm}
    out = request_adapter(version("2021-06-01.14.0"), "Pools_CreatePool", body)
    assert out["virtualMachineConfiguration"]["osDisk"]["ephemeralOSDiskSettings"] == {
        "placement": "cachedisk"
    }
    assert vm["osDisk"]["ephemeralOSDiskSettings"]["placement"] == "CacheDisk"


def test_bodies_of_other_operations_pass_unchanged() -> None:
    body = {"id": "t", "commandLine": "echo", "cloudServiceConfiguration": CLOUD_SERVICE}
    assert request_adapter(OLDEST, "Tasks_CreateTask", body) is body
    assert request_adapter(OLDEST, "Pools_CreatePool", None) is None
    plain = {"id": "p", "vmSize": "standard_d1", "virtualMachineConfiguration": {}}
    assert request_adapter(CURRENT, "Pools_CreatePool", plain) == plain


# ---------------------------------------------------------------------------- responses


def _pool(placement: str) -> dict[str, Any]:
    vm = {"osDisk": {"ephemeralOSDiskSettings": {"placement": placement}}}
    return {"id": "p", "virtualMachineConfiguration": vm}


def _placement(pool: dict[str, Any]) -> str:
    return str(
        pool["virtualMachineConfiguration"]["osDisk"]["ephemeralOSDiskSettings"]["placement"]
    )


@pytest.mark.parametrize("text", PUBLISHED)
def test_responses_carry_each_versions_enum_spelling(text: str) -> None:
    expected = "CacheDisk" if text in BEFORE_20 else "cachedisk"
    v = version(text)
    assert _placement(response_adapter(v, "Pools_GetPool", _pool("cachedisk"))) == expected
    listed = response_adapter(v, "Pools_ListPools", {"value": [_pool("cachedisk")] * 2})
    assert [_placement(p) for p in listed["value"]] == [expected] * 2
    job = {"id": "j", "poolInfo": {"autoPoolSpecification": {"pool": _pool("cachedisk")}}}
    out = response_adapter(v, "Jobs_GetJob", job)
    assert _placement(out["poolInfo"]["autoPoolSpecification"]["pool"]) == expected
    assert _placement(job["poolInfo"]["autoPoolSpecification"]["pool"]) == "cachedisk"


def test_responses_of_other_operations_pass_unchanged() -> None:
    body = {"id": "t", "state": "active"}
    assert response_adapter(OLDEST, "Tasks_GetTask", body) is body
    assert response_adapter(CURRENT, "Pools_GetPool", body) is body


def test_each_version_describes_its_differences() -> None:
    counts = {v.text: len(versions.differences(v)) for v in VERSIONS}
    assert counts == {
        "2020-09-01.12.0": 7,
        "2021-01-01.13.0": 7,
        "2021-06-01.14.0": 7,
        "2022-01-01.15.0": 7,
        "2022-10-01.16.0": 7,
        "2023-05-01.17.0": 5,
        "2023-11-01.18.0": 5,
        "2024-02-01.19.0": 5,
        "2024-07-01.20.0": 0,
        "2025-06-01": 0,
    }
    assert any("cloudServiceConfiguration" in line for line in versions.differences(OLDEST))
