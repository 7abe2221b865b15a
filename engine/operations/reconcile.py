"""plan, apply and destroy: read, diff, show, (confirm, lock,) change.

`apply` and `destroy` first plan without a lock; when there is something to change they
ask (unless `yes`), take the stack's lock, plan again under it and apply that plan.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from bspec import applying, saved_plan
from bspec.destroying import keep_containers
from bspec.errors import RefusedError, StalePlanError
from bspec.locking import StackLock
from bspec.model import ActualState, Address, DesiredState, Plan
from bspec.operations import preflight
from bspec.operations.session import Outcome, Vars, connected, load_stack
from bspec.operations.tasks import finish
from bspec.operations.tasks import rerun_failed as rerun_failed_tasks
from bspec.planning import LOGS_KEY, PlanOptions, basis, covered, plan_destroy
from bspec.planning import plan as make_plan
from bspec.providers import read_actual
from bspec.reporting.console import DECLINED, NO_TERMINAL_HINT
from bspec.reporting.destroy import destroy_question
from bspec.reporting.plan import plan_json, render_plan
from bspec.reporting.reporter import Reporter
from bspec.spec import secrets
from bspec.targets import Target


def _show_plan(
    reporter: Reporter,
    p: Plan,
    *,
    destroy: bool = False,
    warned: list[preflight.PlanWarning] | None = None,
) -> None:
    above, beside = preflight.show(warned or [], preflight.compute(p))
    for line in above:
        reporter.show(line)
    for line in render_plan(p, destroy=destroy):
        reporter.show(line)
    if beside and not destroy and not p.empty():
        reporter.show(beside)


def _with_warnings(
    data: dict[str, Any], p: Plan, warned: list[preflight.PlanWarning]
) -> dict[str, Any]:
    """The plan's --json object with `warnings` (always there) and `compute`."""
    data["warnings"] = preflight.to_json(warned)
    data["compute"] = preflight.compute(p).to_json()
    return data


def _strict(warned: list[preflight.PlanWarning]) -> None:
    """apply --strict: refuse (exit 3) before anything is written."""
    if warned:
        raise RefusedError(
            f"the plan has {len(warned)} warning{'s' if len(warned) != 1 else ''} and"
            " --strict was given; nothing was changed",
            code="PlanWarnings",
            hint="fix what the warnings say, or apply without --strict",
        )


def _confirm(reporter: Reporter, yes: bool, question: str) -> None:
    if not yes:
        reporter.confirm(question, declined=DECLINED, no_terminal_hint=NO_TERMINAL_HINT)


def _signature(p: Plan) -> list[tuple[str, str]]:
    """The plan's changes, less the logs container that taking the lock creates."""
    return [
        (c.action.value, str(c.address))
        for c in p.pending()
        if c.address != Address.container(LOGS_KEY)
    ]


def plan(
    spec: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    adopt: bool = False,
    out_file: Path | None = None,
    strict: bool = False,
) -> Outcome:
    """What apply would change, and why; saved to `out_file` to apply exactly later.
    With `strict`, the outcome's exit code is 3 when the plan has warnings."""
    desired, name = load_stack(spec, vars, target)
    with connected(desired, name) as tgt:
        actual = read_actual(desired, tgt.batch, tgt.storage, evaluate=True)
        p = make_plan(desired, actual, PlanOptions(name, adopt))
        warned = preflight.warnings(tgt, desired, actual, p)
        if out_file is not None:
            saved_plan.save(out_file, p, desired, basis(actual, covered(p)), adopt=adopt)
        _show_plan(reporter, p, warned=warned)
        data = _with_warnings(plan_json(p, tgt.counter.snapshot()), p, warned)
        return Outcome(data, exit_code=3 if strict and warned else 0, plan=p)


def apply(
    path: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    adopt: bool = False,
    yes: bool = False,
    wait: bool = True,
    sas_ttl: timedelta | None = None,
    lock_timeout: float = 0.0,
    wait_timeout: float | None = None,
    rerun_failed: bool = False,
    strict: bool = False,
) -> Outcome:
    """Make the services match the spec (or a plan saved with `plan -o`), then reactivate
    failed tasks if asked, wait for the tasks and download the outputs. With `strict`, a
    plan with warnings is refused (exit 3) before anything is written."""
    saved = saved_plan.load(path) if saved_plan.is_saved_plan(path) else None
    if saved is not None:
        desired: DesiredState = saved.desired
        name = saved.target
        adopt = saved.adopt
        secrets.check(desired.secrets)  # set, and unchanged since the plan: before any write
    else:
        desired, name = load_stack(path, vars, target)
    with connected(desired, name) as tgt:
        return _apply(
            tgt,
            desired,
            saved,
            reporter,
            name=name,
            adopt=adopt,
            yes=yes,
            wait=wait,
            sas_ttl=sas_ttl,
            lock_timeout=lock_timeout,
            wait_timeout=wait_timeout,
            rerun_failed=rerun_failed,
            strict=strict,
        )


