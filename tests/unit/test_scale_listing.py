"""Issue 16's listing pieces: `$select`ed pages built by SQLite answer what `odata.select`
answers on the decoded body, and a page's nextLink is read from its tail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from bspec.localbatch import odata
from bspec.localbatch.store import Row, Store
from bspec.providers.batch import _next_link


def _store(tmp_path: Path) -> Store:
    store = Store(tmp_path / "batch.sqlite")
    bodies: list[dict[str, Any]] = [
        {
            "id": "a",
            "state": "active",
            "environmentSettings": [{"name": "X", "value": "1"}],
            "constraints": {"maxTaskRetryCount": 0, "retentionTime": "P7D"},
            "requiredSlots": 2,
            "ratio": 1 / 3,
            "flag": True,
            "off": False,
            "none": None,
            "big": 12345678901234567890,
        },
        {"id": "b", "state": "completed", "executionInfo": {"exitCode": 1, "result": "failure"}},
    ]
    store.put_many([Row("task", "job", str(b["id"]), b, {"secret": 1}) for b in bodies])
    return store


@pytest.mark.parametrize(
    "fields",
    [
        ["id", "state", "environmentSettings", "constraints"],  # every row has them: by path
        ["id", "requiredSlots", "ratio", "flag", "off", "none", "big"],  # absent in b
        ["ID", "State"],  # another case
        ["executionInfo/exitCode", "id"],  # a nested path keeps its root
        ["id", "id", "nodeInfo"],
    ],
)
def test_selected_pages_equal_odata_select(tmp_path: Path, fields: list[str]) -> None:
    store = _store(tmp_path)
    rows = list(store.iter("task", "job"))
    got = store.iter_selected("task", "job", fields, after=0, limit=10)
    assert [seq for seq, _ in got] == [r.seq for r in rows]
    for (_, text), row in zip(got, rows, strict=True):
        assert json.loads(text) == odata.select(row.body, fields)
    assert store.iter_selected("task", "job", fields, after=rows[0].seq, limit=10)[0][0] == (
        rows[1].seq
    )
    store.close()


def test_next_link_is_read_from_the_tail_or_not_at_all() -> None:
    link = "http://h/jobs/j/tasks?api-version=1&$skiptoken=s5&$select=id"
    page = json.dumps({"odata.metadata": "m", "value": [{"id": "x"}], "odata.nextLink": link})
    assert _next_link(page.encode()) == link
    assert _next_link(json.dumps({"value": [{"id": "odata.nextLink"}]}).encode()) is None
    tricky = json.dumps({"value": [{"commandLine": '"odata.nextLink": "x"}'}]})
    assert _next_link(tricky.encode()) is None
