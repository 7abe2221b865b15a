"""`bspec plan`, `bspec apply` and `bspec destroy`: read, diff, show, (confirm, lock,) change.

The functions `run_plan`, `run_apply` and `run_destroy` do the work and return the
--json object; the typer commands only parse flags and print.
"""

# ruff: noqa: B008  (typer declares options as call defaults)
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from bspec import saved_plan
from bspec.cli import JSON_HELP, app, emit_json, out
from bspec.destroying import destroy_question, keep_containers
from bspec.errors import StalePlanError
from bspec.model import ActualState, Address, DesiredState, Plan
from bspec.planning import LOGS_KEY, PlanOptions, basis, covered, plan, plan_destroy
from bspec.providers import read_actual
from bspec.reporting import confirm, note, plan_json, render_plan
from bspec.spec import load, parse_var_flags

# The modules below import the Azure SDKs and aiohttp (~0.75 s); they are imported where
# they are used so that `bspec validate`, `--help` and the other offline commands start fast.
if TYPE_CHECKING:
    from bspec.targets import Target
    from bspec.watching import WatchResult

_VAR_HELP = "Override a spec var: NAME=VALUE, typed as YAML 1.2 (repeatable)."
_TARGET_HELP = "local (default) or azure; also BSPEC_TARGET or `target:` in the spec."
_LOCK_HELP = ("Seconds to wait for the stack's lock held by another command (the default"
              " outlasts a crashed holder's 60 s lease).")
LOCK_TIMEOUT = 90.0


@dataclass
class Outcome:
    """What a command did, for its --json object and its exit code."""

    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0


def _parse_ttl(text: str) -> timedelta:
    from bspec.errors import InputError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return timedelta(seconds=float(text[:-1]) * units[text[-1]])
        return timedelta(seconds=float(text))
    except ValueError as exc:
        raise InputError(f"--sas-ttl {text!r}: expected a duration like 7d, 12h, 30m",
                         code="InvalidFlag") from exc


def _print_plan(p: Plan, *, destroy: bool = False) -> None:
    for line in render_plan(p, destroy=destroy):
        out.print(line, markup=False)


_confirm = confirm  # kept for callers that imported it from here


def _signature(p: Plan) -> list[tuple[str, str]]:
    """The plan's changes, less the logs container that taking the lock creates."""
    return [(c.action.value, str(c.address)) for c in p.pending()
            if c.address != Address.container(LOGS_KEY)]


def run_plan(spec: Path, *, var: Sequence[str] = (), target: str | None = None,
             adopt: bool = False, out_file: Path | None = None,
             show: bool = True) -> tuple[Plan, dict[str, Any]]:
    from bspec.targets import choose, connect

    desired = load(spec, parse_var_flags(var))
    name = choose(target, desired.target)
    tgt = connect(name, desired.stack)
    try:
        actual = read_actual(desired, tgt.batch, tgt.storage)
        p = plan(desired, actual, PlanOptions(name, adopt))
        if out_file is not None:
            saved_plan.save(out_file, p, desired, basis(actual, covered(p)), adopt=adopt)
        if show:
            _print_plan(p)
        return p, plan_json(p, tgt.counter.snapshot())
    finally:
        tgt.close()


def run_apply(path: Path, *, var: Sequence[str] = (), target: str | None = None,
              adopt: bool = False, yes: bool = False, no_wait: bool = False,
              sas_ttl: timedelta | None = None, lock_timeout: float = 0.0,
              show: bool = True, wait_timeout: float | None = None,
              rerun_failed: bool = False) -> Outcome:
    from bspec.targets import choose, connect

    saved = saved_plan.load(path) if saved_plan.is_saved_plan(path) else None
    if saved is not None:
        desired: DesiredState = saved.desired
        name = saved.target
        adopt = saved.adopt
    else:
        desired = load(path, parse_var_flags(var))
        name = choose(target, desired.target)
    tgt = connect(name, desired.stack)
    try:
        return _apply(tgt, desired, saved, name=name, adopt=adopt, yes=yes, no_wait=no_wait,
                      sas_ttl=sas_ttl, lock_timeout=lock_timeout, show=show,
                      wait_timeout=wait_timeout, rerun_failed=rerun_failed)
    finally:
        tgt.close()


def _apply(tgt: Target, desired: DesiredState, saved: saved_plan.SavedPlan | None, *,
           name: str, adopt: bool, yes: bool, no_wait: bool, sas_ttl: timedelta | None,
           lock_timeout: float, show: bool, wait_timeout: float | None,
           rerun_failed: bool = False) -> Outcome:
    from bspec import applying
    from bspec.locking import StackLock
    from bspec.watching import finish
    from bspec.watching import rerun_failed as rerun_failed_tasks

    options = PlanOptions(name, adopt)
    actual = read_actual(desired, tgt.batch, tgt.storage)
    p = plan(desired, actual, options)
    if saved is not None:
        _check_fresh(saved, actual, p)
    if show:
        _print_plan(p)
    result = applying.ApplyResult()
    if not p.empty():
        _confirm(yes, "Apply these changes?")
        with StackLock(tgt.storage, desired.logs_container.name, lock_timeout, "apply"):
            actual = read_actual(desired, tgt.batch, tgt.storage)
            again = plan(desired, actual, options)
            if saved is not None:
                _check_fresh(saved, actual, again)
            if _signature(again) != _signature(p) and not again.empty():
                if not yes:
                    # A person approved the plan shown; don't apply a different one.
                    raise StalePlanError("the services changed while the plan was shown;"
                                         " nothing was changed",
                                         hint="run the command again to see the new plan")
                if show:
                    note("The services changed while waiting for the lock; applying the"
                         " plan made under it:")
                    _print_plan(again)
                p = again
            elif again.empty():
                if show:
                    note("Nothing left to change: another apply made these changes first.")
                p = again
            opts = applying.ApplyOptions()
            if sas_ttl is not None:
                opts.sas_ttl = sas_ttl
            result = applying.apply(again, tgt, opts)
        if show:
            s = p.summary()
            out.print(f"Apply complete: {s['create']} created, {s['update']} updated,"
                      f" {s['replace']} replaced, {s['delete']} deleted.", markup=False)
    data = plan_json(p, {})
    data["applied"] = not p.empty()
    data["outcome"] = result.to_json()
    exit_code = 0
    if rerun_failed and desired.tasks:
        again_tasks = rerun_failed_tasks(tgt.batch, desired)
        data["outcome"]["rerun"] = again_tasks
        if show and again_tasks:
            note(f"Reactivated {len(again_tasks):,} failed task"
                 f"{'s' if len(again_tasks) != 1 else ''}")
    if not no_wait and desired.tasks:
        finished, exit_code = finish(tgt, desired, show=show, timeout=wait_timeout,
                                     write=lambda line: out.print(line, markup=False))
        data["outcome"].update(finished)
        data["outcome"]["pool"] = applying.when_idle(desired, tgt, note if show else _quiet)
    data["requests"] = tgt.counter.snapshot()
    return Outcome(data, exit_code)


