"""Compile a parsed formula once into Python closures; running it is then a list of calls.

Names are resolved at compile time: service-defined variables, functions, methods,
TimeInterval_* constants and the $NodeDeallocationOption values match case-insensitively;
user variables are case-sensitive, and `$x` and `x` are the same variable (the `$` is optional
for user variables). Reading a user variable before any statement assigns it, an unknown
function or method, a wrong argument count, or assigning a read-only variable fails at compile
time (AutoScalingFormulaSyntaxError). Type errors follow Microsoft's table of operations and
fail while running (AutoScalingFormulaEvaluationError), with the operator's line and column.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import syntax
from .builtins import FUNCTIONS, MANY, METHODS
from .errors import TOO_LONG, TOO_LONG_MESSAGE, AutoScaleError, FormulaError, syntax_error
from .runtime import Code, Frame, Run, fail
from .snapshot import READ_ONLY
from .values import INTERVALS, MEMBERS, DoubleVec, TimeInterval, Timestamp, Value, member, type_name

MAX_FORMULA_CHARS = 8192
MAX_STATEMENTS = 100
DEALLOCATION_OPTIONS = ("requeue", "terminate", "taskcompletion", "retaineddata")

# Read-write service variables: slot numbers in Frame.slots.
DEDICATED, LOW_PRIORITY, DEALLOCATION, DEDICATED_ALIAS, LOW_PRIORITY_ALIAS = range(5)
FIRST_USER_SLOT = 5
_READ_WRITE = {
    "$targetdedicatednodes": DEDICATED,
    "$targetlowprioritynodes": LOW_PRIORITY,
    "$nodedeallocationoption": DEALLOCATION,
    "$targetdedicated": DEDICATED_ALIAS,
    "$targetlowpriority": LOW_PRIORITY_ALIAS,
}
_READ_ONLY = {name.lower(): i for i, name in enumerate(READ_ONLY)}
_READ_ONLY["$currentdedicated"] = READ_ONLY.index("$CurrentDedicatedNodes")
_READ_ONLY["$currentlowpriority"] = READ_ONLY.index("$CurrentLowPriorityNodes")
_CONSTANTS = {name.lower(): TimeInterval(ticks) for name, ticks in INTERVALS.items()}
_OPTIONS = {name: name for name in DEALLOCATION_OPTIONS}


@dataclass(frozen=True, slots=True)
class CompiledFormula:
    """A formula ready to run: `statements` in order, user variables by slot."""

    text: str
    statements: tuple[Run, ...]
    user_names: tuple[str, ...]  # slot FIRST_USER_SLOT + i holds user_names[i]
    result_order: tuple[int, ...]  # user slots in the order `results` lists them


def compile_formula(text: str) -> CompiledFormula:
    """Parse and compile; FormulaError (HTTP 400 in the service) if the formula cannot run."""
    if len(text) > MAX_FORMULA_CHARS:
        raise FormulaError(
            AutoScaleError(
                TOO_LONG,
                TOO_LONG_MESSAGE,
                f"The formula has {len(text)} characters; the limit is {MAX_FORMULA_CHARS}",
            )
        )
    try:
        statements = syntax.parse(text)
    except RecursionError:
        raise syntax_error("The formula nests too deeply", 1, 1) from None
    if len(statements) > MAX_STATEMENTS:
        extra = statements[MAX_STATEMENTS]
        raise FormulaError(
            AutoScaleError(
                TOO_LONG,
                TOO_LONG_MESSAGE,
                f"The formula has {len(statements)} statements; the limit is {MAX_STATEMENTS}",
                extra.line,
                extra.column,
            )
        )
    compiler = _Compiler()
    try:
        runs = tuple(compiler.statement(s) for s in statements)
    except RecursionError:
        raise syntax_error("The formula nests too deeply", 1, 1) from None
    names = tuple(compiler.user_slots)
    order = sorted(range(len(names)), key=lambda i: (names[i].lower(), names[i]))
    return CompiledFormula(text, runs, names, tuple(FIRST_USER_SLOT + i for i in order))


class _Compiler:
    def __init__(self) -> None:
        self.user_slots: dict[str, int] = {}

    # ---- statements ----

    def statement(self, node: syntax.Statement) -> Run:
        if isinstance(node, syntax.ExprStatement):
            code = self.expr(node.value)

            def run_expr(f: Frame) -> None:
                code(f)

            return run_expr
        value = self.expr(node.value)
        name = node.target.name
        lower = name.lower()
        if lower in _READ_ONLY:
            raise syntax_error(
                f"{name} is a read-only service-defined variable", node.line, node.target.column
            )
        if lower in _CONSTANTS or (not name.startswith("$") and lower in _OPTIONS):
            raise syntax_error(f"Cannot assign to the constant {name}", node.line, node.column)
        slot = _READ_WRITE.get(lower)
        if slot == DEDICATED:

            def run_dedicated(f: Frame) -> None:
                f.slots[DEDICATED] = value(f)
                f.dedicated_set = True

            return run_dedicated
        if slot == LOW_PRIORITY:

            def run_low_priority(f: Frame) -> None:
                f.slots[LOW_PRIORITY] = value(f)
                f.low_priority_set = True

            return run_low_priority
        if slot is None:
            key = name.removeprefix("$")
            if name.startswith("$") and not key:
                raise syntax_error("Expected a variable name", node.line, node.target.column)
            slot = self.user_slots.setdefault(key, FIRST_USER_SLOT + len(self.user_slots))
        index = slot

        def run_assign(f: Frame) -> None:
            f.slots[index] = value(f)

        return run_assign

    # ---- expressions ----

    def expr(self, node: syntax.Expr) -> Code:
        if isinstance(node, syntax.Num):
            number = node.value
            return lambda f: number
        if isinstance(node, syntax.Str):
            text = node.value
            return lambda f: text
        if isinstance(node, syntax.Name):
            return self.name(node)
        if isinstance(node, syntax.Unary):
            return self.unary(node)
        if isinstance(node, syntax.Binary):
            return self.binary(node)
        if isinstance(node, syntax.Ternary):
            return self.ternary(node)
        if isinstance(node, syntax.Call):
            return self.call(node)
        if isinstance(node, syntax.Method):
            return self.method(node)
        return self.member(node)

    def name(self, node: syntax.Name) -> Code:
        name = node.name
        lower = name.lower()
        if lower in _READ_ONLY:
            index = _READ_ONLY[lower]
            return lambda f: f.current[index]
        if lower in _CONSTANTS:
            constant = _CONSTANTS[lower]
            return lambda f: constant
        slot = _READ_WRITE.get(lower)
        if slot in (DEDICATED, LOW_PRIORITY):
            alias = DEDICATED_ALIAS if slot == DEDICATED else LOW_PRIORITY_ALIAS
            flag = "dedicated_set" if slot == DEDICATED else "low_priority_set"

            def read_target(f: Frame) -> Value:
                """The alias's value while only the alias has been assigned."""
                aliased = f.slots[alias]
                if aliased is None or getattr(f, flag):
                    value = f.slots[slot]
                    assert value is not None
                    return value
                return aliased

            return read_target
        if slot is not None:
            # An alias reads its own value once assigned, else the full name's; DEALLOCATION
            # always holds a value (requeue until assigned).
            fallback = {DEDICATED_ALIAS: DEDICATED, LOW_PRIORITY_ALIAS: LOW_PRIORITY}.get(
                slot, slot
            )

            def read_slot(f: Frame) -> Value:
                value = f.slots[slot]
                if value is None:
                    value = f.slots[fallback]
                assert value is not None
                return value

            return read_slot
        key = name.removeprefix("$")
        if key in self.user_slots:
            index = self.user_slots[key]

            def read_user(f: Frame) -> Value:
                value = f.slots[index]
                assert value is not None
                return value

            return read_user
        if not name.startswith("$") and lower in _OPTIONS:
            option = _OPTIONS[lower]
            return lambda f: option
        raise syntax_error(
            f"Undefined variable {name}: no earlier statement assigns it",
            node.line,
            node.column,
        )

    def unary(self, node: syntax.Unary) -> Code:
        operand = self.expr(node.operand)
        if node.op == "-":

            def negate(f: Frame) -> Value:
                x = operand(f)
                if type(x) is float:
                    return -x
                if type(x) is TimeInterval:
                    return TimeInterval(-x.ticks)
                raise fail(node, f"Operator '-' does not apply to {type_name(x)}")

            return negate

        def logical_not(f: Frame) -> Value:
            x = operand(f)
            if type(x) is float:
                return 1.0 if x == 0.0 else 0.0
            raise fail(node, f"Operator '!' does not apply to {type_name(x)}")

        return logical_not

    def binary(self, node: syntax.Binary) -> Code:
        left = self.expr(node.left)
        right = self.expr(node.right)
        op = node.op
        if op in ("&&", "||"):
            want = op == "||"

            def logical(f: Frame) -> Value:
                a = left(f)
                if type(a) is not float:
                    raise fail(node, f"Operator '{op}' does not apply to {type_name(a)}")
                if (a != 0.0) == want:
                    return 1.0 if want else 0.0
                b = right(f)
                if type(b) is not float:
                    raise fail(node, f"Operator '{op}' does not apply to {type_name(b)}")
                return 1.0 if b != 0.0 else 0.0

            return logical
        if op in _COMPARE:
            test = _COMPARE[op]

            def compare(f: Frame) -> Value:
                a = left(f)
                b = right(f)
                if type(a) is type(b) and type(a) is not DoubleVec:
                    return 1.0 if test(a, b) else 0.0
                raise fail(
                    node,
                    f"Operator '{op}' does not apply to {type_name(a)} and {type_name(b)}",
                )

            return compare
        fast = _FAST[op]

        def arithmetic(f: Frame) -> Value:
            a = left(f)
            b = right(f)
            if type(a) is float and type(b) is float:
                try:
                    return fast(a, b)
                except ZeroDivisionError:
                    return _divide_by_zero(a)
            return _arithmetic(node, op, a, b)

        return arithmetic

    def ternary(self, node: syntax.Ternary) -> Code:
        condition = self.expr(node.condition)
        if_true = self.expr(node.if_true)
        if_false = self.expr(node.if_false)

        def choose(f: Frame) -> Value:
            c = condition(f)
            if type(c) is not float:
                raise fail(node, f"The condition of '?:' must be a double, not {type_name(c)}")
            return if_true(f) if c != 0.0 else if_false(f)

        return choose

    def member(self, node: syntax.Member) -> Code:
        target = self.expr(node.target)
        name = node.name.lower()
        if name not in MEMBERS:
            raise syntax_error(
                f"Unknown member '{node.name}'; a timestamp has {', '.join(MEMBERS)}",
                node.line,
                node.column,
            )

        def get(f: Frame) -> Value:
            when = target(f)
            if type(when) is not Timestamp:
                raise fail(node, f"Member '{node.name}' needs a timestamp, not {type_name(when)}")
            return member(when, name)

        return get

    def call(self, node: syntax.Call) -> Code:
        name = node.name.lower()
        spec = FUNCTIONS.get(name)
        if spec is None:
            raise syntax_error(f"Unknown function '{node.name}'", node.line, node.column)
        low, high, build = spec
        _check_arity("Function", node, low, high)
        return build(node, tuple(self.expr(a) for a in node.args))

    def method(self, node: syntax.Method) -> Code:
        target = node.target
        if not isinstance(target, syntax.Name) or target.name.lower() not in _READ_ONLY:
            raise syntax_error(
                f"Method '{node.name}' applies only to the service's read-only variables",
                node.line,
                node.column,
            )
        index = _READ_ONLY[target.name.lower()]
        variable = READ_ONLY[index]
        name = node.name.lower()
        spec = METHODS.get(name)
        if spec is None:
            raise syntax_error(f"Unknown method '{node.name}'", node.line, node.column)
        low, high, build = spec
        _check_arity("Method", node, low, high)
        return build(node, variable, tuple(self.expr(a) for a in node.args))


