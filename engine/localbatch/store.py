"""The service's state: one SQLite database (WAL), one writer (the event loop's thread).

Every resource is a row of `resources`: its kind (pool, job, task, node), its parent's key (a
task's job, a node's pool; "" otherwise), its key (the id lowercased, since Batch ids are
case-insensitive), its state (indexed, so lists filtered by state don't decode every body), its
Batch body as JSON, and `meta`, JSON the API never shows (scheduler bookkeeping). `seq` orders
lists and is the paging token. A task's result and required slots are copied into columns so
that task counts and dependency checks never decode bodies.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    parent TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT '',
    body TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    result TEXT NOT NULL DEFAULT '',
    slots INTEGER NOT NULL DEFAULT 1,
    UNIQUE (kind, parent, key)
);
CREATE INDEX IF NOT EXISTS resources_state ON resources (kind, parent, state, seq);
"""
COUNTS_INDEX = (
    "CREATE INDEX IF NOT EXISTS resources_counts ON resources (kind, parent, state, result, slots)"
)
# A list page (kind, parent, seq > token, in seq order) read straight from this index: without
# it SQLite sorts every child of the parent for each page (30 ms a page at 100,000 tasks).
_PLAIN_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
LIST_INDEX = "CREATE INDEX IF NOT EXISTS resources_list ON resources (kind, parent, seq)"


@dataclass
class Row:
    """One stored resource; `body` is what the API shows, `meta` what only the service sees."""

    kind: str
    parent: str
    key: str
    body: dict[str, Any]
    meta: dict[str, Any]
    seq: int = 0


