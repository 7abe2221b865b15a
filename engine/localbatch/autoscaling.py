"""Autoscale in the service: a pool's formula evaluated on the service clock, the pool resized.

The formula language is the pure `autoscale` package; this module wires it to pools as Batch
does: an evaluation at once when autoscale is enabled (pool creation or enableautoscale),
then every `autoScaleEvaluationInterval` from that moment; the result resizes the pool
(Pools.retarget) and is recorded in its `autoScaleRun`. Samples of the pool's task and node
counts are recorded every 30 s of service time (the CPU, memory, disk and network metrics
read zero locally). Timers live on the service clock, so `--clock manual` steps them.

Batch's rules: enableautoscale at most once per 30 s on a pool (503
TooManyEnableAutoScaleRequests), not while the pool resizes; evaluateautoscale only on a pool
with autoscale enabled; a create with enableAutoScale refuses target node counts and needs a
formula; a formula that does not compile is refused with its 400 before anything changes.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from .autoscale import (
    SAMPLE_PERIOD_SECONDS,
    FormulaError,
    PoolSnapshot,
    SampleRecorder,
    compile_cached,
    evaluate,
)
from .autoscale.schedule import (
    DEFAULT_INTERVAL,
    enable_too_soon,
    interval_in_range,
    next_evaluation,
)
from .clock import Clock, Timer
from .jobs import Jobs
from .pools import Pools
from .resources import BatchError, duration_seconds, invalid, missing, parse_iso
from .store import Row, Store
from .tasks import Tasks

NOT_ENABLED = (
    409,
    "OperationNotValidOnPool",
    "Autoscale is not enabled on the specified pool.",
)
INVALID_SETTINGS = "InvalidAutoScalingSettings"
USABLE = ("idle", "running")


@dataclass
class _PoolTimers:
    """One autoscale pool's live state: its schedule, samples and pending timers."""

    start: dt.datetime
    interval: dt.timedelta
    recorder: SampleRecorder = field(default_factory=SampleRecorder)
    evaluation: Timer | None = None
    sampling: Timer | None = None

    def cancel(self) -> None:
        for timer in (self.evaluation, self.sampling):
            if timer is not None:
                timer.cancel()


