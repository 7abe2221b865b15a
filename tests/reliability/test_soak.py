"""The chaos soak: three stacks edited and applied again and again for a while (20 minutes and
2,000 tasks in `make chaos`; 15 s and 60 tasks in `make test`, about 40 s with the final
checks), while bspec is SIGKILLed at random, the local Batch service is SIGKILLed and
restarted, Azurite is restarted, Spot nodes are preempted, and 5% of the requests to both
services fail.

At the end, with the faults off: every stack converges (each task exactly once with its
fingerprint, each once succeeded), the outputs are byte-identical to a clean run of the
final specs, and nothing is left: no process of a task, no container, no held lease on a
lock, no temporary download file. The numbers of each injected event are recorded
(docs/reliability.md has those of a 20-minute run).

    BSPEC_SOAK_SECONDS=1200 BSPEC_SOAK_TASKS=2000 .venv/bin/pytest -m chaos \\
        tests/reliability/test_soak.py            # what `make chaos` runs (the defaults)
    BSPEC_SOAK_SEED=7 ...                         # another seeded sequence of events

Azurite is restarted with SIGTERM here, not SIGKILL: a SIGKILLed Azurite forgets the last
seconds of writes it acknowledged (test_service_crash.py, docs/reliability.md), which no
client can make up for; its crash is tested there.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .chaos import Private, private_services, task_results, temporaries
from .conftest import (
    IMAGE,
    Bspec,
    Run,
    assert_converged,
    container_bytes,
    desired_of,
    record,
    snapshot,
)

FAULTS = 0.05
SHORT_SECONDS = 15.0
SHORT_TASKS = 60


def spec_for(folder: Path, name: str, tasks: int, gen: int) -> Path:
    """A stack of TASKS short tasks; GEN (the edit count) changes the tasks whose index is
    GEN mod 5 (and gives those of the previous edit back their first output)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = (
        't="$AZ_BATCH_TASK_ID"; sleep 0.05; '
        'printf "%s %s\\n" "$t" "{{ vars.gen if item % 5 == vars.gen % 5 else 0 }}" '
        '> "${t}_OUTPUT.txt"'
    )
    spec = {
        "apiVersion": "bspec/v1",
        "name": name,
        "vars": {"gen": gen},
        "storage": {"containers": {"output": {}}},
        "pool": {
            "id": f"{name}-pool",
            "vmSize": "standard_d2s_v3",
            "image": IMAGE,
            "nodes": 1,
            "lowPriorityNodes": 2,
            "taskSlotsPerNode": 4,
        },
        "jobs": [
            {
                "id": f"{name}-job",
                "tasks": [
                    {
                        "foreach": {"range": [0, tasks]},
                        "id": "t{{ item }}",
                        "commandLine": "/bin/sh -c '" + script.replace("'", "'\\''") + "'",
                        "outputFiles": [{"pattern": "*_OUTPUT.txt", "container": "output"}],
                    }
                ],
                "outputs": [{"container": "output", "to": "out"}],
            }
        ],
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


class Soak:
    """The soak's state: services, stacks and the tally of what it did to them."""

    def __init__(self, svc: Private, folder: Path, seed: int, tasks: int) -> None:
        self.svc = svc
        self.b = Bspec(svc)
        self.rng = random.Random(seed)
        self.folder = folder
        self.names = [f"soak{c}" for c in "abc"]
        per = [tasks // 3 + (1 if i < tasks % 3 else 0) for i in range(3)]
        self.tasks = dict(zip(self.names, per, strict=True))
        self.gen = dict.fromkeys(self.names, 0)
        self.events: Counter[str] = Counter()
        # one of each early on, whatever the seed draws: every kind happens in a short run
        self.forced = ["azurite", "batch", "preempt", "kill"]
        self.retries: Counter[str] = Counter()

    def spec(self, name: str) -> Path:
        return spec_for(self.folder / name, name, self.tasks[name], self.gen[name])

    def faults_on(self) -> None:
        self.svc.settings(
            faultRate=FAULTS,
            faultKinds=["500", "503", "429", "drop"],
            preemptionRestoreAfter=3,
        )
        self.svc.proxy(faultRate=FAULTS, seed=self.rng.randrange(10**6))

    def faults_off(self) -> None:
        self.svc.settings(faultRate=0.0, preemptionRate=0.0)
        self.svc.proxy(faultRate=0.0)

    # ------------------------------------------------------------------ events

    def restart_batch(self) -> None:
        self.svc.kill("batch")
        self.svc.up()
        self.faults_on()  # a new service starts with its flags' settings
        self.events["batch service SIGKILLed and restarted"] += 1

    def restart_azurite(self) -> None:
        pid = self.svc.pid("storage")
        if pid:
            os.kill(pid, signal.SIGTERM)
            self.svc.wait_gone(pid)
        self.svc.up()
        self.events["Azurite restarted"] += 1

    def preempt(self) -> None:
        pool = f"{self.rng.choice(self.names)}-pool"
        try:
            done = self.svc.post("/_local/preempt", {"poolId": pool, "count": 1})
        except OSError:  # no such pool yet, or the service is restarting
            return
        self.events["Spot nodes preempted"] += len(done.get("preempted") or [])

    # ------------------------------------------------------------------ commands

    def command(self, args: list[str], budget: float) -> Run:
        """Run `bspec ARGS` while injecting events at random moments; SIGKILL it at a random
        moment now and then; a run over BUDGET seconds is SIGKILLed too."""
        proc = self.b.popen(args)
        started = time.monotonic()
        kill_at = self.rng.uniform(0.5, 4.0) if self.rng.random() < 0.2 else None
        forced = self.forced.pop(0) if self.forced else None
        if forced == "kill":
            kill_at = 0.7
        while proc.poll() is None:
            now = time.monotonic() - started
            if (kill_at is not None and now >= kill_at) or now > budget:
                proc.send_signal(signal.SIGKILL)
                self.events["bspec SIGKILLed"] += 1
                break
            roll = self.rng.random()
            if forced in ("azurite", "batch", "preempt") and now >= 1.0:
                roll = {"batch": 0.0, "azurite": 0.008, "preempt": 0.02}[forced]
                forced = None
            if roll < 0.006:
                self.restart_batch()
            elif roll < 0.010:
                self.restart_azurite()
            elif roll < 0.030:
                self.preempt()
            time.sleep(0.1)
        run = self.b.finish(args, proc, timeout=600)
        for line in run.stderr.splitlines():
            if line.startswith(("batch: retrying", "storage: retrying")):
                self.retries[line.split(":")[0]] += 1
        if run.returncode not in (0, -signal.SIGKILL):
            # a clear error: bspec's own message, never a traceback (checked by finish)
            said = run.stdout + run.stderr
            assert run.returncode in (1, 3), str(run)
            assert "Error:" in said or "failed" in said, str(run)
            self.events[f"bspec {args[0]} exited {run.returncode}"] += 1
        if run.returncode != 0:
            unlocked = self.b("unlock", args[1], "--yes")
            assert unlocked.returncode == 0, str(unlocked)
        return run

    def step(self) -> None:
        name = self.rng.choice(self.names)
        roll = self.rng.random()
        if roll < 0.3:
            self.gen[name] += 1
            self.events["spec edits"] += 1
        spec = str(self.spec(name))
        if roll < 0.75:
            self.command(["apply", spec, "--yes", "--no-wait"], budget=120)
            self.events["applies"] += 1
        else:
            self.command(["wait", spec, "--timeout", "30"], budget=60)
            self.events["waits"] += 1

    def converge(self, name: str) -> Run:
        """Apply NAME with no faults until it ends well (failed tasks run again)."""
        spec = str(self.spec(name))
        run = self.b("apply", spec, "--yes", timeout=1800)
        if run.returncode == 1 and "--rerun-failed" in run.stdout:
            self.events["tasks failed and run again at the end"] += 1
            run = self.b("apply", spec, "--yes", "--rerun-failed", timeout=1800)
        assert run.returncode == 0, str(run)
        return run


def lease_states(svc: Private, name: str) -> list[str]:
    """The lease state of every blob in the stack's logs container (the lock among them)."""
    _, blobs = svc.clients()
    try:
        cc = blobs.get_container_client(f"{name}-bspec")
        if not cc.exists():
            return []
        return [str(b.lease.state) for b in cc.list_blobs()]
    finally:
        blobs.close()


def soak(svc: Private, folder: Path, seconds: float, tasks: int, seed: int) -> dict[str, Any]:
    s = Soak(svc, folder, seed, tasks)
    s.faults_on()
    started = time.monotonic()
    for name in s.names:  # every stack exists before the chaos (so that waits have a job)
        s.command(["apply", str(s.spec(name)), "--yes", "--no-wait"], budget=300)
    while time.monotonic() - started < seconds:
        s.step()
    chaos_seconds = time.monotonic() - started
    s.faults_off()
    for name in s.names:
        s.converge(name)
    converged_seconds = time.monotonic() - started
    batch, blobs = svc.clients()
    try:
        for name in s.names:
            spec = s.spec(name)
            assert_converged(snapshot(batch, blobs, name), desired_of(spec))
            results = task_results(batch, f"{name}-job")
            assert len(results) == s.tasks[name]
            assert {r[:2] for r in results.values()} == {("completed", "success")}, name
        # a clean run of the final specs, in stacks of their own: the same bytes
        for name in s.names:
            clean = spec_for(folder / f"clean-{name}", f"clean{name}", s.tasks[name], s.gen[name])
            run = s.b("apply", str(clean), "--yes", timeout=1800)
            assert run.returncode == 0, str(run)
            got = container_bytes(blobs, f"{name}-output")
            want = container_bytes(blobs, f"clean{name}-output")
            assert got == want, sorted(set(got.items()) ^ set(want.items()))[:6]
            downloaded = {p.name: p.read_bytes() for p in (folder / name / "out").glob("*")}
            assert downloaded == got, name
    finally:
        batch.close()
        blobs.close()
    for name in s.names:
        assert not [s for s in lease_states(svc, name) if s.lower().endswith("leased")], name
        assert temporaries(folder / name) == []
    assert svc.leftovers() == [] and svc.containers() == []
    for name in [*s.names, *(f"clean{n}" for n in s.names)]:
        spec = (
            folder / name / "spec.json"
            if not name.startswith("clean")
            else (folder / f"clean-{name[5:]}" / "spec.json")
        )
        run = s.b("destroy", str(spec), "--yes", timeout=600)
        assert run.returncode == 0, str(run)
    assert svc.leftovers() == [] and svc.containers() == []
    proxy = svc.proxy_counts()
    # the logs the secrets scan reads when the services stop (chaos.private_services)
    for log in ("batch.log", "storageproxy.log", "azurite.log"):
        assert (svc.home / "logs" / log).stat().st_size > 0, log
    return {
        "seconds": round(chaos_seconds),
        "convergedAfter": round(converged_seconds),
        "tasks": tasks,
        "seed": seed,
        "events": dict(s.events),
        "bspecRetries": dict(s.retries),
        "storageRequests": proxy.get("total", 0),
        "storageFaults": {k: v for k, v in proxy.items() if k not in ("total", "forwarded")},
        "edits": dict(s.gen),
    }


@pytest.fixture
def soak_services(tmp_path: Path) -> Iterator[Private]:
    args = ["--delete-delay", "0.2", "--max-processes", "4"]
    with private_services(tmp_path / "home", batch_args=args, storage_faults=0.0) as svc:
        yield svc


def test_soak_short(soak_services: Private, tmp_path: Path) -> None:
    figures = soak(soak_services, tmp_path / "stacks", SHORT_SECONDS, SHORT_TASKS, seed=11)
    record("soak-short", figures)


@pytest.mark.chaos
def test_soak(soak_services: Private, tmp_path: Path) -> None:
    seconds = float(os.environ.get("BSPEC_SOAK_SECONDS", "1200"))
    tasks = int(os.environ.get("BSPEC_SOAK_TASKS", "2000"))
    seed = int(os.environ.get("BSPEC_SOAK_SEED", "1"))
    figures = soak(soak_services, tmp_path / "stacks", seconds, tasks, seed)
    record("soak", figures)
    out = os.environ.get("BSPEC_SOAK_REPORT")
    if out:
        Path(out).write_text(json.dumps(figures, indent=1))
