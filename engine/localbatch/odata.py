"""Batch's OData `$filter` subset: comparisons, `and`, `or`, `startswith`, parentheses.

Anything outside the subset, or a property the list does not allow, raises `FilterError`,
which the server answers with 400 InvalidQueryParameterValue, never with an unfiltered list.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

OPS = ("eq", "ne", "gt", "lt", "ge", "le")

POOL_PROPS = frozenset(
    {
        "id",
        "displayName",
        "state",
        "allocationState",
        "vmSize",
        "creationTime",
        "lastModified",
        "stateTransitionTime",
        "allocationStateTransitionTime",
        "currentDedicatedNodes",
        "currentLowPriorityNodes",
        "targetDedicatedNodes",
        "targetLowPriorityNodes",
        "enableAutoScale",
        "taskSlotsPerNode",
        "enableInterNodeCommunication",
    }
)
JOB_PROPS = frozenset(
    {
        "id",
        "displayName",
        "state",
        "previousState",
        "creationTime",
        "lastModified",
        "stateTransitionTime",
        "previousStateTransitionTime",
        "priority",
        "onAllTasksComplete",
        "onTaskFailure",
        "usesTaskDependencies",
        "executionInfo/poolId",
        "executionInfo/startTime",
        "executionInfo/endTime",
        "executionInfo/terminateReason",
        "poolInfo/poolId",
    }
)
TASK_PROPS = frozenset(
    {
        "id",
        "displayName",
        "state",
        "previousState",
        "creationTime",
        "lastModified",
        "stateTransitionTime",
        "previousStateTransitionTime",
        "requiredSlots",
        "affinityInfo/affinityId",
        "executionInfo/startTime",
        "executionInfo/endTime",
        "executionInfo/exitCode",
        "executionInfo/result",
        "executionInfo/retryCount",
        "executionInfo/requeueCount",
        "executionInfo/failureInfo/category",
        "executionInfo/failureInfo/code",
        "nodeInfo/nodeId",
        "nodeInfo/poolId",
    }
)
NODE_PROPS = frozenset(
    {
        "id",
        "state",
        "schedulingState",
        "stateTransitionTime",
        "lastBootTime",
        "allocationTime",
        "vmSize",
        "isDedicated",
        "totalTasksRun",
        "runningTasksCount",
        "runningTaskSlotsCount",
        "totalTasksSucceeded",
        "startTaskInfo/state",
        "startTaskInfo/result",
    }
)
NODECOUNT_PROPS = frozenset({"poolId"})
FILE_PROPS = frozenset({"name", "isDirectory"})


class FilterError(ValueError):
    """The filter is outside Batch's supported subset."""


@dataclass(frozen=True)
class Cmp:
    prop: str
    op: str
    value: Any


@dataclass(frozen=True)
class StartsWith:
    prop: str
    prefix: str


@dataclass(frozen=True)
class BoolOp:
    op: str  # "and" | "or"
    items: tuple[Node, ...]


Node = Cmp | StartsWith | BoolOp

