"""SharedKey as Batch verifies it: the string to sign, the candidates, and the verdict.

Microsoft's page "Authenticate requests to the Azure Batch service" defines one string:

    VERB \\n Content-Encoding \\n Content-Language \\n Content-Length \\n Content-MD5 \\n
    Content-Type \\n Date \\n If-Modified-Since \\n If-Match \\n If-None-Match \\n
    If-Unmodified-Since \\n Range \\n CanonicalizedHeaders CanonicalizedResource

with every standard header's value as sent (empty when absent; Date empty when ocp-date is
used), the `ocp-` headers lower-cased and sorted as `name:value\\n`, and the resource as
`/account/encoded-path` then `\\nname:value` per query parameter, names lower-cased and sorted,
names and values URL-decoded, several values sorted and comma-joined.

The clients Microsoft ships do not all build that string. azure-batch 10-15 (Python) and
@azure/batch 10 (JavaScript) sign query names as sent (azure-batch 15 sends `timeOut`), sign
only the first of repeated values, and differ on empty values and on a missing Content-Length.
Batch accepts them all, and says why in its own error detail: "The MAC signature found in the
HTTP request is not the same as any computed signature". So `verify` computes the page's string
and one string per client generation (`VARIANTS`) and accepts a match with any of them. Each
variant is tight: it is exactly what that client signs, nothing more.

Pure: no I/O, no clock of its own (the caller passes `now`), no import of the service.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import unquote_plus

from .resources import BatchError

SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)
MAX_CLOCK_SKEW = dt.timedelta(minutes=15)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Variant:
    """One way of building the string to sign: the page's, or what one client generation does.

    absent_length: what an absent Content-Length is signed as ("" as the page says; "0" for
    every verb but GET/HEAD as azure-batch 15 does, signing before its transport adds the
    header; "0" for POST only as @azure/batch 10 does).
    """

    name: str
    lower_query_names: bool
    all_values: bool  # several values of one parameter: sorted and comma-joined, or the first
    keep_empty_values: bool  # `?a=` signed as `a:`, or left out
    absent_length: Literal["", "0-unless-get-head", "0-for-post"]
    date_empty_with_ocp_date: bool  # the page: with ocp-date, Date is signed empty
    ocp_prefix_only: bool  # `ocp-` at the start of the name (page, JS) or anywhere (Python)


PAGE = Variant("page", True, True, True, "", True, True)
AZURE_BATCH_PY = Variant(
    "azure-batch-python", False, False, False, "0-unless-get-head", False, False
)
AZURE_BATCH_JS = Variant("azure-batch-js", False, False, True, "0-for-post", False, True)
VARIANTS = (PAGE, AZURE_BATCH_PY, AZURE_BATCH_JS)


def _header_pairs(headers: Headers) -> list[tuple[str, str]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(str(k).lower(), str(v)) for k, v in items]


def _fold(value: str) -> str:
    """The page: replace breaking white space with a single space; trim around the colon."""
    return re.sub(r"\s*\r?\n\s*", " ", value).strip()


def _query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs in the order sent; `a` and `a=` both give an empty value."""
    pairs = []
    for part in raw_query.lstrip("?").split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def canonical_headers(headers: Headers, variant: Variant = PAGE) -> str:
    """The `ocp-` headers as `name:value\\n`, names lower-cased and sorted, empty values left
    out (every client leaves them out; an empty header is an absent one)."""
    merged: dict[str, list[str]] = {}
    for name, value in _header_pairs(headers):
        wanted = name.startswith("ocp-") if variant.ocp_prefix_only else "ocp-" in name
        if wanted and value.strip():
            merged.setdefault(name, []).append(_fold(value))
    return "".join(f"{name}:{','.join(merged[name])}\n" for name in sorted(merged))


def canonical_resource(account: str, path: str, raw_query: str, variant: Variant = PAGE) -> str:
    """`/account/path` as sent (still encoded), then `\\nname:value` per query parameter."""
    grouped: dict[str, list[str]] = {}
    for name, value in _query_pairs(raw_query):
        key = name.lower() if variant.lower_query_names else name
        grouped.setdefault(key, []).append(value)
    text = f"/{account}{path}"
    for name in sorted(grouped):
        values = grouped[name]
        if not variant.keep_empty_values:
            values = [v for v in values if v]
        if not values:
            continue
        value = ",".join(sorted(values)) if variant.all_values else values[0]
        text += f"\n{name}:{value}"
    return text


