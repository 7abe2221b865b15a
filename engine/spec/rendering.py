"""Expand a validated spec into the desired state: sandboxed Jinja, then what only rendering shows.

Strings outside `jobs[*].tasks` see `vars` and `stack`; task strings also see `item`, `index`,
`pool` and `job`. Each task template's strings are compiled once and rendered per item (no
per-item compile, no deep copies), which keeps rendering linear in the number of tasks.
After rendering, the result is checked again: the schema for the non-task parts, and for tasks
the ids (valid, unique in a job ignoring case), the dependencies (existing, acyclic, within
Batch's limits) and the containers and blobs they name. Every problem names the spec's file,
line and JSON path of the string that produced it.
"""

from __future__ import annotations

import fnmatch
import gc
import glob
import hashlib
import itertools
import os
import re
import shlex
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

from bspec.common import durations
from bspec.errors import Problem, SpecError
from bspec.model import (
    BlobSpec,
    ContainerSpec,
    DesiredState,
    ImageSpec,
    JobConstraintsSpec,
    JobOutputSpec,
    JobSpec,
    OutputFileSpec,
    PoolSpec,
    ResourceFileSpec,
    StartTaskSpec,
    TaskConstraintsSpec,
    TaskSpec,
    UploadCondition,
    WhenIdle,
)
from bspec.spec.fingerprint import BlobIndex, task_fingerprint
from bspec.spec.loading import Document, PathKey, json_path, parse_scalar
from bspec.spec.validation import validate
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, Template, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
FILE_MODE = re.compile(r"^0?[0-7]{3}$")
MAX_DEPENDS_CHARS = 64_000  # Batch's limit on the depended-on ids of one task
MAX_PROBLEMS = 50
_INT_KEYS = frozenset(
    {"nodes", "lowPriorityNodes", "taskSlotsPerNode", "maxTaskRetryCount", "priority",
     "requiredSlots"}
)
_BOOL_KEYS = frozenset({"elevated", "waitForSuccess"})
_GLOB_CHARS = frozenset("*?[")


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


# --------------------------------------------------------------------------- Jinja environment


def batchid(value: Any) -> str:
    """Any value -> a valid Batch id: other characters become `-`; long ones keep a hash suffix."""
    text = str(value)
    out = re.sub(r"[^A-Za-z0-9_-]", "-", text)
    if not out:
        return "id-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    if len(out) > 64:
        out = out[:55] + "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return out


def shquote(value: Any) -> str:
    """Quote one value for a POSIX shell."""
    return shlex.quote(str(value))


def builtin_templates() -> str:
    """The folder of the templates that ship in the package."""
    return str(resources.files("bspec.templates"))


MAX_RESULT = 1_000_000  # characters/items a single `*` or `**` in a template may produce


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, plus a cap on `*` and `**` so a typo can't exhaust memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(right) > 1000:
                raise OverflowError(f"{left} ** {right} is too large for a spec")
            return left**right
        if isinstance(left, int) and hasattr(right, "__len__"):
            left, right = right, left
        if hasattr(left, "__len__") and isinstance(right, int) and len(left) * right > MAX_RESULT:
            raise OverflowError(f"repeating a value {right} times is too large for a spec")
        return left * right