_TOKEN = re.compile(
    r"\s*(?:(?P<lp>\()|(?P<rp>\))|(?P<comma>,)"
    r"|(?P<dt>datetime'(?:[^']*)')"
    r"|(?P<str>'(?:[^']|'')*')"
    r"|(?P<num>-?\d+(?:\.\d+)?)(?![\w/])"
    r"|(?P<word>[A-Za-z_][\w]*(?:/[A-Za-z_]\w*)*))",
    re.IGNORECASE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise FilterError(f"unexpected text at position {pos}: {text[pos : pos + 20]!r}")
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


class _Parser:
    def __init__(self, text: str, allowed: frozenset[str]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.allowed = allowed

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (kind and tok[0] != kind):
            raise FilterError(f"expected {kind or 'more'} in $filter")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.or_expr()
        extra = self.peek()
        if extra is not None:
            raise FilterError(f"unexpected {extra[1]!r} in $filter")
        return node

    def or_expr(self) -> Node:
        items = [self.and_expr()]
        while (t := self.peek()) and t[0] == "word" and t[1].lower() == "or":
            self.i += 1
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_expr(self) -> Node:
        items = [self.primary()]
        while (t := self.peek()) and t[0] == "word" and t[1].lower() == "and":
            self.i += 1
            items.append(self.primary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def prop(self, name: str) -> str:
        for allowed in self.allowed:
            if allowed.lower() == name.lower():
                return allowed
        raise FilterError(f"property {name!r} is not supported in $filter for this list")

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "lp":
            node = self.or_expr()
            self.take("rp")
            return node
        if kind != "word":
            raise FilterError(f"unexpected {text!r} in $filter")
        if text.lower() == "startswith":
            self.take("lp")
            prop = self.prop(self.take("word")[1])
            self.take("comma")
            lit = self.literal()
            self.take("rp")
            if not isinstance(lit, str):
                raise FilterError("startswith needs a string")
            return StartsWith(prop, lit)
        prop = self.prop(text)
        op = self.take("word")[1].lower()
        if op not in OPS:
            raise FilterError(f"operator {op!r} is not supported in $filter")
        return Cmp(prop, op, self.literal())

    def literal(self) -> Any:
        kind, text = self.take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "dt":
            return _parse_time(text[len("datetime'") : -1])
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "word" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "word" and text.lower() == "null":
            return None
        raise FilterError(f"expected a value, got {text!r}")


def _parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise FilterError(f"bad datetime {text!r}") from exc
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def parse(text: str, allowed: frozenset[str]) -> Node:
    """Parse a `$filter` against the properties this list allows."""
    if not text.strip():
        raise FilterError("empty $filter")
    return _Parser(text, allowed).parse()


def _get(body: Mapping[str, Any], prop: str) -> Any:
    cur: Any = body
    for part in prop.split("/"):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _cmp(left: Any, op: str, right: Any) -> bool:
    if left is None or right is None:
        return (op == "eq" and left is right) or (op == "ne" and left is not right)
    if isinstance(right, dt.datetime):
        try:
            left = _parse_time(str(left))
        except FilterError:
            return False
    elif isinstance(right, str) and isinstance(left, str):
        left, right = left.casefold(), right.casefold()
    elif isinstance(right, bool) or isinstance(left, bool):
        if not (isinstance(right, bool) and isinstance(left, bool)):
            return op == "ne"
    elif isinstance(right, (int, float)) and isinstance(left, str):
        try:
            left = float(left)
        except ValueError:
            return op == "ne"
    elif type(left) is not type(right) and not (
        isinstance(left, (int, float)) and isinstance(right, (int, float))
    ):
        return op == "ne"
    try:
        return bool(
            {
                "eq": left == right,
                "ne": left != right,
                "gt": left > right,
                "lt": left < right,
                "ge": left >= right,
                "le": left <= right,
            }[op]
        )
    except TypeError:
        return False


def evaluate(node: Node, body: Mapping[str, Any]) -> bool:
    """Does this resource body satisfy the filter?"""
    if isinstance(node, Cmp):
        return _cmp(_get(body, node.prop), node.op, node.value)
    if isinstance(node, StartsWith):
        value = _get(body, node.prop)
        return isinstance(value, str) and value.casefold().startswith(node.prefix.casefold())
    if node.op == "and":
        return all(evaluate(item, body) for item in node.items)
    return any(evaluate(item, body) for item in node.items)


def predicate(text: str | None, allowed: frozenset[str]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for the list handler; no filter matches everything."""
    if not text:
        return lambda _body: True
    node = parse(text, allowed)
    return lambda body: evaluate(node, body)


def state_hint(text: str | None) -> tuple[str, str] | None:
    """`("eq"|"ne", state)` when the whole filter requires it, so the store can use its index."""
    if not text:
        return None
    try:
        node = parse(text, frozenset({"state"}) | TASK_PROPS | JOB_PROPS | POOL_PROPS)
    except FilterError:
        return None
    items = node.items if isinstance(node, BoolOp) and node.op == "and" else (node,)
    for item in items:
        if (
            isinstance(item, Cmp)
            and item.prop == "state"
            and item.op in ("eq", "ne")
            and isinstance(item.value, str)
        ):
            return item.op, item.value.lower()
    return None


def select(body: Mapping[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """Trim a body to the top-level properties `$select` names (nested paths keep their root)."""
    if not fields:
        return dict(body)
    wanted = {f.split("/")[0].strip().casefold() for f in fields if f.strip()}
    return {k: v for k, v in body.items() if k.casefold() in wanted or k.startswith("odata.")}


def to_sql(node: Node) -> tuple[str, list[Any]]:
    """A SQL prefilter over the stored JSON body that keeps at least every row `evaluate`
    accepts (a superset: anything it can't express exactly becomes "1"), so that filtered
    lists decode only likely matches. `evaluate` still decides each row."""
    if isinstance(node, BoolOp):
        parts = [to_sql(item) for item in node.items]
        joiner = " AND " if node.op == "and" else " OR "
        params = [p for _sql, ps in parts for p in ps]
        return "(" + joiner.join(sql for sql, _ps in parts) + ")", params
    path = "$." + node.prop.replace("/", ".")
    expr = f"json_extract(body, '{path}')"
    if isinstance(node, StartsWith):
        if not node.prefix.isascii():
            return "1", []
        escaped = node.prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return (f"(typeof({expr}) <> 'text' OR lower({expr}) LIKE ? ESCAPE '\\')", [escaped + "%"])
    value = node.value
    sql_op = {"eq": "=", "ne": "<>", "gt": ">", "lt": "<", "ge": ">=", "le": "<="}[node.op]
    if isinstance(value, bool) or value is None or isinstance(value, dt.datetime):
        return "1", []
    if isinstance(value, str):
        if not value.isascii():
            return "1", []
        return f"(typeof({expr}) <> 'text' OR lower({expr}) {sql_op} ?)", [value.lower()]
    return f"(typeof({expr}) NOT IN ('integer', 'real') OR {expr} {sql_op} ?)", [value]
