"""Lists and entities as Batch answers them: OData $filter/$select, maxresults and
odata.nextLink paging, ETags and conditional headers."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from .. import odata
from ..resources import BatchError, http_date, parse_iso
from ..store import Row, Store
from .protocol import JSON_TYPE, Call, Reply


def conditions(call: Call, body: dict[str, Any] | None, write: bool) -> None:
    """If-Match / If-None-Match / If-(Un)Modified-Since, as Batch applies them."""
    etag = body.get("eTag") if body else None
    fail = BatchError(
        412 if write else 304,
        "ConditionNotMet",
        "The condition specified using HTTP conditional header(s) is not met.",
    )
    if_match = call.header("If-Match")
    if if_match is not None:
        tags = {t.strip().strip('"') for t in if_match.split(",")}
        if body is None or ("*" not in tags and etag not in tags):
            fail.status = 412
            raise fail
    if_none = call.header("If-None-Match")
    if if_none is not None and body is not None:
        tags = {t.strip().strip('"') for t in if_none.split(",")}
        if "*" in tags or etag in tags:
            raise fail
    modified = body.get("lastModified") if body else None
    for name, newer in (("If-Modified-Since", True), ("If-Unmodified-Since", False)):
        value = call.header(name)
        if value is None or not modified:
            continue
        try:
            since = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            raise BatchError(
                400, "InvalidHeaderValue", f"The value for {name} is not valid."
            ) from None
        changed = parse_iso(modified).replace(microsecond=0) > since
        if newer and not changed:
            raise fail
        if not newer and changed:
            fail.status = 412
            raise fail


def entity_headers(body: dict[str, Any], url: str | None = None) -> dict[str, str]:
    headers = {"ETag": str(body["eTag"]), "Last-Modified": http_date(body["lastModified"])}
    if url:
        headers["DataServiceId"] = url
    return headers


def entity(call: Call, body: dict[str, Any], kind: str) -> Reply:
    """One resource: conditions for a read, $select, its ETag and Last-Modified."""
    conditions(call, body, write=False)
    out = odata.select(body, select(call))
    out = {"odata.metadata": f"{call.base}/$metadata#{kind}/@Element", **out}
    return Reply(200, out, entity_headers(body))


def written(status: int, body: dict[str, Any]) -> Reply:
    """The answer to a write: no body, the resource's new ETag."""
    return Reply(status, None, entity_headers(body, body["url"]))


def created(body: dict[str, Any]) -> Reply:
    url = body["url"]
    return Reply(201, None, {**entity_headers(body, url), "Location": url})


def select(call: Call) -> list[str] | None:
    text = call.query.get("$select")
    return [s.strip() for s in text.split(",")] if text else None


def maxresults(call: Call) -> int:
    text = call.query.get("maxresults")
    if text is None:
        return 1000
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise BatchError(
            400,
            "OutOfRangeQueryParameterValue",
            "One of the query "
            "parameters specified in the request URI is outside the "
            "permissible range.",
            {
                "QueryParameterName": "maxresults",
                "QueryParameterValue": text,
                "MinLimit": "1",
                "MaxLimit": "1000",
            },
        )
    return value


def skiptoken(call: Call) -> int:
    text = call.query.get("$skiptoken")
    if not text:
        return 0
    m = re.fullmatch(r"s(\d+)", text)
    if not m:
        raise BatchError(
            400,
            "InvalidQueryParameterValue",
            "Value for one of the query parameters specified in the request URI is invalid.",
            {"QueryParameterName": "$skiptoken", "QueryParameterValue": text},
        )
    return int(m[1])


def bad_filter(text: str | None, reason: str) -> BatchError:
    return BatchError(
        400,
        "InvalidQueryParameterValue",
        "Value for one of the query parameters specified in the request URI is invalid.",
        {"QueryParameterName": "$filter", "QueryParameterValue": text or "", "Reason": reason},
    )


