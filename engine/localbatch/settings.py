"""The service's run-time settings and fixed limits, apart from everything that reads them.

`/_local/settings` reads and changes `Settings` while the service runs; the clock mode is
fixed when the service starts (`--clock manual`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .quotas import QUOTA_KEYS, Quotas

MIN_API = "2020-09-01.12.0"  # versions.OLDEST
MAX_API = "2025-06-01.21.0"
FAULT_KINDS = ("500", "503", "429", "drop")
CLOCK_MODES = ("real", "manual")


@dataclass
class Settings:
    """What `/_local/settings` reads and changes at run time."""

    latency_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: list[str] = field(default_factory=lambda: list(FAULT_KINDS))
    # A storm: faults stop at this time.monotonic() (set by `faultFor`, seconds from now);
    # None: they go on until faultRate is set to 0.
    fault_until: float | None = None
    delete_delay: float = 1.0
    max_processes: int = os.cpu_count() or 1
    clock: str = "real"  # real | manual; fixed at start
    # nodeAgentSkuId (any case) -> ISO date: replaces the shared images table's end-of-life
    # dates, so that what a client sees never depends on today's date.
    image_end_of_life: dict[str, str] = field(default_factory=dict)
    # The account's quotas (quotas.py enforces them): generous by default, lowered by tests.
    quotas: Quotas = field(default_factory=Quotas)
    # Spot preemption (preemption.py): the chance per Spot node and minute of service clock,
    # its random seed, and after how many service seconds a preempted node comes back
    # (None: only when POST /_local/restore says so).
    preemption_rate: float = 0.0
    preemption_seed: int | None = 0
    preemption_restore_after: float | None = 120.0
    # Azure enables a job's maxParallelTasks per account (a support request); false answers
    # a job that sets it as an account without it does (403 Forbidden).
    max_parallel_tasks_enabled: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "latencyMs": self.latency_ms,
            "faultRate": self.fault_rate,
            "faultKinds": list(self.fault_kinds),
            "faultFor": None
            if self.fault_until is None
            else max(0.0, round(self.fault_until - time.monotonic(), 3)),
            "deleteDelay": self.delete_delay,
            "maxProcesses": self.max_processes,
            "clock": self.clock,
            "imageEndOfLife": dict(self.image_end_of_life),
            **self.quotas.to_json(),
            "preemptionRate": self.preemption_rate,
            "preemptionSeed": self.preemption_seed,
            "preemptionRestoreAfter": self.preemption_restore_after,
            "maxParallelTasksEnabled": self.max_parallel_tasks_enabled,
        }

    def apply(self, data: Any) -> None:
        """Change settings from a `/_local/settings` PUT body; ValueError names a bad key."""
        if not isinstance(data, dict):
            raise ValueError("settings must be a JSON object")
        for key, value in data.items():
            if key == "latencyMs":
                self.latency_ms = max(0.0, float(value))
            elif key == "faultRate":
                self.fault_rate = min(1.0, max(0.0, float(value)))
            elif key == "faultKinds":
                kinds = [str(k) for k in value]
                bad = set(kinds) - set(FAULT_KINDS)
                if bad:
                    raise ValueError(f"unknown fault kinds {sorted(bad)}")
                self.fault_kinds = kinds
            elif key == "faultFor":
                self.fault_until = (
                    None if value is None else time.monotonic() + max(0.0, float(value))
                )
            elif key == "deleteDelay":
                self.delete_delay = max(0.0, float(value))
            elif key == "maxProcesses":
                self.max_processes = max(1, int(value))
            elif key == "imageEndOfLife":
                if not isinstance(value, dict):
                    raise ValueError("imageEndOfLife must map node agent SKUs to dates")
                self.image_end_of_life = {str(k): str(v) for k, v in value.items()}
            elif key in QUOTA_KEYS:
                self.quotas.apply(key, value)
            elif key == "preemptionRate":
                self.preemption_rate = min(1.0, max(0.0, float(value)))
            elif key == "preemptionSeed":
                self.preemption_seed = None if value is None else int(value)
            elif key == "preemptionRestoreAfter":
                self.preemption_restore_after = None if value is None else max(0.0, float(value))
            elif key == "maxParallelTasksEnabled":
                self.max_parallel_tasks_enabled = bool(value)
            elif key == "clock":
                if value != self.clock:
                    raise ValueError("the clock mode is fixed when the service starts (--clock)")
            else:
                raise ValueError(f"unknown setting {key!r}")