def _apply(
    tgt: Target,
    desired: DesiredState,
    saved: saved_plan.SavedPlan | None,
    reporter: Reporter,
    *,
    name: str,
    adopt: bool,
    yes: bool,
    wait: bool,
    sas_ttl: timedelta | None,
    lock_timeout: float,
    wait_timeout: float | None,
    rerun_failed: bool,
    strict: bool = False,
) -> Outcome:
    options = PlanOptions(name, adopt, rerun_failed)
    actual = read_actual(desired, tgt.batch, tgt.storage)
    p = make_plan(desired, actual, options)
    if saved is not None:
        _check_fresh(saved, actual, p)
    warned = preflight.warnings(tgt, desired, actual, p)
    _show_plan(reporter, p, warned=warned)
    if strict:
        _strict(warned)
    result = applying.ApplyResult()
    if not p.empty():
        _confirm(reporter, yes, "Apply these changes?")
        with StackLock(tgt.storage, desired.logs_container.name, lock_timeout, "apply"):
            actual = read_actual(desired, tgt.batch, tgt.storage)
            again = make_plan(desired, actual, options)
            if saved is not None:
                _check_fresh(saved, actual, again)
            if _signature(again) != _signature(p) and not again.empty():
                if not yes:
                    # A person approved the plan shown; don't apply a different one.
                    raise StalePlanError(
                        "the services changed while the plan was shown; nothing was changed",
                        hint="run the command again to see the new plan",
                    )
                reporter.note(
                    "The services changed while waiting for the lock; applying the"
                    " plan made under it:"
                )
                _show_plan(reporter, again)
                p = again
            elif again.empty():
                reporter.note("Nothing left to change: another apply made these changes first.")
                p = again
            opts = applying.ApplyOptions()
            if sas_ttl is not None:
                opts.sas_ttl = sas_ttl
            result = applying.apply(again, tgt, opts)
        s = p.summary()
        reporter.show(
            f"Apply complete: {s['create']} created, {s['update']} updated,"
            f" {s['replace']} replaced, {s['delete']} deleted."
        )
    data = _with_warnings(plan_json(p, {}), p, warned)
    data["applied"] = not p.empty()
    data["outcome"] = result.to_json()
    exit_code = 0
    if rerun_failed and desired.tasks:
        again_tasks = rerun_failed_tasks(tgt.batch, desired)
        data["outcome"]["rerun"] = again_tasks
        if again_tasks:
            reporter.note(
                f"Reactivated {len(again_tasks):,} failed task"
                f"{'s' if len(again_tasks) != 1 else ''}"
            )
    if wait and desired.tasks:
        finished, exit_code = finish(tgt, desired, reporter, timeout=wait_timeout)
        data["outcome"].update(finished)  # with what pool.whenIdle did
    data["requests"] = tgt.counter.snapshot()
    return Outcome(data, exit_code, p)


def _check_fresh(saved: saved_plan.SavedPlan, actual: ActualState, now: Plan) -> None:
    keys = covered(now) | {Address.parse(a) for a in saved.basis}
    saved_plan.check_fresh(saved, basis(actual, keys))


def destroy(
    spec: Path,
    reporter: Reporter,
    *,
    vars: Vars = None,
    target: str | None = None,
    yes: bool = False,
    lock_timeout: float = 0.0,
    keep_storage: bool = False,
) -> Outcome:
    """Delete what carries the stack's tag (the containers too, unless `keep_storage`)."""
    desired, name = load_stack(spec, vars, target)
    with connected(desired, name) as tgt:
        actual = read_actual(
            desired, tgt.batch, tgt.storage, tasks=False, blobs=False, schedules=True
        )
        p = plan_destroy(desired, actual, name)
        if keep_storage:
            p = keep_containers(p)
        _show_plan(reporter, p, destroy=True)
        if not p.empty():
            _confirm(reporter, yes, destroy_question(p))
            has_logs = any(c.address.parts[0] == LOGS_KEY for c in p.pending())
            if has_logs:
                with StackLock(tgt.storage, desired.logs_container.name, lock_timeout, "destroy"):
                    applying.destroy(p, tgt)
            else:
                applying.destroy(p, tgt)
            reporter.show(f"Destroy complete: {len(p.pending())} deleted.")
        data: dict[str, Any] = plan_json(p, tgt.counter.snapshot())
        data["applied"] = not p.empty()
        return Outcome(data, plan=p)
