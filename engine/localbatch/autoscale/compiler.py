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

import bisect
import datetime as dt
import email.utils
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from . import syntax
from .errors import (
    EVALUATION_ERROR,
    EVALUATION_MESSAGE,
    INSUFFICIENT_SAMPLE_DATA,
    INSUFFICIENT_SAMPLE_MESSAGE,
    TOO_LONG,
    TOO_LONG_MESSAGE,
    AutoScaleError,
    FormulaError,
    syntax_error,
)
from .snapshot import EMPTY_SERIES, READ_ONLY, PoolSnapshot
from .values import (
    INTERVALS,
    MEMBERS,
    TICKS_PER_SECOND,
    DoubleVec,
    TimeInterval,
    Timestamp,
    Value,
    format_double,
    member,
    type_name,
)

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


class Stop(Exception):
    """Raised by stop(): the formula ends here."""


class EvaluationError(Exception):
    def __init__(self, error: AutoScaleError) -> None:
        super().__init__(error.detail)
        self.error = error


def _fail(node: syntax.Expr | syntax.Statement, detail: str) -> EvaluationError:
    return EvaluationError(
        AutoScaleError(EVALUATION_ERROR, EVALUATION_MESSAGE, detail, node.line, node.column)
    )


class Frame:
    """One run's state: variable slots, the snapshot's current values, the clock."""

    __slots__ = ("current", "dedicated_set", "low_priority_set", "now", "rand", "slots", "snapshot")

    def __init__(
        self,
        slots: list[Value | None],
        snapshot: PoolSnapshot,
        now: Timestamp,
        rand: Callable[[], float],
    ) -> None:
        self.slots = slots
        self.snapshot = snapshot
        self.current = snapshot.current_values()
        self.now = now
        self.rand = rand
        self.dedicated_set = False
        self.low_priority_set = False


