"""Concurrent applies of one stack are serialized by the stack's lock (a leased blob in the
stack's logs container): the second waits up to --lock-timeout, then exits 3 naming the
holder; a crashed holder's lease expires by itself; `bspec unlock` breaks it on purpose; and
the lock is taken only when there is something to change.

Crashed holders here use `BSPEC_TEST_LOCK_LEASE_SECONDS=15` (the shortest lease Blob Storage
grants) so that waiting for expiry costs 15 s, not 60; a live holder with the same short
lease shows that renewal keeps it held past one lease period.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bspec.locking import LOCK_BLOB, StackLock
from bspec.targets import connect

from .conftest import Bspec, Run, Snapshot, assert_converged, check_output, desired_of, record
from .test_crash_resume import KILL_ENV

SHORT_LEASE = {"BSPEC_TEST_LOCK_LEASE_SECONDS": "15"}
# Writes of an apply, in order: the logs container, the lock blob, the lease, the holder's
# metadata; the lock is held and named from write 4 on. Killing at write 6 leaves it held.
HOLDING_WRITE = 6


def crash_holding_the_lock(bspec: Bspec, spec: Path) -> int:
    """An apply SIGKILLed while it holds the stack's lock; returns its pid."""
    args = ["apply", str(spec), "--yes", "--no-wait", "--json"]
    proc = bspec.popen(args, {KILL_ENV: str(HOLDING_WRITE), **SHORT_LEASE})
    run = bspec.finish(args, proc)
    assert run.returncode == -signal.SIGKILL, str(run)
    return proc.pid


def submitted(run: Run) -> int:
    if run.returncode != 0:
        return 0
    return int(run.json()["outcome"].get("tasksSubmitted", 0))


def test_two_concurrent_applies_are_serialized(bspec: Bspec, inproc: Any,
                                               state: Callable[[str], Snapshot],
                                               stack: Callable[..., tuple[str, Path]]) -> None:
    """Two applies that both planned changes: the lock lets one apply at a time."""
    name, spec = stack("conc", tasks=130)
    args = ["apply", str(spec), "--yes", "--no-wait", "--json", "--lock-timeout", "60"]
    # Hold the lock while both start and plan, so that both surely wait for it.
    tgt = connect("local", name)
    try:
        gate = StackLock(tgt.storage, desired_of(spec).logs_container.name, 0, "apply")
        gate.acquire()
        procs = [bspec.popen(args) for _ in range(2)]
        time.sleep(6)  # start-up and planning take about 1.5 s each
        assert all(p.poll() is None for p in procs), "an apply did not wait for the lock"
        gate.release()
    finally:
        tgt.close()
    runs = [bspec.finish(args, p) for p in procs]
    for r in runs:
        # The one that got the lock second plans again under it, finds the work done and
        # changes nothing: both succeed, and the tasks are submitted exactly once.
        assert r.returncode == 0, str(r)
    assert sum(submitted(r) for r in runs) == 130, [str(r) for r in runs]
    assert sorted(submitted(r) for r in runs) == [0, 130], [str(r) for r in runs]
    assert_converged(state(name), desired_of(spec))
    record("concurrent", {"exitCodes": [r.returncode for r in runs],
                          "tasksSubmitted": [submitted(r) for r in runs]})


def test_crashed_holder_refuses_then_expires_or_is_unlocked(
        bspec: Bspec, inproc: Any, state: Callable[[str], Snapshot],
        stack: Callable[..., tuple[str, Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    # Stack 0: a live holder with a 15 s lease, renewed while held; checked at the end,
    # after more than one lease period.
    monkeypatch.setenv("BSPEC_TEST_LOCK_LEASE_SECONDS", "15")
    name0, spec0 = stack("lock-renew", tasks=2)
    holder = connect("local", name0)
    live = StackLock(holder.storage, desired_of(spec0).logs_container.name, 0, "apply")
    live.acquire()
    held_since = time.monotonic()
    # Stack 1: a crashed holder, and an apply that waits (default --lock-timeout) for the
    # lease to expire by itself; it runs in the background while stack 2 is tested.
    name1, spec1 = stack("lock-expire", tasks=20)
    crash_holding_the_lock(bspec, spec1)
    waiting_args = ["apply", str(spec1), "--yes", "--no-wait", "--json"]
    waiting = bspec.popen(waiting_args)

    # Stack 2: refused while a crashed holder's lease lasts, naming it; then unlocked.
    name2, spec2 = stack("lock-break", tasks=20)
    pid = crash_holding_the_lock(bspec, spec2)
    refused = bspec("apply", str(spec2), "--yes", "--no-wait", "--json", "--lock-timeout", "1")
    assert refused.returncode == 3, str(refused)
    error = refused.json()["error"]
    assert error["code"] == "LockHeld"
    assert f"pid {pid}" in error["message"] and "apply" in error["message"]
    human = bspec("destroy", str(spec2), "--yes", "--lock-timeout", "0")
    assert human.returncode == 3 and f"pid {pid}" in human.stderr, str(human)
    unlocked = bspec("unlock", str(spec2), "--yes", "--json")
    assert unlocked.returncode == 0, str(unlocked)
    assert unlocked.json()["unlocked"] is True
    assert unlocked.json()["holder"]["pid"] == str(pid)
    check_output(unlocked.json(), "unlock")
    again = bspec("unlock", str(spec2), "--yes")
    assert again.returncode == 0 and "not held" in again.stdout
    applied = bspec("apply", str(spec2), "--yes", "--no-wait", "--json", "--lock-timeout", "0")
    assert applied.returncode == 0, str(applied)
    assert_converged(state(name2), desired_of(spec2))

    # The lock is taken only when there is something to change: with it held by someone
    # else, a converged apply still succeeds at once and writes nothing.
    tgt = connect("local", name2)
    try:
        desired = desired_of(spec2)
        with StackLock(tgt.storage, desired.logs_container.name, 0, "apply"):
            converged = bspec("apply", str(spec2), "--yes", "--no-wait", "--json",
                              "--lock-timeout", "0")
            plan = bspec("plan", str(spec2), "--json")
    finally:
        tgt.close()
    assert converged.returncode == 0, str(converged)
    assert all(v["write"] == 0 for v in converged.json()["requests"].values())
    assert plan.returncode == 0 and plan.json()["changes"] == []

    # The live holder's lease outlived its 15 s because it was renewed.
    time.sleep(max(0.0, 17 - (time.monotonic() - held_since)))
    assert holder.storage.try_lease(live.container, LOCK_BLOB, {"pid": "other"}, 15) is None
    live.release()
    again_free = holder.storage.try_lease(live.container, LOCK_BLOB, {"pid": "other"}, 15)
    assert again_free is not None
    holder.storage.release_lease(live.container, LOCK_BLOB, again_free)
    holder.close()

    waited = bspec.finish(waiting_args, waiting, timeout=120)
    assert waited.returncode == 0, str(waited)
    assert_converged(state(name1), desired_of(spec1))
    record("lock", {"refusedExit": refused.returncode, "holderPid": pid,
                    "expiredAndApplied": waited.returncode == 0, "lockBlob": LOCK_BLOB})
