"""The local Batch service's record of task process groups (localbatch/leftovers.py): what a
successor of a dead service kills before it requeues, and what it must leave alone."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from bspec.common import proctree
from bspec.localbatch import leftovers

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def start(procs: list[subprocess.Popen[bytes]], env: dict[str, str] | None = None) -> int:
    p = subprocess.Popen(["sleep", "30"], start_new_session=True, env={**os.environ, **(env or {})})
    procs.append(p)
    return p.pid


def gone(proc: subprocess.Popen[bytes]) -> bool:
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_the_journal_keeps_the_groups_still_alive(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    journal = leftovers.Journal(tmp_path / leftovers.JOURNAL)
    a, b = start(sleepers), start(sleepers)
    journal.started(a)
    journal.started(b)
    sleepers[1].kill()
    sleepers[1].wait()
    journal.ended(b)
    journal.close()
    assert leftovers.read(tmp_path / leftovers.JOURNAL) == {a: proctree.start_time(a)}


def test_a_journal_of_another_boot_or_cut_short_is_read_safely(tmp_path: Path) -> None:
    path = tmp_path / leftovers.JOURNAL
    path.write_text("boot not-this-one\n+ 123 456\n")
    assert leftovers.read(path) == {}
    path.write_text(f"boot {proctree.boot_id()}\n+ 123 456\n+ 12")  # the crash cut the line
    assert leftovers.read(path) == {123: 456}
    assert leftovers.read(tmp_path / "missing") == {}


def test_recover_kills_recorded_groups_and_strays_but_not_a_reused_pid(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]]
) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    journal = leftovers.Journal(batch / leftovers.JOURNAL)
    recorded = start(sleepers)
    journal.started(recorded)
    # a daemon a task started in a session of its own: found by its node folder
    stray = start(sleepers, {"AZ_BATCH_NODE_ROOT_DIR": str(batch / "nodes" / "p" / "n")})
    # a process whose PID the journal names with another start time: a reused PID
    other = start(sleepers)
    os.write(journal.fd, f"+ {other} {(proctree.start_time(other) or 0) + 1}\n".encode())
    journal.close()
    fresh, killed = leftovers.recover(batch)
    fresh.close()
    assert gone(sleepers[0]) and gone(sleepers[1])
    assert sleepers[2].poll() is None, "a process that only reuses a recorded PID survives"
    assert {recorded, stray} <= set(killed) and other not in killed
    assert leftovers.read(batch / leftovers.JOURNAL) == {}


def test_the_journal_stays_small(
    tmp_path: Path, sleepers: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leftovers, "COMPACT_EVERY", 10)
    journal = leftovers.Journal(tmp_path / leftovers.JOURNAL)
    alive = start(sleepers)
    journal.started(alive)
    for _ in range(8):
        done = subprocess.Popen(["true"], start_new_session=True)
        done.wait()
        journal.started(done.pid)
        journal.ended(done.pid)
    journal.close()
    lines = (tmp_path / leftovers.JOURNAL).read_text().splitlines()
    assert len(lines) < 1 + 1 + 16, lines  # boot, the live one, 8 starts and 8 ends
    assert leftovers.read(tmp_path / leftovers.JOURNAL) == {alive: proctree.start_time(alive)}
