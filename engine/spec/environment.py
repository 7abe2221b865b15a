"""The sandbox every spec string renders in, and a compiled template that renders fast.

Kept apart from the renderer so the security-relevant part (the immutable sandbox, its cap on
`*` and `**`, StrictUndefined, the only two filters a spec gets) is small enough to review on
its own, and so the benchmark and tests can build the same environment without a spec.
"""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any, cast

from bspec.spec.limits import (
    MACRO_STEPS,
    MAX_RESULT,
    MAX_TEMPLATE_DEPTH,
    MAX_TEMPLATE_STEPS,
    MAX_VALUE_CHARS,
)
from bspec.spec.loading import PathKey
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    nodes,
    pass_context,
)
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import do_format, do_indent, do_truncate, do_wordwrap, make_attrgetter
from jinja2.runtime import Context, LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import generate_lorem_ipsum


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


class TemplateLimit(Exception):
    """A template went over one of its limits (size, steps, depth): bad input, never retried."""


_STEP = "_bspec_step"  # the filter the code generator calls at each loop iteration
_OUT = "_bspec_out"  # the filter every output of a template with loops or macros goes through
COUNTED = "bspec_counted"  # set in the module of a template that can use the counters
_WIDTH = re.compile(r"%[-+ #0]*(?:\d{7,}|\*)|%[-+ #0]*\d*\.(?:\d{7,}|\*)|\{[^{}]*\d{7,}|\{[^{}]*\{")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs", "replace"})
_SIZED = (str, list, tuple)
_LOOPS = (nodes.For, nodes.Macro, nodes.CallBlock)
# what can reach a macro or loop of this template or another: these templates reset the counters
_COUNTS = (*_LOOPS, nodes.Call, nodes.Import, nodes.FromImport, nodes.Include, nodes.Extends)


def _too_big(what: str) -> TemplateLimit:
    return TemplateLimit(f"{what} is over the limit of {MAX_VALUE_CHARS:,} characters per template")


def _sized(value: Any) -> Any:
    """A value a template produced, refused when it is longer than one template may produce."""
    if isinstance(value, str | list | tuple) and len(value) > MAX_VALUE_CHARS:
        raise _too_big(f"a value of {len(value):,} characters or items")
    return value


def _check_format(fmt: Any, args: Any) -> None:
    """Refuse a format string whose widths could build a huge value before it is measured."""
    if not isinstance(fmt, str) or not _WIDTH.search(fmt):
        return
    values = args.values() if isinstance(args, dict) else args if isinstance(args, tuple) else ()
    for v in values:
        if isinstance(v, int) and abs(v) > MAX_VALUE_CHARS:
            raise _too_big(f"a format width of {v:,}")
    for m in re.finditer(r"\d{7,}", fmt):
        if int(m.group()) > MAX_VALUE_CHARS:
            raise _too_big(f"a format width of {int(m.group()):,}")


def _width(value: Any) -> int:
    if isinstance(value, int) and value > MAX_VALUE_CHARS:
        raise _too_big(f"a width of {value:,}")
    return int(value)


