"""Expand a validated spec into the desired state: sandboxed Jinja, then what only rendering shows.

Strings outside `jobs[*].tasks` see `vars` and `stack`; task strings also see `item`, `index`,
`pool` (the job's pool) and `job`. After rendering, the result is checked again: the schema for the non-task
parts, and for tasks the ids (valid, unique in a job ignoring case), the dependencies
(existing, acyclic, within Batch's limits) and the containers and blobs they name. Every
problem names the spec's file, line and JSON path of the string that produced it.

This module is the pipeline; each stage lives in its own module:

- `environment`: the Jinja sandbox (StrictUndefined, the batchid and shquote filters);
- `tree`: rendering and typing a subtree, collecting problems;
- `files`: containers, globbing the files they upload, their MD5s;
- `pools`: `pool:` or `pools:`, and the pool each job runs on;
- `references`: what resource and output files name must exist;
- `tasks` and `dependencies`: task expansion, `dependsOn`, fingerprints.
- `jobs` and `exits`: a job's preparation, release, completion and maxParallelTasks, and
  the tasks' exit rules (`onExit`).
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
    JobConstraintsSpec,
    JobOutputSpec,
    JobSpec,
    Kind,
    ScheduleSpec,
    TaskSpec,
)
from bspec.spec import autoscale
from bspec.spec.containers import SecretBook
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
from bspec.spec.exits import exit_rules
from bspec.spec.files import CONTAINER_NAME, containers
from bspec.spec.fingerprint import BlobIndex
from bspec.spec.jobs import job_options
from bspec.spec.loading import Document, PathKey, json_path
from bspec.spec.pools import PoolName, declared_pools, job_pool
from bspec.spec.references import FILE_MODE, References
from bspec.spec.schedules import is_scheduled, run_scope, scheduled_job
from bspec.spec.tasks import BATCH_ID, JobTasks
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
            # autoscale.formula is rendered with the pool in scope, in pools.pool_spec
            rendered[key] = autoscale.render_body(r, value, (key,), top_scope)
        elif key == "pools" and isinstance(value, dict):
            rendered[key] = {
                k: autoscale.render_body(r, body, (key, k), top_scope)
                if isinstance(body, dict)
                else r.render_tree(body, (key, k), top_scope)
                for k, body in value.items()
            }
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

    # 3. The pools (`pool:` or `pools:`).
    book = SecretBook()  # the secrets the spec names, looked up once each
    pools = declared_pools(r, rendered, refs, book, data, top_scope)

    # 4. Jobs and their tasks.
    job_specs: list[JobSpec] = []
    tasks: list[TaskSpec] = []
    schedules: list[ScheduleSpec] = []
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
        pool = job_pool(r, job, path, pools)
        if pool is None:
            continue
        try:
            job_tasks = JobTasks(
                r, refs, index, str(job["id"]), path, pool.task_slots_per_node, secrets=book
            )
        except Failure as f:
            r.problem(f.path, f.message)
            break
        if job.get("onExit"):
            if not job.get("tasks"):
                r.problem(
                    (*path, "onExit"),
                    f"job {job['id']!r} has exit rules but no tasks: exit rules say what a "
                    "task's end means; add tasks or remove onExit",
                )
            else:
                try:
                    job_tasks.default_exit = exit_rules(job["onExit"], (*path, "onExit"))
                except Failure as f:
                    r.problem(f.path, f.message)
        job_scope = r.scope(
            vars=variables, stack=stack, pool=PoolName(pool), job=job["id"], **run_scope(job)
        )
        for t, template in enumerate(job.get("tasks") or []):
            job_tasks.expand(template, (*path, "tasks", t), job_scope)
        built = job_tasks.finish()
        if is_scheduled(job):  # a job schedule; its runs get `built` from the job manager
            deps = any(t.depends_on or t.depends_on_ranges for t in built)
            spec = _job(r, job, path, pool.id, refs, uses_deps=deps, built=built)
            schedules.append(scheduled_job(r, job, path, pool, built, spec))
            continue
        tasks.extend(built)
        job_specs.append(
            _job(
                r,
                job,
                path,
                pool.id,
                refs,
                uses_deps=any(t.depends_on or t.depends_on_ranges for t in built),
                built=built,
            )
        )
    r.check()
    # A pool that only shapes the pools of scheduled runs that each get their own
    # (`poolPerRun`) is not a standing pool.
    kept_pools = [
        p for p in pools
        if any(j.pool_id == p.id for j in job_specs)
        or any(s.pool_id == p.id and not s.auto_pool for s in schedules)
        or not any(s.pool_id == p.id for s in schedules)
    ]
    return DesiredState(
        stack=stack,
        spec_file=doc.file,
        spec_hash=doc.sha256,
        vars=variables,
        target=rendered.get("target"),
        containers=tuple(declared_containers),
        blobs=tuple(blobs),
        pool=kept_pools[0] if len(kept_pools) == 1 else None,
        jobs=tuple(job_specs),
        tasks=tuple(tasks),
        pools=tuple(kept_pools),
        secrets=book.entries(),
        more={Kind("schedule"): tuple(schedules)} if schedules else {},
    )


def _job(
    r: Renderer,
    job: Mapping[str, Any],
    path: PathKey,
    pool_id: str,
    refs: References,
    *,
    uses_deps: bool,
    built: list[TaskSpec] | None = None,
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
        **job_options(r, job, path, refs, built or ()),
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