class AutoScaling:
    def __init__(self, store: Store, clock: Clock, pools: Pools, jobs: Jobs, tasks: Tasks) -> None:
        self.store = store
        self.clock = clock
        self.pools = pools
        self.jobs = jobs
        self.tasks = tasks
        self._live: dict[str, _PoolTimers] = {}
        self._last_enable: dict[str, dt.datetime] = {}
        pools.check_autoscale = check_create
        pools.on_autoscale = self._created

    # ------------------------------------------------------------------ requests

    def enable(self, row: Row, req: dict[str, Any]) -> None:
        """POST enableautoscale: a new formula and/or interval, evaluated at once."""
        self.pools.writable(row)
        body = row.body
        now = self.clock.now()
        if enable_too_soon(self._last_enable.get(row.key), now):
            raise BatchError(
                503,
                "TooManyEnableAutoScaleRequests",
                "Enable autoscale was called on this pool less than 30 seconds ago.",
            )
        if body["allocationState"] != "steady" and not body.get("enableAutoScale"):
            raise BatchError(409, "PoolBeingResized", "The specified pool is being resized.")
        formula = req.get("autoScaleFormula")
        if formula is None and not body.get("enableAutoScale"):
            raise missing("autoScaleFormula")
        if formula is not None:
            _compile(formula)
        interval_text = req.get("autoScaleEvaluationInterval")
        if interval_text is not None:
            _interval(interval_text)
        restart = interval_text is not None or not body.get("enableAutoScale")
        body["enableAutoScale"] = True
        if formula is not None:
            body["autoScaleFormula"] = formula
        if interval_text is not None:
            body["autoScaleEvaluationInterval"] = interval_text
        body.setdefault("autoScaleEvaluationInterval", "PT15M")
        self._last_enable[row.key] = now
        self.pools.touch(row)
        self.store.put(row)
        if restart or row.key not in self._live:
            self._arm(row, now)
        self._evaluate_now(row.key)
        fresh = self.store.get("pool", "", row.key)
        if fresh is not None:
            row.body = fresh.body

    def disable(self, row: Row) -> None:
        """POST disableautoscale: the pool keeps its current targets."""
        self.pools.writable(row)
        body = row.body
        body["enableAutoScale"] = False
        for key in ("autoScaleFormula", "autoScaleEvaluationInterval"):
            body.pop(key, None)
        self.pools.touch(row)
        self.store.put(row)
        self._forget(row.key)

    def evaluate(self, row: Row, req: dict[str, Any]) -> dict[str, Any]:
        """POST evaluateautoscale: the formula's AutoScaleRun on this pool, nothing changed."""
        if not row.body.get("enableAutoScale"):
            raise BatchError(*NOT_ENABLED)
        formula = req.get("autoScaleFormula")
        if formula is None:
            raise missing("autoScaleFormula")
        compiled = _compile(formula)
        live = self._live.get(row.key)
        recorder = live.recorder if live is not None else SampleRecorder()
        now = self.clock.now()
        snapshot = self._snapshot(row, recorder)
        return evaluate(compiled, snapshot, now).to_autoscale_run()

    # ------------------------------------------------------------------ schedule

    def _created(self, row: Row) -> None:
        self._last_enable[row.key] = self.clock.now()
        self._arm(row, self.clock.now())
        self._evaluate_now(row.key)

    def _arm(self, row: Row, start: dt.datetime) -> None:
        """(Re)start the pool's schedule at START: sampling now, evaluations each interval."""
        old = self._live.pop(row.key, None)
        interval = _interval(row.body.get("autoScaleEvaluationInterval"))
        live = _PoolTimers(start, interval)
        if old is not None:
            old.cancel()
            live.recorder = old.recorder
        self._live[row.key] = live
        row.meta["autoScaleStart"] = start.isoformat()
        self.store.put(row)
        self._sample(row.key)
        self._schedule_next(row.key)

    def _schedule_next(self, pool_key: str) -> None:
        live = self._live.get(pool_key)
        if live is None:
            return
        due = next_evaluation(live.start, live.interval, self.clock.now())
        live.evaluation = self.clock.at(due.timestamp(), lambda: self._scheduled(pool_key))

    def _scheduled(self, pool_key: str) -> None:
        self._evaluate_now(pool_key)
        self._schedule_next(pool_key)

    def _sample(self, pool_key: str) -> None:
        live = self._live.get(pool_key)
        pool = self.store.get("pool", "", pool_key)
        if live is None or pool is None or pool.body.get("state") != "active":
            self._forget(pool_key)
            return
        live.recorder.record(self.clock.now(), self._snapshot(pool, live.recorder))
        live.sampling = self.clock.after(SAMPLE_PERIOD_SECONDS, lambda: self._sample(pool_key))

    def _forget(self, pool_key: str) -> None:
        live = self._live.pop(pool_key, None)
        if live is not None:
            live.cancel()

    def _evaluate_now(self, pool_key: str) -> None:
        """Evaluate the pool's own formula, record autoScaleRun, resize toward the result."""
        pool = self.store.get("pool", "", pool_key)
        live = self._live.get(pool_key)
        if pool is None or live is None or pool.body.get("state") != "active":
            self._forget(pool_key)
            return
        if not pool.body.get("enableAutoScale"):
            self._forget(pool_key)
            return
        outcome = evaluate(
            str(pool.body.get("autoScaleFormula", "")),
            self._snapshot(pool, live.recorder),
            self.clock.now(),
        )
        pool.body["autoScaleRun"] = outcome.to_autoscale_run()
        body = pool.body
        if (
            outcome.error is None
            and outcome.target_dedicated is not None
            and outcome.target_low_priority is not None
            and (outcome.target_dedicated, outcome.target_low_priority)
            != (body["targetDedicatedNodes"], body["targetLowPriorityNodes"])
        ):
            self.pools.retarget(
                pool,
                outcome.target_dedicated,
                outcome.target_low_priority,
                outcome.node_deallocation_option or "requeue",
            )
        else:
            self.store.put(pool)

    # ------------------------------------------------------------------ what formulas read

    def _snapshot(self, pool: Row, recorder: SampleRecorder) -> PoolSnapshot:
        """The pool's counts now: its nodes, and the tasks of the active jobs bound to it."""
        body = pool.body
        active = running = succeeded = failed = 0
        pool_id = str(body["id"]).lower()
        for job in self.store.iter("job", ""):
            info = job.body.get("poolInfo") or {}
            if str(info.get("poolId", "")).lower() != pool_id:
                continue
            if job.body.get("state") in ("completed", "deleting"):
                continue
            counts = self.tasks.task_counts(job.key)["taskCounts"]
            active += counts["active"]
            running += counts["running"]
            succeeded += counts["succeeded"]
            failed += counts["failed"]
        preempted = usable = 0
        for node in self.store.iter("node", pool.key):
            state = node.body.get("state")
            preempted += state == "preempted"
            usable += state in USABLE
        return PoolSnapshot(
            target_dedicated=int(body.get("targetDedicatedNodes", 0)),
            target_low_priority=int(body.get("targetLowPriorityNodes", 0)),
            current_dedicated=int(body.get("currentDedicatedNodes", 0)),
            current_low_priority=int(body.get("currentLowPriorityNodes", 0)),
            preempted=preempted,
            usable=usable,
            task_slots_per_node=int(body.get("taskSlotsPerNode", 1)),
            active_tasks=active,
            running_tasks=running,
            succeeded_tasks=succeeded,
            failed_tasks=failed,
            samples=recorder.series(),
        )

    # ------------------------------------------------------------------ restart

    def recover(self) -> None:
        """After a restart: each autoscale pool's schedule continues from its start."""
        for pool in self.store.iter("pool", ""):
            if not pool.body.get("enableAutoScale") or pool.body.get("state") != "active":
                continue
            stamp = pool.meta.get("autoScaleStart")
            start = parse_iso(stamp) if isinstance(stamp, str) else self.clock.now()
            if start.tzinfo is None:
                start = start.replace(tzinfo=dt.UTC)
            self._live.pop(pool.key, None)
            self._arm(pool, start)


