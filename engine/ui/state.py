"""What the dashboard watches: each stack's connected target, its jobs' task caches and its
pools' nodes, refreshed in a thread through bspec.operations (never the SDKs directly)."""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec import operations
from bspec.errors import BspecError, InputError
from bspec.model import DesiredState
from bspec.operations import dashboard
from bspec.reporting.reporter import QuietReporter
from bspec.targets import Target
from bspec.ui.cache import HISTORY, JobCache

# Node states as the heat map groups them (Batch's states, lower-cased).
NODE_GROUPS = {
    "idle": "idle",
    "running": "running",
    "creating": "starting",
    "starting": "starting",
    "waitingforstarttask": "starting",
    "rebooting": "starting",
    "reimaging": "starting",
    "starttaskfailed": "failed",
    "unusable": "failed",
    "preempted": "preempted",
    "leavingpool": "other",
    "offline": "other",
    "unknown": "other",
    "upgradingos": "other",
}
# Stacks with at most this many tasks are planned at start-up for the stacks page's summary.
PLAN_AT_START_TASKS = 5_000
NODE_SERIES = ("idle", "running", "starting", "failed", "preempted", "other")


class Recorder(QuietReporter):
    """The dashboard's reporter: keeps what an operation shows; the person already confirmed
    in the page, so questions pass."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def show(self, line: str) -> None:
        self.lines.append(line)

    def write(self, text: str) -> None:
        self.lines.append(text)

    def note(self, text: str) -> None:
        self.lines.append(text)

    def confirm(self, question: str, *, declined: str, no_terminal_hint: str) -> None:
        return None


class _Reader:
    def __init__(self, tgt: Target, job_id: str) -> None:
        self.tgt, self.job_id = tgt, job_id

    def tasks_since(self, since: str | None) -> list[dict[str, Any]]:
        return dashboard.job_tasks_since(self.tgt, self.job_id, since)

    def counts(self) -> dict[str, int] | None:
        return dashboard.job_task_counts(self.tgt, self.job_id)


@dataclass
class PoolState:
    pool_id: str
    info: dict[str, Any] | None = None
    nodes: list[dict[str, Any]] = field(default_factory=list)
    history: deque[tuple[float, dict[str, int]]] = field(
        default_factory=lambda: deque(maxlen=HISTORY)
    )

    def by_state(self) -> dict[str, int]:
        c = Counter(NODE_GROUPS.get(str(n.get("state", "")).lower(), "other") for n in self.nodes)
        return {s: c.get(s, 0) for s in NODE_SERIES}

    def series(self) -> list[list[float]]:
        cols: list[list[float]] = [[] for _ in range(len(NODE_SERIES) + 1)]
        for t, c in list(self.history):
            cols[0].append(round(t, 3))
            for i, s in enumerate(NODE_SERIES, 1):
                cols[i].append(c.get(s, 0))
        return cols


@dataclass
class ShownPlan:
    """A plan as a page showed it, saved as `plan -o` saves one, so applying it refuses
    when the plan made under the lock differs."""

    id: str
    path: Path
    lines: list[str]
    data: dict[str, Any]
    made: float


@dataclass
class Stack:
    """One watched stack: from its spec (`desired`, `spec`), or found by its tags in the
    account when `bspec ui` was given no spec (then no plan and no rerun: they need it)."""

    label: str
    spec: Path | None
    desired: DesiredState | None
    tgt: Target
    vars: operations.Vars = None
    jobs: dict[str, JobCache] = field(default_factory=dict)
    pools: dict[str, PoolState] = field(default_factory=dict)
    plans: dict[str, ShownPlan] = field(default_factory=dict)
    last_plan: ShownPlan | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.label

    def refresh(self) -> None:
        """One refresh of every job's cache and every pool (run in a worker thread)."""
        with self.lock:
            try:
                for job_id, cache in self.jobs.items():
                    cache.refresh(_Reader(self.tgt, job_id))
                for pool in self.pools.values():
                    pool.info = dashboard.pool_info(self.tgt, pool.pool_id)
                    pool.nodes = dashboard.pool_nodes(self.tgt, pool.pool_id)
                    pool.history.append((time.time(), pool.by_state()))
                self.error = None
            except BspecError as exc:
                self.error = str(exc)
            except Exception as exc:  # the loop must outlive any one refresh: say it, go on
                self.error = f"refresh failed: {type(exc).__name__}: {exc}"

    def make_plan(self, folder: Path) -> ShownPlan:
        """The spec's plan now, saved to apply exactly what the page shows."""
        if self.spec is None:
            raise InputError(
                f"stack {self.name} was found by its tags: its plan needs its spec",
                code="InvalidFlag",
                hint=f"run `bspec ui SPEC` with {self.name}'s spec",
            )
        pid = secrets.token_hex(8)
        path = folder / f"{self.name}-{pid}.plan.json"
        rec = Recorder()
        done = operations.plan(self.spec, rec, vars=self.vars, target=self.tgt.name, out_file=path)
        shown = ShownPlan(pid, path, rec.lines, done.data, time.time())
        self.plans[pid] = shown
        self.last_plan = shown
        return shown

    def apply_plan(self, pid: str) -> list[str]:
        """Apply a shown plan (refused as a stale saved plan is, when things changed)."""
        shown = self.plans.get(pid)
        if shown is None:
            raise KeyError(pid)
        rec = Recorder()
        operations.apply(shown.path, rec, yes=True, wait=False)
        self.last_plan = None  # what the stacks page summarised is no longer the plan
        return rec.lines

    def plan_quietly(self, folder: Path) -> None:
        """The stacks page's summary at start-up, for stacks small enough to read whole
        without asking (larger ones link to the plan page, which plans on demand)."""
        if self.desired is None or len(self.desired.tasks) > PLAN_AT_START_TASKS:
            return
        try:
            self.make_plan(folder)
        except BspecError as exc:
            self.error = str(exc)


def pools_of(desired: DesiredState) -> list[str]:
    """The ids of the spec's pools (`pool:` or every `pools:` entry)."""
    return [p.id for p in desired.pools]


@dataclass
class Dashboard:
    """Every watched stack, and the scratch folder for the plans the pages showed."""

    stacks: dict[str, Stack]
    folder: Path
    version: int = 0

    def stack(self, name: str) -> Stack | None:
        return self.stacks.get(name)

    def refresh(self) -> None:
        for s in self.stacks.values():
            s.refresh()
        self.version += 1


@contextlib.contextmanager
def watching(
    specs: list[Path], vars: operations.Vars = None, target: str | None = None
) -> Iterator[Dashboard]:
    """Load and connect every spec's stack for the life of the dashboard; with no spec, every
    stack found by its tags in the target's account (found once, at start)."""
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="bspec-ui-") as tmp:
        found: dict[str, Stack] = {}
        for spec in specs:
            desired, name = operations.load_stack(spec, vars, target)
            tgt = stack.enter_context(operations.connected(desired, name))
            s = Stack(desired.stack, spec, desired, tgt, vars)
            s.jobs = {j.id: JobCache(j.id) for j in desired.jobs}
            s.pools = {p: PoolState(p) for p in pools_of(desired)}
            found[desired.stack] = s
        if not specs:
            tgt = stack.enter_context(dashboard.account(target))
            for label, parts in sorted(dashboard.find_stacks(tgt).items()):
                s = Stack(label, None, None, tgt)
                s.jobs = {j: JobCache(j) for j in parts["jobs"]}
                s.pools = {p: PoolState(p) for p in parts["pools"]}
                found[label] = s
        yield Dashboard(found, Path(tmp))
