"""bspec as a library: what the commands do, returning what their `--json` shows.

    import bspec
    desired = bspec.load("specs/topwords.yaml")          # validated, rendered DesiredState
    changes = bspec.plan("specs/topwords.yaml")["changes"]
    result = bspec.apply("specs/topwords.yaml")          # waits, downloads outputs
    bspec.status("specs/topwords.yaml")["jobs"][0]["taskCounts"]
    bspec.destroy("specs/topwords.yaml")

Every function returns the dict the command prints with `--json` (formatVersion
included) and prints nothing; errors are raised as `bspec.errors.BspecError` subclasses
(their `exit_code` is the command's). `apply` and `destroy` never ask: calling them is
the confirmation. The CLI and these functions are thin layers over bspec.operations;
here they run with a reporter that shows nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bspec import operations
from bspec.model import DesiredState
from bspec.operations.session import spec_vars
from bspec.reporting.reporter import QuietReporter
from bspec.spec import load as _load_spec

FORMAT_VERSION = 1
PathLike = str | Path
Vars = Mapping[str, Any] | Sequence[str] | None


def _versioned(data: dict[str, Any]) -> dict[str, Any]:
    return {"formatVersion": FORMAT_VERSION, **data}


def load(spec: PathLike, vars: Vars = None) -> DesiredState:
    """Read, validate and render a spec (SpecError, exit 2, lists every problem)."""
    return _load_spec(Path(spec), spec_vars(vars))


def _var_flags(vars: Vars) -> list[str]:
    if vars is None:
        return []
    if isinstance(vars, Mapping):
        import json  # JSON is YAML 1.2: every value keeps its type through --var parsing

        return [f"{k}={json.dumps(v)}" for k, v in vars.items()]
    return list(vars)


def plan(
    spec: PathLike, *, vars: Vars = None, target: str | None = None, adopt: bool = False
) -> dict[str, Any]:
    """What apply would change, and why (the `bspec plan --json` object)."""
    done = operations.plan(
        Path(spec), QuietReporter(), vars=_var_flags(vars), target=target, adopt=adopt
    )
    return _versioned(done.data)


def apply(
    spec: PathLike,
    *,
    vars: Vars = None,
    target: str | None = None,
    adopt: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    rerun_failed: bool = False,
    lock_timeout: float = 90.0,
    strict: bool = False,
) -> dict[str, Any]:
    """Make the services match the spec, wait for the tasks and download the outputs (the
    `bspec apply --json` object). A failed task does not raise: see
    `result["outcome"]["tasks"]["failed"]`. With `strict`, a plan with warnings raises
    RefusedError before anything is written (the plan's `warnings` say why)."""
    done = operations.apply(
        Path(spec),
        QuietReporter(),
        vars=_var_flags(vars),
        target=target,
        adopt=adopt,
        yes=True,
        wait=wait,
        lock_timeout=lock_timeout,
        wait_timeout=timeout,
        rerun_failed=rerun_failed,
        strict=strict,
    )
    return _versioned(done.data)


def destroy(
    spec: PathLike,
    *,
    vars: Vars = None,
    target: str | None = None,
    keep_storage: bool = False,
    lock_timeout: float = 90.0,
) -> dict[str, Any]:
    """Delete what the stack owns (the `bspec destroy --json` object)."""
    done = operations.destroy(
        Path(spec),
        QuietReporter(),
        vars=_var_flags(vars),
        target=target,
        yes=True,
        lock_timeout=lock_timeout,
        keep_storage=keep_storage,
    )
    return _versioned(done.data)


def status(spec: PathLike, *, vars: Vars = None, target: str | None = None) -> dict[str, Any]:
    """Pool, nodes, jobs, task counts and failed tasks (the `bspec status --json` object)."""
    return _versioned(operations.status(Path(spec), QuietReporter(), vars=vars, target=target).data)


def wait(
    spec: PathLike, *, vars: Vars = None, target: str | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """Wait for the spec's tasks and download the outputs (the `bspec wait --json` object)."""
    done = operations.wait(Path(spec), QuietReporter(), vars=vars, target=target, timeout=timeout)
    return _versioned(done.data)


def outputs(spec: PathLike, *, vars: Vars = None, target: str | None = None) -> dict[str, Any]:
    """Download the spec's outputs that are new or changed (`bspec outputs --json`)."""
    return _versioned(
        operations.outputs(Path(spec), QuietReporter(), vars=vars, target=target).data
    )


def logs(
    spec: PathLike,
    task: str,
    *,
    job: str | None = None,
    stderr: bool = False,
    tail: int | None = None,
    vars: Vars = None,
    target: str | None = None,
) -> dict[str, Any]:
    """A task's stdout (or stderr) as text (`bspec logs --json`)."""
    done = operations.logs(
        Path(spec),
        task,
        QuietReporter(),
        job=job,
        stderr=stderr,
        tail=tail,
        vars=vars,
        target=target,
    )
    return _versioned(done.data)


__all__ = ["apply", "destroy", "load", "logs", "outputs", "plan", "status", "wait"]