# ---------------------------------------------------------------------- validation


def check_create(req: dict[str, Any]) -> None:
    """A pool create's autoscale settings, as Batch checks them before creating anything."""
    if not req.get("enableAutoScale"):
        if req.get("autoScaleFormula") is not None:
            raise _settings(
                "autoScaleFormula", "autoScaleFormula must not be given without enableAutoScale."
            )
        return
    for key in ("targetDedicatedNodes", "targetLowPriorityNodes"):
        if req.get(key) is not None:
            raise _settings(key, f"{key} must not be given when enableAutoScale is true.")
    formula = req.get("autoScaleFormula")
    if formula is None:
        raise missing("autoScaleFormula")
    _compile(formula)
    _interval(req.get("autoScaleEvaluationInterval"))


def _settings(prop: str, reason: str) -> BatchError:
    return BatchError(
        400,
        INVALID_SETTINGS,
        "The specified autoscale settings are invalid.",
        {"PropertyName": prop, "Reason": reason},
    )


def _compile(formula: Any) -> Any:
    """The compiled formula, or Batch's 400 with the formula error's code and position."""
    if not isinstance(formula, str):
        raise invalid("autoScaleFormula", formula, "The formula must be a string.")
    try:
        return compile_cached(formula)
    except FormulaError as exc:
        error = exc.error
        raise BatchError(400, error.code, error.message, dict(error.values)) from None


def _interval(text: Any) -> dt.timedelta:
    """autoScaleEvaluationInterval: 5 minutes to 168 hours (default 15 minutes)."""
    if text is None:
        return DEFAULT_INTERVAL
    try:
        seconds = duration_seconds(text) if isinstance(text, str) else None
    except ValueError:
        seconds = None
    if seconds is None:
        raise invalid(
            "autoScaleEvaluationInterval", text, "The interval must be an ISO 8601 duration."
        )
    interval = dt.timedelta(seconds=seconds)
    if not interval_in_range(interval):
        raise invalid(
            "autoScaleEvaluationInterval",
            text,
            "The interval must be between 5 minutes and 168 hours.",
        )
    return interval
