"""SharedKey: requests signed as Microsoft's page says and as @azure/batch 10 signs them verify
with bspec.localbatch.sharedkey, and fail with a wrong key, a wrong account or a stale date.

Both signers are written again here from their sources, independently of the verifier: the
page ("Authenticate requests to the Azure Batch service") and the JavaScript SDK's
BatchSharedKeyCredentials.signRequest (@azure/batch 10.2.0, api-version 2022-10-01.16.0).
azure-batch 15's own policy signs requests here through a recording transport; the real
Python clients over real sockets are in tests/service/test_sharedkey_clients.py.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any
from urllib.parse import unquote_plus, urlsplit

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest
from bspec.localbatch import sharedkey
from bspec.localbatch.resources import BatchError
from multidict import CIMultiDict, CIMultiDictProxy

ACCOUNT = "localaccount"
KEY = base64.b64encode(b"k" * 64).decode()
WRONG_KEY = base64.b64encode(b"w" * 64).decode()
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
RFC1123 = format_datetime(NOW, usegmt=True)


@dataclass
class Sent:
    """A request as it reaches the service: what the verifier is given."""

    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)

    @property
    def path(self) -> str:
        return urlsplit(self.url).path

    @property
    def query(self) -> str:
        return urlsplit(self.url).query


def _hmac(text: str, key: str) -> str:
    return base64.b64encode(
        hmac.new(base64.b64decode(key), text.encode(), hashlib.sha256).digest()
    ).decode()


# ---------------------------------------------------------------------------- the page's signer

PAGE_HEADERS = (
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-MD5",
    "Content-Type",
    "Date",
    "If-Modified-Since",
    "If-Match",
    "If-None-Match",
    "If-Unmodified-Since",
    "Range",
)


def page_sign(sent: Sent, key: str, account: str = ACCOUNT) -> Sent:
    """Straight from the page: standard headers in order, values as sent (Date empty when
    ocp-date is set), ocp- headers lower-cased and sorted, /account/path, query names
    lower-cased and sorted, names and values URL-decoded, several values sorted and joined
    with commas, a new line between name-value pairs."""
    given = {k.lower(): v for k, v in sent.headers}
    parts = [sent.method]
    for name in PAGE_HEADERS:
        value = given.get(name.lower(), "")
        if name == "Date" and "ocp-date" in given:
            value = ""
        parts.append(value)
    text = "\n".join(parts) + "\n"
    for name in sorted(k for k in given if k.startswith("ocp-")):
        text += f"{name}:{given[name].strip()}\n"
    text += f"/{account}{sent.path}"
    params: dict[str, list[str]] = {}
    for pair in sent.query.split("&") if sent.query else []:
        name, _, value = pair.partition("=")
        params.setdefault(unquote_plus(name).lower(), []).append(unquote_plus(value))
    for name in sorted(params):
        text += f"\n{name}:{','.join(sorted(params[name]))}"
    signed = Sent(sent.method, sent.url, list(sent.headers))
    signed.headers.append(("Authorization", f"SharedKey {account}:{_hmac(text, key)}"))
    return signed


# ---------------------------------------------------------------------------- @azure/batch 10


def js_sign(sent: Sent, key: str, body: bytes | None = None, account: str = ACCOUNT) -> Sent:
    """BatchSharedKeyCredentials.signRequest of @azure/batch 10.2.0, written again: header
    lookups are case-insensitive (ms-rest-js HttpHeaders); Content-Length is the header, else
    the body's byte length, else "0" for POST and empty otherwise; ocp- headers by lower-case
    name prefix, sorted, empty values left out; the query parsed by url-parse
    (querystringify): names and values decoded, names kept as sent, the first of repeated
    names kept, empty values signed as `name:`, names sorted."""
    given = {k.lower(): v for k, v in sent.headers}

    def value(name: str) -> str:
        return given.get(name.lower(), "") + "\n"

    if given.get("content-length"):
        length = given["content-length"]
    elif body:
        length = str(len(body))
    else:
        length = "0" if sent.method == "POST" else ""
    text = (
        sent.method
        + "\n"
        + value("Content-Encoding")
        + value("Content-Language")
        + length
        + "\n"
        + "".join(value(h) for h in PAGE_HEADERS[3:])  # Content-MD5 to Range, as the page
    )
    for name in sorted(k for k in given if k.startswith("ocp-")):
        if given[name]:
            text += f"{name}:{given[name]}\n"
    text += f"/{account}{sent.path or '/'}"
    query: dict[str, str] = {}
    for pair in sent.query.split("&") if sent.query else []:
        name, _, val = pair.partition("=")
        name = unquote_plus(name)
        if name and name not in query:
            query[name] = unquote_plus(val)
    for name in sorted(query):
        text += f"\n{name}:{query[name]}"
    signed = Sent(sent.method, sent.url, list(sent.headers))
    signed.headers.append(("authorization", f"SharedKey {account}:{_hmac(text, key)}"))
    return signed


# ---------------------------------------------------------------------------- the requests

BASE = "http://127.0.0.1:10080"
JSON = "application/json; odata=minimalmetadata"
API = "api-version=2022-10-01.16.0"


def _requests() -> dict[str, Sent]:
    """The shapes that trip verifiers: no Content-Length, empty bodies, mixed-case and repeated
    query names, encoded paths and values, ocp-date vs Date."""
    return {
        "get-list": Sent(
            "GET",
            f"{BASE}/jobs?{API}&maxresults=10&$filter=state%20eq%20%27active%27",
            [("ocp-date", RFC1123)],
        ),
        "delete-no-length": Sent("DELETE", f"{BASE}/pools/pool-1?{API}", [("ocp-date", RFC1123)]),
        "delete-length-0": Sent(
            "DELETE",
            f"{BASE}/jobs/job-1?{API}",
            [("ocp-date", RFC1123), ("Content-Length", "0")],
        ),
        "post-no-length-empty-body": Sent(
            "POST",
            f"{BASE}/pools/pool-1/stopresize?{API}",
            [("ocp-date", RFC1123), ("Content-Type", JSON)],
        ),
        "post-with-body": Sent(
            "POST",
            f"{BASE}/jobs?{API}&timeOut=30",
            [("ocp-date", RFC1123), ("Content-Type", JSON), ("Content-Length", "42")],
        ),
        "mixed-case-multi-value": Sent(
            "GET",
            f"{BASE}/jobs/job%201/tasks?{API}&$Select=id,state&MaxResults=5&tag=b&tag=a&Empty=",
            [("ocp-date", RFC1123), ("client-request-id", "abc")],
        ),
        "date-header-only": Sent(
            "GET", f"{BASE}/pools/pool-1?{API}", [("Date", RFC1123), ("If-None-Match", '"e1"')]
        ),
        "ocp-date-and-date": Sent(
            "HEAD", f"{BASE}/pools/pool-1?{API}", [("ocp-date", RFC1123), ("Date", RFC1123)]
        ),
        "ocp-range": Sent(
            "GET",
            f"{BASE}/jobs/j/tasks/t/files/stdout.txt?{API}",
            [("ocp-date", RFC1123), ("ocp-range", "bytes=0-9"), ("If-Modified-Since", RFC1123)],
        ),
    }


REQUESTS = _requests()
Signer = Callable[[Sent, str], Sent]
SIGNERS: dict[str, Signer] = {"page": page_sign, "js": js_sign}


def _verify(sent: Sent, key: str = KEY, now: dt.datetime | None = NOW) -> sharedkey.Variant:
    return sharedkey.verify(
        sent.method, sent.path, sent.query, sent.headers, account=ACCOUNT, key=key, now=now
    )


@pytest.mark.parametrize("signer", sorted(SIGNERS))
@pytest.mark.parametrize("name", sorted(REQUESTS))
def test_a_signed_request_verifies_with_the_right_key_only(signer: str, name: str) -> None:
    signed = SIGNERS[signer](REQUESTS[name], KEY)
    assert _verify(signed).name in {"page", "azure-batch-js", "azure-batch-python"}
    forged = SIGNERS[signer](REQUESTS[name], WRONG_KEY)
    with pytest.raises(BatchError) as caught:
        _verify(forged)
    assert (caught.value.status, caught.value.code) == (403, "AuthenticationFailed")
    assert (
        "not the same as any computed signature" in caught.value.values["AuthenticationErrorDetail"]
    )


def test_the_page_string_matches_the_page_example() -> None:
    """The page's own example: GET /jobs with a timeout, ocp-date, nothing else."""
    text = sharedkey.string_to_sign(
        "GET",
        "/jobs",
        "api-version=2014-01-01.1.0&timeout=20",
        {"ocp-date": "Tue, 29 Jul 2014 21:49:13 GMT"},
        "myaccount",
    )
    assert text == (
        "GET\n\n\n\n\n\n\n\n\n\n\n\nocp-date:Tue, 29 Jul 2014 21:49:13 GMT\n"
        "/myaccount/jobs\napi-version:2014-01-01.1.0\ntimeout:20"
    )