def string_to_sign(
    method: str, path: str, query: str, headers: Headers, account: str, variant: Variant = PAGE
) -> str:
    """The string a client signs for this request, built as `variant` builds it.

    `path` is the request path as sent (percent-encoded), `query` the raw query string, and
    `headers` the request headers as received (a mapping or name/value pairs).
    """
    method = method.upper()
    values: dict[str, str] = {}
    for name, value in _header_pairs(headers):
        if name in SIGNED_HEADERS and value:
            values[name] = f"{values[name]},{value}" if name in values else value
    if "content-length" not in values:
        absent = variant.absent_length
        if (absent == "0-unless-get-head" and method not in ("GET", "HEAD")) or (
            absent == "0-for-post" and method == "POST"
        ):
            values["content-length"] = "0"
    has_ocp_date = any(n == "ocp-date" and v for n, v in _header_pairs(headers))
    if variant.date_empty_with_ocp_date and has_ocp_date:
        values.pop("date", None)
    text = method + "\n" + "".join(values.get(h, "") + "\n" for h in SIGNED_HEADERS)
    return (
        text
        + canonical_headers(headers, variant)
        + canonical_resource(account, path, query, variant)
    )


def sign(text: str, key: str | bytes) -> str:
    """Base64(HMAC-SHA256(key, UTF-8 text)); `key` is the account key as Base64 or raw bytes."""
    raw = base64.b64decode(key) if isinstance(key, str) else key
    return base64.b64encode(hmac.new(raw, text.encode(), hashlib.sha256).digest()).decode()


def _failed(detail: str, status: int = 403) -> BatchError:
    return BatchError(
        status,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header "
        "is formed correctly including the signature.",
        {"AuthenticationErrorDetail": detail},
    )


def request_time(headers: Headers) -> dt.datetime | None:
    """The request's creation time: ocp-date if given, else Date (the page's rule)."""
    pairs = dict(_header_pairs(headers))
    raw = pairs.get("ocp-date") or pairs.get("date")
    if not raw:
        return None
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        name = "ocp-date" if pairs.get("ocp-date") else "Date"
        raise BatchError(
            400,
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format.",
            {"HeaderName": name, "HeaderValue": raw},
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def verify(
    method: str,
    path: str,
    query: str,
    headers: Headers,
    *,
    account: str,
    key: str | bytes,
    now: dt.datetime | None = None,
    require_date: bool = True,
) -> Variant:
    """Check a SharedKey request; return the variant that matched or raise Batch's error.

    The Authorization header must be `SharedKey <account>:<signature>` for `account`, the
    signature must match one of `VARIANTS`, and with `now` given the request must carry
    ocp-date or Date within 15 minutes of it (Batch's replay guard; `require_date=False`
    lets an undated request through, as the service did before this module).
    """
    auth = dict(_header_pairs(headers)).get("authorization", "")
    if not auth:
        raise BatchError(
            401,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization "
            "header is formed correctly including the signature.",
        )
    scheme, _, credential = auth.strip().partition(" ")
    name, colon, signature = credential.strip().partition(":")
    if scheme != "SharedKey" or not colon or not name or not signature:
        raise BatchError(
            400,
            "InvalidAuthenticationInfo",
            "Authentication information is not given in the correct format. Check the value of "
            "Authorization header.",
        )
    try:
        signature_bytes = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        signature_bytes = b""
    if name != account or not signature_bytes:
        raise _failed(
            "The MAC signature found in the HTTP request is not the same as any computed signature."
        )
    matched = None
    for variant in VARIANTS:
        expected = base64.b64decode(
            sign(string_to_sign(method, path, query, headers, account, variant), key)
        )
        if hmac.compare_digest(signature_bytes, expected):
            matched = variant
            break
    if matched is None:
        raise _failed(
            "The MAC signature found in the HTTP request is not the same as any computed signature."
        )
    if now is not None:
        when = request_time(headers)
        if when is None:
            if require_date:
                raise _failed("The request must carry an ocp-date or a Date header.")
        elif abs(now - when) > MAX_CLOCK_SKEW:
            raw = dict(_header_pairs(headers))
            raise BatchError(
                403,
                "AuthenticationFailed",
                "Server failed to authenticate the request. The request date is more than 15 "
                "minutes away from the server's time.",
                {
                    "AuthenticationErrorDetail": f"Request date {raw.get('ocp-date') or raw.get('date')} "
                    "is outside the allowed clock skew of 15 minutes."
                },
            )
    return matched
