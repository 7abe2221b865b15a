"""Process groups a dead predecessor left running, found and killed before anything requeues.

Every task, start task, preparation and release process starts as the leader of its own
process group. A service that stops normally kills those groups; one that is SIGKILLed (or
runs out of memory) cannot, and its successor requeues the tasks it finds running, as Batch
does after a node reboot. Without this module the old attempt would go on beside the new
one in the same working folder. So the service keeps a journal in its state folder,
`batch/processgroups`: a line `+ PGID START` as each process starts (START, its start time
since boot, tells the process from a later one with the same PID) and `- PGID START` when
its group is empty again. On start, before any task is requeued, `recover()` kills every
recorded group still alive, then whatever still carries a node folder of this state folder
in its environment (a daemon a task started in a session of its own), waits until they
are gone, and starts a fresh journal. Containers are the containers module's: it removes
what a previous run left, by label, before the scheduler starts too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path

from bspec.common import proctree

log = logging.getLogger("bspec.localbatch.leftovers")

JOURNAL = "processgroups"
KILL_WAIT = 10.0  # seconds to wait for the killed groups to be gone
COMPACT_EVERY = 20_000  # journal lines between rewrites


class Journal:
    """The append-only record of live task process groups (one `os.write` per line, so
    lines from the spawning threads never interleave)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.started_at: dict[int, int] = {}  # pgid -> start time (ticks since boot)
        self.kept: dict[int, int] = {}  # leaders gone, members left: recorded until compacted
        self._lock = threading.Lock()
        self.lines = 0
        self.fd = -1
        self._rewrite()

    def _rewrite(self) -> None:
        """A fresh journal holding only what may still be alive (at start, and every
        COMPACT_EVERY lines, so that a long-lived service's journal stays small)."""
        tmp = self.path.with_name(self.path.name + ".new")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        live = {**self.kept, **self.started_at}
        body = "".join(f"+ {pgid} {start}\n" for pgid, start in sorted(live.items()))
        os.write(fd, f"boot {proctree.boot_id()}\n{body}".encode())
        os.close(fd)
        os.replace(tmp, self.path)
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self.lines = len(live)

    def started(self, pid: int) -> None:
        """PID was just started in a group of its own (called from the spawning thread)."""
        start = proctree.start_time(pid) or 0
        with self._lock:
            self.started_at[pid] = start
        self._write(f"+ {pid} {start}\n")

    def ended(self, pid: int) -> None:
        """PID exited and was reaped: forget its group once nothing of it is left (a
        background process it left in its group keeps the entry)."""
        with self._lock:
            start = self.started_at.pop(pid, None)
        if start is None:
            return
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            self._write(f"- {pid} {start}\n")
        except PermissionError:
            pass
        else:
            with self._lock:
                self.kept[pid] = start

    def _write(self, line: str) -> None:
        with self._lock, contextlib.suppress(OSError):
            if self.fd < 0:
                return
            os.write(self.fd, line.encode())
            self.lines += 1
            if self.lines >= COMPACT_EVERY:
                self.kept = {p: t for p, t in self.kept.items() if _group_alive(p)}
                self._rewrite()

    def close(self) -> None:
        with self._lock:
            fd, self.fd = self.fd, -1  # later writes go nowhere, not to a reused descriptor
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read(path: Path) -> dict[int, int]:
    """The groups a journal says may still be alive: pgid -> start time. Nothing when it
    was written before the machine last booted (nothing of it can have survived)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    if not lines or lines[0] != f"boot {proctree.boot_id()}":
        return {}
    alive: dict[int, int] = {}
    for line in lines[1:]:
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue  # a line cut short by the crash
        pgid, start = int(parts[1]), int(parts[2])
        if parts[0] == "+":
            alive[pgid] = start
        elif parts[0] == "-" and alive.get(pgid) == start:
            del alive[pgid]
    return alive


def recover(batch_home: Path) -> tuple[Journal, list[int]]:
    """Kill what a predecessor left running (recorded groups, then the nodes' strays), wait
    until it is gone; a fresh journal, and the PIDs killed (for the log and the tests)."""
    path = batch_home / JOURNAL
    recorded = read(path)
    killed: list[int] = []
    groups = proctree.live_groups() if recorded else {}
    for pgid, start in sorted(recorded.items()):
        if proctree.recorded_alive(pgid, start, groups):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)
                killed += [pid for pid, _ in groups[pgid]]
    killed += proctree.kill_under(batch_home / "nodes", include_root=False)
    deadline = time.monotonic() + KILL_WAIT
    while killed and time.monotonic() < deadline:
        if not any(proctree.alive(pid) for pid in killed):
            break
        time.sleep(0.02)
    if killed:
        log.warning(
            "killed %d process(es) a previous run left running (process groups %s)",
            len(set(killed)),
            sorted(p for p in recorded if p in groups) or "none recorded",
        )
    batch_home.mkdir(parents=True, exist_ok=True)
    return Journal(path), sorted(set(killed))
