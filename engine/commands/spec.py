"""`bspec validate`, `bspec render` and `bspec schema`: the spec language's own commands.

None of them touches a service or writes a file; bad input of any kind exits 2.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from bspec.cli import JSON_HELP, app, emit_json, out
from bspec.common import durations
from bspec.errors import InputError
from bspec.model import (
    DesiredState,
    ExitRuleSpec,
    JobSpec,
    JobTaskSpec,
    PoolSpec,
    ResourceFileSpec,
    TaskSpec,
)
from bspec.reporting.schedules import (
    schedule_lines,
    schedules_json,
    validate_schedule_lines,
)
from bspec.spec import autoscale, load, parse_var_flags

_VAR_HELP = "Override a spec var: NAME=VALUE, typed as YAML 1.2 (repeatable)."
SpecArg = Annotated[Path, typer.Argument(help="The spec file (YAML or JSON).", show_default=False)]
VarOpt = Annotated[list[str] | None, typer.Option("--var", help=_VAR_HELP, show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help=JSON_HELP)]


@app.command("validate")
def validate_command(
    spec: SpecArg,
    var: VarOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a spec (schema, templates, references) and summarise what it describes."""
    desired = load(spec, parse_var_flags(var))
    summary = validate_summary(desired)
    if as_json:
        emit_json(summary)
        return
    out.print(f"{_rel(desired.spec_file)}: valid (stack {desired.stack})", markup=False)
    for c in summary["containers"]:
        files = f"{c['files']} file(s), {_bytes(c['bytes'])}" if c["files"] else "no files"
        out.print(f"  container {c['key']:<14} {c['name']:<30} {files}", markup=False)
    for pool in summary["pools"]:
        nodes = f"{pool['nodes']} node(s)"
        if pool["lowPriorityNodes"]:
            nodes += f" + {pool['lowPriorityNodes']} low-priority"
        scaled = next(p.autoscale for p in desired.pools if p.id == pool["id"])
        if scaled is not None:
            how = f"{scaled.preset} preset" if scaled.preset else "formula"
            nodes = f"autoscale ({how}, every {durations.format(scaled.interval)})"
        out.print(f"  pool      {pool['id']:<14} {pool['vmSize']}, {nodes}, "
                  f"{pool['taskSlotsPerNode']} slot(s) per node", markup=False)
    for job in summary["jobs"]:
        deps = ", with dependencies" if job["usesTaskDependencies"] else ""
        out.print(f"  job       {job['id']:<14} {job['tasks']} task(s){deps}", markup=False)
    for line in validate_schedule_lines(desired):
        out.print(line, markup=False)
    out.print(f"  {summary['tasks']} task(s) in all", markup=False)


PresetOpt = Annotated[
    str | None,
    typer.Option(
        "--autoscale-preset",
        help="Print a built-in autoscale preset (queue, workday) as formula text to copy into"
        " pool.autoscale.formula, its parameters given with --var (e.g. --var max=10); no"
        " SPEC then.",
        show_default=False,
    ),
]