def test_the_page_variant_signs_the_content_length_as_sent() -> None:
    """Absent: empty. Sent as "0": "0". The page has no rule that turns one into the other."""
    absent = sharedkey.string_to_sign("DELETE", "/pools/p", "", {}, "a")
    zero = sharedkey.string_to_sign("DELETE", "/pools/p", "", {"Content-Length": "0"}, "a")
    assert absent.split("\n")[3] == ""
    assert zero.split("\n")[3] == "0"


def test_the_js_delete_without_content_length_verifies_only_as_signed_empty() -> None:
    signed = js_sign(REQUESTS["delete-no-length"], KEY)
    assert _verify(signed).name == "page"
    py_string = sharedkey.string_to_sign(
        "DELETE", "/pools/pool-1", API, signed.headers, ACCOUNT, sharedkey.AZURE_BATCH_PY
    )
    assert py_string.split("\n")[3] == "0"  # what the current server computes: a mismatch


def test_mixed_case_and_repeated_query_names_need_the_client_variants() -> None:
    sent = REQUESTS["mixed-case-multi-value"]
    assert _verify(page_sign(sent, KEY)).name == "page"
    assert _verify(js_sign(sent, KEY)).name == "azure-batch-js"


def test_the_account_name_must_match() -> None:
    signed = page_sign(REQUESTS["get-list"], KEY, account="someoneelse")
    with pytest.raises(BatchError) as caught:
        _verify(signed)
    assert caught.value.code == "AuthenticationFailed"


