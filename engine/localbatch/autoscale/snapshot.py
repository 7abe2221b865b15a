"""What a formula reads: a pool's counts at one instant, and each metric's sample history.

Batch records a sample of every metric every 30 seconds; `$X.GetSample(...)` reads those, while
`$X` alone reads the current value. Locally the node resource metrics ($CPUPercent, memory,
disk, network, $WallClockSeconds) are not measured: they read as zero, and their samples are
zeros recorded at the same times as the others, so GetSample's percentage rule behaves the same
for them.

PoolSnapshot is immutable and pure. SampleRecorder is the one mutable piece: the service keeps
one per autoscale pool and calls `record` on its clock, every SAMPLE_PERIOD seconds.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

SAMPLE_PERIOD_SECONDS = 30.0

# Read-only service-defined variables, canonical spelling, in the order current_values() uses.
RESOURCE_METRICS = (
    "$CPUPercent",
    "$WallClockSeconds",
    "$MemoryBytes",
    "$DiskBytes",
    "$DiskReadBytes",
    "$DiskWriteBytes",
    "$DiskReadOps",
    "$DiskWriteOps",
    "$NetworkInBytes",
    "$NetworkOutBytes",
)
READ_ONLY = (
    *RESOURCE_METRICS,
    "$SampleNodeCount",
    "$ActiveTasks",
    "$RunningTasks",
    "$PendingTasks",
    "$SucceededTasks",
    "$FailedTasks",
    "$TaskSlotsPerNode",
    "$CurrentDedicatedNodes",
    "$CurrentLowPriorityNodes",
    "$PreemptedNodeCount",
    "$UsableNodeCount",
)


@dataclass(frozen=True, slots=True)
class SampleSeries:
    """One metric's samples, oldest first: `times` in POSIX seconds, ascending.

    The sequences are read, never changed, by the evaluator (SampleRecorder hands out its own
    lists without copying them)."""

    times: Sequence[float] = ()
    values: Sequence[float] = ()


EMPTY_SERIES = SampleSeries()


@dataclass(frozen=True, slots=True)
class PoolSnapshot:
    """A pool's state as the formula sees it.

    target_*: the pool's current targets, which `$TargetDedicatedNodes` and
    `$TargetLowPriorityNodes` read until the formula assigns them. current_low_priority counts
    preempted nodes too (as Batch's $CurrentLowPriorityNodes does); usable counts nodes that can
    run tasks (idle or running). active_tasks counts active tasks whose dependencies are met.
    samples: keyed by canonical variable name (READ_ONLY); a missing key is an empty history.
    sample_delay_seconds: samples younger than this are not yet visible to GetSample (Batch
    documents about a minute of delay; 0 makes every recorded sample visible at once).
    """

    target_dedicated: int = 0
    target_low_priority: int = 0
    current_dedicated: int = 0
    current_low_priority: int = 0
    preempted: int = 0
    usable: int = 0
    task_slots_per_node: int = 1
    active_tasks: int = 0
    running_tasks: int = 0
    succeeded_tasks: int = 0
    failed_tasks: int = 0
    samples: Mapping[str, SampleSeries] = field(default_factory=dict)
    sample_period_seconds: float = SAMPLE_PERIOD_SECONDS
    sample_delay_seconds: float = 0.0

    def current_values(self) -> tuple[float, ...]:
        """The current value of every READ_ONLY variable, in that order."""
        return (
            *(0.0,) * len(RESOURCE_METRICS),
            float(self.current_dedicated + self.current_low_priority),
            float(self.active_tasks),
            float(self.running_tasks),
            float(self.active_tasks + self.running_tasks),
            float(self.succeeded_tasks),
            float(self.failed_tasks),
            float(self.task_slots_per_node),
            float(self.current_dedicated),
            float(self.current_low_priority),
            float(self.preempted),
            float(self.usable),
        )


class SampleRecorder:
    """A pool's metric history, recorded by the service every SAMPLE_PERIOD_SECONDS.

    Samples older than `retention_seconds` are dropped (a new list is made, so a snapshot taken
    earlier keeps reading the lists it was given)."""

    def __init__(self, retention_seconds: float = 86_400.0) -> None:
        self.retention_seconds = retention_seconds
        self._times: list[float] = []
        self._values: dict[str, list[float]] = {name: [] for name in READ_ONLY}

    @property
    def last_time(self) -> float | None:
        return self._times[-1] if self._times else None

    def due(self, at: dt.datetime, period: float = SAMPLE_PERIOD_SECONDS) -> bool:
        """Whether a sample is owed at `at` (none yet, or the last one is a period old)."""
        last = self.last_time
        return last is None or at.timestamp() - last >= period

    def record(self, at: dt.datetime, snapshot: PoolSnapshot) -> None:
        """Append one sample of every metric, taken from `snapshot`'s current values."""
        now = at.timestamp()
        if self._times and now <= self._times[-1]:
            return
        self._times.append(now)
        for name, value in zip(READ_ONLY, snapshot.current_values(), strict=True):
            self._values[name].append(value)
        horizon = now - self.retention_seconds
        if self._times[0] < horizon - self.retention_seconds / 8:  # trim in batches
            keep = next(i for i, t in enumerate(self._times) if t >= horizon)
            self._times = self._times[keep:]
            self._values = {n: v[keep:] for n, v in self._values.items()}

    def catch_up(
        self, at: dt.datetime, snapshot: PoolSnapshot, period: float = SAMPLE_PERIOD_SECONDS
    ) -> int:
        """Record every sample owed up to `at`, one per period after the last, all from
        `snapshot` (a stepped clock that jumped held that state throughout); the first sample
        is taken at `at` itself. Returns how many were recorded."""
        now = at.timestamp()
        last = self.last_time
        if last is None:
            self.record(at, snapshot)
            return 1
        count = 0
        t = last + period
        horizon = now - self.retention_seconds
        if t < horizon:  # samples older than the retention would be dropped at once
            t += math.ceil((horizon - t) / period) * period
        while t <= now:
            self.record(dt.datetime.fromtimestamp(t, dt.UTC), snapshot)
            t += period
            count += 1
        return count

    def series(self) -> dict[str, SampleSeries]:
        """Every metric's history, for PoolSnapshot.samples (no copy)."""
        return {name: SampleSeries(self._times, values) for name, values in self._values.items()}