def _check_arity(kind: str, node: syntax.Call | syntax.Method, low: int, high: int) -> None:
    if not low <= len(node.args) <= high:
        raise syntax_error(
            f"{kind} '{node.name}' takes {_arity(low, high)}, not {len(node.args)}",
            node.line,
            node.column,
        )


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    if high >= MANY:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


# ---- operators -------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_FAST: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}


def _divide_by_zero(a: float) -> float:
    """IEEE division, as .NET's double does it: x/0 is ±Infinity, 0/0 is NaN."""
    if a == 0.0 or math.isnan(a):
        return math.nan
    return math.inf if a > 0 else -math.inf


def _divide(a: float, b: float) -> float:
    return a / b if b != 0.0 else _divide_by_zero(a)


def _arithmetic(node: syntax.Binary, op: str, a: Value, b: Value) -> Value:
    """The rows of Microsoft's operations table other than double op double."""
    if isinstance(a, DoubleVec):
        if isinstance(b, float):
            return DoubleVec(_vector_op(op, x, b) for x in a)
        if isinstance(b, DoubleVec):
            if len(a) != len(b):
                raise fail(
                    node, f"Operator '{op}' needs vectors of one length, not {len(a)} and {len(b)}"
                )
            return DoubleVec(_vector_op(op, x, y) for x, y in zip(a, b, strict=True))
    elif isinstance(a, TimeInterval):
        if isinstance(b, float) and op in ("*", "/"):
            if op == "/" and b == 0.0:
                raise fail(node, "Division of a timeinterval by zero")
            return TimeInterval(_ticks(node, a.ticks * b if op == "*" else a.ticks / b))
        if isinstance(b, TimeInterval) and op in ("+", "-"):
            return TimeInterval(_ticks(node, a.ticks + b.ticks if op == "+" else a.ticks - b.ticks))
        if isinstance(b, Timestamp) and op == "+":
            return _timestamp(node, a.ticks + b.ticks)
    elif isinstance(a, float):
        if isinstance(b, TimeInterval) and op == "*":
            return TimeInterval(_ticks(node, a * b.ticks))
    elif isinstance(a, Timestamp):
        if isinstance(b, TimeInterval) and op == "+":
            return _timestamp(node, a.ticks + b.ticks)
        if isinstance(b, Timestamp) and op == "-":
            return TimeInterval(a.ticks - b.ticks)  # in range: both timestamps are
    raise fail(node, f"Operator '{op}' does not apply to {type_name(a)} and {type_name(b)}")


def _vector_op(op: str, a: float, b: float) -> float:
    return _divide(a, b) if op == "/" else _FAST[op](a, b)


def _ticks(node: syntax.Binary, value: float) -> int:
    """A timeinterval's ticks, within .NET TimeSpan's range."""
    if not math.isfinite(value) or abs(value) > _MAX_TICKS:
        raise fail(node, "The timeinterval is out of range")
    return round(value)


def _timestamp(node: syntax.Binary, ticks: int) -> Timestamp:
    """A timestamp within .NET DateTime's range (years 1 to 9999)."""
    if not _MIN_TIMESTAMP <= ticks <= _MAX_TIMESTAMP:
        raise fail(node, "The timestamp is out of range")
    return Timestamp(ticks)


_MAX_TICKS = 2**63 - 1
_MIN_TIMESTAMP = Timestamp.from_datetime(dt.datetime(1, 1, 1, tzinfo=dt.UTC)).ticks
_MAX_TIMESTAMP = Timestamp.from_datetime(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)).ticks
