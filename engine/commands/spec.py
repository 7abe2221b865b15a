"""`bspec validate`, `bspec render` and `bspec schema`: the spec language's own commands.

None of them touches a service or writes a file; bad input of any kind exits 2.
"""

from __future__ import annotations

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
from bspec.model import DesiredState, ResourceFileSpec, TaskSpec
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
    pool = summary["pool"]
    if pool:
        nodes = f"{pool['nodes']} node(s)"
        if pool["lowPriorityNodes"]:
            nodes += f" + {pool['lowPriorityNodes']} low-priority"
        scaled = desired.pool.autoscale if desired.pool else None
        if scaled is not None:
            how = f"{scaled.preset} preset" if scaled.preset else "formula"
            nodes = f"autoscale ({how}, every {durations.format(scaled.interval)})"
        out.print(f"  pool      {pool['id']:<14} {pool['vmSize']}, {nodes}, "
                  f"{pool['taskSlotsPerNode']} slot(s) per node", markup=False)
    for job in summary["jobs"]:
        deps = ", with dependencies" if job["usesTaskDependencies"] else ""
        out.print(f"  job       {job['id']:<14} {job['tasks']} task(s){deps}", markup=False)
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
    if desired.pool:
        p = data["pool"]
        out.print(f"pool/{p['id']}  vmSize={p['vmSize']} nodes={p['nodes']}", markup=False)
        if p["startTask"]:
            out.print(f"  startTask: {p['startTask']['commandLine']}", markup=False)
        if p.get("autoscale"):
            a = p["autoscale"]
            out.print(f"  autoscale (every {a['interval']}):", markup=False)
            for line in a["formula"].splitlines():
                out.print(f"    {line}", markup=False)
    for job in data["jobs"]:
        out.print(f"job/{job['id']}  pool={job['poolId']} priority={job['priority']}",
                  markup=False)
        for t in job["tasks"]:
            out.print(f"task/{job['id']}/{t['id']}  {t['fingerprint']}", markup=False)
            out.print(f"  commandLine: {t['commandLine']}", markup=False)
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
    pool = desired.pool
    return {
        "stack": desired.stack,
        "file": desired.spec_file,
        "target": desired.target,
        "containers": [
            {"key": c.key, "name": c.name, "files": len(per_container.get(c.key, [])),
             "bytes": sum(per_container.get(c.key, []))}
            for c in desired.containers
        ],
        "pool": None if pool is None else {
            "id": pool.id, "vmSize": pool.vm_size, "nodes": pool.target_dedicated_nodes,
            "lowPriorityNodes": pool.target_low_priority_nodes,
            "taskSlotsPerNode": pool.task_slots_per_node,
        },
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


def _task(t: TaskSpec) -> dict[str, Any]:
    return {
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
    }


def desired_to_json(desired: DesiredState) -> dict[str, Any]:
    """The `render --json` object (without formatVersion): the desired state, SAS-free."""
    pool = desired.pool
    start = pool.start_task if pool else None
    data: dict[str, Any] = {
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
        "pool": None if pool is None else {
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
            "startTask": None if start is None else {
                "commandLine": start.command_line,
                "resourceFiles": [_rf(rf) for rf in start.resource_files],
                "environment": dict(start.environment),
                "elevated": start.elevated,
                "waitForSuccess": start.wait_for_success,
                "maxTaskRetryCount": start.max_task_retry_count,
            },
        },
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
                "tasks": [_task(t) for t in desired.tasks_of(j.id)],
            }
            for j in desired.jobs
        ],
    }
    if pool is not None and pool.autoscale is not None:
        a = pool.autoscale
        data["pool"]["autoscale"] = {
            "formula": a.formula,
            "interval": durations.format(a.interval),
            "preset": a.preset,
        }
    return data


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