def test_a_stale_or_missing_date_is_refused_after_the_signature_checks() -> None:
    signed = page_sign(REQUESTS["get-list"], KEY)
    assert _verify(signed, now=NOW + dt.timedelta(minutes=14)).name == "page"
    with pytest.raises(BatchError) as caught:
        _verify(signed, now=NOW + dt.timedelta(minutes=16))
    assert "clock skew" in caught.value.values["AuthenticationErrorDetail"]
    assert "15 minutes" in caught.value.message
    undated = page_sign(Sent("GET", f"{BASE}/pools?{API}"), KEY)
    assert _verify(undated, now=None).name == "page"
    with pytest.raises(BatchError) as caught:
        _verify(undated)
    assert "ocp-date or a Date" in caught.value.values["AuthenticationErrorDetail"]
    lenient = sharedkey.verify(
        undated.method,
        undated.path,
        undated.query,
        undated.headers,
        account=ACCOUNT,
        key=KEY,
        now=NOW,
        require_date=False,
    )
    assert lenient.name == "page"


def test_a_malformed_date_is_an_invalid_header_value() -> None:
    signed = page_sign(Sent("GET", f"{BASE}/pools?{API}", [("ocp-date", "yesterday")]), KEY)
    with pytest.raises(BatchError) as caught:
        _verify(signed)
    assert (caught.value.status, caught.value.code) == (400, "InvalidHeaderValue")
    assert caught.value.values["HeaderName"] == "ocp-date"


