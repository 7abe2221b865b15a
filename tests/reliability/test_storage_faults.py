"""Injected storage faults: with the storage proxy in front of Azurite answering 10% of
requests with 500, 503 or 429 (with Retry-After), dropping the connection (before Azurite
saw the request, after it did the work, or halfway through the answer) or answering slowly,
apply (uploads, the lock's lease, container creation), plan, outputs, logs and destroy end
exactly as they do without faults; uploads are whole or absent; downloads never leave a
partial file at the final name; the lock is never held by two commands; every retry is
reported on stderr and bounded.

All of it runs in private services (`faulted` in conftest), never the session's shared
ones. Checks read Azurite directly, around the proxy, so they are never faulted.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec import local as services

from .conftest import (
    Bspec,
    FaultedServices,
    Run,
    assert_converged,
    desired_of,
    leaks,
    record,
    snapshot,
    write_spec,
)
from .test_crash_resume import KILL_ENV

RATE = 0.1
SEED = 1717
ALL_KINDS = ["500", "503", "429", "drop", "slow"]
RETRY_LINE = "storage: retrying "


@pytest.fixture
def fb(faulted: FaultedServices) -> Iterator[Bspec]:
    """`bspec` against the private services; faults off again afterwards."""
    try:
        yield Bspec(faulted)
    finally:
        faulted.proxy(faultRate=0.0, faultKinds=ALL_KINDS, slowSeconds=0.5)


def retries(runs: list[Run]) -> list[str]:
    return [line for r in runs for line in r.stderr.splitlines() if line.startswith(RETRY_LINE)]


def storage_requests(run: Run) -> int:
    counts = run.json()["requests"]["storage"]
    return int(counts["read"] + counts["write"])


def lifecycle(fb: Bspec, faulted: FaultedServices, folder: Path, rate: float) -> dict[str, Any]:
    """One stack through apply (waited), plan, outputs, logs and destroy at RATE;
    what a user sees of it, and what it cost."""
    name = folder.name
    spec = write_spec(folder, name, files=3, tasks=5, nodes=1, outputs=True)
    desired = desired_of(spec)
    batch, blobs = faulted.clients()
    faulted.proxy(faultRate=rate, faultKinds=ALL_KINDS, seed=SEED, slowSeconds=0.2)
    before = faulted.proxy_counts()
    started = time.monotonic()
    runs = [fb("apply", str(spec), "--yes", "--json", timeout=240)]
    assert runs[0].returncode == 0, str(runs[0])
    assert_converged(snapshot(batch, blobs, name), desired)
    runs.append(fb("plan", str(spec), "--json"))  # no phantom change, whatever was retried
    assert runs[-1].returncode == 0, str(runs[-1])
    assert not runs[-1].json()["changes"], runs[-1].json()["changes"]
    (folder / "out").mkdir(exist_ok=True)
    for f in (folder / "out").iterdir():
        f.unlink()
    runs.append(fb("outputs", str(spec), "--json"))
    assert runs[-1].returncode == 0, str(runs[-1])
    got = {p.name: p.read_bytes() for p in (folder / "out").iterdir() if p.is_file()}
    runs.append(fb("logs", str(spec), "wc-in0"))
    assert runs[-1].returncode == 0, str(runs[-1])
    log_text = runs[-1].stdout
    runs.append(fb("destroy", str(spec), "--yes", "--json", timeout=240))
    assert runs[-1].returncode == 0, str(runs[-1])
    elapsed = time.monotonic() - started
    after = faulted.proxy_counts()
    snap = snapshot(batch, blobs, name)
    assert not snap.pools and not snap.jobs and not snap.containers, snap
    batch.close()
    blobs.close()
    injected = {k: after.get(k, 0) - before.get(k, 0) for k in ALL_KINDS}
    return {
        "outputs": got,
        "logs": log_text,
        "seconds": round(elapsed, 1),
        "retries": retries(runs),
        "requests": sum(storage_requests(r) for r in runs if r.stdout.startswith("{")),
        "injected": injected,
        "proxied": after.get("total", 0) - before.get("total", 0),
    }


def test_commands_converge_under_storage_faults(
    fb: Bspec, faulted: FaultedServices, tmp_path: Path
) -> None:
    clean = lifecycle(fb, faulted, tmp_path / "sf-clean", 0.0)
    faulty = lifecycle(fb, faulted, tmp_path / "sf-faulty", RATE)
    # The same results: outputs byte for byte, the task's log, converged and destroyed.
    assert clean["outputs"] and faulty["outputs"] == clean["outputs"]
    assert faulty["logs"] == clean["logs"]
    assert not clean["retries"]
    assert sum(faulty["injected"].values()) > 0, faulty
    # Reported: one line per retry, naming method and path (never a query) and the cause.
    for line in faulty["retries"]:
        assert " after HTTP " in line or " after a dropped connection" in line, line
        assert "?" not in line and "sig=" not in line, line
    # Bounded: retries stay near the faults injected (each fault is retried at most a few
    # times; slow answers need none), far from a retry storm.
    failing = sum(v for k, v in faulty["injected"].items() if k != "slow")
    assert len(faulty["retries"]) <= 2 * failing + 2, (faulty["retries"], faulty["injected"])
    assert faulty["requests"] <= clean["requests"] * 1.5 + 10
    record(
        "storageFaults",
        {
            "rate": RATE,
            "kinds": ALL_KINDS,
            "secondsWithout": clean["seconds"],
            "secondsWith": faulty["seconds"],
            "storageRequestsWithout": clean["requests"],
            "storageRequestsWith": faulty["requests"],
            "proxiedWith": faulty["proxied"],
            "injected": faulty["injected"],
            "retriesReported": len(faulty["retries"]),
        },
    )
    # The proxy's log names every request but never a key or a signature.
    text = (faulted.home / "logs" / "storageproxy.log").read_text()
    assert " PUT /devstoreaccount1/" in text
    assert not leaks(text, fb.secrets), leaks(text, fb.secrets)


def test_uploads_are_whole_or_absent_after_a_kill_under_faults(
    fb: Bspec, faulted: FaultedServices, tmp_path: Path
) -> None:
    folder = tmp_path / "sf-kill"
    spec = write_spec(folder, folder.name, files=0, tasks=2)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    for i in range(6):  # a few MB each, so the kill lands while some are on the wire
        (data / f"big{i}.txt").write_bytes((f"{i}" * 1024 + "\n").encode() * (1500 + 300 * i))
    raw = json.loads(spec.read_text())
    raw["storage"]["containers"]["input"] = {"files": ["data/*.txt"]}
    spec.write_text(json.dumps(raw))
    faulted.proxy(faultRate=RATE, faultKinds=ALL_KINDS, seed=SEED + 1, slowSeconds=0.3)
    args = ["apply", str(spec), "--yes", "--no-wait", "--json"]
    killed = fb.finish(args, fb.popen(args, {KILL_ENV: "7"}))
    assert killed.returncode == -signal.SIGKILL, str(killed)
    _batch, blobs = faulted.clients()
    name = desired_of(spec).container("input").name
    files = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in data.iterdir()}
    cc = blobs.get_container_client(name)
    seen = (
        {b.name: bytes(b.content_settings.content_md5 or b"").hex() for b in cc.list_blobs()}
        if cc.exists()
        else {}
    )
    for blob, md5 in seen.items():  # whole (Content-MD5 matches the file) or absent
        body = cc.download_blob(blob).readall()
        assert hashlib.md5(body).hexdigest() == files[blob] == md5, blob
    # The killed apply still holds the lock (its lease runs 60 s): break it, as a user
    # would; a later apply under the same faults finishes the job.
    assert fb("unlock", str(spec), "--yes").returncode == 0
    run = fb("apply", str(spec), "--yes", "--no-wait", "--json")
    assert run.returncode == 0, str(run)
    final = {b.name: bytes(b.content_settings.content_md5).hex() for b in cc.list_blobs()}
    assert final == files
    assert fb("destroy", str(spec), "--yes", timeout=240).returncode == 0
    blobs.close()
    _batch.close()


def test_downloads_never_show_a_partial_file_under_faults(
    fb: Bspec, faulted: FaultedServices, tmp_path: Path
) -> None:
    """`outputs` under drops (some halfway through a body) and slow answers: a watcher sees
    each output file only complete, and no temporary file is left behind."""
    folder = tmp_path / "sf-dl"
    spec = write_spec(folder, folder.name, files=0, tasks=1)
    data = folder / "data"
    data.mkdir(exist_ok=True)
    want: dict[str, bytes] = {}
    for i in range(4):
        want[f"d{i}.bin"] = bytes([65 + i]) * (2 * 1024 * 1024 + i)
        (data / f"d{i}.bin").write_bytes(want[f"d{i}.bin"])
    raw = json.loads(spec.read_text())
    raw["storage"]["containers"]["input"] = {"files": ["data/*.bin"]}
    raw["jobs"][0]["outputs"] = [{"container": "input", "to": "out"}]
    spec.write_text(json.dumps(raw))
    assert fb("apply", str(spec), "--yes", "--no-wait").returncode == 0
    out = folder / "out"
    out.mkdir()
    bad: list[str] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            for name, body in want.items():
                try:
                    seen = (out / name).read_bytes()
                except FileNotFoundError:
                    continue
                if seen != body:
                    bad.append(f"{name}: {len(seen)} of {len(body)} bytes")
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        faulted.proxy(faultRate=0.4, faultKinds=["drop", "slow"], seed=SEED, slowSeconds=0.2)
        run = fb("outputs", str(spec), "--json")
        assert run.returncode == 0, str(run)
        assert run.json()["outputs"]["downloaded"] == len(want), run.json()
    finally:
        stop.set()
        watcher.join()
    assert not bad, bad[:5]
    assert {p.name: p.read_bytes() for p in out.glob("*.bin")} == want
    assert not [p.name for p in out.iterdir() if p.name.startswith(".bspec-")]
    assert faulted.proxy_counts().get("drop", 0) > 0
    faulted.proxy(faultRate=0.0)
    assert fb("destroy", str(spec), "--yes").returncode == 0


def test_the_lock_is_never_held_twice_under_faults(
    fb: Bspec, faulted: FaultedServices, tmp_path: Path
) -> None:
    """Two applies of one stack at once, under faults on the lease requests too: one
    applies, the other waits for it and then finds nothing to do; tasks are submitted once."""
    folder = tmp_path / "sf-lock"
    spec = write_spec(folder, folder.name, files=2, tasks=40)
    faulted.proxy(faultRate=RATE, faultKinds=ALL_KINDS, seed=SEED + 7, slowSeconds=0.2)
    args = ["apply", str(spec), "--yes", "--no-wait", "--json", "--lock-timeout", "120"]
    procs = [fb.popen(args) for _ in range(2)]
    runs = [fb.finish(args, p, timeout=240) for p in procs]
    assert all(r.returncode == 0 for r in runs), "\n".join(map(str, runs))
    submitted = [int(r.json()["outcome"].get("tasksSubmitted", 0)) for r in runs]
    assert sum(submitted) == 40, submitted
    faulted.proxy(faultRate=0.0)
    batch, blobs = faulted.clients()
    assert_converged(snapshot(batch, blobs, folder.name), desired_of(spec))
    batch.close()
    blobs.close()
    assert fb("destroy", str(spec), "--yes", timeout=240).returncode == 0


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_fault_kind_is_retried_and_reported(
    faulted: FaultedServices, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Every kind alone at 30%, through bspec's own storage client: each call succeeds,
    each failed attempt is retried and counted (429 too: the SDK alone takes it as final)."""
    from bspec.targets import connect

    monkeypatch.setenv("BSPEC_HOME", str(faulted.home))
    tgt = connect("local", f"kind-{kind}")
    try:
        faulted.proxy(faultRate=0.3, faultKinds=[kind], seed=SEED, slowSeconds=0.1, retryAfter=0)
        before = faulted.proxy_counts().get(kind, 0)
        container = f"kind-{kind}-x"
        tgt.storage.ensure_container(container)
        for i in range(3):
            path = Path(faulted.home) / f"kind-{kind}-{i}.txt"
            path.write_bytes(f"{kind} {i}\n".encode() * 1000)
            md5 = hashlib.md5(path.read_bytes()).hexdigest()
            tgt.storage.upload(container, f"b{i}", str(path), md5)
            assert tgt.storage.download(container, f"b{i}") == path.read_bytes()
        names = {r.address.parts[1] for r in tgt.storage.read_blobs(container, "c")}
        assert len(names) == 3, names
        injected = faulted.proxy_counts().get(kind, 0) - before
        retried = tgt.counter.retries()["storage"]
        assert injected > 0
        # Slow answers need no retry; every other fault exactly one retry.
        assert retried == (0 if kind == "slow" else injected), (kind, injected, retried)
        tgt.storage.delete_container(container)
    finally:
        faulted.proxy(faultRate=0.0, retryAfter=1)
        tgt.close()


def test_the_proxy_is_out_of_the_path_unless_asked_for(local_services: Any) -> None:
    """The session's services were started without the setting: no proxy runs, and
    clients get Azurite's own URL."""
    state = services.status(local_services.home)
    assert "storageProxy" not in state
    assert local_services.blob_url == state["storage"]["blobUrl"]
    assert not (local_services.home / "storageproxy.pid").exists()