class _Generator(CodeGenerator):
    """Jinja's code generator, with a step counted at every loop iteration and, in templates
    with loops or macros, every output measured: the two ways a short template does a lot."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        counted = any(True for _ in node.find_all(_COUNTS))
        if any(True for _ in node.find_all(_LOOPS)):
            for loop in node.find_all(nodes.For):
                step = nodes.Filter(nodes.Const(None), _STEP, [], [], None, None)
                stmt = nodes.ExprStmt(step)
                stmt.set_lineno(loop.lineno)
                loop.body.insert(0, stmt)
            for out in node.find_all(nodes.Output):
                wrapped: list[nodes.Expr] = []
                for n in out.nodes:
                    f = nodes.Filter(n, _OUT, [], [], None, None)
                    f.set_lineno(n.lineno)
                    wrapped.append(f)
                out.nodes = wrapped
        super().visit_Template(node, frame)
        if counted:  # read by `Tpl`: only these templates use (and reset) the counters
            self.writeline(f"{COUNTED} = True")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        """`~` through the sandbox's size check (the sandbox never sees it otherwise)."""
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded per template: the size of what a template produces, its
    loop iterations and macro calls (steps), and how deep macros and recursive loops nest. The
    counters live here (one environment per spec, one template rendering at a time) and are
    reset by `Tpl.render`."""

    code_generator_class = _Generator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.steps = 0
        self.chars = 0
        self.depth = 0
        # pass_context: Jinja never folds these into constants when it compiles
        self.filters[_STEP] = pass_context(lambda _context, _: self._step(None))
        self.filters[_OUT] = pass_context(lambda _context, value: self._out(value))
        self.filters["center"] = lambda v, width=80: _sized(str(v).center(_width(width)))
        self.filters["indent"] = self._indent
        self.filters["wordwrap"] = self._wordwrap
        self.filters["truncate"] = self._truncate
        self.filters["format"] = self._format
        self.filters["join"] = self._join
        self.globals["lipsum"] = self._lipsum

    # ---- the counters

    def reset(self) -> None:
        self.steps = self.chars = self.depth = 0

    def _step(self, _: Any) -> None:
        self.steps += 1
        if self.steps > MAX_TEMPLATE_STEPS:
            raise TemplateLimit(
                f"loops and macro calls went over the limit of {MAX_TEMPLATE_STEPS:,} "
                f"steps per template (an iteration is 1 step, a macro call {MACRO_STEPS})"
            )

    def _out(self, value: Any) -> Any:
        text = str(value)
        self.chars += len(text)
        if self.chars > MAX_VALUE_CHARS:
            raise _too_big(f"the output of {self.chars:,} characters")
        return text

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        kind = type(__obj)
        if kind is Macro or kind is LoopContext:
            __self.steps += MACRO_STEPS - 1  # a call costs about ten loop iterations
            __self._step(None)
            __self.depth += 1
            try:
                if __self.depth > MAX_TEMPLATE_DEPTH:
                    raise TemplateLimit(
                        f"macros or recursive loops nest deeper than the limit of "
                        f"{MAX_TEMPLATE_DEPTH} per template"
                    )
                return _sized(super().call(__context, __obj, *args, **kwargs))
            finally:
                __self.depth -= 1
        if isinstance(getattr(__obj, "__self__", None), str):
            if __obj.__name__ in _WIDTH_METHODS:
                for a in args:
                    if isinstance(a, int):
                        _width(a)
            return _sized(super().call(__context, __obj, *args, **kwargs))
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__
        inner = wrapped

        def checked(*args: Any, **kwargs: Any) -> str:
            _check_format(fmt, args)
            _check_format(fmt, kwargs)
            return cast(str, _sized(inner(*args, **kwargs)))

        return checked

    # ---- operators and filters that can build a large value from a short template

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "+":
            out = left + right
            if out.__class__ in _SIZED and len(out) > MAX_VALUE_CHARS:
                raise _too_big(f"a value of {len(out):,} characters or items")
            return out
        if operator == "%":
            if isinstance(left, str):
                _check_format(left, right if isinstance(right, tuple | dict) else (right,))
                return _sized(left % right)
            return left % right
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(right) > 1000:
                raise OverflowError(f"{left} ** {right} is too large for a spec")
            return left**right
        if isinstance(left, int) and hasattr(right, "__len__"):
            left, right = right, left
        if hasattr(left, "__len__") and isinstance(right, int) and len(left) * right > MAX_RESULT:
            raise OverflowError(f"repeating a value {right} times is too large for a spec")
        return left * right

    def concat_checked(self, parts: Any) -> str:
        """`~`: the joined value, refused when it is too long."""
        text = "".join(map(str, parts))
        if len(text) > MAX_VALUE_CHARS:
            raise _too_big(f"a value of {len(text):,} characters")
        return text

    def _indent(self, value: Any, width: Any = 4, first: bool = False, blank: bool = False) -> Any:
        text = str(value)
        size = len(width) if isinstance(width, str) else _width(width)
        if size * (text.count("\n") + 1) + len(text) > MAX_VALUE_CHARS:
            raise _too_big("an indented value")
        return _sized(do_indent(text, width, first, blank))

    def _wordwrap(self, value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> Any:
        return _sized(do_wordwrap(self, str(value), _width(width), *args, **kwargs))

    def _truncate(self, value: Any, length: Any = 255, *args: Any, **kwargs: Any) -> Any:
        return _sized(do_truncate(self, str(value), _width(length), *args, **kwargs))

    def _format(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        _check_format(str(value), kwargs or args)
        return _sized(do_format(value, *args, **kwargs))

    def _join(self, value: Any, d: str = "", attribute: Any = None) -> str:
        """`join`, measured as it goes: a long chain of `map` is never held in full."""
        if attribute is not None:
            getter = make_attrgetter(self, attribute)
            value = map(getter, value)
        parts: list[str] = []
        size = 0
        sep = len(str(d))
        for item in value:
            text = str(item)
            size += len(text) + sep
            if size > MAX_VALUE_CHARS + sep:
                raise _too_big("a joined value")
            parts.append(text)
        return str(d).join(parts)

    def _lipsum(self, n: Any = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        if not isinstance(n, int) or n > 1000:
            raise _too_big(f"lipsum({n!r})")
        return generate_lorem_ipsum(n, html, min, max)


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

    __slots__ = ("context", "counted", "path", "source", "template")

    def __init__(self, template: Template, path: PathKey, source: str) -> None:
        self.template = template
        self.path = path
        self.source = source
        self.context = Context(template.environment, {}, template.name, template.blocks, None)
        self.counted = bool(template.root_render_func.__globals__.get(COUNTED))

    def render(self, scope: dict[str, Any]) -> str:
        t = self.template
        context = self.context
        if self.counted:
            t.environment.reset()  # type: ignore[attr-defined]
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
    "TemplateLimit",
    "Tpl",
    "batchid",
    "builtin_templates",
    "describe",
    "is_template",
    "make_environment",
    "shquote",
]
