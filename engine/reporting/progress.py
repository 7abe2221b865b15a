"""The one progress display, for terminals and for plain logs alike.

On a terminal it draws rich bars on stderr; elsewhere (CI logs, pipes) it writes plain
lines with no control characters: periodic lines for a job's task counts, a start and a
done line for a counted step such as an upload; nothing at all when quiet. `say` prints a
line above the bars. A dashboard replaces it with its own `ProgressDisplay`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from bspec.reporting import console

PLAIN_INTERVAL = 10.0  # seconds between plain progress lines when nothing changes


class ProgressDisplay(Protocol):
    """What long steps report while they run (a Display, or a dashboard's own)."""

    def running(self) -> AbstractContextManager[Any]: ...

    def say(self, text: str) -> None: ...

    def update(
        self, job_id: str, total: int, counts: dict[str, int], *, final: bool = False
    ) -> None: ...


class Display:
    """Where progress goes: rich bars on a terminal, plain periodic lines elsewhere,
    nothing when quiet."""

    def __init__(
        self, *, quiet: bool = False, tty: bool | None = None, interval: float = PLAIN_INTERVAL
    ) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.interval = interval
        self._bars: Any = None
        self._ids: dict[str, Any] = {}
        self._last: dict[str, tuple[int, ...]] = {}
        self._printed_at: dict[str, float] = {}

    def _progress(self, *, counts: bool) -> Any:
        """Rich bars on stderr: job bars show done/total and the task counts and stay;
        a step's bar shows a percentage and goes when the step ends."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
        )

        if counts:
            return Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                console=console.err,
                transient=False,
            )
        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            console=console.err,
            transient=True,
        )

    @contextmanager
    def running(self) -> Iterator[Display]:
        if self.quiet or not self.tty:
            yield self
            return
        with self._progress(counts=True) as bars:
            self._bars = bars
            try:
                yield self
            finally:
                self._bars = None

    @contextmanager
    def step(self, description: str, total: int, unit: str = "") -> Iterator[Callable[[int], None]]:
        """A counted step (uploads, task submission); yields `advance(n)`. Plain start/end
        lines off a terminal."""
        if total <= 0 or self.quiet:
            yield lambda n: None
            return
        if not self.tty:
            sys.stderr.write(f"{description} ({total:,}{' ' + unit if unit else ''})...\n")
            yield lambda n: None
            sys.stderr.write(f"{description}: done\n")
            return
        with self._progress(counts=False) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n: bar.advance(task, n)

    def say(self, text: str) -> None:
        if self.quiet:
            return
        if self._bars is not None:
            self._bars.console.print(text, markup=False, highlight=False)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()

    def update(
        self, job_id: str, total: int, counts: dict[str, int], *, final: bool = False
    ) -> None:
        if self.quiet:
            return
        done = min(counts["completed"], total)
        detail = (
            f"active {counts['active']}  running {counts['running']}  succeeded "
            f"{counts['succeeded']}  failed {counts['failed']}"
        )
        if self._bars is not None:
            if job_id not in self._ids:
                self._ids[job_id] = self._bars.add_task(job_id, total=total, detail=detail)
            self._bars.update(self._ids[job_id], completed=done, total=total, detail=detail)
            return
        key = (done, counts["active"], counts["running"], counts["succeeded"], counts["failed"])
        now = time.monotonic()
        last_key, last_at = self._last.get(job_id), self._printed_at.get(job_id)
        changed = key != last_key
        if (
            last_at is None
            or (final and changed)
            or (changed and now - last_at >= 2.0)
            or now - last_at >= self.interval
        ):
            self._last[job_id] = key
            self._printed_at[job_id] = now
            sys.stderr.write(f"{job_id}: {done}/{total} completed ({detail.replace('  ', ', ')})\n")
            sys.stderr.flush()


@contextmanager
def progress(description: str, total: int, unit: str = "") -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields `advance(n)`. Plain start/end lines off a terminal."""
    with Display().step(description, total, unit) as advance:
        yield advance