@app.command("render")
def render_command(
    spec: Annotated[
        Path | None, typer.Argument(help="The spec file (YAML or JSON).", show_default=False)
    ] = None,
    var: VarOpt = None,
    as_json: JsonOpt = False,
    autoscale_preset: PresetOpt = None,
) -> None:
    """Print the expanded desired state: every task's id, command line, files and fingerprint."""
    if autoscale_preset is not None:
        _print_preset(autoscale_preset, parse_var_flags(var), as_json)
        return
    if spec is None:
        raise InputError("missing SPEC: the spec file to render", code="InvalidFlag")
    desired = load(spec, parse_var_flags(var))
    data = desired_to_json(desired)
    if as_json:
        emit_json(data)
        return
    out.print(f"# {_rel(desired.spec_file)}: stack {desired.stack}", markup=False)
    for c in data["containers"]:
        out.print(f"container/{c['key']}  name={c['name']}", markup=False)
    for b in data["blobs"]:
        out.print(f"blob/{b['container']}/{b['name']}  size={b['size']} md5={b['md5']}",
                  markup=False)
    for p in data["pools"]:
        key = f" key={p['key']}" if p["key"] is not None else ""
        out.print(f"pool/{p['id']}  vmSize={p['vmSize']} nodes={p['nodes']}{key}", markup=False)
        if p.get("containers"):
            images = ", ".join(p["containers"]["images"]) or "none"
            servers = ", ".join(r["server"] for r in p["containers"]["registries"]) or "none"
            out.print(f"  containers: images {images}; registries {servers}", markup=False)
        if p["startTask"]:
            out.print(f"  startTask: {p['startTask']['commandLine']}", markup=False)
            for line in _container_lines(p["startTask"], "    "):
                out.print(line, markup=False)
        if p.get("autoscale"):
            a = p["autoscale"]
            out.print(f"  autoscale (every {a['interval']}):", markup=False)
            for line in a["formula"].splitlines():
                out.print(f"    {line}", markup=False)
    for job in data["jobs"]:
        out.print(f"job/{job['id']}  pool={job['poolId']} priority={job['priority']}",
                  markup=False)
        for key in ("preparation", "release"):
            if job.get(key):
                out.print(f"  {key}: {job[key]['commandLine']}", markup=False)
        for key in ("onAllTasksComplete", "maxParallelTasks", "onTaskFailure"):
            if key in job:
                out.print(f"  {key}: {job[key]}", markup=False)
        for t in job["tasks"]:
            out.print(f"task/{job['id']}/{t['id']}  {t['fingerprint']}", markup=False)
            out.print(f"  commandLine: {t['commandLine']}", markup=False)
            for line in _container_lines(t):
                out.print(line, markup=False)
            for rule in t.get("onExit") or ():
                out.print(f"  onExit: {json.dumps(rule)}", markup=False)
            for rf in t["resourceFiles"]:
                src = f"{rf['container']}/{rf['blob']}" if rf.get("blob") else \
                    f"{rf['container']}/{rf.get('prefix') or ''}*"
                out.print(f"  resourceFile: {src}", markup=False)
            for of in t["outputFiles"]:
                out.print(f"  outputFile: {of['pattern']} -> {of['container']} ({of['when']})",
                          markup=False)
            if t["dependsOn"] or t["dependsOnRanges"]:
                out.print(f"  dependsOn: {t['dependsOn']} {t['dependsOnRanges'] or ''}".rstrip(),
                          markup=False)
    for line in schedule_lines(data):
        out.print(line, markup=False)


def _print_preset(name: str, given: dict[str, Any], as_json: bool) -> None:
    """`render --autoscale-preset NAME`: the preset's formula for its parameters."""
    params = autoscale.preset_parameters(name, given)
    formula = autoscale.render_preset(name, params, {"vars": {}, "stack": ""})
    if as_json:
        emit_json({"preset": name, "parameters": given, "formula": formula})
        return
    out.print(formula, markup=False)


@app.command("schema")
def schema_command() -> None:
    """Print the spec's JSON Schema (bspec.schema.json), for editors and other tools."""
    sys.stdout.write(
        resources.files("bspec.schema").joinpath("bspec.schema.json").read_text("utf-8")
    )


# --------------------------------------------------------------------------- JSON shapes


def validate_summary(desired: DesiredState) -> dict[str, Any]:
    """The `validate --json` object (without formatVersion)."""
    per_container: dict[str, list[int]] = {}
    for b in desired.blobs:
        per_container.setdefault(b.container, []).append(b.size)
    counts = Counter(t.job_id for t in desired.tasks)
    pools = [
        {"id": p.id, "vmSize": p.vm_size, "nodes": p.target_dedicated_nodes,
         "lowPriorityNodes": p.target_low_priority_nodes,
         "taskSlotsPerNode": p.task_slots_per_node}
        for p in desired.pools
    ]
    return {
        "stack": desired.stack,
        "file": desired.spec_file,
        "target": desired.target,
        "containers": [
            {"key": c.key, "name": c.name, "files": len(per_container.get(c.key, [])),
             "bytes": sum(per_container.get(c.key, []))}
            for c in desired.containers
        ],
        "pool": pools[0] if desired.pool is not None else None,
        "pools": [{**p, "key": d.key} for p, d in zip(pools, desired.pools, strict=True)],
        "jobs": [
            {"id": j.id, "tasks": counts.get(j.id, 0),
             "usesTaskDependencies": j.uses_task_dependencies}
            for j in desired.jobs
        ],
        "tasks": len(desired.tasks),
    }


