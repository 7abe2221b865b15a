"""`unlock`: break the stack's lock on purpose.

A crashed holder's lease expires by itself within 60 s; `unlock` is for when waiting is
not an option. It breaks the lease at once and says who held it. Breaking the lock of a
command that is still running lets a second command run beside it, so it asks first.
"""

from __future__ import annotations

from pathlib import Path

from bspec.locking import break_lock, describe
from bspec.operations.session import Outcome, Vars, connected, load_stack
from bspec.reporting.reporter import Reporter


def unlock(
    spec: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    yes: bool = False,
) -> Outcome:
    """Break the lock of the stack `spec` names; the --json object."""
    desired, name = load_stack(spec, vars, target)
    if not yes:
        reporter.confirm(
            f"Break the lock of stack {desired.stack}? A command still holding"
            " it would run beside the next one.",
            declined="declined; the lock was left alone",
            no_terminal_hint="pass --yes to break the lock without asking",
        )
    with connected(desired, name) as tgt:
        holder = break_lock(tgt.storage, desired.logs_container.name)
        if holder is None:
            reporter.show(f"The lock of stack {desired.stack} is not held.")
        else:
            reporter.show(f"Broke the lock of stack {desired.stack}, held by {describe(holder)}.")
        return Outcome(
            {
                "stack": desired.stack,
                "target": name,
                "unlocked": holder is not None,
                "holder": holder,
                "requests": tgt.counter.snapshot(),
            }
        )
