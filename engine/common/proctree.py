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
