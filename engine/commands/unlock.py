"""`bspec unlock SPEC`: break the stack's lock on purpose (bspec.operations.unlock says why
and asks first)."""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from bspec.cli import JSON_HELP, app, emit_json
from bspec.reporting.reporter import ConsoleReporter


def run_unlock(
    spec: Path,
    *,
    var: list[str] | tuple[str, ...] = (),
    target: str | None = None,
    yes: bool = False,
    show: bool = True,
) -> dict[str, Any]:
    """Break the lock of the stack `spec` names; the --json object."""
    from bspec import operations  # imports the Azure SDKs, which offline commands never need

    done = operations.unlock(
        spec, ConsoleReporter(quiet=not show), vars=var, target=target, yes=yes
    )
    return done.data


@app.command("unlock")
def unlock_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    yes: bool = typer.Option(False, "--yes", "-y", help="Break the lock without asking."),
    var: list[str] = typer.Option(
        [], "--var", help="Override a spec var: NAME=VALUE.", show_default=False
    ),
    target: str | None = typer.Option(None, "--target", help="local (default) or azure."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Break the stack's lock now, rather than waiting for a crashed holder's lease to expire."""
    data = run_unlock(spec, var=var, target=target, yes=yes, show=not as_json)
    if as_json:
        emit_json(data)
