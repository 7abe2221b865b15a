"""The dashboard's incremental cache of one job's tasks.

A refresh asks the service for the task counts and for the tasks whose state changed since
the newest `stateTransitionTime` seen (the service's own clock, so no clock skew), with a
narrow `$select`: with nothing changed that is two requests whether the job has ten tasks or
a hundred thousand. Sorting, filtering, paging and the timeline are then served from memory.
When the counts say tasks went away (deleted), the next refresh reads the job whole again.

Pure: the requests are the `Reader`'s (bspec.operations.dashboard on a connected target).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Protocol

HISTORY = 1800  # chart points kept per job (an hour at one refresh each two seconds)
STATES = ("active", "running", "completed", "succeeded", "failed")
SORTS = ("id", "state", "exitCode", "node", "start", "end", "duration", "retries")


class Reader(Protocol):
    def tasks_since(self, since: str | None) -> list[dict[str, Any]]: ...

    def counts(self) -> dict[str, int] | None: ...


def epoch(text: Any) -> float | None:
    """An ISO time of the service as seconds since the epoch, or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class TaskRow:
    """What the cache keeps of one task: enough to sort, filter and draw it."""

    id: str
    state: str
    transition: float
    start: float | None
    end: float | None
    exit_code: int | None
    node: str | None
    retries: int
    failed: bool
    failure: str | None

    @property
    def shown_state(self) -> str:
        if self.state == "completed":
            return "failed" if self.failed else "succeeded"
        return self.state

    @property
    def duration(self) -> float | None:
        if self.start is None:
            return None
        return (self.end or time.time()) - self.start

    @staticmethod
    def of(t: dict[str, Any]) -> TaskRow:
        info = t.get("executionInfo") or {}
        fi = info.get("failureInfo") or {}
        code = info.get("exitCode")
        return TaskRow(
            id=str(t.get("id")),
            state=str(t.get("state") or "active"),
            transition=epoch(t.get("stateTransitionTime")) or 0.0,
            start=epoch(info.get("startTime")),
            end=epoch(info.get("endTime")),
            exit_code=int(code) if code is not None else None,
            node=(t.get("nodeInfo") or {}).get("nodeId"),
            retries=int(info.get("retryCount") or 0),
            failed=info.get("result") == "failure",
            failure=fi.get("message") or fi.get("code"),
        )


def _sort_key(name: str) -> Callable[[TaskRow], Any]:
    if name == "id":
        return attrgetter("id")
    if name == "state":
        return lambda r: (r.shown_state, r.id)
    if name == "exitCode":
        return lambda r: (r.exit_code is None, r.exit_code or 0, r.id)
    if name == "node":
        return lambda r: (r.node or "", r.id)
    if name in ("start", "end", "duration", "retries"):
        attr = attrgetter(name)
        return lambda r: (attr(r) is None, attr(r) or 0, r.id)
    raise ValueError(name)


@dataclass
class Query:
    """A page of the task table: filters, sort and paging."""

    state: str | None = None
    exit_code: int | None = None
    prefix: str | None = None
    sort: str = "id"
    desc: bool = False
    offset: int = 0
    limit: int = 50


