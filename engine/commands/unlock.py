"""`bspec unlock SPEC`: break the stack's lock on purpose.

A crashed holder's lease expires by itself within 60 s; `unlock` is for when waiting is
not an option. It breaks the lease at once and says who held it. Breaking the lock of a
command that is still running lets a second command run beside it, so it asks first.
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from bspec.cli import JSON_HELP, app, emit_json, err, out
from bspec.errors import ConfirmationError
from bspec.spec import load, parse_var_flags


def run_unlock(spec: Path, *, var: list[str] | tuple[str, ...] = (), target: str | None = None,
               yes: bool = False, show: bool = True) -> dict[str, Any]:
    """Break the lock of the stack `spec` names; the --json object."""
    # Imported here: they import the Azure SDKs, which offline commands never need.
    from bspec.locking import break_lock, describe
    from bspec.targets import choose, connect

    desired = load(spec, parse_var_flags(var))
    name = choose(target, desired.target)
    if not yes:
        if not sys.stdin.isatty():
            raise ConfirmationError("no terminal to ask for confirmation",
                                    hint="pass --yes to break the lock without asking")
        answer = err.input(f"Break the lock of stack {desired.stack}? A command still holding"
                           " it would run beside the next one. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise ConfirmationError("declined; the lock was left alone")
    tgt = connect(name, desired.stack)
    try:
        holder = break_lock(tgt.storage, desired.logs_container.name)
        if show:
            if holder is None:
                out.print(f"The lock of stack {desired.stack} is not held.", markup=False)
            else:
                out.print(f"Broke the lock of stack {desired.stack}, held by "
                          f"{describe(holder)}.", markup=False)
        return {"stack": desired.stack, "target": name, "unlocked": holder is not None,
                "holder": holder, "requests": tgt.counter.snapshot()}
    finally:
        tgt.close()


@app.command("unlock")
def unlock_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    yes: bool = typer.Option(False, "--yes", "-y", help="Break the lock without asking."),
    var: list[str] = typer.Option([], "--var", help="Override a spec var: NAME=VALUE.",
                                  show_default=False),
    target: str | None = typer.Option(None, "--target", help="local (default) or azure."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Break the stack's lock now, rather than waiting for a crashed holder's lease to expire."""
    data = run_unlock(spec, var=var, target=target, yes=yes, show=not as_json)
    if as_json:
        emit_json(data)
