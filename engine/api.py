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
the confirmation. The CLI commands are thin layers over the `run_*` functions used here.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bspec import applying
from bspec.downloads import download_outputs
from bspec.errors import InputError, NotFoundError
from bspec.model import DesiredState
from bspec.providers import inspection
from bspec.reporting import note
from bspec.spec import load as _load_spec
from bspec.spec import parse_var_flags
from bspec.targets import Target, choose, connect
from bspec.watching import finish, read_task_stream

FORMAT_VERSION = 1
PathLike = str | Path


def _vars(vars: Mapping[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    if vars is None:
        return {}
    if isinstance(vars, Mapping):
        return dict(vars)
    return parse_var_flags(list(vars))


def _versioned(data: dict[str, Any]) -> dict[str, Any]:
    return {"formatVersion": FORMAT_VERSION, **data}


def _open(
    spec: PathLike, var: Sequence[str] | Mapping[str, Any] | None, target: str | None
) -> tuple[DesiredState, Target]:
    desired = _load_spec(Path(spec), _vars(var))
    tgt = connect(choose(target, desired.target), desired.stack)
    return desired, tgt


# --------------------------------------------------------------------------- library


def load(spec: PathLike, vars: Mapping[str, Any] | Sequence[str] | None = None) -> DesiredState:
    """Read, validate and render a spec (SpecError, exit 2, lists every problem)."""
    return _load_spec(Path(spec), _vars(vars))


def _var_flags(vars: Mapping[str, Any] | Sequence[str] | None) -> list[str]:
    if vars is None:
        return []
    if isinstance(vars, Mapping):
        import json  # JSON is YAML 1.2: every value keeps its type through --var parsing

        return [f"{k}={json.dumps(v)}" for k, v in vars.items()]
    return list(vars)


def plan(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
    adopt: bool = False,
) -> dict[str, Any]:
    """What apply would change, and why (the `bspec plan --json` object)."""
    from bspec.commands.reconcile import run_plan

    _, data = run_plan(Path(spec), var=_var_flags(vars), target=target, adopt=adopt, show=False)
    return _versioned(data)


def apply(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
    adopt: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    rerun_failed: bool = False,
    lock_timeout: float = 90.0,
) -> dict[str, Any]:
    """Make the services match the spec, wait for the tasks and download the outputs (the
    `bspec apply --json` object). A failed task does not raise: see
    `result["outcome"]["tasks"]["failed"]`."""
    from bspec.commands.reconcile import run_apply

    result = run_apply(
        Path(spec),
        var=_var_flags(vars),
        target=target,
        adopt=adopt,
        yes=True,
        no_wait=not wait,
        lock_timeout=lock_timeout,
        show=False,
        wait_timeout=timeout,
        rerun_failed=rerun_failed,
    )
    return _versioned(result.data)


def destroy(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
    keep_storage: bool = False,
    lock_timeout: float = 90.0,
) -> dict[str, Any]:
    """Delete what the stack owns (the `bspec destroy --json` object)."""
    from bspec.commands.reconcile import run_destroy

    result = run_destroy(
        Path(spec),
        var=_var_flags(vars),
        target=target,
        yes=True,
        lock_timeout=lock_timeout,
        show=False,
        keep_storage=keep_storage,
    )
    return _versioned(result.data)


def status(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Pool, nodes, jobs, task counts and failed tasks (the `bspec status --json` object)."""
    return _versioned(run_status(spec, var=vars, target=target))


def wait(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Wait for the spec's tasks and download the outputs (the `bspec wait --json` object)."""
    data, _ = run_wait(spec, var=vars, target=target, timeout=timeout, show=False)
    return _versioned(data)


def outputs(
    spec: PathLike,
    *,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """Download the spec's outputs that are new or changed (`bspec outputs --json`)."""
    return _versioned(run_outputs(spec, var=vars, target=target))


def logs(
    spec: PathLike,
    task: str,
    *,
    job: str | None = None,
    stderr: bool = False,
    tail: int | None = None,
    vars: Mapping[str, Any] | Sequence[str] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    """A task's stdout (or stderr) as text (`bspec logs --json`)."""
    return _versioned(
        run_logs(spec, task, job=job, stderr=stderr, tail=tail, var=vars, target=target)
    )


# --------------------------------------------------------------------------- commands


def run_status(
    spec: PathLike,
    *,
    var: Sequence[str] | Mapping[str, Any] | None = None,
    target: str | None = None,
    failed_limit: int = 100,
) -> dict[str, Any]:
    desired, tgt = _open(spec, var, target)
    try:
        data: dict[str, Any] = {
            "stack": desired.stack,
            "target": tgt.name,
            "pool": None,
            "jobs": [],
        }
        if desired.pool is not None:
            data["pool"] = _pool_status(tgt, desired.pool.id)
        for job in desired.jobs:
            data["jobs"].append(_job_status(tgt, desired, job.id, failed_limit))
        data["requests"] = tgt.counter.snapshot()
        return data
    finally:
        tgt.close()


def _pool_status(tgt: Target, pool_id: str) -> dict[str, Any]:
    p = inspection.get_pool(tgt.batch, pool_id)
    if p is None:
        return {
            "id": pool_id,
            "exists": False,
            "state": None,
            "allocationState": None,
            "targetDedicatedNodes": 0,
            "currentDedicatedNodes": 0,
            "targetLowPriorityNodes": 0,
            "currentLowPriorityNodes": 0,
            "nodes": {},
            "owner": None,
        }
    nodes = Counter(
        str(n.get("state") or "unknown") for n in inspection.list_nodes(tgt.batch, pool_id)
    )
    owner = {m.get("name"): m.get("value") for m in p.get("metadata") or ()}.get("bspec-stack")
    return {
        "id": pool_id,
        "exists": True,
        "state": p.get("state"),
        "allocationState": p.get("allocationState"),
        "targetDedicatedNodes": int(p.get("targetDedicatedNodes") or 0),
        "currentDedicatedNodes": int(p.get("currentDedicatedNodes") or 0),
        "targetLowPriorityNodes": int(p.get("targetLowPriorityNodes") or 0),
        "currentLowPriorityNodes": int(p.get("currentLowPriorityNodes") or 0),
        "nodes": dict(sorted(nodes.items())),
        "owner": owner,
    }


def _job_status(
    tgt: Target, desired: DesiredState, job_id: str, failed_limit: int
) -> dict[str, Any]:
    wanted = {t.id for t in desired.tasks_of(job_id)}
    j = inspection.get_job(tgt.batch, job_id)
    if j is None:
        return {
            "id": job_id,
            "exists": False,
            "state": None,
            "specTasks": len(wanted),
            "taskCounts": None,
            "failedTasks": [],
        }
    counts = inspection.task_counts(tgt.batch, job_id)
    failed = inspection.list_tasks(
        tgt.batch,
        job_id,
        flt="state eq 'completed' and executionInfo/result eq 'failure'",
        select="id,executionInfo,nodeInfo",
    )
    rows = []
    for t in failed:
        if t.get("id") not in wanted:
            continue
        info = t.get("executionInfo") or {}
        fi = info.get("failureInfo") or {}
        rows.append(
            {
                "address": f"task/{job_id}/{t.get('id')}",
                "taskId": t.get("id"),
                "exitCode": info.get("exitCode"),
                "failure": fi.get("message") or fi.get("code"),
                "nodeId": (t.get("nodeInfo") or {}).get("nodeId"),
            }
        )
    return {
        "id": job_id,
        "exists": True,
        "state": j.get("state"),
        "specTasks": len(wanted),
        "taskCounts": counts,
        "failedTasks": rows[:failed_limit],
        **({"failedTasksOmitted": len(rows) - failed_limit} if len(rows) > failed_limit else {}),
    }


def render_status(data: dict[str, Any]) -> list[str]:
    """The status object as lines for people."""
    lines = [f"Stack {data['stack']} ({data['target']})"]
    p = data.get("pool")
    if p is not None:
        if not p["exists"]:
            lines.append(f"Pool {p['id']}: does not exist")
        else:
            nodes = ", ".join(f"{n} {s}" for s, n in p["nodes"].items()) or "no nodes"
            lines.append(
                f"Pool {p['id']}: {p['state']}, {p['allocationState']},"
                f" {p['currentDedicatedNodes']}/{p['targetDedicatedNodes']} dedicated"
                f" nodes ({nodes})"
            )
            if p["targetLowPriorityNodes"] or p["currentLowPriorityNodes"]:
                lines.append(
                    f"  {p['currentLowPriorityNodes']}/{p['targetLowPriorityNodes']}"
                    " low-priority nodes"
                )
    for j in data["jobs"]:
        if not j["exists"]:
            lines.append(f"Job {j['id']}: does not exist ({j['specTasks']} tasks in the spec)")
            continue
        c = j["taskCounts"] or {}
        lines.append(
            f"Job {j['id']}: {j['state']}; tasks: {c.get('active', 0)} active,"
            f" {c.get('running', 0)} running, {c.get('completed', 0)} completed"
            f" ({c.get('succeeded', 0)} succeeded, {c.get('failed', 0)} failed)"
        )
        for f in j["failedTasks"]:
            lines.append(
                f"  failed: {f['address']} (exit code {f['exitCode']})"
                + (f": {f['failure']}" if f["failure"] else "")
            )
        if j.get("failedTasksOmitted"):
            lines.append(f"  ... and {j['failedTasksOmitted']} more failed tasks")
    return lines


def run_wait(
    spec: PathLike,
    *,
    var: Sequence[str] | Mapping[str, Any] | None = None,
    target: str | None = None,
    timeout: float | None = None,
    show: bool = True,
    write: Callable[[str], None] | None = None,
) -> tuple[dict[str, Any], int]:
    """`bspec wait`: what apply does after submitting, for tasks submitted earlier."""
    desired, tgt = _open(spec, var, target)
    try:
        for job in desired.jobs:
            if (
                any(True for _ in desired.tasks_of(job.id))
                and inspection.get_job(tgt.batch, job.id) is None
            ):
                raise NotFoundError(
                    f"job {job.id} does not exist",
                    code="NotFound",
                    hint="run `bspec apply SPEC` first",
                )
        data: dict[str, Any] = {"stack": desired.stack, "target": tgt.name}
        outcome, code = finish(tgt, desired, show=show, timeout=timeout, write=write)
        data.update(outcome)
        # as after apply: pool.whenIdle once the spec's tasks have completed
        data["pool"] = applying.when_idle(desired, tgt, note if show else (lambda _t: None))
        data["requests"] = tgt.counter.snapshot()
        return data, code
    finally:
        tgt.close()


def run_outputs(
    spec: PathLike,
    *,
    var: Sequence[str] | Mapping[str, Any] | None = None,
    target: str | None = None,
) -> dict[str, Any]:
    desired, tgt = _open(spec, var, target)
    try:
        got = download_outputs(tgt.storage, desired)
        return {
            "stack": desired.stack,
            "target": tgt.name,
            "outputs": got.to_json(),
            "requests": tgt.counter.snapshot(),
        }
    finally:
        tgt.close()


def _job_of(desired: DesiredState, task: str, job: str | None) -> str:
    if job is not None:
        return job
    jobs = sorted({t.job_id for t in desired.tasks if t.id.lower() == task.lower()})
    if len(jobs) == 1:
        return jobs[0]
    if not jobs and len(desired.jobs) == 1:
        return desired.jobs[0].id
    if not jobs:
        raise InputError(
            f"task {task!r} is not in the spec",
            code="InvalidFlag",
            hint="give its job with --job ID",
        )
    raise InputError(
        f"task {task!r} is in jobs {', '.join(jobs)}",
        code="InvalidFlag",
        hint="choose one with --job ID",
    )


def run_logs(
    spec: PathLike,
    task: str,
    *,
    job: str | None = None,
    stderr: bool = False,
    tail: int | None = None,
    follow: bool = False,
    var: Sequence[str] | Mapping[str, Any] | None = None,
    target: str | None = None,
    write: Callable[[str], None] | None = None,
    poll: float = 1.0,
) -> dict[str, Any]:
    """A task's stdout.txt or stderr.txt, from its node while the node has it and from the
    stack's logs container after. With `follow`, `write` receives text as it arrives until
    the task completes."""
    desired, tgt = _open(spec, var, target)
    name = "stderr.txt" if stderr else "stdout.txt"
    try:
        job_id = _job_of(desired, task, job)
        data, source = read_task_stream(tgt.batch, tgt.storage, desired, job_id, task, name)
        if data is None and not follow:
            raise NotFoundError(
                f"task/{job_id}/{task} has no {name} yet: it has not run, or"
                " it is gone with its logs",
                code="NotFound",
                hint=f"see where it is with `bspec status {spec}`",
            )
        text = inspection.text_of(data or b"")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-tail:]) if tail > 0 else ""
        if write is not None and text:
            write(text)
        if follow and write is not None:
            size = len(data or b"")
            _follow(tgt, desired, job_id, task, name, size, write, poll)
        return {
            "stack": desired.stack,
            "target": tgt.name,
            "jobId": job_id,
            "taskId": task,
            "stream": "stderr" if stderr else "stdout",
            "source": source,
            "text": text,
            "requests": tgt.counter.snapshot(),
        }
    finally:
        tgt.close()


def _follow(
    tgt: Target,
    desired: DesiredState,
    job_id: str,
    task: str,
    name: str,
    offset: int,
    write: Callable[[str], None],
    poll: float,
) -> None:
    """Print what the task writes until it completes (then its last bytes, from the node
    or the logs container)."""
    while True:
        rows = inspection.list_tasks(tgt.batch, job_id, flt=f"id eq '{task}'", select="id,state")
        done = not rows or str(rows[0].get("state")).lower() == "completed"
        chunk = inspection.task_file(tgt.batch, job_id, task, name, offset)
        if chunk is None and done:
            whole, _ = read_task_stream(tgt.batch, tgt.storage, desired, job_id, task, name)
            chunk = (whole or b"")[offset:]
        if chunk:
            write(inspection.text_of(chunk))
            offset += len(chunk)
        if done:
            return
        time.sleep(poll)


__all__ = ["apply", "destroy", "load", "logs", "outputs", "plan", "status", "wait"]