class Store:
    """Synchronous SQLite access; called only from the event loop's thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        columns = {r[1] for r in self.db.execute("PRAGMA table_info(resources)")}
        if "result" not in columns:  # a state folder from before these columns existed
            self.db.execute("ALTER TABLE resources ADD COLUMN result TEXT NOT NULL DEFAULT ''")
            self.db.execute("ALTER TABLE resources ADD COLUMN slots INTEGER NOT NULL DEFAULT 1")
            self.db.execute(
                "UPDATE resources SET result=coalesce(json_extract(body,"
                " '$.executionInfo.result'), ''), slots=coalesce(json_extract(body,"
                " '$.requiredSlots'), 1)"
            )
        self.db.execute(COUNTS_INDEX)
        self.db.execute(LIST_INDEX)
        self._depth = 0
        self._pending = False
        self._schedule: Callable[[Callable[[], None]], object] | None = None

    def commit_later(self, schedule: Callable[[Callable[[], None]], object]) -> None:
        """Batch the commits of writes made close together: the first write opens a
        transaction and `schedule(self.commit)` closes it (the service uses a few ms on its
        event loop). Readers share this connection, so they see every write at once."""
        self._schedule = schedule

    def _write(self) -> None:
        if self._schedule is None or self._depth or self._pending:
            return
        self.db.execute("BEGIN")
        self._pending = True
        self._schedule(self.commit)

    def commit(self) -> None:
        if self._pending:
            self._pending = False
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.commit()
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group writes (a task collection) into one commit; nests."""
        if self._pending:  # already inside a batched commit
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        if self._depth == 0:
            self.db.execute("BEGIN")
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self.db.execute("ROLLBACK")
            raise
        self._depth -= 1
        if self._depth == 0:
            self.db.execute("COMMIT")

    @staticmethod
    def _row(r: tuple[Any, ...]) -> Row:
        return Row(r[1], r[2], r[3], json.loads(r[4]), json.loads(r[5]), r[0])

    def get(self, kind: str, parent: str, key: str) -> Row | None:
        cur = self.db.execute(
            "SELECT seq, kind, parent, key, body, meta FROM resources"
            " WHERE kind=? AND parent=? AND key=?",
            (kind, parent, key.lower()),
        )
        r = cur.fetchone()
        return self._row(r) if r else None

    def put(self, row: Row) -> None:
        """Insert or replace (keeping the row's place in list order)."""
        self._write()
        state = str(row.body.get("state", "") or "")
        body = json.dumps(row.body, separators=(",", ":"))
        meta = json.dumps(row.meta, separators=(",", ":"))
        info = row.body.get("executionInfo")
        result = str(info.get("result") or "") if isinstance(info, dict) else ""
        slots = row.body.get("requiredSlots", 1)
        cur = self.db.execute(
            "INSERT INTO resources (kind, parent, key, state, body, meta, result, slots)"
            " VALUES (?,?,?,?,?,?,?,?)"
            " ON CONFLICT (kind, parent, key) DO UPDATE SET state=excluded.state,"
            " body=excluded.body, meta=excluded.meta, result=excluded.result,"
            " slots=excluded.slots RETURNING seq",
            (
                row.kind,
                row.parent,
                row.key.lower(),
                state,
                body,
                meta,
                result,
                slots if isinstance(slots, int) else 1,
            ),
        )
        row.seq = int(cur.fetchone()[0])

    def put_many(self, rows: list[Row]) -> None:
        with self.transaction():
            for row in rows:
                self.put(row)

    def delete(self, kind: str, parent: str, key: str) -> None:
        self._write()
        self.db.execute(
            "DELETE FROM resources WHERE kind=? AND parent=? AND key=?", (kind, parent, key.lower())
        )

    def delete_children(self, kind: str, parent: str) -> None:
        self._write()
        self.db.execute("DELETE FROM resources WHERE kind=? AND parent=?", (kind, parent))

    def iter(
        self,
        kind: str,
        parent: str = "",
        *,
        after: int = 0,
        state: tuple[str, str] | None = None,
        limit: int | None = None,
        where: tuple[str, list[Any]] | None = None,
    ) -> Iterator[Row]:
        """Rows in list order after seq `after`, optionally pre-filtered by state (eq/ne) and
        by a SQL condition on the body (`odata.to_sql`)."""
        sql = (
            "SELECT seq, kind, parent, key, body, meta FROM resources"
            " WHERE kind=? AND parent=? AND seq>?"
        )
        args: list[Any] = [kind, parent, after]
        if state is not None:
            sql += " AND state=?" if state[0] == "eq" else " AND state<>?"
            args.append(state[1])
        if where is not None:
            sql += f" AND {where[0]}"
            args.extend(where[1])
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        for r in self.db.execute(sql, args).fetchall():
            yield self._row(r)

    def iter_raw(self, kind: str, parent: str, *, after: int, limit: int) -> list[tuple[int, str]]:
        """(seq, body JSON text) in list order: unfiltered pages skip decoding entirely."""
        cur = self.db.execute(
            "SELECT seq, body FROM resources WHERE kind=? AND parent=? AND seq>?"
            " ORDER BY seq LIMIT ?",
            (kind, parent, after, limit),
        )
        return [(int(seq), str(body)) for seq, body in cur.fetchall()]

    def iter_selected(
        self, kind: str, parent: str, fields: list[str], *, after: int, limit: int
    ) -> list[tuple[int, str]]:
        """(seq, JSON text of the body trimmed to the top-level `fields`, matched without
        case, plus odata.* keys) in list order: `$select`ed pages built by SQLite without
        decoding bodies in Python (`odata.select` is the same rule on a decoded body)."""
        names: dict[str, str] = {}  # casefolded -> as asked
        for f in fields:
            name = f.split("/")[0].strip()
            if name:
                names.setdefault(name.casefold(), name)
        if all(_PLAIN_NAME.fullmatch(n) for n in names.values()):
            # The common case, each property read by its path: taken when every row has
            # every property as spelled (an absent one may be spelled otherwise: a page with
            # one goes the general way below, which matches names without case).
            cols = ", ".join(f"body -> '$.{n}'" for n in names.values())
            rows = self.db.execute(
                f"SELECT seq, {cols} FROM resources WHERE kind=? AND parent=? AND seq>?"
                " ORDER BY seq LIMIT ?",
                (kind, parent, after, limit),
            ).fetchall()
            if all(None not in r for r in rows):
                heads = [json.dumps(n) + ":" for n in names.values()]
                return [
                    (
                        int(r[0]),
                        "{" + ",".join(h + v for h, v in zip(heads, r[1:], strict=True)) + "}",
                    )
                    for r in rows
                ]
        wanted = sorted(names)
        marks = ",".join("?" * len(wanted))
        cur = self.db.execute(
            # Numbers and booleans through `->`, which keeps their JSON text (json_each's
            # value turns true into 1 and rounds a double to 15 digits).
            "SELECT seq, (SELECT json_group_object(key, CASE WHEN type IN"
            " ('true', 'false', 'integer', 'real') THEN json(body -> fullkey) ELSE value END)"
            " FROM json_each(body)"
            f" WHERE lower(key) IN ({marks}) OR key LIKE 'odata.%')"
            " FROM resources WHERE kind=? AND parent=? AND seq>? ORDER BY seq LIMIT ?",
            (*wanted, kind, parent, after, limit),
        )
        return [(int(seq), str(body)) for seq, body in cur.fetchall()]

    def iter_all(self, kind: str, *, state: str | None = None) -> Iterator[Row]:
        """Every row of a kind across parents (the scheduler's scans)."""
        sql = "SELECT seq, kind, parent, key, body, meta FROM resources WHERE kind=?"
        args: list[Any] = [kind]
        if state is not None:
            sql += " AND state=?"
            args.append(state)
        for r in self.db.execute(sql + " ORDER BY seq", args).fetchall():
            yield self._row(r)

    def states(self, kind: str, parent: str) -> dict[str, str]:
        """key -> state for every child, without decoding bodies (dependency checks)."""
        cur = self.db.execute(
            "SELECT key, state FROM resources WHERE kind=? AND parent=?", (kind, parent)
        )
        return {k: s for k, s in cur.fetchall()}

    def count_states(self, kind: str, parent: str) -> dict[str, int]:
        cur = self.db.execute(
            "SELECT state, COUNT(*) FROM resources WHERE kind=? AND parent=? GROUP BY state",
            (kind, parent),
        )
        return {s: int(n) for s, n in cur.fetchall()}