@pytest.mark.parametrize(
    ("authorization", "status", "code"),
    [
        (None, 401, "AuthenticationFailed"),
        ("Bearer abc", 400, "InvalidAuthenticationInfo"),
        ("SharedKey nocolon", 400, "InvalidAuthenticationInfo"),
        (f"SharedKey {ACCOUNT}:", 400, "InvalidAuthenticationInfo"),
        (f"SharedKey {ACCOUNT}:not base64!", 403, "AuthenticationFailed"),
    ],
)
def test_malformed_authorization_gets_batch_errors(
    authorization: str | None, status: int, code: str
) -> None:
    headers = [("ocp-date", RFC1123)]
    if authorization is not None:
        headers.append(("Authorization", authorization))
    with pytest.raises(BatchError) as caught:
        _verify(Sent("GET", f"{BASE}/pools?{API}", headers))
    assert (caught.value.status, caught.value.code) == (status, code)


# ---------------------------------------------------------------------------- azure-batch 15


class _Handed(Exception):
    """Raised by the recording transport once it holds the signed request."""


class _Recorder(HttpTransport):
    """A transport that keeps the request the pipeline hands it (signed, before any socket
    library adds headers of its own) and sends nothing."""

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *args: object) -> None:
        return None

    def open(self) -> None:
        return None

    def close(self) -> None:
        return None

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        raise _Handed


def test_azure_batch_15_signs_a_missing_content_length_as_0() -> None:
    """BatchSharedKeyAuthPolicy signs "0" when a DELETE or a bodiless POST carries no
    Content-Length yet. Its transports then send `Content-Length: 0` (see
    tests/service/test_sharedkey_clients.py), but one that does not would reach the service
    with no header: the Python variant accepts exactly that, as the current server does."""
    recorder = _Recorder()
    client = BatchClient(
        BASE, AzureNamedKeyCredential(ACCOUNT, KEY), transport=recorder, retry_total=0
    )
    for call in (
        lambda: client.delete_task("job-1", "task-1"),
        lambda: client.disable_pool_auto_scale("pool-1"),
        lambda: client.get_job("job-1", service_timeout=30),
        lambda: client.send_request(HttpRequest("GET", f"{BASE}/jobs?{API}&B=2&a=1&a=3&e=")),
    ):
        with contextlib.suppress(_Handed, AzureError):
            call()
    assert len(recorder.requests) == 4
    names = []
    for request in recorder.requests:
        url = urlsplit(request.url)
        headers = list(request.headers.items())
        assert not any(k.lower() == "content-length" for k, _ in headers) or request.method in (
            "GET",
            "HEAD",
        )
        names.append(
            sharedkey.verify(
                request.method, url.path, url.query, headers, account=ACCOUNT, key=KEY
            ).name
        )
        with pytest.raises(BatchError):
            sharedkey.verify(
                request.method, url.path, url.query, headers, account=ACCOUNT, key=WRONG_KEY
            )
    assert names == ["azure-batch-python"] * 4


def test_aiohttp_headers_verify_as_a_mapping() -> None:
    """The HTTP layer hands aiohttp's CIMultiDictProxy straight in."""
    signed = page_sign(REQUESTS["ocp-range"], KEY)
    proxy = CIMultiDictProxy(CIMultiDict(signed.headers))
    assert (
        sharedkey.verify(
            signed.method, signed.path, signed.query, proxy, account=ACCOUNT, key=KEY, now=NOW
        ).name
        == "page"
    )