Code = Callable[[Frame], Value]
Run = Callable[[Frame], None]


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
                raise _fail(node, f"Operator '-' does not apply to {type_name(x)}")

            return negate

        def logical_not(f: Frame) -> Value:
            x = operand(f)
            if type(x) is float:
                return 1.0 if x == 0.0 else 0.0
            raise _fail(node, f"Operator '!' does not apply to {type_name(x)}")

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
                    raise _fail(node, f"Operator '{op}' does not apply to {type_name(a)}")
                if (a != 0.0) == want:
                    return 1.0 if want else 0.0
                b = right(f)
                if type(b) is not float:
                    raise _fail(node, f"Operator '{op}' does not apply to {type_name(b)}")
                return 1.0 if b != 0.0 else 0.0

            return logical
        if op in _COMPARE:
            test = _COMPARE[op]

            def compare(f: Frame) -> Value:
                a = left(f)
                b = right(f)
                if type(a) is type(b) and type(a) is not DoubleVec:
                    return 1.0 if test(a, b) else 0.0
                raise _fail(
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
                raise _fail(node, f"The condition of '?:' must be a double, not {type_name(c)}")
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
                raise _fail(node, f"Member '{node.name}' needs a timestamp, not {type_name(when)}")
            return member(when, name)

        return get

    def call(self, node: syntax.Call) -> Code:
        name = node.name.lower()
        spec = _FUNCTIONS.get(name)
        if spec is None:
            raise syntax_error(f"Unknown function '{node.name}'", node.line, node.column)
        low, high, build = spec
        if not low <= len(node.args) <= high:
            raise syntax_error(
                f"Function '{node.name}' takes {_arity(low, high)}, not {len(node.args)}",
                node.line,
                node.column,
            )
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
        spec = _METHODS.get(name)
        if spec is None:
            raise syntax_error(f"Unknown method '{node.name}'", node.line, node.column)
        low, high, build = spec
        if not low <= len(node.args) <= high:
            raise syntax_error(
                f"Method '{node.name}' takes {_arity(low, high)}, not {len(node.args)}",
                node.line,
                node.column,
            )
        return build(node, variable, tuple(self.expr(a) for a in node.args))


def _arity(low: int, high: int) -> str:
    if low == high:
        return f"{low} argument{'s' if low != 1 else ''}"
    if high >= _MANY:
        return f"at least {low} argument{'s' if low != 1 else ''}"
    return f"{low} to {high} arguments"


# ---- operators -------------------------------------------------------------------------------

_COMPARE: dict[str, Callable[[object, object], bool]] = {
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_FAST: dict[str, Callable[[float, float], float]] = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
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
    ta, tb = type(a), type(b)
    if ta is DoubleVec and tb is float:
        assert isinstance(a, DoubleVec) and isinstance(b, float)
        return DoubleVec(_vector_op(op, x, b) for x in a)
    if ta is DoubleVec and tb is DoubleVec:
        assert isinstance(a, DoubleVec) and isinstance(b, DoubleVec)
        if len(a) != len(b):
            raise _fail(
                node, f"Operator '{op}' needs vectors of one length, not {len(a)} and {len(b)}"
            )
        return DoubleVec(_vector_op(op, x, y) for x, y in zip(a, b, strict=True))
    if ta is TimeInterval:
        assert isinstance(a, TimeInterval)
        if tb is float and op in ("*", "/"):
            assert isinstance(b, float)
            if op == "/" and b == 0.0:
                raise _fail(node, "Division of a timeinterval by zero")
            return TimeInterval(_ticks(node, a.ticks * b if op == "*" else a.ticks / b))
        if tb is TimeInterval and op in ("+", "-"):
            assert isinstance(b, TimeInterval)
            return TimeInterval(_ticks(node, a.ticks + b.ticks if op == "+" else a.ticks - b.ticks))
        if tb is Timestamp and op == "+":
            assert isinstance(b, Timestamp)
            return _timestamp(node, a.ticks + b.ticks)
    if ta is float and tb is TimeInterval and op == "*":
        assert isinstance(a, float) and isinstance(b, TimeInterval)
        return TimeInterval(_ticks(node, a * b.ticks))
    if ta is Timestamp:
        assert isinstance(a, Timestamp)
        if tb is TimeInterval and op == "+":
            assert isinstance(b, TimeInterval)
            return _timestamp(node, a.ticks + b.ticks)
        if tb is Timestamp and op == "-":
            assert isinstance(b, Timestamp)
            return TimeInterval(a.ticks - b.ticks)  # within range: both timestamps are
    raise _fail(node, f"Operator '{op}' does not apply to {type_name(a)} and {type_name(b)}")


def _vector_op(op: str, a: float, b: float) -> float:
    return _divide(a, b) if op == "/" else _FAST[op](a, b)


def _ticks(node: syntax.Binary, value: float) -> int:
    """A timeinterval's ticks, within .NET TimeSpan's range."""
    if not math.isfinite(value) or abs(value) > _MAX_TICKS:
        raise _fail(node, "The timeinterval is out of range")
    return round(value)


def _timestamp(node: syntax.Binary, ticks: int) -> Timestamp:
    """A timestamp within .NET DateTime's range (years 1 to 9999)."""
    if not _MIN_TIMESTAMP <= ticks <= _MAX_TIMESTAMP:
        raise _fail(node, "The timestamp is out of range")
    return Timestamp(ticks)


_MAX_TICKS = 2**63 - 1
_MIN_TIMESTAMP = Timestamp.from_datetime(dt.datetime(1, 1, 1, tzinfo=dt.UTC)).ticks
_MAX_TIMESTAMP = Timestamp.from_datetime(dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC)).ticks


# ---- functions -------------------------------------------------------------------------------

_MANY = 1 << 30
Builder = Callable[[syntax.Call, tuple[Code, ...]], Code]


def _flatten(node: syntax.Call, args: tuple[Code, ...], f: Frame) -> list[float]:
    """A doubleVecList: any mix of doubles and doubleVecs, as one list."""
    out: list[float] = []
    for arg in args:
        value = arg(f)
        if type(value) is float:
            out.append(value)
        elif type(value) is DoubleVec:
            out.extend(value)
        else:
            raise _fail(
                node, f"Function '{node.name}' takes doubles and doubleVecs, not {type_name(value)}"
            )
    return out


def _reducer(reduce: Callable[[list[float]], float], empty: float | None) -> Builder:
    def build(node: syntax.Call, args: tuple[Code, ...]) -> Code:
        def run(f: Frame) -> Value:
            values = _flatten(node, args, f)
            if not values:
                if empty is None:
                    raise _fail(node, f"Function '{node.name}' has no values to work on")
                return empty
            return reduce(values)

        return run

    return build


def _std(values: list[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((x - mean) * (x - mean) for x in values) / (n - 1))


def _log(base: float | None) -> Callable[[float], float]:
    def log(x: float) -> float:
        if math.isnan(x) or x < 0:
            return math.nan
        if x == 0:
            return -math.inf
        if math.isinf(x):
            return math.inf
        return math.log(x) if base is None else math.log2(x) if base == 2 else math.log10(x)

    return log


def _logarithm(base: float | None) -> Builder:
    """lg, ln, log: a double gives a double; a doubleVec (or several values) a doubleVec."""
    fn = _log(base)

    def build(node: syntax.Call, args: tuple[Code, ...]) -> Code:
        def run(f: Frame) -> Value:
            if len(args) == 1:
                value = args[0](f)
                if type(value) is float:
                    return fn(value)
            return DoubleVec(fn(x) for x in _flatten(node, args, f))

        return run

    return build


def _vector_arg(node: syntax.Call, value: Value) -> Sequence[float]:
    if type(value) is DoubleVec:
        assert isinstance(value, DoubleVec)
        return value
    if type(value) is float:
        assert isinstance(value, float)
        return (value,)
    raise _fail(node, f"Function '{node.name}' needs a doubleVec, not {type_name(value)}")


def _double_arg(node: syntax.Call, value: Value) -> float:
    if type(value) is not float:
        raise _fail(node, f"Function '{node.name}' needs a double, not {type_name(value)}")
    assert isinstance(value, float)
    return value


def _percentile(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    """Nearest-rank percentile: the smallest element with at least p% of v at or below it."""
    vector, percent = args

    def run(f: Frame) -> Value:
        v = sorted(_vector_arg(node, vector(f)))
        p = _double_arg(node, percent(f))
        if not v:
            raise _fail(node, "Function 'percentile' has no values to work on")
        if not 0.0 <= p <= 100.0:
            raise _fail(node, f"The percentile must be between 0 and 100, not {format_double(p)}")
        rank = max(1, math.ceil(p / 100.0 * len(v)))
        return v[rank - 1]

    return run


def _val(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    vector, index = args

    def run(f: Frame) -> Value:
        v = _vector_arg(node, vector(f))
        i = _double_arg(node, index(f))
        if not (0 <= i < len(v)) or not i.is_integer():
            raise _fail(node, f"Index {format_double(i)} is outside the vector of {len(v)} values")
        return v[int(i)]

    return run


def _rand(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    return lambda f: f.rand()


def _stop(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    def run(f: Frame) -> Value:
        raise Stop

    return run


def parse_time(text: str) -> Timestamp | None:
    """W3C-DTF (ISO 8601) or RFC 1123, the two forms time() accepts; None if neither."""
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return Timestamp.from_datetime(when)


def _time(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    if not args:
        return lambda f: f.now
    (arg,) = args

    def run(f: Frame) -> Value:
        text = arg(f)
        if type(text) is not str:
            raise _fail(node, f"Function 'time' needs a string, not {type_name(text)}")
        assert isinstance(text, str)
        if not text:
            return f.now
        when = parse_time(text)
        if when is None:
            raise _fail(node, f"'{text}' is neither a W3C-DTF nor an RFC 1123 date and time")
        return when

    return run


def _sum(values: list[float]) -> float:
    """Plain IEEE addition (math.fsum raises on inf + -inf; .NET gives NaN)."""
    return sum(values, 0.0)


def _len(values: list[float]) -> float:
    return float(len(values))


def _range(values: list[float]) -> float:
    return max(values) - min(values)


def _norm(values: list[float]) -> float:
    return math.sqrt(sum(x * x for x in values))


def _avg(values: list[float]) -> float:
    return sum(values) / len(values)


_FUNCTIONS: dict[str, tuple[int, int, Builder]] = {
    "avg": (1, _MANY, _reducer(_avg, None)),
    "count": (1, _MANY, _reducer(_len, 0.0)),
    "len": (1, _MANY, _reducer(_len, 0.0)),
    "max": (1, _MANY, _reducer(max, None)),
    "min": (1, _MANY, _reducer(min, None)),
    "norm": (1, _MANY, _reducer(_norm, 0.0)),
    "range": (1, _MANY, _reducer(_range, None)),
    "std": (1, _MANY, _reducer(_std, 0.0)),
    "sum": (1, _MANY, _reducer(_sum, 0.0)),
    "lg": (1, _MANY, _logarithm(2.0)),
    "ln": (1, _MANY, _logarithm(None)),
    "log": (1, _MANY, _logarithm(10.0)),
    "percentile": (2, 2, _percentile),
    "rand": (0, 0, _rand),
    "stop": (0, 0, _stop),
    "time": (0, 1, _time),
    "val": (2, 2, _val),
}


# ---- sample methods --------------------------------------------------------------------------

MethodBuilder = Callable[[syntax.Method, str, tuple[Code, ...]], Code]


def _bound(node: syntax.Method, value: Value, now: Timestamp) -> float:
    """A window edge in POSIX seconds: a timeinterval looks back from now, a timestamp is absolute."""
    if type(value) is TimeInterval:
        assert isinstance(value, TimeInterval)
        return (now.ticks - value.ticks) / TICKS_PER_SECOND
    if type(value) is Timestamp:
        assert isinstance(value, Timestamp)
        return value.seconds
    raise EvaluationError(
        AutoScaleError(
            EVALUATION_ERROR,
            EVALUATION_MESSAGE,
            f"Method '{node.name}' needs a timeinterval or timestamp, not {type_name(value)}",
            node.line,
            node.column,
        )
    )


def _window(
    node: syntax.Method, variable: str, f: Frame, start: Value, end: Value | None
) -> tuple[Sequence[float], int, int, float]:
    """The samples in a look-back window: (values, first, stop, percent of the expected count).

    The window is (older edge, newer edge], clipped to now; Batch expects one sample per period
    in it, and samples younger than the snapshot's delay are not visible yet. The two edges may come in either order (Microsoft's examples use both)."""
    now = f.now
    a = _bound(node, start, now)
    b = _bound(node, end, now) if end is not None else now.seconds
    lo, hi = (a, b) if a <= b else (b, a)
    hi = min(hi, now.seconds)
    snapshot = f.snapshot
    series = snapshot.samples.get(variable, EMPTY_SERIES)
    times = series.times
    first = bisect.bisect_right(times, lo)
    stop = bisect.bisect_right(times, min(hi, now.seconds - snapshot.sample_delay_seconds))
    available = max(0, stop - first)
    expected = (hi - lo) / snapshot.sample_period_seconds
    percent = 100.0 if expected <= 0 else min(100.0, available * 100.0 / expected)
    return series.values, first, stop, percent


def _get_sample(node: syntax.Method, variable: str, args: tuple[Code, ...]) -> Code:
    def run(f: Frame) -> Value:
        values = [a(f) for a in args]
        first_arg = values[0]
        if type(first_arg) is float and len(values) == 1:
            assert isinstance(first_arg, float)
            count = int(first_arg)
            snapshot = f.snapshot
            series = snapshot.samples.get(variable, EMPTY_SERIES)
            visible = f.now.seconds - snapshot.sample_delay_seconds
            stop = bisect.bisect_right(series.times, visible)
            return DoubleVec(series.values[max(0, stop - count) : stop] if count > 0 else ())
        end: Value | None = None
        wanted: Value | None = None
        if len(values) == 2:
            if type(values[1]) is float:
                wanted = values[1]
            else:
                end = values[1]
        elif len(values) == 3:
            end, wanted = values[1], values[2]
            if type(wanted) is not float:
                raise _fail_method(
                    node, f"The sample percentage must be a double, not {type_name(wanted)}"
                )
        samples, first, stop, percent = _window(node, variable, f, first_arg, end)
        if wanted is not None:
            assert isinstance(wanted, float)
            if percent < wanted:
                raise EvaluationError(
                    AutoScaleError(
                        INSUFFICIENT_SAMPLE_DATA,
                        INSUFFICIENT_SAMPLE_MESSAGE,
                        f"Insufficient data from data set: {variable} wanted "
                        f"{format_double(wanted)}%, received {int(percent)}%",
                        node.line,
                        node.column,
                    )
                )
        return DoubleVec(samples[first:stop])

    return run


def _fail_method(node: syntax.Method, detail: str) -> EvaluationError:
    return EvaluationError(
        AutoScaleError(EVALUATION_ERROR, EVALUATION_MESSAGE, detail, node.line, node.column)
    )


def _get_sample_percent(node: syntax.Method, variable: str, args: tuple[Code, ...]) -> Code:
    def run(f: Frame) -> Value:
        start = args[0](f)
        end = args[1](f) if len(args) == 2 else None
        return _window(node, variable, f, start, end)[3]

    return run


def _get_sample_period(node: syntax.Method, variable: str, args: tuple[Code, ...]) -> Code:
    return lambda f: TimeInterval(round(f.snapshot.sample_period_seconds * TICKS_PER_SECOND))


def _count(node: syntax.Method, variable: str, args: tuple[Code, ...]) -> Code:
    def run(f: Frame) -> Value:
        times = f.snapshot.samples.get(variable, EMPTY_SERIES).times
        return float(bisect.bisect_right(times, f.now.seconds))

    return run


def _history_begin_time(node: syntax.Method, variable: str, args: tuple[Code, ...]) -> Code:
    """The oldest sample's time; with no history yet, now (Batch's answer is not documented)."""

    def run(f: Frame) -> Value:
        times = f.snapshot.samples.get(variable, EMPTY_SERIES).times
        if not times or times[0] > f.now.seconds:
            return f.now
        return Timestamp(round(times[0] * TICKS_PER_SECOND))

    return run


_METHODS: dict[str, tuple[int, int, MethodBuilder]] = {
    "getsample": (1, 3, _get_sample),
    "getsamplepercent": (1, 2, _get_sample_percent),
    "getsampleperiod": (0, 0, _get_sample_period),
    "count": (0, 0, _count),
    "historybegintime": (0, 0, _history_begin_time),
}
