"""The property rules of rest/coverage.py: paths, subtrees, empty values, whole-entity PUTs,
and the refusal of unrouted operations by name."""

from __future__ import annotations

import pytest
from bspec.localbatch.resources import BatchError
from bspec.localbatch.rest import coverage


def test_paths_subtrees_and_holders() -> None:
    paths = ("a.b", "c.*", "value[].d.*")
    assert coverage.accepted(paths, "a") and coverage.accepted(paths, "a.b")
    assert not coverage.accepted(paths, "a.x")
    assert coverage.accepted(paths, "c.deep.er") and coverage.accepted(paths, "c[].x")
    assert coverage.accepted(paths, "value[].d.e") and not coverage.accepted(paths, "value[].f")
    assert not coverage.accepted(paths, "cc")


def test_refused_property_is_named_and_empty_passes() -> None:
    with pytest.raises(BatchError) as err:
        coverage.check_properties(
            "Pools_CreatePool",
            {"id": "p", "vmSize": "s", "startTask": {"commandLine": "x", "containerSettings": {}}}
            | {"mountConfiguration": [{"x": 1}]},
        )
    assert err.value.status == 400 and err.value.code == "UnsupportedProperty"
    assert "mountConfiguration" in err.value.message
    coverage.check_properties(
        "Pools_CreatePool",
        {"id": "p", "vmSize": "s", "userAccounts": [], "certificateReferences": None},
    )
    assert coverage.unsupported("Tasks_CreateTaskCollection", {"value": [{"id": "t"}]}) is None
    assert (
        coverage.unsupported("Tasks_CreateTaskCollection", {"value": [{"affinityInfo": {"a": 1}}]})
        == "value[].affinityInfo"
    )


def test_whole_entity_put_ignores_read_only_properties() -> None:
    read_back = {"id": "j", "url": "u", "state": "active", "executionInfo": {"x": 1}}
    assert coverage.unsupported("Jobs_ReplaceJob", read_back | {"priority": 5}) is None
    assert (
        coverage.unsupported("Jobs_ReplaceJob", {"poolInfo": {"autoPoolSpecification": {"k": 1}}})
        == "poolInfo.autoPoolSpecification"
    )


def test_unrouted_operation_refused_by_name_routed_one_not() -> None:
    refusals = coverage.Refusals({"Pools_ListPools"})
    assert refusals.refusal("GET", "/pools") is None
    found = refusals.refusal("POST", "/pools/p1/enableautoscale")
    assert found is not None and found.status == 501 and found.code == "OperationNotSupported"
    assert "Pools_EnablePoolAutoScale" in found.message
    cert = refusals.refusal("GET", "/certificates(thumbprintAlgorithm=sha1,thumbprint=ab12)")
    assert cert is not None and "Certificates_GetCertificate" in cert.message
    assert refusals.refusal("GET", "/nosuchthing") is None
