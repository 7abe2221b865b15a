"""The service's one clock: every time the service shows or measures goes through it.

In `real` mode it is the system clock, and due timers fire from a background task. In
`manual` mode it stands still until `/_local/clock` advances it; `advance` then fires every
timer due on the way, in order, each at its own due time, and awaits what they do, so a test
sees deletions finished and retention expired when the call returns, without sleeping.

Timers are how the service waits for anything Batch measures in time: a deleting pool or
job, a completed task's retention, a task's or job's maxWallClockTime (and, later, schedule
recurrences and autoscale intervals). Short processing steps (a node booting) are not Batch
time and take real moments in both modes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .resources import iso

log = logging.getLogger("bspec.localbatch.clock")

Action = Callable[[], Awaitable[None] | None]


@dataclass(order=True)
class Timer:
    """A pending action at a service time; `cancel()` makes it do nothing when due."""

    due: float
    seq: int
    action: Action = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    def __init__(self, mode: str = "real", start: float | None = None) -> None:
        if mode not in ("real", "manual"):
            raise ValueError(f"unknown clock mode {mode!r}")
        self.mode = mode
        self._frozen = time.time() if start is None else start
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._changed: asyncio.Event | None = None
        self._runner: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[Any]] = set()
        self._advancing = asyncio.Lock()

    @property
    def manual(self) -> bool:
        return self.mode == "manual"

    # ------------------------------------------------------------------ reading

    def time(self) -> float:
        """Service time in seconds since the epoch."""
        return self._frozen if self.manual else time.time()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.time(), dt.UTC)

    def iso(self) -> str:
        return iso(self.now())

    def to_json(self) -> dict[str, Any]:
        pending = [t for t in self._timers if not t.cancelled]
        out: dict[str, Any] = {"mode": self.mode, "now": self.iso(), "pendingTimers": len(pending)}
        if pending:
            out["nextDue"] = iso(dt.datetime.fromtimestamp(min(pending).due, dt.UTC))
        return out

    # ------------------------------------------------------------------ timers

    def at(self, when: float, action: Action) -> Timer:
        """Run ACTION (a function, or one returning an awaitable) at service time WHEN."""
        timer = Timer(when, next(self._seq), action)
        heapq.heappush(self._timers, timer)
        if self._changed is not None:
            self._changed.set()
        return timer

    def after(self, seconds: float, action: Action) -> Timer:
        return self.at(self.time() + seconds, action)

    async def start(self) -> None:
        self._changed = asyncio.Event()
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """No more timers fire; those already firing get a few seconds to finish."""
        if self._runner is not None:
            self._runner.cancel()
        if self._running:
            await asyncio.wait(list(self._running), timeout=5)
        for task in list(self._running):
            task.cancel()

    async def _run(self) -> None:
        """Fire timers as they fall due: in real time, or (manual) those set for a time the
        clock has already reached, such as a delete delay of 0."""
        assert self._changed is not None
        while True:
            self._drop_cancelled()
            delay = self._timers[0].due - self.time() if self._timers else None
            if delay is None or delay > 0:
                timeout = None if self.manual else delay
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), timeout)
                self._changed.clear()
                continue
            if self.manual:
                async with self._advancing:
                    await self._fire_until(self._frozen)
                continue
            timer = heapq.heappop(self._timers)
            try:
                result = timer.action()
            except Exception:
                log.exception("timer failed")
                continue
            if result is not None:
                task = asyncio.ensure_future(result)
                self._running.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Future[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("timer failed", exc_info=task.exception())

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)

    async def advance(self, seconds: float) -> None:
        """Manual mode: move time forward by SECONDS, firing what falls due on the way, in
        order and one at a time, each awaited before the next."""
        if not self.manual:
            raise RuntimeError("the clock runs in real time; start the service with --clock manual")
        if seconds < 0:
            raise ValueError("the clock only goes forward")
        async with self._advancing:
            target = self._frozen + seconds
            await self._fire_until(target)
            self._frozen = target

    async def _fire_until(self, target: float) -> None:
        """Fire the timers due by TARGET in order, the clock at each one's due time, each
        awaited before the next (manual mode)."""
        while True:
            self._drop_cancelled()
            # A microsecond of slack: timers set from datetimes (whole microseconds) must
            # fire on the step that reaches them, whatever the float rounding.
            if not self._timers or self._timers[0].due > target + 1e-6:
                return
            timer = heapq.heappop(self._timers)
            self._frozen = max(self._frozen, min(timer.due, target))
            try:
                result = timer.action()
                if result is not None:
                    await result
            except Exception:
                log.exception("timer failed")
