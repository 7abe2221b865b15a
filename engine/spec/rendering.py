"""Expand a validated spec into the desired state: sandboxed Jinja, then what only rendering shows.

Strings outside `jobs[*].tasks` see `vars` and `stack`; task strings also see `item`, `index`,
`pool` and `job`. After rendering, the result is checked again: the schema for the non-task
parts, and for tasks the ids (valid, unique in a job ignoring case), the dependencies
(existing, acyclic, within Batch's limits) and the containers and blobs they name. Every
problem names the spec's file, line and JSON path of the string that produced it.

This module is the pipeline; each stage lives in its own module:

- `environment`: the Jinja sandbox (StrictUndefined, the batchid and shquote filters);
- `tree`: rendering and typing a subtree, collecting problems;
- `files`: containers, globbing the files they upload, their MD5s;
- `references`: what resource and output files name must exist;
- `tasks` and `dependencies`: task expansion, `dependsOn`, fingerprints.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator, Mapping
from typing import Any

from bspec.errors import SpecError
from bspec.model import (
    BlobSpec,
    DesiredState,
    ImageSpec,
    JobConstraintsSpec,
    JobOutputSpec,
    JobSpec,
    PoolSpec,
    ResourceFileSpec,
    StartTaskSpec,
    TaskSpec,
    WhenIdle,
)
from bspec.spec import autoscale
from bspec.spec.dependencies import MAX_DEPENDS_CHARS, expand_dependencies
from bspec.spec.environment import (
    MAX_RESULT,
    Failure,
    batchid,
    builtin_templates,
    is_template,
    make_environment,
    shquote,
)
from bspec.spec.files import CONTAINER_NAME, containers
from bspec.spec.fingerprint import BlobIndex
from bspec.spec.loading import Document, PathKey, json_path
from bspec.spec.references import FILE_MODE, References
from bspec.spec.tasks import BATCH_ID, JobTasks, check_batch_limits
from bspec.spec.tree import MAX_PROBLEMS, Renderer, parse_duration
from bspec.spec.validation import validate


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a with-block, then restore it as it was.

    Rendering allocates many small acyclic objects, and the collections they trigger make the
    cost per task grow with the count (about 20% more per task at 100,000 tasks). A program
    that renders large specs (the CLI, the benchmark) may wrap its call in this; the library
    never switches the collector itself.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def render(doc: Document, var_overrides: Mapping[str, Any] | None = None) -> DesiredState:
    """The desired state of a schema-valid document; SpecError with every problem otherwise."""
    data: dict[str, Any] = doc.data
    variables: dict[str, Any] = dict(data.get("vars") or {})
    variables.update(var_overrides or {})
    r = Renderer(doc, variables)
    stack = str(data["name"])
    top_scope = r.scope(vars=variables, stack=stack)

    # 1. Everything but vars and the task templates, rendered and validated again.
    rendered: dict[str, Any] = {}
    for key, value in data.items():
        if key == "vars":
            rendered[key] = value
        elif key == "jobs" and isinstance(value, list):
            jobs = []
            for j, job in enumerate(value):
                rest = {k: v for k, v in job.items() if k != "tasks"}
                out = r.render_tree(rest, ("jobs", j), top_scope)
                out["tasks"] = job.get("tasks", [])
                jobs.append(out)
            rendered[key] = jobs
        elif key == "pool" and isinstance(value, dict):
            # autoscale.formula is rendered with the pool in scope, in _pool
            rendered[key] = autoscale.render_body(r, value, (key,), top_scope)
        else:
            rendered[key] = r.render_tree(value, (key,), top_scope, key)
    r.check()
    again = validate(doc, rendered, rendered=True)
    if again:
        raise SpecError(again)

    # 2. Containers and the files they upload.
    declared_containers, blobs = containers(r, rendered, stack)
    r.check()
    declared = {c.key for c in declared_containers}
    files_of: dict[str, list[BlobSpec]] = {}
    for b in blobs:
        files_of.setdefault(b.container, []).append(b)
    index = BlobIndex((b.container, b.name, b.md5) for b in blobs)
    refs = References(r, declared, files_of)

    # 3. The pool.
    pool = _pool(r, rendered.get("pool"), refs, data.get("pool"), top_scope)
    pool_id = pool.id if pool else None

    # 4. Jobs and their tasks.
    job_specs: list[JobSpec] = []
    tasks: list[TaskSpec] = []
    job_ids: dict[str, str] = {}
    for j, job in enumerate(rendered.get("jobs") or []):
        path: PathKey = ("jobs", j)
        lower = str(job["id"]).lower()
        if lower in job_ids:
            r.problem(
                (*path, "id"),
                f"job id {job['id']!r} is used twice (ids ignore case; "
                f"first as {job_ids[lower]!r})",
            )
            continue
        job_ids[lower] = str(job["id"])
        if pool is None:
            r.problem(path, "jobs need a pool: add `pool:` to the spec")
            continue
        try:
            job_tasks = JobTasks(r, refs, index, str(job["id"]), path, pool.task_slots_per_node)
        except Failure as f:
            r.problem(f.path, f.message)
            break
        job_scope = r.scope(vars=variables, stack=stack, pool=pool_id, job=job["id"])
        for t, template in enumerate(job.get("tasks") or []):
            job_tasks.expand(template, (*path, "tasks", t), job_scope)
        built = job_tasks.finish()
        tasks.extend(built)
        job_specs.append(
            _job(
                r,
                job,
                path,
                pool.id,
                refs,
                uses_deps=any(t.depends_on or t.depends_on_ranges for t in built),
            )
        )
    r.check()
    return DesiredState(
        stack=stack,
        spec_file=doc.file,
        spec_hash=doc.sha256,
        vars=variables,
        target=rendered.get("target"),
        containers=tuple(declared_containers),
        blobs=tuple(blobs),
        pool=pool,
        jobs=tuple(job_specs),
        tasks=tuple(tasks),
    )


def _pool(
    r: Renderer,
    body: Mapping[str, Any] | None,
    refs: References,
    raw: Any = None,
    scope: dict[str, Any] | None = None,
) -> PoolSpec | None:
    if not body:
        return None
    formula = autoscale.raw_formula(raw) if isinstance(raw, Mapping) else None
    scaled = autoscale.build(r, body, formula, ("pool",), scope or {})
    start: StartTaskSpec | None = None
    st = body.get("startTask")
    if st:
        path: PathKey = ("pool", "startTask")
        files: list[ResourceFileSpec] = []
        try:
            command_line = r.command_line(st, path, r.wrapper())
            for i, rf in enumerate(st.get("resourceFiles") or []):
                files.append(refs.resource_file(rf, (*path, "resourceFiles", i)))
            environment = tuple((k, str(v)) for k, v in (st.get("environment") or {}).items())
            check_batch_limits(st, path, command_line, environment, None, len(files))
        except Failure as f:
            r.problem(f.path, f.message)
            command_line = ""
        start = StartTaskSpec(
            command_line=command_line,
            resource_files=tuple(files),
            environment=tuple((st.get("environment") or {}).items()),
            elevated=bool(st.get("elevated", False)),
            wait_for_success=bool(st.get("waitForSuccess", True)),
            max_task_retry_count=int(st.get("maxTaskRetryCount", 0)),
        )
    image = body["image"]
    return PoolSpec(
        id=body["id"],
        vm_size=body["vmSize"],
        image=ImageSpec(
            publisher=image["publisher"],
            offer=image["offer"],
            sku=image["sku"],
            node_agent_sku=image["nodeAgentSku"],
            version=image.get("version", "latest"),
        ),
        target_dedicated_nodes=int(body.get("nodes", 0)),
        target_low_priority_nodes=int(body.get("lowPriorityNodes", 0)),
        task_slots_per_node=int(body.get("taskSlotsPerNode", 1)),
        start_task=start,
        metadata=tuple((body.get("metadata") or {}).items()),
        when_idle=WhenIdle(body.get("whenIdle", "keep")),
        autoscale=scaled,
    )


def _job(
    r: Renderer,
    job: Mapping[str, Any],
    path: PathKey,
    pool_id: str,
    refs: References,
    *,
    uses_deps: bool,
) -> JobSpec:
    c = job.get("constraints") or {}
    wall = c.get("maxWallClockTime")
    outputs = []
    for i, o in enumerate(job.get("outputs") or []):
        refs.container(o["container"], (*path, "outputs", i, "container"))
        to = os.path.normpath(os.path.join(r.doc.directory, o["to"]))
        outputs.append(JobOutputSpec(container=o["container"], to=to, prefix=o.get("prefix")))
    return JobSpec(
        id=job["id"],
        pool_id=pool_id,
        priority=int(job.get("priority", 0)),
        constraints=JobConstraintsSpec(
            max_wall_clock_time=parse_duration(wall) if wall else None,
            max_task_retry_count=int(c.get("maxTaskRetryCount", 0)),
        ),
        uses_task_dependencies=uses_deps,
        metadata=tuple((job.get("metadata") or {}).items()),
        outputs=tuple(outputs),
    )


__all__ = [
    "BATCH_ID",
    "CONTAINER_NAME",
    "FILE_MODE",
    "MAX_DEPENDS_CHARS",
    "MAX_PROBLEMS",
    "MAX_RESULT",
    "batchid",
    "builtin_templates",
    "expand_dependencies",
    "gc_paused",
    "is_template",
    "json_path",
    "make_environment",
    "parse_duration",
    "render",
    "shquote",
]
