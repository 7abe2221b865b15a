"""Crash and resume: an apply killed with SIGKILL at a chosen point, then applied again,
converges to exactly the desired state (every task once with its fingerprint, every blob
with its MD5, the pool and the job, nothing else), and the next plan is "No changes.".

Kill points are chosen by request count: `BSPEC_TEST_KILL_AFTER_WRITES=k` makes the apply
SIGKILL itself when the answer to its k-th write arrives (providers/counting.py). One recorded
run gives the number of writes W; the trials kill after every k in 1..W (containers, lock,
uploads, pool, job, each chunk of task submission), plus a few at random times.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bspec.commands.reconcile import run_apply, run_plan
from bspec.commands.unlock import run_unlock

from .conftest import Bspec, Snapshot, assert_converged, container_bytes, desired_of, record

KILL_ENV = "BSPEC_TEST_KILL_AFTER_WRITES"
LATENCY_MS = 100
TASKS = 130  # two chunks of task submission (100 tasks per request)


def at_kill(snap: Snapshot) -> str:
    """What existed when the apply died, in words, for the figures."""
    blobs = sum(len(b) for b in snap.containers.values())
    tasks = sum(len(t) for t in snap.tasks.values())
    return (f"{len(snap.containers)} containers, {blobs} blobs, {len(snap.pools)} pool,"
            f" {len(snap.jobs)} job, {tasks} tasks")


def trial(bspec: Bspec, state: Callable[[str], Snapshot], name: str, spec: Path, *,
          kill_after: int | None = None, kill_at: float | None = None,
          wait: bool = False) -> dict[str, Any]:
    """Kill one apply, resume it, check convergence. Returns what happened, for figures."""
    args = ["apply", str(spec), "--yes", "--json", *([] if wait else ["--no-wait"])]
    env = {KILL_ENV: str(kill_after)} if kill_after else None
    proc = bspec.popen(args, env)
    if kill_at is not None:
        try:
            proc.wait(timeout=kill_at)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
    first = bspec.finish(args, proc)
    killed = first.returncode == -signal.SIGKILL
    if kill_after is not None:
        assert killed, f"the apply did not die after write {kill_after}:\n{first}"
    before = at_kill(state(name))
    unlocked = run_unlock(spec, yes=True, show=False)["unlocked"]
    again = run_apply(spec, yes=True, show=False, no_wait=not wait)
    assert again.exit_code == 0, again.data
    desired = desired_of(spec)
    assert_converged(state(name), desired)
    p, data = run_plan(spec, show=False)
    assert p.empty(), [c["address"] for c in data["changes"]]
    assert data["requests"]["batch"]["write"] == 0 and data["requests"]["storage"]["write"] == 0
    return {"killAfterWrite": kill_after, "killAtSeconds": kill_at, "killed": killed,
            "atKill": before, "lockBroken": unlocked,
            "resumeSubmitted": again.data["outcome"].get("tasksSubmitted"),
            "resumeUploaded": again.data["outcome"].get("blobsUploaded")}


def test_kill_after_every_write_then_resume(bspec: Bspec, inproc: Any,
                                             state: Callable[[str], Snapshot],
                                             stack: Callable[..., tuple[str, Path]]) -> None:
    # The recorded run: how many writes an uninterrupted apply makes, and what it leaves.
    ref_name, ref_spec = stack("crash-ref", tasks=TASKS)
    started = time.monotonic()
    ref = bspec("apply", str(ref_spec), "--yes", "--no-wait", "--json")
    took = time.monotonic() - started
    assert ref.returncode == 0, str(ref)
    total = sum(v["write"] for v in ref.json()["requests"].values())
    assert total >= 10
    assert_converged(state(ref_name), desired_of(ref_spec))
    trials = []
    for k in range(1, total + 1):
        name, spec = stack(f"crash-k{k}", tasks=TASKS)
        trials.append(trial(bspec, state, name, spec, kill_after=k))
    # A few at random times (seeded: the same every run). The 15 writes take a fraction
    # of a second of a run that is mostly start-up, so these trials run with 100 ms of
    # simulated Batch latency, which spreads the writes over about a second; the times are
    # drawn between the end of start-up (as long as `bspec validate` takes) and the end of
    # a run recorded with the same latency. At least 5 real kills, 20 trials in all.
    started = time.monotonic()
    assert bspec("validate", str(ref_spec)).returncode == 0
    startup = time.monotonic() - started
    rng = random.Random(6)
    wanted = max(5, 20 - total)
    with inproc.settings(latency_ms=LATENCY_MS):
        _, slow_spec = stack("crash-slow", tasks=TASKS)
        started = time.monotonic()
        assert bspec("apply", str(slow_spec), "--yes", "--no-wait").returncode == 0
        took = time.monotonic() - started
        for i in range(3 * wanted):
            if sum(1 for t in trials if t["killAtSeconds"] and t["killed"]) >= wanted:
                break
            name, spec = stack(f"crash-t{i}", tasks=TASKS)
            at = round(rng.uniform(min(startup, took * 0.8), took * 0.97), 2)
            trials.append(trial(bspec, state, name, spec, kill_at=at))
    trials = [t for t in trials if t["killed"]]
    assert len(trials) >= 20
    record("crash", {"writes": total, "recordedSeconds": round(took, 2),
                     "startupSeconds": round(startup, 2), "trials": trials})


def test_kill_while_waiting_then_resume_gives_the_same_outputs(
        bspec: Bspec, inproc: Any, state: Callable[[str], Snapshot], blob_service: Any,
        stack: Callable[..., tuple[str, Path]]) -> None:
    """With a node running the tasks and outputs downloaded: a killed, resumed apply leaves
    the same output files as an uninterrupted one."""
    ref_name, ref_spec = stack("wait-ref", tasks=6, nodes=1)
    ref = bspec("apply", str(ref_spec), "--yes", "--json")
    assert ref.returncode == 0, str(ref)
    ref_out = container_bytes(blob_service, f"{ref_name}-output")
    assert len(ref_out) == 3, sorted(ref_out)
    trials = []
    for kill in ({"kill_after": 9}, {"kill_at": 2.0}):
        name, spec = stack("wait-crash", tasks=6, nodes=1)
        trials.append(trial(bspec, state, name, spec, wait=True, **kill))
        assert container_bytes(blob_service, f"{name}-output") == ref_out
    record("crash-wait", {"trials": trials})
