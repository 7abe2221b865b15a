"""A job's task templates -> its tasks: foreach expansion, dependencies, fingerprints.

Each template's strings are compiled once and rendered per item (no per-item compile, no deep
copies), which keeps rendering linear in the number of tasks. Dependencies are resolved only
after every task of the job exists (a glob or range may name later tasks), then fingerprints
are computed parents first, which also finds cycles.
"""

from __future__ import annotations

import itertools
import json
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bspec.model import TaskConstraintsSpec, TaskSpec
from bspec.spec.containers import SecretBook, container_settings, fingerprint_part
from bspec.spec.dependencies import expand_dependencies
from bspec.spec.environment import Failure, describe
from bspec.spec.exits import exit_rules
from bspec.spec.files import stem
from bspec.spec.fingerprint import BlobIndex, task_fingerprint
from bspec.spec.limits import (
    MAX_ARG_BYTES,
    MAX_DISPLAY_NAME_CHARS,
    MAX_REQUEST_BYTES,
    SAS_URL_CHARS,
)
from bspec.spec.loading import PathKey
from bspec.spec.references import References
from bspec.spec.tree import Renderer, as_bool, as_duration, as_int, evaluate, typed

BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class Pending:
    """A rendered task before its dependencies are resolved and its fingerprint computed."""

    __slots__ = ("deps", "fields", "id", "origin", "ranges", "raw_deps")

    def __init__(
        self, task_id: str, fields: dict[str, Any], raw_deps: list[tuple[PathKey, Any]], origin: str
    ) -> None:
        self.id = task_id
        self.fields = fields
        self.raw_deps = raw_deps
        self.origin = origin
        self.deps: tuple[str, ...] = ()
        self.ranges: tuple[tuple[int, int], ...] = ()


