"""Find and kill the processes a node's tasks left behind, by the environment they inherited.

Batch lets a task's background processes outlive the task, so no process handle knows them
when a node, a pool or the whole service goes away. Each one still carries the
AZ_BATCH_NODE_ROOT_DIR it inherited, which survives a change of folder, a new session or a
double fork. Linux (/proc) only; elsewhere nothing is found.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

_MARKER = b"AZ_BATCH_NODE_ROOT_DIR="


def processes_under(root: Path | str, *, include_root: bool = True) -> list[int]:
    """PIDs (other than this process) whose AZ_BATCH_NODE_ROOT_DIR is ROOT or lies below it."""
    base = os.path.normpath(root)
    me = os.getpid()
    found: list[int] = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError:
            continue  # gone, or someone else's
        for item in environ:
            if item.startswith(_MARKER):
                value = os.path.normpath(os.fsdecode(item[len(_MARKER) :]))
                if (include_root and value == base) or value.startswith(base + os.sep):
                    found.append(int(entry))
                break
    return found


def kill_under(root: Path | str, *, include_root: bool = True) -> list[int]:
    """SIGKILL every process processes_under() finds; returns the PIDs it signalled."""
    found = processes_under(root, include_root=include_root)
    for pid in found:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return found


def boot_id() -> str:
    """This boot's id: start times (clock ticks since boot) mean nothing across a reboot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _stat(pid: int | str) -> tuple[str, int, int] | None:
    """(state, process group, start time in clock ticks since boot) of PID, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            rest = fh.read().rsplit(b")", 1)[1].split()
        return rest[0].decode(), int(rest[2]), int(rest[19])
    except (OSError, IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """PID's start time (clock ticks since boot): with the PID, it names one process even
    after the PID is reused."""
    found = _stat(pid)
    return found[2] if found else None


def alive(pid: int) -> bool:
    """Whether PID is a live process (a zombie is not)."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def live_groups() -> dict[int, list[tuple[int, int]]]:
    """Every process group with a live (not zombie) member: pgid -> [(pid, start time)]."""
    groups: dict[int, list[tuple[int, int]]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return groups
    for entry in entries:
        if not entry.isdigit():
            continue
        found = _stat(entry)
        if found is None or found[0] in ("Z", "X"):
            continue
        groups.setdefault(found[1], []).append((int(entry), found[2]))
    return groups


def recorded_alive(pgid: int, started: int, groups: dict[int, list[tuple[int, int]]]) -> bool:
    """Whether the group a leader started at STARTED led still has live members in GROUPS.

    The leader alive: only if it is the same process (same start time; its PID may have been
    reused by another group's leader). The leader gone but members left: they are the
    recorded group's, since Linux hands out no PID still in use as a process group id.
    """
    members = groups.get(pgid)
    if not members:
        return False
    leader = next((s for p, s in members if p == pgid), None)
    return leader is None or leader == started
