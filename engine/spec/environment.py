"""The sandbox every spec string renders in, and a compiled template that renders fast.

Kept apart from the renderer so the security-relevant part (the immutable sandbox, its cap on
`*` and `**`, StrictUndefined, the only two filters a spec gets) is small enough to review on
its own, and so the benchmark and tests can build the same environment without a spec.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from importlib import resources
from pathlib import Path
from typing import Any

from bspec.spec.loading import PathKey
from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, Template
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

MAX_RESULT = 1_000_000  # characters/items a single `*` or `**` in a template may produce


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


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


class Failure(Exception):
    """A rendering problem at a path, raised inside the per-item loop and recorded once."""

    def __init__(self, path: PathKey, message: str, *, key: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.key = key


def describe(exc: BaseException) -> str:
    """An exception from a user's template, worded for the spec's author."""
    text = str(exc) or type(exc).__name__
    return text.replace("'dict object'", "mapping")


class Tpl:
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
            raise Failure(self.path, f"template error in {self.source!r}: {describe(exc)}") from exc


__all__ = [
    "MAX_RESULT",
    "Failure",
    "Tpl",
    "batchid",
    "builtin_templates",
    "describe",
    "is_template",
    "make_environment",
    "shquote",
]