class JobTasks:
    """Expands a job's task templates, then resolves dependencies and fingerprints."""

    def __init__(
        self,
        r: Renderer,
        refs: References,
        index: BlobIndex,
        job_id: str,
        path: PathKey,
        slots: int,
        *,
        secrets: SecretBook | None = None,
    ) -> None:
        self.r = r
        self.secrets = secrets if secrets is not None else SecretBook()
        self.slots = slots  # the pool's taskSlotsPerNode: the most a task may require
        self.refs = refs
        self.index = index
        self.job_id = job_id
        self.path = path
        self.pending: list[Pending] = []
        self.by_lower: dict[str, Pending] = {}
        self.wrapper = r.wrapper()
        self._memo: dict[int, Any] = {}
        self._constraints: dict[tuple[Any, ...], TaskConstraintsSpec] = {}
        self.default_exit: tuple[Any, ...] = ()  # the job's onExit, for tasks without one

    # ---- expansion

    def _items(self, foreach: Mapping[str, Any] | None, path: PathKey) -> Iterable[Any] | None:
        if foreach is None:
            return None
        if "files" in foreach:
            key = foreach["files"]
            if key not in self.refs.declared:
                raise Failure((*path, "foreach", "files"), self.refs.unknown(key))
            blobs = self.refs.files_of.get(key)
            if not blobs:
                raise Failure((*path, "foreach", "files"), f"container {key!r} declares no files")
            return [
                {"name": b.name, "stem": stem(b.name), "path": b.path, "size": b.size, "md5": b.md5}
                for b in blobs
            ]
        if "range" in foreach:
            args = foreach["range"]
            if any(not isinstance(a, int) or isinstance(a, bool) for a in args):
                raise Failure((*path, "foreach", "range"), f"range needs integers, got {args!r}")
            if len(args) == 3 and args[2] == 0:
                raise Failure((*path, "foreach", "range", 2), "range step must not be 0")
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
                    raise Failure(
                        (*path, "foreach", "matrix", k, "range", 2), "range step must not be 0"
                    )
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
                    foreach = {
                        "range": [
                            typed(a, "range") if isinstance(a, str) else a for a in foreach["range"]
                        ]
                    }
            items = self._items(foreach, path)
            body = {k: v for k, v in template.items() if k != "foreach"}
            compiled = r.compile(body, path)
        except Failure as f:
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

    def _native_lists(
        self, foreach: Mapping[str, Any], path: PathKey, scope: dict[str, Any]
    ) -> dict[str, Any]:
        """`list: "{{ vars.xs }}"` and matrix values like it: evaluate to the list itself."""
        out = dict(foreach)
        if isinstance(foreach.get("list"), str):
            out["list"] = self._native(foreach["list"], (*path, "list"), scope)
        matrix = foreach.get("matrix")
        if isinstance(matrix, dict) and any(isinstance(v, str) for v in matrix.values()):
            out["matrix"] = {
                k: self._native(v, (*path, "matrix", k), scope) if isinstance(v, str) else v
                for k, v in matrix.items()
            }
        return out

    def _native(self, source: str, path: PathKey, scope: dict[str, Any]) -> list[Any]:
        m = re.fullmatch(r"\s*\{\{(.*)\}\}\s*", source, re.DOTALL)
        if not m:
            raise Failure(path, f"{source!r} must be one {{{{ expression }}}} giving a list")
        try:
            value = self.r.env.compile_expression(m.group(1))(**scope)
        except Exception as exc:
            raise Failure(path, f"template error in {source!r}: {describe(exc)}") from exc
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise Failure(path, f"{source!r} gave {value!r}, not a list")
        items = list(value)
        if "matrix" in path and not items:
            raise Failure(path, f"{source!r} gave an empty list")
        return items

    def _one(self, compiled: Any, path: PathKey, scope: dict[str, Any], origin: str) -> bool:
        try:
            body = evaluate(compiled, scope)
            pending = self._build(body, path, origin)
        except Failure as f:
            self.r.problem(f.path, f.message + origin, key=f.key)
            return False
        lower = pending.id.lower()
        if lower in self.by_lower:
            other = self.by_lower[lower]
            first = f"; first{other.origin}" if other.origin else ""
            self.r.problem(
                (*path, "id"),
                f"task id {pending.id!r} is used twice in job "
                f"{self.job_id!r}, ids ignore case{origin}{first}",
            )
            return False
        self.by_lower[lower] = pending
        self.pending.append(pending)
        return True

    def _build(self, t: Mapping[str, Any], path: PathKey, origin: str) -> Pending:
        task_id = t["id"]
        if not isinstance(task_id, str) or not BATCH_ID.match(task_id):
            raise Failure(
                (*path, "id"),
                f"task id {task_id!r} is not a valid Batch id "
                "(1 to 64 letters, digits, hyphens and underscores; the batchid "
                "filter makes one)",
            )
        refs = self.refs
        resource_files = tuple(
            self._shared(rf, (*path, "resourceFiles", i), refs.resource_file)
            for i, rf in enumerate(t.get("resourceFiles") or ())
        )
        output_files = tuple(
            self._shared(of, (*path, "outputFiles", i), refs.output_file)
            for i, of in enumerate(t.get("outputFiles") or ())
        )
        c = t.get("constraints") or {}
        cpath = (*path, "constraints") if c else path
        key = (
            c.get("maxWallClockTime"),
            c.get("retentionTime"),
            c.get("maxTaskRetryCount", t.get("maxTaskRetryCount", 0)),
        )
        constraints = self._constraints.get(key)
        if constraints is None:
            constraints = TaskConstraintsSpec(
                max_wall_clock_time=as_duration(key[0], cpath, "maxWallClockTime"),
                retention_time=as_duration(key[1], cpath, "retentionTime"),
                max_task_retry_count=as_int(key[2], cpath, "maxTaskRetryCount", -1, 100),
            )
            self._constraints[key] = constraints
        env = t.get("environment")
        slots = as_int(t.get("requiredSlots", 1), path, "requiredSlots", 1, 10_000)
        if slots > self.slots:
            raise Failure(
                (*path, "requiredSlots"),
                f"requiredSlots {slots} is more than the pool's taskSlotsPerNode ({self.slots})",
            )
        command_line = self.r.command_line(t, path, self.wrapper)
        environment = tuple((k, str(v)) for k, v in env.items()) if env else ()
        display_name = t.get("displayName")
        files = len(resource_files) + len(output_files)
        if environment or display_name is not None or len(command_line) > 16_384 or files > 256:
            # otherwise well under every limit: the common case pays four tests, not a call
            check_batch_limits(t, path, command_line, environment, display_name, files)
        fields: dict[str, Any] = {
            "command_line": command_line,
            "resource_files": resource_files,
            "output_files": output_files,
            "environment": environment,
            "constraints": constraints,
            "display_name": display_name,
            "elevated": as_bool(t.get("elevated", False), path, "elevated"),
            "required_slots": slots,
        }
        container = t.get("container")
        if container is not None:
            fields["container"] = self._shared(container, (*path, "container"), container_settings)
        secret = t.get("secretEnvironment")
        if secret is not None:
            fields["secret_environment"] = self.secrets.names(
                secret, (*path, "secretEnvironment"), env
            )
        on_exit = t.get("onExit")
        if on_exit:
            fields["on_exit"] = exit_rules(on_exit, (*path, "onExit"))
        elif self.default_exit:
            fields["on_exit"] = self.default_exit
        raw = [((*path, "dependsOn", i), d) for i, d in enumerate(t.get("dependsOn") or ())]
        return Pending(task_id, fields, raw, origin)

    def _shared(
        self,
        node: Mapping[str, Any],
        path: PathKey,
        build: Callable[[Mapping[str, Any], PathKey], Any],
    ) -> Any:
        """Build a spec object once per template-free subtree (the same object every item)."""
        key = id(node)
        if self.r.constants.get(key) is not node:
            return build(node, path)
        if key not in self._memo:
            self._memo[key] = build(node, path)
        return self._memo[key]

    # ---- dependencies and fingerprints

    def _extra(self, f: Mapping[str, Any]) -> dict[str, Any]:
        """The fingerprint's optional parts (none for a task without them, so that its
        fingerprint stays what it was before containers and secrets existed)."""
        if "container" not in f and "secret_environment" not in f:
            return {}
        c = f.get("container")
        names = f.get("secret_environment") or ()
        return {
            "container": fingerprint_part(c) if c is not None else None,
            "secret_environment": self.secrets.of(names) if names else None,
        }

    def finish(self) -> list[TaskSpec]:
        numeric = sorted(
            (int(p.id), p.id) for p in self.pending if p.id.isascii() and p.id.isdigit()
        )
        numbers = [n for n, _ in numeric]
        if any(p.raw_deps for p in self.pending):
            ids = {lower: p.id for lower, p in self.by_lower.items()}  # only while expanding
            for p in self.pending:
                if p.raw_deps:
                    try:
                        p.deps, p.ranges = expand_dependencies(
                            p.id, p.raw_deps, ids, numbers, self.job_id
                        )
                    except Failure as f:
                        self.r.problem(f.path, f.message + p.origin)
            del ids
        if self.r.problems:
            return []
        return self._fingerprints(numeric, numbers)

    def _parents(
        self, p: Pending, numeric: list[tuple[int, str]], numbers: list[int]
    ) -> list[Pending]:
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
                    command_line=f["command_line"],
                    resource_files=f["resource_files"],
                    output_files=f["output_files"],
                    environment=f["environment"],
                    depends_on=(),
                    depends_on_ranges=(),
                    parent_fingerprints={},
                    blobs=index,
                    **self._extra(f),
                    on_exit=f.get("on_exit", ()),
                )
                continue
            if root.id.lower() in done:
                continue
            stack: list[tuple[Pending, list[Pending] | None]] = [(root, None)]
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
                            self.r.problem(
                                path,
                                f"task dependencies form a cycle through "
                                f"{q.id!r} and {node.id!r}" + q.origin,
                            )
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
                    **self._extra(f),
                    on_exit=f.get("on_exit", ()),
                )
        return [
            TaskSpec(
                job_id=self.job_id,
                id=p.id,
                fingerprint=done[p.id.lower()],
                depends_on=p.deps,
                depends_on_ranges=p.ranges,
                **p.fields,
            )
            for p in self.pending
        ]


