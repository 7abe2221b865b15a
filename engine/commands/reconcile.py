"""`bspec plan`, `bspec apply` and `bspec destroy`: flags in, bspec.operations called with
the console reporter, the --json object out.

`run_plan`, `run_apply` and `run_destroy` map the flags onto the operations (tests and
benchmarks call them too); the typer commands only parse and print.
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from bspec.cli import JSON_HELP, app, emit_json
from bspec.reporting.reporter import ConsoleReporter

# bspec.operations imports the Azure SDKs and aiohttp (~0.75 s); it is imported where it is
# used so that `bspec validate`, `--help` and the other offline commands start fast.
if TYPE_CHECKING:
    from bspec.model import Plan
    from bspec.operations import Outcome

_VAR_HELP = "Override a spec var: NAME=VALUE, typed as YAML 1.2 (repeatable)."
_TARGET_HELP = "local (default) or azure; also BSPEC_TARGET or `target:` in the spec."
_LOCK_HELP = (
    "Seconds to wait for the stack's lock held by another command (the default"
    " outlasts a crashed holder's 60 s lease)."
)
LOCK_TIMEOUT = 90.0
_STRICT_HELP = "Exit 3 when the plan has warnings (apply: before changing anything)."


def _parse_ttl(text: str) -> timedelta:
    from bspec.errors import InputError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError as exc:
        raise InputError(
            f"--sas-ttl {text!r}: expected a duration like 7d, 12h, 30m", code="InvalidFlag"
        ) from exc


def run_plan(spec: Path, **kw: Any) -> tuple[Plan, dict[str, Any]]:
    """The plan and its --json object (keywords as `run_plan_outcome`'s)."""
    done = run_plan_outcome(spec, **kw)
    assert done.plan is not None
    return done.plan, done.data


def run_plan_outcome(
    spec: Path,
    *,
    var: Sequence[str] = (),
    target: str | None = None,
    adopt: bool = False,
    out_file: Path | None = None,
    show: bool = True,
    strict: bool = False,
) -> Outcome:
    """`run_plan`, with the exit code (3 under `strict` when the plan has warnings)."""
    from bspec import operations

    return operations.plan(
        spec,
        ConsoleReporter(quiet=not show),
        vars=var,
        target=target,
        adopt=adopt,
        out_file=out_file,
        strict=strict,
    )


def run_apply(
    path: Path,
    *,
    var: Sequence[str] = (),
    target: str | None = None,
    adopt: bool = False,
    yes: bool = False,
    no_wait: bool = False,
    sas_ttl: timedelta | None = None,
    lock_timeout: float = 0.0,
    show: bool = True,
    wait_timeout: float | None = None,
    rerun_failed: bool = False,
    strict: bool = False,
) -> Outcome:
    from bspec import operations

    return operations.apply(
        path,
        ConsoleReporter(quiet=not show),
        vars=var,
        target=target,
        adopt=adopt,
        yes=yes,
        wait=not no_wait,
        sas_ttl=sas_ttl,
        lock_timeout=lock_timeout,
        wait_timeout=wait_timeout,
        rerun_failed=rerun_failed,
        strict=strict,
    )


def run_destroy(
    spec: Path,
    *,
    var: Sequence[str] = (),
    target: str | None = None,
    yes: bool = False,
    lock_timeout: float = 0.0,
    show: bool = True,
    keep_storage: bool = False,
) -> Outcome:
    from bspec import operations

    return operations.destroy(
        spec,
        ConsoleReporter(quiet=not show),
        vars=var,
        target=target,
        yes=yes,
        lock_timeout=lock_timeout,
        keep_storage=keep_storage,
    )


@app.command("plan")
def plan_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    out_file: Path | None = typer.Option(
        None, "-o", "--out", help="Save the plan to apply it exactly later."
    ),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 4 when there are changes."
    ),
    adopt: bool = typer.Option(False, "--adopt", help="Plan to take over unowned resources."),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show what apply would change, and why."""
    done = run_plan_outcome(
        spec,
        var=var,
        target=target,
        adopt=adopt,
        out_file=out_file,
        show=not as_json,
        strict=strict,
    )
    assert done.plan is not None
    if as_json:
        emit_json(done.data)
    if done.exit_code:
        raise SystemExit(done.exit_code)
    if detailed_exitcode and not done.plan.empty():
        raise SystemExit(4)


@app.command("apply")
def apply_command(
    spec: Path = typer.Argument(
        ..., help="The spec file, or a plan saved with plan -o.", show_default=False
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return once tasks are submitted."),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    adopt: bool = typer.Option(
        False, "--adopt", help="Take over resources of the same id that the stack does not own."
    ),
    sas_ttl: str = typer.Option("7d", "--sas-ttl", help="SAS lifetime (e.g. 7d, 12h)."),
    lock_timeout: float = typer.Option(LOCK_TIMEOUT, "--lock-timeout", help=_LOCK_HELP),
    timeout: float | None = typer.Option(
        None, "--timeout", help="Seconds to wait for the tasks (exit 1 after)."
    ),
    rerun_failed: bool = typer.Option(
        False, "--rerun-failed", help="Reactivate the spec's failed tasks."
    ),
    strict: bool = typer.Option(False, "--strict", help=_STRICT_HELP),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make the services match the spec: show the plan, confirm, apply, wait for tasks."""
    result = run_apply(
        spec,
        var=var,
        target=target,
        adopt=adopt,
        yes=yes,
        no_wait=no_wait,
        sas_ttl=_parse_ttl(sas_ttl),
        lock_timeout=lock_timeout,
        show=not as_json,
        wait_timeout=timeout,
        rerun_failed=rerun_failed,
        strict=strict,
    )
    if as_json:
        emit_json(result.data)
    if result.exit_code:
        raise SystemExit(result.exit_code)


@app.command("destroy")
def destroy_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    yes: bool = typer.Option(False, "--yes", "-y", help="Destroy without asking."),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    lock_timeout: float = typer.Option(LOCK_TIMEOUT, "--lock-timeout", help=_LOCK_HELP),
    keep_storage: bool = typer.Option(
        False, "--keep-storage", help="Keep the containers and their blobs."
    ),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete everything that carries the stack's tag, and nothing else."""
    result = run_destroy(
        spec,
        var=var,
        target=target,
        yes=yes,
        lock_timeout=lock_timeout,
        show=not as_json,
        keep_storage=keep_storage,
    )
    if as_json:
        emit_json(result.data)