def _duration(value: timedelta | None) -> str | None:
    return None if value is None else durations.format(value)


def _rf(rf: ResourceFileSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"container": rf.container}
    if rf.blob is not None:
        data["blob"] = rf.blob
    if rf.prefix is not None:
        data["prefix"] = rf.prefix
    if rf.file_path is not None:
        data["filePath"] = rf.file_path
    if rf.file_mode is not None:
        data["fileMode"] = rf.file_mode
    return data


def _secret_parts(spec: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A task's or start task's container and secretEnvironment (names only: values are
    never shown), added only when it has them, so the shape is unchanged for others."""
    if spec.container is not None:
        c = spec.container
        data["container"] = {"image": c.image, "runOptions": c.run_options,
                             "workingDirectory": c.working_directory}
    if spec.secret_environment:
        data["secretEnvironment"] = list(spec.secret_environment)
    return data


def _container_lines(t: dict[str, Any], indent: str = "  ") -> list[str]:
    """A task's container and secret names for `render`'s text (never a secret's value)."""
    lines = []
    if t.get("container"):
        lines.append(f"{indent}container: {t['container']['image']}")
    if t.get("secretEnvironment"):
        names = ", ".join(t["secretEnvironment"])
        lines.append(f"{indent}secretEnvironment: {names} (values from the environment)")
    return lines


def _pool_containers(pool: Any, data: dict[str, Any]) -> dict[str, Any]:
    if pool.containers is not None:
        data["containers"] = {
            "images": list(pool.containers.images),
            "registries": [
                {k: v for k, v in (("server", r.server), ("username", r.username),
                                   ("passwordEnv", r.password_env), ("identity", r.identity))
                 if v is not None}
                for r in pool.containers.registries
            ],
        }
    return data


def _exit_rule(r: ExitRuleSpec) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if r.codes:
        data["exitCodes"] = list(r.codes)
    if r.ranges:
        data["exitCodeRanges"] = [list(x) for x in r.ranges]
    if r.event:
        data[r.event] = True
    if r.job_action:
        data["jobAction"] = r.job_action
    if r.dependency_action:
        data["dependencyAction"] = r.dependency_action
    return data


def _job_task(t: JobTaskSpec, release: bool = False) -> dict[str, Any]:
    c = t.container
    data: dict[str, Any] = {
        "commandLine": t.command_line,
        "resourceFiles": [_rf(rf) for rf in t.resource_files],
        "environment": dict(t.environment),
        "elevated": t.elevated,
        "container": None if c is None else {
            "image": c.image, "runOptions": c.run_options, "workingDirectory": c.working_directory
        },
        "waitForSuccess": t.wait_for_success,
        "constraints": {
            "maxWallClockTime": _duration(t.max_wall_clock_time),
            "retentionTime": _duration(t.retention_time),
            "maxTaskRetryCount": t.max_task_retry_count,
        },
    }
    if release:  # Batch's release task has neither
        del data["waitForSuccess"], data["constraints"]["maxTaskRetryCount"]
    return data


def _job_life(j: JobSpec) -> dict[str, Any]:
    """How the job lives (issue 14), only where the spec says something: the render of a
    spec without these stays as it was."""
    data: dict[str, Any] = {}
    if j.preparation is not None:
        data["preparation"] = _job_task(j.preparation)
    if j.release is not None:
        data["release"] = _job_task(j.release, release=True)
    if j.on_all_tasks_complete != "noaction":
        data["onAllTasksComplete"] = "terminateJob"
    if j.max_parallel_tasks != -1:
        data["maxParallelTasks"] = j.max_parallel_tasks
    if j.on_task_failure != "noaction":
        data["onTaskFailure"] = "performExitOptionsJobAction"
    return data


def _task(t: TaskSpec) -> dict[str, Any]:
    extra = {"onExit": [_exit_rule(r) for r in t.on_exit]} if t.on_exit else {}
    return _secret_parts(t, {
        "id": t.id,
        "displayName": t.display_name,
        "commandLine": t.command_line,
        "fingerprint": t.fingerprint,
        "resourceFiles": [_rf(rf) for rf in t.resource_files],
        "outputFiles": [
            {"pattern": o.pattern, "container": o.container, "path": o.path, "when": o.when.value}
            for o in t.output_files
        ],
        "environment": dict(t.environment),
        "dependsOn": list(t.depends_on),
        "dependsOnRanges": [list(r) for r in t.depends_on_ranges],
        "constraints": {
            "maxWallClockTime": _duration(t.constraints.max_wall_clock_time),
            "retentionTime": _duration(t.constraints.retention_time),
            "maxTaskRetryCount": t.constraints.max_task_retry_count,
        },
        "elevated": t.elevated,
        "requiredSlots": t.required_slots,
        **extra,
    })


def _pool(pool: PoolSpec) -> dict[str, Any]:
    start = pool.start_task
    a = pool.autoscale
    scaled = {} if a is None else {"autoscale": {
        "formula": a.formula, "interval": durations.format(a.interval), "preset": a.preset,
    }}
    return _pool_containers(pool, {
        "id": pool.id,
        "vmSize": pool.vm_size,
        "image": {"publisher": pool.image.publisher, "offer": pool.image.offer,
                  "sku": pool.image.sku, "version": pool.image.version,
                  "nodeAgentSku": pool.image.node_agent_sku},
        "nodes": pool.target_dedicated_nodes,
        "lowPriorityNodes": pool.target_low_priority_nodes,
        "taskSlotsPerNode": pool.task_slots_per_node,
        "whenIdle": pool.when_idle.value,
        "metadata": dict(pool.metadata),
        "startTask": None if start is None else _secret_parts(start, {
            "commandLine": start.command_line,
            "resourceFiles": [_rf(rf) for rf in start.resource_files],
            "environment": dict(start.environment),
            "elevated": start.elevated,
            "waitForSuccess": start.wait_for_success,
            "maxTaskRetryCount": start.max_task_retry_count,
        }),
        **scaled,
    })


def desired_to_json(desired: DesiredState) -> dict[str, Any]:
    """The `render --json` object (without formatVersion): the desired state, SAS-free."""
    pools = [_pool(p) for p in desired.pools]
    return {
        "stack": desired.stack,
        "file": desired.spec_file,
        "specHash": desired.spec_hash,
        "target": desired.target,
        "vars": dict(desired.vars),
        "containers": [{"key": c.key, "name": c.name} for c in desired.containers],
        "blobs": [
            {"container": b.container, "name": b.name, "path": b.path, "size": b.size,
             "md5": b.md5}
            for b in desired.blobs
        ],
        "pool": pools[0] if desired.pool is not None else None,
        "pools": [{**p, "key": d.key} for p, d in zip(pools, desired.pools, strict=True)],
        "jobs": [
            {
                "id": j.id,
                "poolId": j.pool_id,
                "priority": j.priority,
                "constraints": {
                    "maxWallClockTime": _duration(j.constraints.max_wall_clock_time),
                    "maxTaskRetryCount": j.constraints.max_task_retry_count,
                },
                "usesTaskDependencies": j.uses_task_dependencies,
                "metadata": dict(j.metadata),
                "outputs": [{"container": o.container, "to": o.to, "prefix": o.prefix}
                            for o in j.outputs],
                **_job_life(j),
                "tasks": [_task(t) for t in desired.tasks_of(j.id)],
            }
            for j in desired.jobs
        ],
        **schedules_json(desired, _task),
    }


def _rel(path: str) -> str:
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
