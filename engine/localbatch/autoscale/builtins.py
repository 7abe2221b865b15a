"""The built-in functions and the sample methods, each a builder: (call node, compiled
arguments) to the code that runs it. Microsoft's doubleVecList arguments (any mix of doubles and
doubleVecs) are flattened into one list."""

from __future__ import annotations

import bisect
import datetime as dt
import email.utils
import math
from collections.abc import Callable, Sequence

from . import syntax
from .errors import INSUFFICIENT_SAMPLE_DATA, INSUFFICIENT_SAMPLE_MESSAGE, AutoScaleError
from .runtime import Code, EvaluationError, Frame, Stop, fail
from .snapshot import EMPTY_SERIES
from .values import (
    TICKS_PER_SECOND,
    DoubleVec,
    TimeInterval,
    Timestamp,
    Value,
    format_double,
    type_name,
)

MANY = 1 << 30
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
            raise fail(
                node, f"Function '{node.name}' takes doubles and doubleVecs, not {type_name(value)}"
            )
    return out


def _reducer(reduce: Callable[[list[float]], float], empty: float | None) -> Builder:
    def build(node: syntax.Call, args: tuple[Code, ...]) -> Code:
        def run(f: Frame) -> Value:
            values = _flatten(node, args, f)
            if not values:
                if empty is None:
                    raise fail(node, f"Function '{node.name}' has no values to work on")
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
    if isinstance(value, DoubleVec):
        return value
    if isinstance(value, float):
        return (value,)
    raise fail(node, f"Function '{node.name}' needs a doubleVec, not {type_name(value)}")


def _double_arg(node: syntax.Call, value: Value) -> float:
    if not isinstance(value, float):
        raise fail(node, f"Function '{node.name}' needs a double, not {type_name(value)}")
    return value


def _percentile(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    """Nearest-rank percentile: the smallest element with at least p% of v at or below it."""
    vector, percent = args

    def run(f: Frame) -> Value:
        v = sorted(_vector_arg(node, vector(f)))
        p = _double_arg(node, percent(f))
        if not v:
            raise fail(node, "Function 'percentile' has no values to work on")
        if not 0.0 <= p <= 100.0:
            raise fail(node, f"The percentile must be between 0 and 100, not {format_double(p)}")
        rank = max(1, math.ceil(p / 100.0 * len(v)))
        return v[rank - 1]

    return run


def _val(node: syntax.Call, args: tuple[Code, ...]) -> Code:
    vector, index = args

    def run(f: Frame) -> Value:
        v = _vector_arg(node, vector(f))
        i = _double_arg(node, index(f))
        if not (0 <= i < len(v)) or not i.is_integer():
            raise fail(node, f"Index {format_double(i)} is outside the vector of {len(v)} values")
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
        if not isinstance(text, str):
            raise fail(node, f"Function 'time' needs a string, not {type_name(text)}")
        if not text:
            return f.now
        when = parse_time(text)
        if when is None:
            raise fail(node, f"'{text}' is neither a W3C-DTF nor an RFC 1123 date and time")
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


FUNCTIONS: dict[str, tuple[int, int, Builder]] = {
    "avg": (1, MANY, _reducer(_avg, None)),
    "count": (1, MANY, _reducer(_len, 0.0)),
    "len": (1, MANY, _reducer(_len, 0.0)),
    "max": (1, MANY, _reducer(max, None)),
    "min": (1, MANY, _reducer(min, None)),
    "norm": (1, MANY, _reducer(_norm, 0.0)),
    "range": (1, MANY, _reducer(_range, None)),
    "std": (1, MANY, _reducer(_std, 0.0)),
    "sum": (1, MANY, _reducer(_sum, 0.0)),
    "lg": (1, MANY, _logarithm(2.0)),
    "ln": (1, MANY, _logarithm(None)),
    "log": (1, MANY, _logarithm(10.0)),
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
    if isinstance(value, TimeInterval):
        return (now.ticks - value.ticks) / TICKS_PER_SECOND
    if isinstance(value, Timestamp):
        return value.seconds
    raise fail(
        node, f"Method '{node.name}' needs a timeinterval or timestamp, not {type_name(value)}"
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
        if isinstance(first_arg, float) and len(values) == 1:
            count = int(first_arg)
            snapshot = f.snapshot
            series = snapshot.samples.get(variable, EMPTY_SERIES)
            visible = f.now.seconds - snapshot.sample_delay_seconds
            stop = bisect.bisect_right(series.times, visible)
            return DoubleVec(series.values[max(0, stop - count) : stop] if count > 0 else ())
        end: Value | None = None
        wanted: float | None = None
        if len(values) == 2:
            if isinstance(values[1], float):
                wanted = values[1]
            else:
                end = values[1]
        elif len(values) == 3:
            end, third = values[1], values[2]
            if not isinstance(third, float):
                raise fail(node, f"The sample percentage must be a double, not {type_name(third)}")
            wanted = third
        samples, first, stop, percent = _window(node, variable, f, first_arg, end)
        if wanted is not None and percent < wanted:
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


METHODS: dict[str, tuple[int, int, MethodBuilder]] = {
    "getsample": (1, 3, _get_sample),
    "getsamplepercent": (1, 2, _get_sample_percent),
    "getsampleperiod": (0, 0, _get_sample_period),
    "count": (0, 0, _count),
    "historybegintime": (0, 0, _history_begin_time),
}
