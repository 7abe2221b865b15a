"""Batch's $filter subset: what parses, what it matches, and what is refused."""

from __future__ import annotations

import pytest
from bspec.localbatch import odata

TASK = {
    "id": "topN-data1",
    "state": "completed",
    "displayName": "It's",
    "creationTime": "2026-01-02T03:04:05.000000Z",
    "executionInfo": {"exitCode": 0, "result": "success", "retryCount": 2},
}


@pytest.mark.parametrize(
    "text,expected",
    [
        ("state eq 'completed'", True),
        ("state eq 'COMPLETED'", True),
        ("state ne 'completed'", False),
        ("executionInfo/exitCode eq 0", True),
        ("executionInfo/exitCode gt 0", False),
        ("executionInfo/retryCount ge 2 and executionInfo/retryCount le 2", True),
        ("executionInfo/retryCount lt 2", False),
        ("executionInfo/result eq 'failure' or startswith(id, 'topN')", True),
        ("(state eq 'active' or state eq 'running') and id eq 'topN-data1'", False),
        ("startswith(id, 'TOPN-')", True),
        ("displayName eq 'It''s'", True),
        ("creationTime gt datetime'2026-01-01T00:00:00Z'", True),
        ("creationTime lt datetime'2026-01-01T00:00:00Z'", False),
        ("nodeInfo/nodeId eq 'x'", False),
        ("nodeInfo/nodeId ne 'x'", True),
    ],
)
def test_matches(text: str, expected: bool) -> None:
    assert odata.evaluate(odata.parse(text, odata.TASK_PROPS), TASK) is expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "commandLine eq 'x'",
        "state has 'x'",
        "state eq",
        "state eq 'a' and",
        "substringof('a', id)",
        "(state eq 'a'",
        "state eq 'a')",
        "not state eq 'a'",
        "state eq 'unterminated",
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(odata.FilterError):
        odata.parse(text, odata.TASK_PROPS)


def test_properties_are_per_list() -> None:
    odata.parse("allocationState eq 'steady'", odata.POOL_PROPS)
    with pytest.raises(odata.FilterError):
        odata.parse("allocationState eq 'steady'", odata.TASK_PROPS)


def test_state_hint_only_when_required_by_the_whole_filter() -> None:
    assert odata.state_hint("state ne 'completed'") == ("ne", "completed")
    assert odata.state_hint("id eq 'a' and state eq 'Active'") == ("eq", "active")
    assert odata.state_hint("id eq 'a' or state eq 'active'") is None
    assert odata.state_hint(None) is None


def test_select_trims_to_top_level_fields() -> None:
    assert odata.select(TASK, ["id", "executionInfo/exitCode"]) == {
        "id": "topN-data1",
        "executionInfo": TASK["executionInfo"],
    }
    assert odata.select(TASK, None) == TASK


BODIES = [
    TASK,
    {
        "id": "other",
        "state": "active",
        "displayName": "ÉTÉ",
        "executionInfo": {"exitCode": "7", "result": None},
    },
    {"id": "x_%y", "state": "running", "creationTime": "2025-12-31T00:00:00.000000Z"},
    {
        "id": "b",
        "state": "completed",
        "executionInfo": {"exitCode": 3, "result": "failure", "retryCount": 0},
    },
]
FILTERS = [
    "state eq 'completed'",
    "state ne 'completed'",
    "executionInfo/exitCode eq 0",
    "executionInfo/exitCode gt 0",
    "executionInfo/exitCode ne 0",
    "startswith(id, 'X_%')",
    "displayName eq 'été'",
    "executionInfo/result eq 'failure' or startswith(id, 'top')",
    "(state eq 'active' or state eq 'running') and id ne 'x'",
    "creationTime gt datetime'2026-01-01T00:00:00Z'",
    "executionInfo/retryCount le 0",
]


@pytest.mark.parametrize("text", FILTERS)
def test_sql_prefilter_keeps_every_match(text: str) -> None:
    """The SQL prefilter may let extra rows through, never drop a row the filter accepts."""
    import json
    import sqlite3

    node = odata.parse(text, odata.TASK_PROPS)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE resources (n INTEGER, body TEXT)")
    db.executemany(
        "INSERT INTO resources VALUES (?, ?)", [(i, json.dumps(b)) for i, b in enumerate(BODIES)]
    )
    sql, params = odata.to_sql(node)
    kept = {n for (n,) in db.execute(f"SELECT n FROM resources WHERE {sql}", params)}
    wanted = {i for i, b in enumerate(BODIES) if odata.evaluate(node, b)}
    assert wanted <= kept
    db.close()