def predicate(call: Call, allowed: frozenset[str]) -> Callable[[dict[str, Any]], bool]:
    """The request's $filter as a test on bodies; Batch's 400 for what it cannot parse."""
    text = call.query.get("$filter")
    try:
        return odata.predicate(text, allowed)
    except odata.FilterError as exc:
        raise bad_filter(text, str(exc)) from None


def next_link(call: Call, last: int) -> str:
    """The next page's URL: same path, same filter/select/maxresults, a new skiptoken."""
    path = call.request.raw_path.partition("?")[0]
    params = {k: v for k, v in call.query.items() if k not in ("$skiptoken", "api-version")}
    params["$skiptoken"] = f"s{last}"
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    return f"{call.base}{path}?api-version={quote(call.query['api-version'])}&{query}"


def page(
    store: Store,
    call: Call,
    kind: str,
    parent: str,
    allowed: frozenset[str],
    meta_name: str,
    shape: Callable[[Row], dict[str, Any]] | None = None,
    *,
    scope: tuple[str, list[Any]] | None = None,
) -> Reply:
    """One page of a list: filter, select, maxresults and the nextLink's skiptoken.
    SCOPE: a SQL condition every listed row meets (a schedule's jobs)."""
    limit = maxresults(call)
    filter_text = call.query.get("$filter")
    try:
        node = odata.parse(filter_text, allowed) if filter_text else None
    except odata.FilterError as exc:
        raise bad_filter(filter_text, str(exc)) from None
    hint = odata.state_hint(filter_text) if kind in ("task", "job", "pool") else None
    # Shaped bodies (nodes) have derived fields the stored JSON lacks: no SQL prefilter.
    where = odata.to_sql(node) if node is not None and shape is None else None
    if scope is not None:
        where = scope if where is None else (f"{scope[0]} AND ({where[0]})", scope[1] + where[1])

    def pred(body: dict[str, Any]) -> bool:
        return node is None or odata.evaluate(node, body)

    after = skiptoken(call)
    fields = select(call)
    if not filter_text and not fields and shape is None and scope is None:
        return _raw_page(store, call, kind, parent, meta_name, after, limit)
    if not filter_text and fields and shape is None and scope is None:
        return _raw_page(store, call, kind, parent, meta_name, after, limit, fields)
    values: list[dict[str, Any]] = []
    cursor = returned = after
    more = False
    while not more:
        rows = list(store.iter(kind, parent, after=cursor, state=hint, limit=1000, where=where))
        for row in rows:
            body = shape(row) if shape else row.body
            if pred(body):
                if len(values) == limit:
                    more = True
                    break
                values.append(odata.select(body, fields))
                returned = row.seq
            cursor = row.seq
        if len(rows) < 1000:
            break
    out: dict[str, Any] = {"odata.metadata": f"{call.base}/$metadata#{meta_name}", "value": values}
    if more:
        out["odata.nextLink"] = next_link(call, returned)
    return Reply(200, out)


def _raw_page(
    store: Store,
    call: Call,
    kind: str,
    parent: str,
    meta_name: str,
    after: int,
    limit: int,
    fields: list[str] | None = None,
) -> Reply:
    """An unfiltered page, spliced from the stored JSON without decoding it (`$select`ed
    by SQLite when `fields` are given)."""
    if fields:
        rows = store.iter_selected(kind, parent, fields, after=after, limit=limit + 1)
    else:
        rows = store.iter_raw(kind, parent, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    head = json.dumps({"odata.metadata": f"{call.base}/$metadata#{meta_name}"})[:-1]
    text = head + ', "value": [' + ",".join(body for _seq, body in rows) + "]"
    if more:
        text += ', "odata.nextLink": ' + json.dumps(next_link(call, rows[-1][0]))
    return Reply(200, None, {"Content-Type": JSON_TYPE}, raw=(text + "}").encode())
