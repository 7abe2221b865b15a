"""The terminal: one console for results (stdout) and one for progress and prompts (stderr).

With `--json`, stdout carries only the JSON object, so everything said while working goes
to stderr; `note` and `confirm` write there plainly, without rich's markup.
"""

from __future__ import annotations

import sys

from bspec.errors import ConfirmationError
from rich.console import Console

# Human output goes to stdout; progress, prompts and diagnostics to stderr.
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

NO_TERMINAL_HINT = "pass --yes to go ahead without asking"
DECLINED = "declined; nothing was changed"


def ask(
    question: str, *, declined: str = DECLINED, no_terminal_hint: str = NO_TERMINAL_HINT
) -> None:
    """Ask a yes/no question on the terminal; ConfirmationError (exit 3) when declined or
    when there is no terminal to ask."""
    if not sys.stdin.isatty():
        raise ConfirmationError("no terminal to ask for confirmation", hint=no_terminal_hint)
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise ConfirmationError(declined)


def confirm(yes: bool, question: str) -> None:
    """Ask on the terminal unless `yes` (see `ask`)."""
    if not yes:
        ask(question)


def note(text: str) -> None:
    """A progress line on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