def _check_fresh(saved: saved_plan.SavedPlan, actual: ActualState, now: Plan) -> None:
    keys = covered(now) | {Address.parse(a) for a in saved.basis}
    saved_plan.check_fresh(saved, basis(actual, keys))


def _quiet(_text: str) -> None:
    return None


def _tasks_json(w: WatchResult) -> dict[str, Any]:
    return {
        "succeeded": w.succeeded,
        "failed": len(w.failed),
        "failedTasks": [{"address": f"task/{f.job_id}/{f.task_id}", "exitCode": f.exit_code,
                         "failure": f.failure} for f in w.failed],
    }


def run_destroy(spec: Path, *, var: Sequence[str] = (), target: str | None = None,
                yes: bool = False, lock_timeout: float = 0.0, show: bool = True,
                keep_storage: bool = False) -> Outcome:
    from bspec import applying
    from bspec.locking import StackLock
    from bspec.targets import choose, connect

    desired = load(spec, parse_var_flags(var))
    name = choose(target, desired.target)
    tgt = connect(name, desired.stack)
    try:
        actual = read_actual(desired, tgt.batch, tgt.storage, tasks=False, blobs=False)
        p = plan_destroy(desired, actual, name)
        if keep_storage:
            p = keep_containers(p)
        if show:
            _print_plan(p, destroy=True)
        if not p.empty():
            _confirm(yes, destroy_question(p))
            has_logs = any(c.address.parts[0] == LOGS_KEY for c in p.pending())
            if has_logs:
                with StackLock(tgt.storage, desired.logs_container.name, lock_timeout,
                               "destroy"):
                    applying.destroy(p, tgt)
            else:
                applying.destroy(p, tgt)
            if show:
                out.print(f"Destroy complete: {len(p.pending())} deleted.", markup=False)
        data = plan_json(p, tgt.counter.snapshot())
        data["applied"] = not p.empty()
        return Outcome(data)
    finally:
        tgt.close()


@app.command("plan")
def plan_command(
    spec: Path = typer.Argument(..., help="The spec file.", show_default=False),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    out_file: Path | None = typer.Option(None, "-o", "--out",
                                         help="Save the plan to apply it exactly later."),
    detailed_exitcode: bool = typer.Option(False, "--detailed-exitcode",
                                           help="Exit 4 when there are changes."),
    adopt: bool = typer.Option(False, "--adopt", help="Plan to take over unowned resources."),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Show what apply would change, and why."""
    p, data = run_plan(spec, var=var, target=target, adopt=adopt, out_file=out_file,
                       show=not as_json)
    if as_json:
        emit_json(data)
    if detailed_exitcode and not p.empty():
        raise SystemExit(4)


@app.command("apply")
def apply_command(
    spec: Path = typer.Argument(..., help="The spec file, or a plan saved with plan -o.",
                                show_default=False),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return once tasks are submitted."),
    var: list[str] = typer.Option([], "--var", help=_VAR_HELP, show_default=False),
    adopt: bool = typer.Option(False, "--adopt", help="Take over resources of the same id"
                                                      " that the stack does not own."),
    sas_ttl: str = typer.Option("7d", "--sas-ttl", help="SAS lifetime (e.g. 7d, 12h)."),
    lock_timeout: float = typer.Option(LOCK_TIMEOUT, "--lock-timeout", help=_LOCK_HELP),
    timeout: float | None = typer.Option(None, "--timeout",
                                         help="Seconds to wait for the tasks (exit 1 after)."),
    rerun_failed: bool = typer.Option(False, "--rerun-failed",
                                      help="Reactivate the spec's failed tasks."),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Make the services match the spec: show the plan, confirm, apply, wait for tasks."""
    result = run_apply(spec, var=var, target=target, adopt=adopt, yes=yes, no_wait=no_wait,
                       sas_ttl=_parse_ttl(sas_ttl), lock_timeout=lock_timeout,
                       show=not as_json, wait_timeout=timeout, rerun_failed=rerun_failed)
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
    keep_storage: bool = typer.Option(False, "--keep-storage",
                                      help="Keep the containers and their blobs."),
    target: str | None = typer.Option(None, "--target", help=_TARGET_HELP),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Delete everything that carries the stack's tag, and nothing else."""
    result = run_destroy(spec, var=var, target=target, yes=yes, lock_timeout=lock_timeout,
                         show=not as_json, keep_storage=keep_storage)
    if as_json:
        emit_json(result.data)
