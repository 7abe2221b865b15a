"""Honest refusals (issue 11, item 8): every operation of the definition is routed or refused
with 501 OperationNotSupported naming it; every property of every create and update body is
implemented or refused with 400 UnsupportedProperty naming its path; docs/local-target.md's
table is what the route table and coverage.py say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest
from bspec.localbatch.rest import coverage
from bspec.localbatch.rest.app import routed_operations
from reference import Reference, load_reference, response_hook

API = "2025-06-01.21.0"
REPO = Path(__file__).resolve().parents[2]


def _definition() -> dict[str, Any]:
    return load_reference().spec


def _concrete(template: str) -> str:
    """A path template with made-up ids (a file path with an escaped `/` in it)."""
    return re.sub(
        r"\{(\w+)\}",
        lambda m: "dir%2Ff.txt" if m[1] == "filePath" else f"x-{m[1].lower()}",
        template,
    )


def _body_for(path: str) -> dict[str, Any]:
    """A body with just PATH set (`a.b[].c` -> {"a": {"b": [{"c": "x"}]}})."""
    parts = path.split(".")
    value: Any = "x"
    for part in reversed(parts):
        key = part.removesuffix("[]")
        value = {key: [value] if part.endswith("[]") else value}
    return value  # type: ignore[no-any-return]


def _client(local_services: Any, reference: Reference) -> BatchClient:
    """azure-batch 15 with every body checked against the reference, no retries."""
    return BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
        raw_response_hook=response_hook(reference),
        retry_total=0,
    )


def test_operation_list_is_the_definitions() -> None:
    spec = _definition()
    found = {
        (method.upper(), path, op["operationId"])
        for path, ops in spec["paths"].items()
        for method, op in ops.items()
        if isinstance(op, dict) and "operationId" in op
    }
    assert set(coverage.DEFINITION_OPERATIONS) == found
    assert len(coverage.DEFINITION_OPERATIONS) == len(found)
    routed = routed_operations()
    assert routed <= {op for _m, _p, op in found}, routed - {op for _m, _p, op in found}


def test_every_operation_routed_or_refused(local_services: Any, reference: Reference) -> None:
    routed = routed_operations()
    refused_seen: list[str] = []
    with _client(local_services, reference) as c:
        for method, template, op in coverage.DEFINITION_OPERATIONS:
            if method in ("DELETE", "PUT", "PATCH", "POST") and op in routed:
                continue  # routed writes answer their own errors; the reads show routing
            url = f"{_concrete(template)}?api-version={API}"
            request = HttpRequest(method, url, headers={"Accept": "application/json"})
            try:
                response = c.send_request(request)
                status, body = response.status_code, response.text()
            except HttpResponseError as exc:
                assert exc.response is not None
                status, body = exc.status_code or 0, exc.response.text()
            if op in routed:
                assert status != 501, (op, body)
                continue
            assert status == 501, (op, status, body)
            if method != "HEAD":
                error = json.loads(body)
                assert error["code"] == "OperationNotSupported", op
                assert op in error["message"]["value"], error
                assert "not supported by the local Batch service" in error["message"]["value"]
                assert not reference.errors("BatchError", error)
            refused_seen.append(op)
    assert len(refused_seen) == len(coverage.DEFINITION_OPERATIONS) - len(routed)


def test_every_body_property_implemented_or_refused() -> None:
    spec = _definition()
    routed = routed_operations()
    bodies = coverage.body_operations(spec)
    counted = {"implemented": 0, "refused": 0}
    for op, paths in bodies.items():
        if op not in routed:
            counted["refused"] += len(paths)  # the whole operation is refused by name
            continue
        for path in paths:
            named = coverage.unsupported(op, _body_for(path))
            if coverage.property_status(op, path, routed):
                counted["implemented"] += 1
                assert named is None, (op, path, named)
            else:
                counted["refused"] += 1
                assert named is not None, (op, path)
                assert path == named or path.startswith((named + ".", named + "[]")), (
                    op,
                    path,
                    named,
                )
    assert counted["implemented"] > 300 and counted["refused"] > 0


def test_refused_property_over_http(local_services: Any, reference: Reference) -> None:
    with _client(local_services, reference) as c:
        for url, body, named in (
            (
                "/pools",
                {
                    "id": "refused-pool",
                    "vmSize": "standard_d2s_v3",
                    "mountConfiguration": [
                        {"nfsMountConfiguration": {"source": "s", "relativeMountPath": "m"}}
                    ],
                },
                "mountConfiguration",
            ),
            (
                "/jobs/refused-job/tasks",
                {
                    "id": "t",
                    "commandLine": "true",
                    "multiInstanceSettings": {
                        "numberOfInstances": 2,
                        "coordinationCommandLine": "true",
                    },
                },
                "multiInstanceSettings",
            ),
            (
                "/pools",
                {
                    "id": "refused-pool",
                    "vmSize": "standard_d2s_v3",
                    "mountConfiguration": [
                        {"nfsMountConfiguration": {"source": "s", "relativeMountPath": "m"}}
                    ],
                },
                "mountConfiguration",
            ),
        ):
            with pytest.raises(HttpResponseError) as err:
                c.send_request(HttpRequest("POST", f"{url}?api-version={API}", json=body))
            assert err.value.status_code == 400
            assert err.value.response is not None
            error = json.loads(err.value.response.text())
            assert error["code"] == "UnsupportedProperty"
            assert {"key": "PropertyName", "value": named} in error["values"], error
        # An empty value asks for nothing: accepted.
        c.send_request(
            HttpRequest(
                "POST",
                f"/pools?api-version={API}",
                json={"id": "empty-refs", "vmSize": "standard_d2s_v3", "userAccounts": []},
            )
        ).raise_for_status()
        c.send_request(HttpRequest("DELETE", f"/pools/empty-refs?api-version={API}"))


def test_docs_table_is_current() -> None:
    doc = (REPO / "docs" / "local-target.md").read_text("utf-8")
    table = coverage.coverage_table(_definition(), routed_operations())
    assert coverage.with_table(doc, table) == doc, (
        "docs/local-target.md's coverage table is out of date: "
        "run `.venv/bin/python -m bspec.localbatch.rest.coverage_doc`"
    )