@dataclass
class JobCache:
    """One job's tasks, kept current by `refresh`; thread-safe (refreshes run in a thread
    while pages read)."""

    job_id: str
    rows: dict[str, TaskRow] = field(default_factory=dict)
    counts: dict[str, int] | None = None
    history: deque[tuple[float, dict[str, int]]] = field(
        default_factory=lambda: deque(maxlen=HISTORY)
    )
    since: str | None = None  # the newest stateTransitionTime seen, as the service wrote it
    version: int = 0
    refreshes: int = 0
    exists: bool = True
    _since_at: float = 0.0
    _sorted: dict[str, list[TaskRow]] = field(default_factory=dict)
    # the ids in order, kept up to date as tasks arrive (an id never moves), so the default
    # view never sorts again; replaced, not changed in place, so readers need no lock
    _ids: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, reader: Reader, now: float | None = None) -> bool:
        """Bring the cache up to date; returns whether anything changed."""
        counts = reader.counts()
        changed = self._take(reader.tasks_since(self.since))
        with self._lock:
            self.refreshes += 1
            self.exists = counts is not None
            total = sum(counts[s] for s in ("active", "running", "completed")) if counts else 0
            if counts is not None and total < len(self.rows):
                # tasks were deleted: read the job whole next time
                self.since, self._since_at = None, 0.0
                self.rows, self._ids = {}, []  # new objects: a reader keeps its consistent pair
                changed = True
            if counts != self.counts:
                changed = True
            self.counts = counts
            self.history.append((now if now is not None else time.time(), dict(counts or {})))
            if changed:
                self.version += 1
                self._sorted.clear()
        return changed

    def _take(self, found: Iterable[dict[str, Any]]) -> bool:
        changed = False
        new: list[str] = []
        with self._lock:
            for t in found:
                row = TaskRow.of(t)
                old = self.rows.get(row.id)
                if old != row:
                    if old is None:
                        new.append(row.id)
                    self.rows[row.id] = row
                    changed = True
                stamp = t.get("stateTransitionTime")
                if stamp and row.transition >= self._since_at:
                    self.since, self._since_at = str(stamp), row.transition
            if len(new) * 20 > len(self._ids):  # many: sort once
                self._ids = sorted(self.rows)
            elif new:
                ids = self._ids.copy()
                for tid in new:
                    bisect.insort(ids, tid)
                self._ids = ids
        return changed

    def page(self, q: Query) -> tuple[int, list[TaskRow]]:
        """The rows matching `q`'s filters (how many, and the page asked for)."""
        key = q.sort if q.sort in SORTS else "id"
        if key == "id":
            return self._page_by_id(q)
        with self._lock:
            ordered = self._sorted.get(key)
            if ordered is None:
                ordered = sorted(self.rows.values(), key=_sort_key(key))
                self._sorted[key] = ordered
        if q.desc:
            ordered = ordered[::-1]
        test = _matcher(q)
        if test is None:
            return len(ordered), ordered[q.offset : q.offset + q.limit]
        matching = [r for r in ordered if test(r)]
        return len(matching), matching[q.offset : q.offset + q.limit]

    def _page_by_id(self, q: Query) -> tuple[int, list[TaskRow]]:
        with self._lock:  # every id in `ids` is in `rows` (rows only grow, or are replaced)
            ids, rows = self._ids, self.rows
        if q.prefix:  # the ids with a prefix are one run of the order
            lo = bisect.bisect_left(ids, q.prefix)
            ids = ids[lo : bisect.bisect_left(ids, q.prefix + "\U0010ffff", lo)]
        test = _matcher(Query(state=q.state, exit_code=q.exit_code))
        if test is None:
            total = len(ids)
            if q.desc:
                top = total - q.offset
                picked = ids[max(0, top - q.limit) : max(0, top)][::-1]
            else:
                picked = ids[q.offset : q.offset + q.limit]
            return total, [rows[i] for i in picked]
        order = reversed(ids) if q.desc else iter(ids)
        matching = [r for r in (rows[i] for i in order) if test(r)]
        return len(matching), matching[q.offset : q.offset + q.limit]

    def throughput(self, window: float = 60.0) -> float | None:
        """Tasks completed per minute over the last `window` seconds of history."""
        with self._lock:
            if len(self.history) < 2:
                return None
            t1, c1 = self.history[-1]
            t0, c0 = self.history[0]
            for t, c in reversed(self.history):
                t0, c0 = t, c
                if t1 - t <= window:
                    continue
                break
        if t1 <= t0:
            return None
        return max(0.0, (c1.get("completed", 0) - c0.get("completed", 0)) * 60.0 / (t1 - t0))

    def eta(self) -> float | None:
        """Seconds until the job's tasks complete at the current throughput."""
        rate = self.throughput()
        left = (self.counts or {}).get("active", 0) + (self.counts or {}).get("running", 0)
        if not left:
            return 0.0 if self.counts else None
        if not rate:
            return None
        return left / rate * 60.0

    def timeline(self, limit: int = 5000) -> list[TaskRow]:
        """The tasks that ran (the `limit` most recently started), for the Gantt chart."""
        with self._lock:
            ran = [r for r in self.rows.values() if r.start is not None and r.node]
        ran.sort(key=lambda r: r.start or 0.0)
        return ran[-limit:]

    def series(self) -> list[list[float]]:
        """The counts over time as uPlot's columns: time, completed, running, active, failed."""
        with self._lock:
            points = list(self.history)
        cols: list[list[float]] = [[], [], [], [], []]
        for t, c in points:
            cols[0].append(round(t, 3))
            cols[1].append(c.get("succeeded", 0))
            cols[2].append(c.get("running", 0))
            cols[3].append(c.get("active", 0))
            cols[4].append(c.get("failed", 0))
        return cols


def _matcher(q: Query) -> Callable[[TaskRow], bool] | None:
    tests: list[Callable[[TaskRow], bool]] = []
    if q.state in ("succeeded", "failed"):
        want_failed = q.state == "failed"
        tests.append(lambda r: r.state == "completed" and r.failed is want_failed)
    elif q.state in ("active", "running", "completed", "preparing"):
        state = q.state
        tests.append(lambda r: r.state == state)
    if q.exit_code is not None:
        code = q.exit_code
        tests.append(lambda r: r.exit_code == code)
    if q.prefix:
        prefix = q.prefix
        tests.append(lambda r: r.id.startswith(prefix))
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    return lambda r: all(t(r) for t in tests)