def make_environment(spec_dir: Path | str | None = None) -> ImmutableSandboxedEnvironment:
    """The sandbox every spec string renders in: strict about undefined names, no autoescape.

    Templates are looked up in `templates/` beside the spec first, then the built-in ones.
    """
    loaders = []
    if spec_dir is not None:
        loaders.append(FileSystemLoader(str(Path(spec_dir) / "templates")))
    loaders.append(FileSystemLoader(builtin_templates()))
    env = _Sandbox(
        loader=ChoiceLoader(loaders),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["batchid"] = batchid
    env.filters["shquote"] = shquote
    return env


class _Failure(Exception):
    """A rendering problem at a path, raised inside the per-item loop and recorded once."""

    def __init__(self, path: PathKey, message: str, *, key: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.key = key


class _Tpl:
    """A compiled template string and where it came from.

    Rendering reuses one Jinja Context per template, reset before each item: the scope
    already holds the environment's globals, so this skips Jinja's per-render context set-up
    (a ChainMap walk of the globals), the larger part of a short string's cost.
    """

    __slots__ = ("context", "path", "source", "template")

    def __init__(self, template: Template, path: PathKey, source: str) -> None:
        self.template = template
        self.path = path
        self.source = source
        self.context = Context(template.environment, {}, template.name, template.blocks, None)

    def render(self, scope: dict[str, Any]) -> str:
        t = self.template
        context = self.context
        context.parent = scope
        if context.vars:
            context.vars.clear()
            context.exported_vars.clear()
        context.eval_ctx.volatile = False
        try:
            return "".join(t.root_render_func(context))
        except Exception as exc:  # any error inside a user's template is bad input
            raise _Failure(self.path, f"template error in {self.source!r}: {_describe(exc)}") from exc


class _Map:
    __slots__ = ("items",)

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items


class _Seq:
    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("'dict object'", "mapping")


def _evaluate(node: Any, scope: dict[str, Any]) -> Any:
    """A compiled tree's value for one item; template-free subtrees are shared, not copied."""
    kind = type(node)
    if kind is _Tpl:
        return node.render(scope)
    if kind is _Map:
        return {k: _evaluate(v, scope) for k, v in node.items.items()}
    if kind is _Seq:
        return [_evaluate(v, scope) for v in node.items]
    return node


# --------------------------------------------------------------------------- the renderer


class _Renderer:
    def __init__(self, doc: Document, variables: Mapping[str, Any]) -> None:
        self.doc = doc
        self.env = make_environment(doc.directory)
        self.vars = variables
        self.problems: list[Problem] = []
        self._seen: set[tuple[str | None, str]] = set()
        self.globals = dict(self.env.globals)
        self.constants: dict[int, Any] = {}  # template-free dicts of the spec, by id

    # ---- problems

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> None:
        p = self.doc.problem(path, message, key=key)
        if (p.path, p.message) in self._seen or len(self.problems) >= MAX_PROBLEMS:
            return
        self._seen.add((p.path, p.message))
        self.problems.append(p)

    def check(self) -> None:
        if self.problems:
            raise SpecError(sorted(self.problems, key=lambda p: (p.line or 0, p.column or 0)))

    # ---- compiling and rendering strings

    def compile(self, node: Any, path: PathKey) -> Any:
        """Turn a spec subtree into a tree of compiled templates (each string compiled once)."""
        if isinstance(node, str):
            if not is_template(node):
                return node
            try:
                return _Tpl(self.env.from_string(node), path, node)
            except TemplateError as exc:
                raise _Failure(path, f"template syntax error in {node!r}: {_describe(exc)}") from exc
        if isinstance(node, dict):
            items = {k: self.compile(v, (*path, k)) for k, v in node.items()}
            if any(type(v) in (_Tpl, _Map, _Seq) for v in items.values()):
                return _Map(items)
            self.constants[id(node)] = node
            return node
        if isinstance(node, list):
            seq = [self.compile(v, (*path, i)) for i, v in enumerate(node)]
            if any(type(v) in (_Tpl, _Map, _Seq) for v in seq):
                return _Seq(seq)
            return node
        return node

    def scope(self, **names: Any) -> dict[str, Any]:
        scope = dict(self.globals)
        scope.update(names)
        return scope

    def render_tree(self, node: Any, path: PathKey, scope: dict[str, Any], key: str = "") -> Any:
        """Render every template string in a (non-task) subtree, typing numbers and flags."""
        if isinstance(node, str):
            if not is_template(node):
                return node
            try:
                text = _Tpl(self.env.from_string(node), path, node).render(scope)
            except TemplateError as exc:
                self.problem(path, f"template syntax error in {node!r}: {_describe(exc)}")
                return node
            except _Failure as failure:
                self.problem(failure.path, failure.message)
                return node
            return _typed(text, key)
        if isinstance(node, dict):
            return {k: self.render_tree(v, (*path, k), scope, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self.render_tree(v, (*path, i), scope, key) for i, v in enumerate(node)]
        return node


def _typed(text: str, key: str) -> Any:
    """A rendered string where the schema wants a number or flag becomes one (YAML 1.2 typing)."""
    if key in _INT_KEYS or key == "range":
        value = parse_scalar(text.strip())
        return value if isinstance(value, int) and not isinstance(value, bool) else text
    if key in _BOOL_KEYS:
        value = parse_scalar(text.strip())
        return value if isinstance(value, bool) else text
    return text


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration (weeks, days, hours, minutes, seconds) -> timedelta."""
    return durations.parse(text)


# --------------------------------------------------------------------------- the pipeline


def render(doc: Document, var_overrides: Mapping[str, Any] | None = None) -> DesiredState:
    """The desired state of a schema-valid document; SpecError with every problem otherwise.

    The cyclic garbage collector is paused meanwhile: rendering allocates many small acyclic
    objects, and collections triggered by them made the cost per task grow with the count.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _render(doc, var_overrides)
    finally:
        if enabled:
            gc.enable()


def _render(doc: Document, var_overrides: Mapping[str, Any] | None) -> DesiredState:
    data: dict[str, Any] = doc.data
    variables: dict[str, Any] = dict(data.get("vars") or {})
    variables.update(var_overrides or {})
    r = _Renderer(doc, variables)
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
        else:
            rendered[key] = r.render_tree(value, (key,), top_scope, key)
    r.check()
    again = validate(doc, rendered, rendered=True)
    if again:
        raise SpecError(again)

    # 2. Containers and the files they upload.
    containers, blobs = _containers(r, rendered, stack)
    r.check()
    declared = {c.key for c in containers}
    files_of: dict[str, list[BlobSpec]] = {}
    for b in blobs:
        files_of.setdefault(b.container, []).append(b)
    index = BlobIndex((b.container, b.name, b.md5) for b in blobs)
    refs = _References(r, declared, files_of)

    # 3. The pool.
    pool = _pool(r, rendered.get("pool"), refs)
    pool_id = pool.id if pool else None

    # 4. Jobs and their tasks.
    job_specs: list[JobSpec] = []
    tasks: list[TaskSpec] = []
    job_ids: dict[str, str] = {}
    for j, job in enumerate(rendered.get("jobs") or []):
        path: PathKey = ("jobs", j)
        lower = str(job["id"]).lower()
        if lower in job_ids:
            r.problem((*path, "id"), f"job id {job['id']!r} is used twice (ids ignore case; "
                      f"first as {job_ids[lower]!r})")
            continue
        job_ids[lower] = str(job["id"])
        if pool is None:
            r.problem(path, "jobs need a pool: add `pool:` to the spec")
            continue
        try:
            job_tasks = _JobTasks(r, refs, index, str(job["id"]), path, pool.task_slots_per_node)
        except _Failure as f:
            r.problem(f.path, f.message)
            break
        job_scope = r.scope(vars=variables, stack=stack, pool=pool_id, job=job["id"])
        for t, template in enumerate(job.get("tasks") or []):
            job_tasks.expand(template, (*path, "tasks", t), job_scope)
        built = job_tasks.finish()
        tasks.extend(built)
        job_specs.append(_job(r, job, path, pool.id, refs,
                              uses_deps=any(t.depends_on or t.depends_on_ranges for t in built)))
    r.check()
    return DesiredState(
        stack=stack,
        spec_file=doc.file,
        spec_hash=doc.sha256,
        vars=variables,
        target=rendered.get("target"),
        containers=tuple(containers),
        blobs=tuple(blobs),
        pool=pool,
        jobs=tuple(job_specs),
        tasks=tuple(tasks),
    )


def _containers(
    r: _Renderer, rendered: Mapping[str, Any], stack: str
) -> tuple[list[ContainerSpec], list[BlobSpec]]:
    containers: list[ContainerSpec] = []
    blobs: list[BlobSpec] = []
    declared = ((rendered.get("storage") or {}).get("containers") or {})
    for key, body in declared.items():
        body = body or {}
        path: PathKey = ("storage", "containers", key)
        name = body.get("name") or f"{stack.lower()}-{key}"
        if not CONTAINER_NAME.match(name):
            if body.get("name"):
                r.problem((*path, "name"), f"{name!r} is not a valid container name "
                          "(3 to 63 lowercase letters, digits and single hyphens)")
            else:
                r.problem(path, f"the container's real name {name!r} is not valid "
                          "(3 to 63 lowercase letters, digits and single hyphens); give `name:`",
                          key=True)
        if key == "_bspec" or name == f"{stack.lower()}-bspec":
            r.problem(path, f"container name {name!r} is reserved for bspec's logs", key=True)
        containers.append(ContainerSpec(key=key, name=name))
        blobs.extend(_files(r, key, body.get("files") or [], path))
    names: dict[str, str] = {}
    for c in containers:
        if c.name in names:
            r.problem(("storage", "containers", c.key),
                      f"container {c.key!r} has the same real name {c.name!r} as {names[c.name]!r}",
                      key=True)
        names[c.name] = c.key
    return containers, blobs


def _files(r: _Renderer, key: str, patterns: Sequence[str], path: PathKey) -> list[BlobSpec]:
    """The files a container uploads; blob names relative to each glob's non-wildcard part."""
    base_dir = r.doc.directory
    found: dict[str, BlobSpec] = {}
    for i, pattern in enumerate(patterns):
        ppath: PathKey = (*path, "files", i)
        parts = PurePosixPath(pattern).parts
        fixed: list[str] = []
        for part in parts:
            if _GLOB_CHARS & set(part):
                break
            fixed.append(part)
        has_glob = len(fixed) < len(parts)
        full = os.path.join(base_dir, pattern)
        if has_glob:
            base = os.path.join(base_dir, *fixed) if fixed else str(base_dir)
            matches = sorted(m for m in glob.glob(full, recursive=True) if os.path.isfile(m))
            if not matches:
                r.problem(ppath, f"{pattern!r} matches no file (relative to {base_dir})")
                continue
        else:
            if os.path.isdir(full):
                r.problem(ppath, f"{pattern!r} is a folder; use {pattern.rstrip('/')}/** to upload "
                          "what is in it")
                continue
            if not os.path.isfile(full):
                r.problem(ppath, f"{pattern!r}: no such file (relative to {base_dir})")
                continue
            base = os.path.dirname(full)
            matches = [full]
        for m in matches:
            name = Path(os.path.relpath(m, base)).as_posix()
            absolute = os.path.abspath(m)
            if name in found:
                if found[name].path != absolute:
                    r.problem(ppath, f"two files would be blob {key}/{name}: "
                              f"{found[name].path} and {absolute}")
                continue
            try:
                size, md5 = _md5(absolute)
            except OSError as exc:
                r.problem(ppath, f"cannot read {absolute}: {exc.strerror}")
                continue
            found[name] = BlobSpec(container=key, name=name, path=absolute, size=size, md5=md5)
    return [found[n] for n in sorted(found)]


def _md5(path: str) -> tuple[int, str]:
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class _References:
    """Checks that resource and output files name declared containers and files."""

    def __init__(self, r: _Renderer, declared: set[str], files_of: Mapping[str, list[BlobSpec]]):
        self.r = r
        self.declared = declared
        self.files_of = files_of
        self.names = {k: {b.name for b in v} for k, v in files_of.items()}

    def _unknown(self, key: str) -> str:
        known = ", ".join(sorted(self.declared)) or "none declared"
        return f"unknown container {key!r} (declared: {known})"

    def resource_file(self, rf: Mapping[str, Any], path: PathKey) -> ResourceFileSpec:
        mode = rf.get("fileMode")
        if mode is not None and not FILE_MODE.match(str(mode)):
            raise _Failure((*path, "fileMode"), f"file mode {mode!r} is not octal like 0755")
        if "blob" in rf:
            ref = str(rf["blob"])
            key, _, name = ref.partition("/")
            if not name:
                raise _Failure((*path, "blob"), f"blob {ref!r} must be `<container key>/<blob name>`")
            if key not in self.declared:
                raise _Failure((*path, "blob"), self._unknown(key))
            names = self.names.get(key)
            if names and name not in names:
                raise _Failure((*path, "blob"), f"{name!r} is not one of container {key!r}'s files")
            return ResourceFileSpec(container=key, blob=name, file_path=rf.get("filePath"),
                                    file_mode=mode)
        key = str(rf["container"])
        if key not in self.declared:
            raise _Failure((*path, "container"), self._unknown(key))
        return ResourceFileSpec(container=key, prefix=rf.get("prefix"),
                                file_path=rf.get("filePath"), file_mode=mode)

    def output_file(self, of: Mapping[str, Any], path: PathKey) -> OutputFileSpec:
        key = str(of["container"])
        if key not in self.declared:
            raise _Failure((*path, "container"), self._unknown(key))
        when = of.get("when", "success")
        try:
            condition = UploadCondition(when)
        except ValueError:
            raise _Failure((*path, "when"), f"{when!r} is not one of: success, failure, "
                           "completion") from None
        return OutputFileSpec(pattern=str(of["pattern"]), container=key, path=of.get("path"),
                              when=condition)

    def container(self, key: str, path: PathKey) -> None:
        if key not in self.declared:
            self.r.problem(path, self._unknown(key))


def _command_line(r: _Renderer, body: Mapping[str, Any], path: PathKey, wrapper: _Tpl) -> str:
    """`commands` through commandline.j2 (a spec's own first), or `commandLine` as given."""
    commands = body.get("commands")
    if commands is None:
        return str(body["commandLine"])
    scope = dict(r.globals)
    scope["commands"] = commands
    try:
        return wrapper.render(scope)
    except _Failure as failure:
        raise _Failure((*path, "commands"), f"commandline.j2 failed: {failure.message}") from None


def _wrapper(r: _Renderer) -> _Tpl:
    try:
        template = r.env.get_template("commandline.j2")
    except TemplateError as exc:
        raise _Failure((), f"templates/commandline.j2: {_describe(exc)}") from exc
    return _Tpl(template, (), "commandline.j2")


def _pool(r: _Renderer, body: Mapping[str, Any] | None, refs: _References) -> PoolSpec | None:
    if not body:
        return None
    start: StartTaskSpec | None = None
    st = body.get("startTask")
    if st:
        path: PathKey = ("pool", "startTask")
        files: list[ResourceFileSpec] = []
        try:
            command_line = _command_line(r, st, path, _wrapper(r))
            for i, rf in enumerate(st.get("resourceFiles") or []):
                files.append(refs.resource_file(rf, (*path, "resourceFiles", i)))
        except _Failure as f:
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
        image=ImageSpec(publisher=image["publisher"], offer=image["offer"], sku=image["sku"],
                        node_agent_sku=image["nodeAgentSku"], version=image.get("version", "latest")),
        target_dedicated_nodes=int(body.get("nodes", 0)),
        target_low_priority_nodes=int(body.get("lowPriorityNodes", 0)),
        task_slots_per_node=int(body.get("taskSlotsPerNode", 1)),
        start_task=start,
        metadata=tuple((body.get("metadata") or {}).items()),
        when_idle=WhenIdle(body.get("whenIdle", "keep")),
    )


def _job(r: _Renderer, job: Mapping[str, Any], path: PathKey, pool_id: str, refs: _References,
         *, uses_deps: bool) -> JobSpec:
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


class _Pending:
    """A rendered task before its dependencies are resolved and its fingerprint computed."""

    __slots__ = ("deps", "fields", "id", "origin", "ranges", "raw_deps")

    def __init__(self, task_id: str, fields: dict[str, Any], raw_deps: list[tuple[PathKey, Any]],
                 origin: str) -> None:
        self.id = task_id
        self.fields = fields
        self.raw_deps = raw_deps
        self.origin = origin
        self.deps: tuple[str, ...] = ()
        self.ranges: tuple[tuple[int, int], ...] = ()


class _JobTasks:
    """Expands a job's task templates, then resolves dependencies and fingerprints."""

    def __init__(self, r: _Renderer, refs: _References, index: BlobIndex, job_id: str,
                 path: PathKey, slots: int) -> None:
        self.r = r
        self.slots = slots  # the pool's taskSlotsPerNode: the most a task may require
        self.refs = refs
        self.index = index
        self.job_id = job_id
        self.path = path
        self.pending: list[_Pending] = []
        self.by_lower: dict[str, _Pending] = {}
        self.wrapper = _wrapper(r)
        self._memo: dict[int, Any] = {}
        self._constraints: dict[tuple[Any, ...], TaskConstraintsSpec] = {}

    # ---- expansion

    def _items(self, foreach: Mapping[str, Any] | None, path: PathKey) -> Iterable[Any] | None:
        if foreach is None:
            return None
        if "files" in foreach:
            key = foreach["files"]
            if key not in self.refs.declared:
                raise _Failure((*path, "foreach", "files"), self.refs._unknown(key))
            blobs = self.refs.files_of.get(key)
            if not blobs:
                raise _Failure((*path, "foreach", "files"), f"container {key!r} declares no files")
            return [
                {"name": b.name, "stem": _stem(b.name), "path": b.path, "size": b.size,
                 "md5": b.md5}
                for b in blobs
            ]
        if "range" in foreach:
            args = foreach["range"]
            if any(not isinstance(a, int) or isinstance(a, bool) for a in args):
                raise _Failure((*path, "foreach", "range"), f"range needs integers, got {args!r}")
            if len(args) == 3 and args[2] == 0:
                raise _Failure((*path, "foreach", "range", 2), "range step must not be 0")
            return range(*args)
        if "list" in foreach:
            return list(foreach["list"])
        matrix: Mapping[str, Any] = foreach["matrix"]
        keys = list(matrix)
        axes = []
        for k in keys:
            values = matrix[k]
            if isinstance(values, dict):
                args = values["range"]
                if len(args) == 3 and args[2] == 0:
                    raise _Failure((*path, "foreach", "matrix", k, "range", 2),
                                   "range step must not be 0")
                values = range(*args)
            axes.append(values)
        return (dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes))

    def expand(self, template: Mapping[str, Any], path: PathKey, job_scope: dict[str, Any]) -> None:
        r = self.r
        try:
            foreach = template.get("foreach")
            if foreach is not None:
                foreach = self._native_lists(foreach, (*path, "foreach"), job_scope)
                foreach = r.render_tree(foreach, (*path, "foreach"), job_scope, "foreach")
                if "range" in foreach:
                    foreach = {"range": [_typed(a, "range") if isinstance(a, str) else a
                                         for a in foreach["range"]]}
            items = self._items(foreach, path)
            body = {k: v for k, v in template.items() if k != "foreach"}
            compiled = r.compile(body, path)
        except _Failure as f:
            r.problem(f.path, f.message, key=f.key)
            return
        if items is None:
            scope = dict(job_scope)
            scope["index"] = 0
            self._one(compiled, path, scope, "")
            return
        for i, item in enumerate(items):
            scope = dict(job_scope)
            scope["item"] = item
            scope["index"] = i
            if not self._one(compiled, path, scope, f" (foreach item {i}: {_short(item)})"):
                return  # one problem per template is enough; the rest are likely the same

    def _native_lists(self, foreach: Mapping[str, Any], path: PathKey,
                      scope: dict[str, Any]) -> dict[str, Any]:
        """`list: "{{ vars.xs }}"` and matrix values like it: evaluate to the list itself."""
        out = dict(foreach)
        if isinstance(foreach.get("list"), str):
            out["list"] = self._native(foreach["list"], (*path, "list"), scope)
        matrix = foreach.get("matrix")
        if isinstance(matrix, dict) and any(isinstance(v, str) for v in matrix.values()):
            out["matrix"] = {k: self._native(v, (*path, "matrix", k), scope)
                             if isinstance(v, str) else v for k, v in matrix.items()}
        return out

    def _native(self, source: str, path: PathKey, scope: dict[str, Any]) -> list[Any]:
        m = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", source, re.DOTALL)
        if not m:
            raise _Failure(path, f"{source!r} must be one {{{{ expression }}}} giving a list")
        try:
            value = self.r.env.compile_expression(m.group(1))(**scope)
        except Exception as exc:
            raise _Failure(path, f"template error in {source!r}: {_describe(exc)}") from exc
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise _Failure(path, f"{source!r} gave {value!r}, not a list")
        items = list(value)
        if "matrix" in path and not items:
            raise _Failure(path, f"{source!r} gave an empty list")
        return items

    def _one(self, compiled: Any, path: PathKey, scope: dict[str, Any], origin: str) -> bool:
        try:
            body = _evaluate(compiled, scope)
            pending = self._build(body, path, origin)
        except _Failure as f:
            self.r.problem(f.path, f.message + origin, key=f.key)
            return False
        lower = pending.id.lower()
        if lower in self.by_lower:
            other = self.by_lower[lower]
            first = f"; first{other.origin}" if other.origin else ""
            self.r.problem((*path, "id"), f"task id {pending.id!r} is used twice in job "
                           f"{self.job_id!r}, ids ignore case{origin}{first}")
            return False
        self.by_lower[lower] = pending
        self.pending.append(pending)
        return True

    def _build(self, t: Mapping[str, Any], path: PathKey, origin: str) -> _Pending:
        task_id = t["id"]
        if not isinstance(task_id, str) or not BATCH_ID.match(task_id):
            raise _Failure((*path, "id"), f"task id {task_id!r} is not a valid Batch id "
                           "(1 to 64 letters, digits, hyphens and underscores; the batchid "
                           "filter makes one)")
        refs = self.refs
        resource_files = tuple(self._shared(rf, (*path, "resourceFiles", i), refs.resource_file)
                               for i, rf in enumerate(t.get("resourceFiles") or ()))
        output_files = tuple(self._shared(of, (*path, "outputFiles", i), refs.output_file)
                             for i, of in enumerate(t.get("outputFiles") or ()))
        c = t.get("constraints") or {}
        cpath = (*path, "constraints") if c else path
        key = (c.get("maxWallClockTime"), c.get("retentionTime"),
               c.get("maxTaskRetryCount", t.get("maxTaskRetryCount", 0)))
        constraints = self._constraints.get(key)
        if constraints is None:
            constraints = TaskConstraintsSpec(
                max_wall_clock_time=_duration(key[0], cpath, "maxWallClockTime"),
                retention_time=_duration(key[1], cpath, "retentionTime"),
                max_task_retry_count=_int(key[2], cpath, "maxTaskRetryCount", -1, 100),
            )
            self._constraints[key] = constraints
        env = t.get("environment")
        slots = _int(t.get("requiredSlots", 1), path, "requiredSlots", 1, 10_000)
        if slots > self.slots:
            raise _Failure((*path, "requiredSlots"), f"requiredSlots {slots} is more than the "
                           f"pool's taskSlotsPerNode ({self.slots})")
        fields: dict[str, Any] = {
            "command_line": _command_line(self.r, t, path, self.wrapper),
            "resource_files": resource_files,
            "output_files": output_files,
            "environment": tuple((k, str(v)) for k, v in env.items()) if env else (),
            "constraints": constraints,
            "display_name": t.get("displayName"),
            "elevated": _bool(t.get("elevated", False), path, "elevated"),
            "required_slots": slots,
        }
        raw = [((*path, "dependsOn", i), d) for i, d in enumerate(t.get("dependsOn") or ())]
        return _Pending(task_id, fields, raw, origin)

    def _shared(self, node: Mapping[str, Any], path: PathKey,
                build: Callable[[Mapping[str, Any], PathKey], Any]) -> Any:
        """Build a spec object once per template-free subtree (the same object every item)."""
        key = id(node)
        if self.r.constants.get(key) is not node:
            return build(node, path)
        if key not in self._memo:
            self._memo[key] = build(node, path)
        return self._memo[key]

    # ---- dependencies and fingerprints

    def finish(self) -> list[TaskSpec]:
        numeric = sorted((int(p.id), p.id) for p in self.pending if p.id.isascii() and p.id.isdigit())
        numbers = [n for n, _ in numeric]
        for p in self.pending:
            if p.raw_deps:
                try:
                    self._resolve(p, numeric, numbers)
                except _Failure as f:
                    self.r.problem(f.path, f.message + p.origin)
        if self.r.problems:
            return []
        return self._fingerprints(numeric, numbers)

    def _resolve(self, p: _Pending, numeric: list[tuple[int, str]], numbers: list[int]) -> None:
        ids: dict[str, None] = {}
        ranges: list[tuple[int, int]] = []
        me = p.id.lower()
        for dpath, dep in p.raw_deps:
            if isinstance(dep, dict):
                start, end = dep["range"]
                if not isinstance(start, int) or not isinstance(end, int) or start > end:
                    raise _Failure(dpath, f"range {dep['range']!r} needs integers start <= end")
                lo, hi = bisect_left(numbers, start), bisect_right(numbers, end)
                present = len(set(numbers[lo:hi]))
                if present != end - start + 1:
                    raise _Failure(dpath, f"range [{start}, {end}] names {end - start + 1 - present} "
                                   f"task id(s) that job {self.job_id!r} does not have")
                if p.id.isascii() and p.id.isdigit() and start <= int(p.id) <= end:
                    raise _Failure(dpath, f"task {p.id!r} depends on itself")
                ranges.append((start, end))
                continue
            text = str(dep)
            if _GLOB_CHARS & set(text):
                rx = re.compile(fnmatch.translate(text.lower()))
                matched = [q.id for q in self.pending if q.id.lower() != me and rx.match(q.id.lower())]
                if not matched:
                    raise _Failure(dpath, f"{text!r} matches no other task of job {self.job_id!r}")
                ids.update(dict.fromkeys(matched))
                continue
            target = self.by_lower.get(text.lower())
            if target is None:
                raise _Failure(dpath, f"depends on {text!r}, which is not a task of job "
                               f"{self.job_id!r}" + _did_you_mean(text, self.by_lower))
            if target is p:
                raise _Failure(dpath, f"task {p.id!r} depends on itself")
            ids[target.id] = None
        chars = sum(len(i) for i in ids)
        if chars > MAX_DEPENDS_CHARS:
            if all(i.isascii() and i.isdigit() for i in ids):
                ranges.extend(_fold(sorted(int(i) for i in ids)))
                ids = {}
            else:
                raise _Failure(p.raw_deps[0][0], f"task {p.id!r} depends on {len(ids)} tasks "
                               f"({chars} characters of ids), over Batch's limit of "
                               f"{MAX_DEPENDS_CHARS}; numeric task ids fold into ranges")
        p.deps = tuple(ids)
        p.ranges = tuple(_merge(ranges))

    def _parents(self, p: _Pending, numeric: list[tuple[int, str]],
                 numbers: list[int]) -> list[_Pending]:
        out = [self.by_lower[i.lower()] for i in p.deps]
        for start, end in p.ranges:
            lo, hi = bisect_left(numbers, start), bisect_right(numbers, end)
            out.extend(self.by_lower[tid.lower()] for _, tid in numeric[lo:hi])
        return out

    def _fingerprints(self, numeric: list[tuple[int, str]], numbers: list[int]) -> list[TaskSpec]:
        done: dict[str, str] = {}  # lower id -> fingerprint
        visiting: set[str] = set()
        index = self.index
        for root in self.pending:
            if not root.deps and not root.ranges:
                f = root.fields
                done[root.id.lower()] = task_fingerprint(
                    command_line=f["command_line"], resource_files=f["resource_files"],
                    output_files=f["output_files"], environment=f["environment"],
                    depends_on=(), depends_on_ranges=(), parent_fingerprints={}, blobs=index)
                continue
            if root.id.lower() in done:
                continue
            stack: list[tuple[_Pending, list[_Pending] | None]] = [(root, None)]
            while stack:
                node, parents = stack.pop()
                key = node.id.lower()
                if key in done:
                    continue
                if parents is None:
                    parents = self._parents(node, numeric, numbers)
                    visiting.add(key)
                    stack.append((node, parents))
                    for q in parents:
                        qk = q.id.lower()
                        if qk in visiting:
                            path = q.raw_deps[0][0] if q.raw_deps else ()
                            self.r.problem(path, f"task dependencies form a cycle through "
                                           f"{q.id!r} and {node.id!r}" + q.origin)
                            return []
                        if qk not in done:
                            stack.append((q, None))
                    continue
                visiting.discard(key)
                f = node.fields
                done[key] = task_fingerprint(
                    command_line=f["command_line"],
                    resource_files=f["resource_files"],
                    output_files=f["output_files"],
                    environment=f["environment"],
                    depends_on=node.deps,
                    depends_on_ranges=node.ranges,
                    parent_fingerprints={q.id: done[q.id.lower()] for q in parents},
                    blobs=self.index,
                )
        return [
            TaskSpec(job_id=self.job_id, id=p.id, fingerprint=done[p.id.lower()],
                     depends_on=p.deps, depends_on_ranges=p.ranges, **p.fields)
            for p in self.pending
        ]


def _stem(name: str) -> str:
    """The blob name without its last suffix (`sub/a.txt` -> `sub/a`), unique per file."""
    pure = PurePosixPath(name)
    return str(pure.with_suffix("")) if pure.suffix else name


def _short(item: Any) -> str:
    if isinstance(item, dict) and "name" in item and "md5" in item:
        return repr(item["name"])
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."


def _did_you_mean(text: str, known: Mapping[str, Any]) -> str:
    import difflib

    close = difflib.get_close_matches(text.lower(), list(known), n=1)
    return f"; did you mean {known[close[0]].id!r}?" if close else ""


def _fold(numbers: list[int]) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and n <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], n))
        else:
            ranges.append((n, n))
    return ranges


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _duration(value: Any, path: PathKey, key: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(str(value).strip())
    except ValueError as exc:
        raise _Failure((*path, key), str(exc)) from None


def _int(value: Any, path: PathKey, key: str, lo: int, hi: int) -> int:
    if type(value) is int and lo <= value <= hi:
        return value
    if isinstance(value, str):
        value = _typed(value, "nodes")
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _Failure((*path, key), f"expected an integer from {lo} to {hi}, got {value!r}")
    return value


def _bool(value: Any, path: PathKey, key: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        value = _typed(value, "elevated")
    if not isinstance(value, bool):
        raise _Failure((*path, key), f"expected true or false, got {value!r}")
    return value


__all__ = ["batchid", "json_path", "make_environment", "parse_duration", "render", "shquote"]
