"""Rendering a spec subtree: every string compiled once, typed where the schema wants a type.

The renderer collects problems (each at the file, line and JSON path of the string that made
it) instead of stopping at the first, so one run reports all of a spec's mistakes. Task
templates are compiled into a tree of `Tpl`, `Map` and `Seq` that `evaluate` renders per item,
sharing template-free subtrees instead of copying them: that keeps task expansion linear.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from bspec.common import durations
from bspec.errors import Problem, SpecError
from bspec.spec.environment import Failure, Tpl, describe, is_template, make_environment
from bspec.spec.loading import Document, PathKey, parse_scalar
from jinja2 import TemplateError

MAX_PROBLEMS = 50
_INT_KEYS = frozenset(
    {
        "nodes",
        "lowPriorityNodes",
        "taskSlotsPerNode",
        "maxTaskRetryCount",
        "priority",
        "requiredSlots",
        # pool.autoscale's preset parameters
        "min",
        "max",
        "hours",
    }
)
_BOOL_KEYS = frozenset({"elevated", "waitForSuccess"})
_NUMBER_KEYS = frozenset({"spot"})  # pool.autoscale.spot: a share, 0 to 1


class Map:
    """A mapping with at least one template inside, rendered per item."""

    __slots__ = ("items",)

    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items


class Seq:
    """A list with at least one template inside, rendered per item."""

    __slots__ = ("items",)

    def __init__(self, items: list[Any]) -> None:
        self.items = items


def evaluate(node: Any, scope: dict[str, Any]) -> Any:
    """A compiled tree's value for one item; template-free subtrees are shared, not copied."""
    kind = type(node)
    if kind is Tpl:
        return node.render(scope)
    if kind is Map:
        return {k: evaluate(v, scope) for k, v in node.items.items()}
    if kind is Seq:
        return [evaluate(v, scope) for v in node.items]
    return node


class Renderer:
    """One spec's environment, scope and problems, shared by every stage of rendering."""

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
                return Tpl(self.env.from_string(node), path, node)
            except TemplateError as exc:
                raise Failure(path, f"template syntax error in {node!r}: {describe(exc)}") from exc
        if isinstance(node, dict):
            items = {k: self.compile(v, (*path, k)) for k, v in node.items()}
            if any(type(v) in (Tpl, Map, Seq) for v in items.values()):
                return Map(items)
            self.constants[id(node)] = node
            return node
        if isinstance(node, list):
            seq = [self.compile(v, (*path, i)) for i, v in enumerate(node)]
            if any(type(v) in (Tpl, Map, Seq) for v in seq):
                return Seq(seq)
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
                text = Tpl(self.env.from_string(node), path, node).render(scope)
            except TemplateError as exc:
                self.problem(path, f"template syntax error in {node!r}: {describe(exc)}")
                return node
            except Failure as failure:
                self.problem(failure.path, failure.message)
                return node
            return typed(text, key)
        if isinstance(node, dict):
            return {k: self.render_tree(v, (*path, k), scope, k) for k, v in node.items()}
        if isinstance(node, list):
            return [self.render_tree(v, (*path, i), scope, key) for i, v in enumerate(node)]
        return node

    # ---- `commands` through commandline.j2

    def wrapper(self) -> Tpl:
        """commandline.j2, a spec's own (in templates/ beside it) before the built-in one."""
        try:
            template = self.env.get_template("commandline.j2")
        except TemplateError as exc:
            raise Failure((), f"templates/commandline.j2: {describe(exc)}") from exc
        return Tpl(template, (), "commandline.j2")

    def command_line(self, body: Mapping[str, Any], path: PathKey, wrapper: Tpl) -> str:
        """`commands` through the wrapper, or `commandLine` as given."""
        commands = body.get("commands")
        if commands is None:
            return str(body["commandLine"])
        scope = dict(self.globals)
        scope["commands"] = commands
        try:
            return wrapper.render(scope)
        except Failure as failure:
            raise Failure(
                (*path, "commands"), f"commandline.j2 failed: {failure.message}"
            ) from None


# --------------------------------------------------------------------------- typing values


def typed(text: str, key: str) -> Any:
    """A rendered string where the schema wants a number or flag becomes one (YAML 1.2 typing)."""
    if key in _INT_KEYS or key == "range":
        value = parse_scalar(text.strip())
        return value if isinstance(value, int) and not isinstance(value, bool) else text
    if key in _BOOL_KEYS:
        value = parse_scalar(text.strip())
        return value if isinstance(value, bool) else text
    if key in _NUMBER_KEYS:
        value = parse_scalar(text.strip())
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else text
    return text


def parse_duration(text: str) -> timedelta:
    """ISO 8601 duration (weeks, days, hours, minutes, seconds) -> timedelta."""
    return durations.parse(text)


def as_duration(value: Any, path: PathKey, key: str) -> timedelta | None:
    if value is None:
        return None
    try:
        return parse_duration(str(value).strip())
    except ValueError as exc:
        raise Failure((*path, key), str(exc)) from None


def as_int(value: Any, path: PathKey, key: str, lo: int, hi: int) -> int:
    if type(value) is int and lo <= value <= hi:
        return value
    if isinstance(value, str):
        value = typed(value, "nodes")
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise Failure((*path, key), f"expected an integer from {lo} to {hi}, got {value!r}")
    return value


def as_bool(value: Any, path: PathKey, key: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, str):
        value = typed(value, "elevated")
    if not isinstance(value, bool):
        raise Failure((*path, key), f"expected true or false, got {value!r}")
    return value