def check_batch_limits(
    t: Mapping[str, Any],
    path: PathKey,
    command: str,
    env: tuple[tuple[str, str], ...],
    display: str | None = None,
    files: int = 0,
) -> None:
    """Batch's limits on one rendered task (or start task), each a `Failure` at its field.

    Cheap on the common path (a few lengths); the task's JSON is measured only when a rough
    size, every character counted six times (JSON's escapes at worst), could be over.
    """
    rough = len(command) + files * SAS_URL_CHARS
    if display is not None:
        rough += len(display)
        if len(display) > MAX_DISPLAY_NAME_CHARS:
            raise Failure(
                (*path, "displayName"),
                f"the display name is {len(display):,} characters, over Batch's limit of "
                f"{MAX_DISPLAY_NAME_CHARS:,}",
            )
    if len(command) > MAX_ARG_BYTES // 4 and len(command.encode()) > MAX_ARG_BYTES:
        raise Failure(
            (*path, "commands" if "commands" in t else "commandLine"),
            f"the command line is {len(command.encode()):,} bytes, over the limit of "
            f"{MAX_ARG_BYTES:,} (the longest argument a Linux node runs; `commands` are one "
            "argument of bash -c): move the data into a resource file",
        )
    for name, value in env:
        size = len(name) + 1 + len(value)
        rough += size + 40
        if size > MAX_ARG_BYTES // 4 and size + len(value.encode()) - len(value) > MAX_ARG_BYTES:
            raise Failure(
                (*path, "environment", name),
                f"environment variable {name} is {size:,} bytes with its name, over the limit "
                f"of {MAX_ARG_BYTES:,} (the longest NAME=value a Linux node accepts)",
            )
    if rough * 6 + 2_000 <= MAX_REQUEST_BYTES:
        return
    body = {
        "commandLine": command,
        "environmentSettings": [{"name": k, "value": v} for k, v in env],
        "displayName": display,
    }
    size = len(json.dumps(body)) + files * SAS_URL_CHARS + 2_000  # ids, URLs, constraints
    if size > MAX_REQUEST_BYTES:
        task_id = t.get("id")
        raise Failure(
            (*path, "id") if task_id is not None else path,
            f"{f'task {task_id!r}' if task_id is not None else 'the start task'} would be a request of about {size:,} bytes, over Batch's limit of "
            f"{MAX_REQUEST_BYTES:,} for adding tasks (its command line, environment and "
            f"{files} files): move data into resource files",
        )


def _short(item: Any) -> str:
    if isinstance(item, dict) and "name" in item and "md5" in item:
        return repr(item["name"])
    text = repr(item)
    return text if len(text) <= 60 else text[:57] + "..."
