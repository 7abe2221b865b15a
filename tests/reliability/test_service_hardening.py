"""The local Batch service under hostile raw HTTP: bad signatures, stale or future ocp-dates,
bodies over Batch's limits, ids that break Batch's rules, and path traversal in the files
API, each answered with the status and error code Batch uses.

Requests are signed here exactly as azure-batch's BatchSharedKeyAuthPolicy signs them (the
string to sign is rebuilt below), and sent with http.client so that nothing normalizes the
path: `..` reaches the service as written.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

API = "api-version=2025-06-01.21.0"
SIGNED = ("content-encoding", "content-language", "content-length", "content-md5",
          "content-type", "date", "if-modified-since", "if-match", "if-none-match",
          "if-unmodified-since", "range")
IMAGE = {"imageReference": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                            "sku": "22_04-lts"},
         "nodeAgentSkuId": "batch.node.ubuntu 22.04"}


@dataclass
class Answer:
    status: int
    body: bytes

    @property
    def code(self) -> str | None:
        try:
            data = json.loads(self.body)
        except ValueError:
            return None
        return data.get("code") if isinstance(data, dict) else None

    def json(self) -> Any:
        return json.loads(self.body)


class RawBatch:
    """A minimal SharedKey client over http.client, signing as the SDK does."""

    def __init__(self, url: str, account: str, key: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.account, self.key = account, key

    def sign(self, method: str, path: str, headers: dict[str, str], key: str | None = None
             ) -> str:
        h = {k.lower(): v for k, v in headers.items() if v}
        if method not in ("GET", "HEAD") and "content-length" not in h:
            h["content-length"] = "0"
        text = method + "\n" + "\n".join(h.get(x, "") for x in SIGNED) + "\n"
        for k, v in sorted((k, v) for k, v in h.items() if "ocp-" in k):
            text += f"{k}:{v}\n"
        raw_path, _, query = path.partition("?")
        text += f"/{self.account}{raw_path}"
        q = parse_qs(query)
        for k in sorted(q):
            if q[k][0]:
                text += f"\n{k}:{q[k][0]}"
        secret = base64.b64decode(key or self.key)
        mac = hmac.new(secret, text.encode(), hashlib.sha256).digest()
        return f"SharedKey {self.account}:{base64.b64encode(mac).decode()}"

    def request(self, method: str, path: str, body: Any = None, *,
                date: datetime | None = None, key: str | None = None,
                raw_body: bytes | None = None) -> Answer:
        data = raw_body if raw_body is not None else (
            json.dumps(body).encode() if body is not None else b"")
        headers = {"ocp-date": format_datetime(date or datetime.now(UTC), usegmt=True)}
        if data or method not in ("GET", "HEAD"):
            headers["Content-Length"] = str(len(data))
        if data:
            headers["Content-Type"] = "application/json; odata=minimalmetadata"
        path = f"{path}{'&' if '?' in path else '?'}{API}"
        headers["Authorization"] = self.sign(method, path, headers, key)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request(method, path, body=data or None, headers=headers)
            resp = conn.getresponse()
            return Answer(resp.status, resp.read())
        finally:
            conn.close()


@pytest.fixture
def raw(local_services: Any) -> RawBatch:
    return RawBatch(local_services.batch_url, local_services.account, local_services.key)


def test_signed_requests_pass_and_bad_signatures_answer_403(raw: RawBatch) -> None:
    assert raw.request("GET", "/pools").status == 200
    wrong = base64.b64encode(b"x" * 32).decode()
    bad = raw.request("GET", "/pools", key=wrong)
    assert (bad.status, bad.code) == (403, "AuthenticationFailed")
    # A signature made for one request does not authorize another.
    headers = {"ocp-date": format_datetime(datetime.now(UTC), usegmt=True)}
    signed_for_get = raw.sign("GET", f"/pools?{API}", headers)
    conn = http.client.HTTPConnection(raw.host, raw.port, timeout=30)
    try:
        conn.request("DELETE", f"/pools/anything?{API}", headers={
            **headers, "Authorization": signed_for_get, "Content-Length": "0"})
        resp = conn.getresponse()
        assert resp.status == 403 and json.loads(resp.read())["code"] == "AuthenticationFailed"
    finally:
        conn.close()


@pytest.mark.parametrize("offset", [timedelta(minutes=-16), timedelta(minutes=16),
                                    timedelta(days=-400)])
def test_requests_more_than_15_minutes_off_answer_403(raw: RawBatch, offset: timedelta) -> None:
    answer = raw.request("GET", "/pools", date=datetime.now(UTC) + offset)
    assert (answer.status, answer.code) == (403, "AuthenticationFailed")
    assert "15 minutes" in answer.json()["message"]["value"]


def test_requests_within_15_minutes_pass(raw: RawBatch) -> None:
    for minutes in (-14, 14):
        assert raw.request("GET", "/pools",
                           date=datetime.now(UTC) + timedelta(minutes=minutes)).status == 200


def test_bodies_over_batch_limits_answer_413(raw: RawBatch, unique_id: Any) -> None:
    big = raw.request("POST", "/pools", raw_body=b'{"id": "' + b"a" * (5 * 1024 * 1024) + b'"}')
    assert (big.status, big.code) == (413, "RequestBodyTooLarge")
    job = unique_id("hard-job")
    pool = unique_id("hard-pool")
    assert raw.request("POST", "/jobs", {"id": job, "poolInfo": {"poolId": pool}}).status == 201
    tasks = [{"id": f"t{i}", "commandLine": "/bin/true " + "x" * 12_000} for i in range(100)]
    collection = raw.request("POST", f"/jobs/{job}/addtaskcollection", {"value": tasks})
    assert (collection.status, collection.code) == (413, "RequestBodyTooLarge")
    too_many = raw.request("POST", f"/jobs/{job}/addtaskcollection",
                           {"value": [{"id": f"t{i}", "commandLine": "/bin/true"}
                                      for i in range(101)]})
    assert too_many.status == 400 and too_many.code in ("InvalidPropertyValue",
                                                        "RequestBodyTooLarge")
    assert raw.request("GET", f"/jobs/{job}/tasks").json()["value"] == []
    raw.request("DELETE", f"/jobs/{job}")


@pytest.mark.parametrize("bad_id", ["", "a" * 65, "has space", "semi;colon", "dot.ted",
                                    "slash/ed", "ünï", "../up", "a\nb"])
def test_ids_that_break_batch_rules_answer_400(raw: RawBatch, bad_id: str) -> None:
    pool = raw.request("POST", "/pools", {"id": bad_id, "vmSize": "standard_d2s_v3",
                                          "virtualMachineConfiguration": IMAGE})
    assert pool.status == 400, pool.body
    assert pool.code in ("InvalidPropertyValue", "MissingRequiredProperty"), pool.body
    job = raw.request("POST", "/jobs", {"id": bad_id, "poolInfo": {"poolId": "p"}})
    assert job.status == 400 and job.code in ("InvalidPropertyValue",
                                              "MissingRequiredProperty"), job.body
    assert all(p["id"] != bad_id for p in raw.request("GET", "/pools").json()["value"])


def _wait(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_path_traversal_in_the_files_api_is_refused(raw: RawBatch, unique_id: Any) -> None:
    pool, job = unique_id("trav-pool"), unique_id("trav-job")
    assert raw.request("POST", "/pools", {"id": pool, "vmSize": "standard_d2s_v3",
                                          "virtualMachineConfiguration": IMAGE,
                                          "targetDedicatedNodes": 1}).status == 201
    assert raw.request("POST", "/jobs", {"id": job, "poolInfo": {"poolId": pool}}).status == 201
    # The task leaves a symlink to a file outside its folder, and its own output.
    assert raw.request("POST", f"/jobs/{job}/tasks",
                       {"id": "t", "commandLine": "/bin/ln -s /etc/passwd leak"}).status == 201
    _wait(lambda: raw.request("GET", f"/jobs/{job}/tasks/t").json()["state"] == "completed")
    base = f"/jobs/{job}/tasks/t/files"
    ok = raw.request("GET", f"{base}/stdout.txt")
    assert ok.status == 200
    for path in ("../../../../etc/passwd", "..%2F..%2F..%2F..%2Fetc%2Fpasswd", "wd/../../..",
                 "%2E%2E/%2E%2E/x", "wd/..%2F..%2F..%2Fstdout.txt", "..\\..\\etc\\passwd"):
        answer = raw.request("GET", f"{base}/{path}")
        assert answer.status in (400, 404), (path, answer.status)
        assert answer.code in ("InvalidUri", "FileNotFound", "ResourceNotFound"), (path, answer)
        assert b"root:" not in answer.body
    for path in ("%2Fetc%2Fpasswd", "/etc/passwd", "wd/leak"):
        answer = raw.request("GET", f"{base}/{path}")
        assert answer.status in (400, 404), (path, answer.status)
        assert b"root:" not in answer.body
    node_id = raw.request("GET", f"/pools/{pool}/nodes").json()["value"][0]["id"]
    node_base = f"/pools/{pool}/nodes/{node_id}/files"
    for path in ("../../../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "/etc/passwd"):
        answer = raw.request("GET", f"{node_base}/{path}")
        assert answer.status in (400, 404) and b"root:" not in answer.body, (path, answer)
    raw.request("DELETE", f"/jobs/{job}")
    raw.request("DELETE", f"/pools/{pool}")
