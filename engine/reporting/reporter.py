"""The reporter: how an operation talks to whoever asked for it.

Operations (bspec.operations) never print: they hand lines, notes, questions and
progress to a reporter. `ConsoleReporter` is the CLI's (results on stdout, the rest on
stderr; quiet under --json except for questions); `QuietReporter` is the library's
(nothing shown, nothing asked: calling `apply` is the confirmation). A web dashboard
passes its own object with the same methods; nothing here assumes a terminal.
"""

from __future__ import annotations

import sys
from typing import Protocol

from bspec.errors import ConfirmationError
from bspec.reporting import console
from bspec.reporting.progress import Display, ProgressDisplay


class Reporter(Protocol):
    """What an operation may do with the people watching it."""

    def show(self, line: str) -> None:
        """A line of the result for people: a plan, an outcome, a status."""

    def write(self, text: str) -> None:
        """Raw text as it arrives (a task's log), without a newline added."""

    def note(self, text: str) -> None:
        """A note about progress ("Reactivated 2 failed tasks")."""

    def confirm(self, question: str, *, declined: str, no_terminal_hint: str) -> None:
        """Ask `question`; raise ConfirmationError (with `declined`) unless the answer is yes."""

    def progress(self) -> ProgressDisplay:
        """Where long waits show their progress."""


class ConsoleReporter:
    """The CLI's reporter: results on stdout, notes, progress and questions on stderr.
    `quiet` (under --json) drops everything but the questions."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet

    def show(self, line: str) -> None:
        if not self.quiet:
            console.out.print(line, markup=False)

    def write(self, text: str) -> None:
        if not self.quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            console.note(text)

    def confirm(self, question: str, *, declined: str, no_terminal_hint: str) -> None:
        console.ask(question, declined=declined, no_terminal_hint=no_terminal_hint)

    def progress(self) -> ProgressDisplay:
        return Display(quiet=self.quiet)


class QuietReporter:
    """The library's reporter: shows nothing and asks nothing (the caller already chose)."""

    def show(self, line: str) -> None:
        return None

    def write(self, text: str) -> None:
        return None

    def note(self, text: str) -> None:
        return None

    def confirm(self, question: str, *, declined: str, no_terminal_hint: str) -> None:
        raise ConfirmationError(
            "a library call cannot be asked for confirmation", hint="pass yes=True"
        )

    def progress(self) -> ProgressDisplay:
        return Display(quiet=True)
