"""What the SDK's happy path can't reach: auth failures, api-versions, unknown paths, body
limits, request accounting, latency and fault injection, and the /_local paths."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpRequest
from reference import Reference, get_json, response_hook

API = "2025-06-01.21.0"


def client(local_services: Any, reference: Reference, **kw: Any) -> BatchClient:
    key = kw.pop("key", local_services.key)
    return BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, key),
        raw_response_hook=response_hook(reference),
        **kw,
    )


def error_of(exc: HttpResponseError, reference: Reference) -> dict[str, Any]:
    assert exc.response is not None
    body: dict[str, Any] = json.loads(exc.response.text())
    assert not reference.errors("BatchError", body)
    assert body["message"]["lang"] == "en-US"
    return body


def test_wrong_key_is_403_authentication_failed(local_services: Any, reference: Reference) -> None:
    wrong = base64.b64encode(b"x" * 32).decode()
    with (
        client(local_services, reference, key=wrong) as bad,
        pytest.raises(HttpResponseError) as err,
    ):
        list(bad.list_pools())
    assert err.value.status_code == 403
    assert error_of(err.value, reference)["code"] == "AuthenticationFailed"


def test_no_auth_header_is_rejected(local_services: Any) -> None:
    req = urllib.request.Request(f"{local_services.batch_url}/pools?api-version={API}")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=5)
    with err.value:
        assert err.value.code == 401
        assert json.loads(err.value.read())["code"] == "AuthenticationFailed"


@pytest.mark.parametrize(
    "version", ["2024-02-01.19.0", "2023-05-01.17.0", "2025-06-01", "2022-01-01.15.0"]
)
def test_supported_api_versions(local_services: Any, reference: Reference, version: str) -> None:
    with client(local_services, reference, api_version=version) as old:
        assert isinstance(list(old.list_pools(max_results=1)), list)


@pytest.mark.parametrize("version", ["2019-08-01.10.0", "2099-01-01.99.0", "banana"])
def test_unsupported_api_versions(local_services: Any, reference: Reference, version: str) -> None:
    with (
        client(local_services, reference, api_version=version) as old,
        pytest.raises(HttpResponseError) as err,
    ):
        list(old.list_pools())
    assert err.value.status_code == 400
    assert error_of(err.value, reference)["code"] == "UnsupportedRequestVersion"


def test_unknown_path_and_verb_answer_batch_errors(
    local_services: Any, reference: Reference
) -> None:
    with BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
    ) as c:
        for method, path, status in (
            ("GET", "/nosuchthing", 404),
            ("GET", "/applications/app-1/versions", 404),
            ("PUT", "/pools", 405),
        ):
            with pytest.raises(HttpResponseError) as err:
                c.send_request(
                    HttpRequest(
                        method, f"{path}?api-version={API}", headers={"Accept": "application/json"}
                    )
                )
            assert err.value.status_code == status, path
            body = error_of(err.value, reference)
            assert body["code"] in ("ResourceNotFound", "UnsupportedHttpVerb")
            assert err.value.response.headers["request-id"]


def test_malformed_and_oversized_bodies(local_services: Any, reference: Reference) -> None:
    with BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
    ) as c:
        with pytest.raises(HttpResponseError) as err:
            c.send_request(
                HttpRequest(
                    "POST",
                    f"/pools?api-version={API}",
                    content=b"{nope",
                    headers={"Content-Type": "application/json"},
                )
            )
        assert err.value.status_code == 400
        assert error_of(err.value, reference)["code"] == "InvalidRequestBody"
        big = {"value": [{"id": f"t{i}", "commandLine": "x" * 20000} for i in range(60)]}
        with pytest.raises(HttpResponseError) as err:
            c.send_request(
                HttpRequest("POST", f"/jobs/anyjob/addtaskcollection?api-version={API}", json=big)
            )
        assert err.value.status_code == 413
        assert error_of(err.value, reference)["code"] == "RequestBodyTooLarge"


def test_lenient_input_numeric_strings_and_enum_case(
    local_services: Any, checked_client: Any
) -> None:
    with BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
    ) as c:
        job_id = f"lenient-{id(c)}"
        c.send_request(
            HttpRequest(
                "POST",
                f"/jobs?api-version={API}",
                json={
                    "id": job_id,
                    "poolInfo": {"poolId": "p"},
                    "priority": "12",
                    "onAllTasksComplete": "NoAction",
                },
            )
        )
    job = checked_client.get_job(job_id)
    assert job.priority == 12 and job.all_tasks_complete_mode == "noaction"


def test_request_counts_by_operation(local_services: Any, checked_client: Any) -> None:
    local_services.reset_counts()
    list(checked_client.list_pools())
    checked_client.create_job(
        m.BatchJobCreateOptions(
            id=f"count-{id(local_services)}", pool_info=m.BatchPoolInfo(pool_id="p")
        )
    )
    counts = local_services.request_counts()
    assert counts["byOperation"]["Pools_ListPools"] == {"read": 1, "write": 0}
    assert counts["byOperation"]["Jobs_CreateJob"] == {"read": 0, "write": 1}
    assert counts["read"] == 1 and counts["write"] == 1


@pytest.mark.parametrize("kind,status", [("503", 503), ("429", 429), ("500", 500)])
def test_fault_injection_statuses(
    local_services: Any, reference: Reference, kind: str, status: int
) -> None:
    with (
        local_services.settings(fault_rate=1.0, fault_kinds=[kind]),
        client(local_services, reference, retry_total=0) as c,
        pytest.raises(HttpResponseError) as err,
    ):
        list(c.list_pools())
    assert err.value.status_code == status
    error_of(err.value, reference)
    if status != 500:
        assert err.value.response.headers["Retry-After"]


def test_fault_injection_drop_and_sdk_retries(
    local_services: Any, reference: Reference, checked_client: Any
) -> None:
    with (
        local_services.settings(fault_rate=1.0, fault_kinds=["drop"]),
        client(local_services, reference, retry_total=0) as c,
        pytest.raises((ServiceResponseError, ServiceRequestError)),
    ):
        list(c.list_pools())
    # The SDK's own retries ride over the injected faults. Each list pages through every pool
    # of the shared session one at a time (a hundred requests or more), so the SDK's default of
    # 3 status retries (four 503s in a row: 0.8% a request at 30%) would make this flaky.
    with (
        local_services.settings(fault_rate=0.3, fault_kinds=["503"], latency_ms=5),
        client(local_services, reference, retry_total=12, retry_status=12) as c,
    ):
        for _ in range(5):
            list(c.list_pools(max_results=1))
    assert local_services.get_settings()["faultRate"] == 0


def test_local_paths(local_services: Any) -> None:
    health = get_json(f"{local_services.batch_url}/_local/health")
    assert health["status"] == "ok" and health["account"] == local_services.account
    assert health["apiVersions"] == ["2020-09-01.12.0", "2025-06-01.21.0"]
    status = get_json(f"{local_services.batch_url}/_local/status")
    assert set(status) == {"pools", "runningTasks"}
    with pytest.raises(urllib.error.HTTPError) as err:
        local_services.set_settings(fault_kinds=["teapot"])
    with err.value:
        assert err.value.code == 400
