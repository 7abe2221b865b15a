"""The stack lock: a leased blob in the stack's logs container, renewed while held.

Taken only when there is something to change, so a converged apply makes no writes.
The holder (host, pid, user, command, since) is recorded in the blob's metadata so that
a refused command can say who holds it.
"""

from __future__ import annotations

import getpass
import os
import socket
import threading
import time
from datetime import UTC, datetime
from types import TracebackType

from bspec.errors import LockHeldError
from bspec.providers.storage import StorageProvider

LOCK_BLOB = "bspec.lock"
LEASE_SECONDS = 60
RENEW_EVERY = 20.0
# Testing hook: a shorter lease (Blob Storage allows 15-60 s) so that tests of a crashed
# holder's lease expiring by itself don't wait a whole minute.
LEASE_ENV = "BSPEC_TEST_LOCK_LEASE_SECONDS"


def lease_seconds() -> int:
    """The lease duration: 60 s, or BSPEC_TEST_LOCK_LEASE_SECONDS clamped to 15-60."""
    value = os.environ.get(LEASE_ENV, "")
    return min(60, max(15, int(value))) if value.isdigit() else LEASE_SECONDS


def describe(h: dict[str, str]) -> str:
    """The holder recorded in the lock blob, in words."""
    return (
        f"{h.get('user', '?')}@{h.get('host', '?')} (pid {h.get('pid', '?')},"
        f" bspec {h.get('command', '?')}, since {h.get('since', '?')})"
    )


def break_lock(storage: StorageProvider, container: str) -> dict[str, str] | None:
    """Break the stack's lock on purpose (`bspec unlock`); the holder it had, or None."""
    return storage.break_lease(container, LOCK_BLOB)


class StackLock:
    """`with StackLock(storage, container, timeout):` holds the stack's lock."""

    def __init__(
        self, storage: StorageProvider, container: str, timeout: float = 0.0, command: str = "apply"
    ) -> None:
        self.storage = storage
        self.container = container
        self.timeout = timeout
        self.command = command
        self.lease_id: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def holder(self) -> dict[str, str]:
        try:
            user = getpass.getuser()
        except Exception:
            user = "unknown"
        return {
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "user": user,
            "command": self.command,
            "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            lease = self.storage.try_lease(
                self.container, LOCK_BLOB, self.holder(), lease_seconds()
            )
            if lease:
                self.lease_id = lease
                break
            if time.monotonic() >= deadline:
                h = self.storage.lease_holder(self.container, LOCK_BLOB)
                who = (
                    f"{h.get('user', '?')}@{h.get('host', '?')} (pid {h.get('pid', '?')},"
                    f" bspec {h.get('command', '?')}, since {h.get('since', '?')})"
                    if h
                    else "another bspec command"
                )
                raise LockHeldError(
                    f"the stack's lock is held by {who}",
                    hint="wait for it to finish, or pass --lock-timeout SECONDS to wait longer",
                )
            time.sleep(1.0)
        self._thread = threading.Thread(target=self._renew, name="bspec-lock", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(min(RENEW_EVERY, lease_seconds() / 3)):
            if self.lease_id:
                try:
                    self.storage.renew_lease(self.container, LOCK_BLOB, self.lease_id)
                except Exception:
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        if self.lease_id:
            self.storage.release_lease(self.container, LOCK_BLOB, self.lease_id)
            self.lease_id = None

    def __enter__(self) -> StackLock:
        self.acquire()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
