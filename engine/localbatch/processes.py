"""Starting, watching and signalling task processes, off the event loop's thread.

The node agent's low-level half: a worker thread forks and execs (a fork costs a
millisecond or more), the exit is watched through a pidfd (or a thread), and a whole
process group is signalled at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol


class Dirs(Protocol):
    """What a process start needs of a task: its folder and its working folder."""

    @property
    def task_dir(self) -> Path: ...

    @property
    def working_dir(self) -> Path: ...


class Recorder(Protocol):
    """Where started process groups are recorded (leftovers.Journal), so that a successor
    of a service that died can find and kill them."""

    def started(self, pid: int) -> None: ...

    def ended(self, pid: int) -> None: ...


_spawn_pool: ThreadPoolExecutor | None = None
recorder: Recorder | None = None  # the service's journal, once it started


def spawner() -> ThreadPoolExecutor:
    """The threads that start task processes: a fork costs about a millisecond or more, which
    on the event loop's thread would stall dispatch and every request for that long."""
    global _spawn_pool
    if _spawn_pool is None:
        _spawn_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="bspec-spawn")
    return _spawn_pool


class NotStarted(Exception):
    """A step before the start failed (in the worker thread): no process was started."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class DirsUnmade(NotStarted):
    """The task's folders cannot be created."""


class OutputUnwritable(NotStarted):
    """stdout.txt or stderr.txt cannot be created."""


def make_dirs(ex: Dirs) -> None:
    ex.task_dir.mkdir(parents=True, exist_ok=True)
    ex.working_dir.mkdir(parents=True, exist_ok=True)


def popen(
    argv: list[str], ex: Dirs, env: dict[str, str], with_dirs: bool
) -> subprocess.Popen[bytes]:
    """Start ARGV (in a worker thread): no shell, its own session and process group;
    WITH_DIRS: make the task's folders first."""
    if with_dirs:
        try:
            make_dirs(ex)
        except OSError as exc:
            raise DirsUnmade(exc) from exc
    try:
        out = open(ex.task_dir / "stdout.txt", "wb")  # noqa: SIM115 - handed to the child
    except OSError as exc:
        raise OutputUnwritable(exc) from exc
    try:
        err = open(ex.task_dir / "stderr.txt", "wb")  # noqa: SIM115
    except OSError as exc:
        out.close()
        raise OutputUnwritable(exc) from exc
    with out, err:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=ex.working_dir,
            env=env,
            start_new_session=True,
            close_fds=True,
        )
    if recorder is not None:
        recorder.started(proc.pid)
    return proc


def abandon(starting: Future[subprocess.Popen[bytes]] | asyncio.Future[Any]) -> None:
    """A start whose run was cancelled meanwhile: kill what it started and reap it."""
    if starting.cancelled() or starting.exception() is not None:
        return
    proc = starting.result()
    signal_group(proc.pid, signal.SIGKILL)
    threading.Thread(target=proc.wait, name="bspec-reap", daemon=True).start()


class ExitWatch:
    """`exited` resolves to the exit code without blocking the loop: a pidfd the loop watches
    (Linux 5.3+), else a thread blocked in wait(). Either way the process is reaped."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.loop = asyncio.get_running_loop()
        self.exited: asyncio.Future[int] = self.loop.create_future()
        self.fd = -1
        try:
            self.fd = os.pidfd_open(proc.pid)
            self.loop.add_reader(self.fd, self._readable)
        except (AttributeError, OSError, NotImplementedError, RuntimeError):
            self._close_fd()
            self._wait_in_thread()

    def _readable(self) -> None:
        code = self.proc.poll()
        if code is None:
            return  # not yet reapable
        self._close_fd()
        self._resolve(code)

    def _close_fd(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.fd)
            os.close(self.fd)
            self.fd = -1

    def _wait_in_thread(self) -> None:
        def wait() -> None:
            code = self.proc.wait()
            with contextlib.suppress(RuntimeError):  # the loop is gone: nothing to tell
                self.loop.call_soon_threadsafe(self._resolve, code)

        threading.Thread(target=wait, name="bspec-wait", daemon=True).start()

    def _resolve(self, code: int) -> None:
        if not self.exited.done():
            if recorder is not None:
                recorder.ended(self.proc.pid)
            self.exited.set_result(code)

    def release(self) -> None:
        """Stop watching from the loop; if the process still runs, a thread reaps it."""
        if self.exited.done() or self.fd < 0:
            return
        self._close_fd()
        self._wait_in_thread()


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Signal the process group PID leads (start_new_session made it the leader)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
