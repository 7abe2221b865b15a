"""What bspec does, as plain functions: the CLI, the library API and a dashboard call
these with their own reporter (bspec.reporting.reporter.Reporter) and get an `Outcome`
back: the --json object, the exit code and, for plan/apply/destroy, the plan.

    plan(spec, reporter, *, vars, target, adopt, out_file)
    apply(path, reporter, *, vars, target, adopt, yes, wait, sas_ttl, lock_timeout,
          wait_timeout, rerun_failed)
    destroy(spec, reporter, *, vars, target, yes, lock_timeout, keep_storage)
    status(spec, reporter, *, vars, target, failed_limit)
    wait(spec, reporter, *, vars, target, timeout)
    outputs(spec, reporter, *, vars, target)
    logs(spec, task, reporter, *, job, stderr, tail, follow, vars, target, poll)
    unlock(spec, reporter, *, vars, target, yes)
    rerun_failed(batch, desired), finish(target, desired, reporter, *, timeout, base)

Nothing here imports typer or bspec.cli, and nothing prints: every word goes through the
reporter. `opened` / `connected` are the one load -> target -> connect -> close.
"""

from __future__ import annotations

from bspec.operations.logs import logs
from bspec.operations.reconcile import apply, destroy, plan
from bspec.operations.session import Outcome, Vars, connected, load_stack, opened
from bspec.operations.status import status
from bspec.operations.tasks import finish, outputs, rerun_failed, wait
from bspec.operations.unlock import unlock
from bspec.reporting.reporter import ConsoleReporter, QuietReporter, Reporter

__all__ = [
    "ConsoleReporter",
    "Outcome",
    "QuietReporter",
    "Reporter",
    "Vars",
    "apply",
    "connected",
    "destroy",
    "finish",
    "load_stack",
    "logs",
    "opened",
    "outputs",
    "plan",
    "rerun_failed",
    "status",
    "unlock",
    "wait",
]
