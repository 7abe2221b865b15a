"""`bspec status`, `bspec logs`, `bspec wait` and `bspec outputs`: look at a stack's work.

Thin layers over bspec.operations, called with the console reporter (quiet under
--json, whose object they print).
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

from pathlib import Path

import typer
from bspec.cli import JSON_HELP, app, emit_json
from bspec.errors import InputError
from bspec.reporting.reporter import ConsoleReporter

# bspec.operations imports the Azure SDKs and aiohttp (~0.75 s); each command imports it
# when it runs so that the offline commands and `--help` start fast.

_VAR_HELP = "Override a spec var: NAME=VALUE, typed as YAML 1.2 (repeatable)."
_TARGET_HELP = "local (default) or azure; also BSPEC_TARGET or `target:` in the spec."


@app.command("status")
def status_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show the pool (allocation, nodes by state), the jobs, task counts and failed tasks."""
    from bspec import operations

    done = operations.status(spec, ConsoleReporter(quiet=as_json), vars=var, target=target)
    if as_json:
        emit_json(done.data)


@app.command("logs")
def logs_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    task: str = typer.Argument(..., help="The task id.", show_default=False),
    stderr: bool = typer.Option(False, "--stderr", help="Show stderr.txt instead of stdout."),
    tail: int | None = typer.Option(None, "--tail", help="Only the last N lines."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing until the task completes."
    ),
    job: str | None = typer.Option(
        None, "--job", help="The task's job (when the spec has several jobs with that task id)."
    ),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Print a task's stdout (or stderr): from its node while the node has it, from the
    stack's logs container after."""
    from bspec import operations

    if tail is not None and tail < 0:
        raise InputError(f"--tail {tail}: expected 0 or more lines", code="InvalidFlag")
    if as_json and follow:
        raise InputError("--follow and --json do not go together", code="InvalidFlag")
    done = operations.logs(
        spec,
        task,
        ConsoleReporter(quiet=as_json),
        job=job,
        stderr=stderr,
        tail=tail,
        follow=follow,
        vars=var,
        target=target,
    )
    if as_json:
        emit_json(done.data)


@app.command("wait")
def wait_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds to wait for the tasks (exit 1 after)."
    ),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Wait for the spec's tasks as apply does, report failures, download the outputs."""
    from bspec import operations

    done = operations.wait(
        spec, ConsoleReporter(quiet=as_json), vars=var, target=target, timeout=timeout
    )
    if as_json:
        emit_json(done.data)
    if done.exit_code:
        raise SystemExit(done.exit_code)


@app.command("outputs")
def outputs_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Download the jobs' declared outputs again: only files that are new or changed."""
    from bspec import operations

    done = operations.outputs(spec, ConsoleReporter(quiet=as_json), vars=var, target=target)
    if as_json:
        emit_json(done.data)
