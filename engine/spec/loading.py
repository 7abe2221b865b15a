"""Read a spec file (YAML 1.2 or JSON) into plain data, keeping where every node was.

Validation and rendering report problems at `FILE:LINE:COL`, so the loader records the
position of every key and every value by JSON path while it converts ruamel.yaml's
round-trip nodes into plain dicts, lists and scalars (nothing downstream sees ruamel types).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.errors import InputError, Problem, SpecError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, SequenceNode

PathKey = tuple[str | int, ...]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path: Iterable[str | int]) -> str:
    """`$.jobs[0].tasks[1].id`; keys that aren't identifiers are bracketed."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += "[" + repr(part) + "]"
    return out


@dataclass(frozen=True)
class Mark:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass
class Document:
    """A loaded spec: plain data plus the position of every key and value by path."""

    file: str  # absolute path
    data: Any
    raw: bytes
    key_marks: dict[PathKey, Mark] = field(default_factory=dict)
    value_marks: dict[PathKey, Mark] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return Path(self.file).parent

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()

    def mark(self, path: PathKey, *, key: bool = False) -> Mark:
        """Where the node at `path` is: its key's position for key errors, else its value's.

        Falls back to the nearest ancestor that has a position.
        """
        p = tuple(path)
        while True:
            found = (self.key_marks.get(p) if key else None) or self.value_marks.get(p)
            if found is None and not key:
                found = self.key_marks.get(p)
            if found is not None:
                return found
            if not p:
                return Mark(1, 1)
            p = p[:-1]

    def problem(self, path: PathKey, message: str, *, key: bool = False) -> Problem:
        m = self.mark(path, key=key)
        return Problem(message, file=self.file, line=m.line, column=m.column, path=json_path(path))


def read_bytes(path: str | Path) -> tuple[str, bytes]:
    """The spec file's absolute path and bytes, or an InputError a user can act on."""
    p = Path(path).expanduser()
    shown = str(path)
    if not p.exists():
        raise InputError("no such file", code="SpecNotFound", file=shown)
    if p.is_dir():
        raise InputError("is a directory, not a spec file", code="SpecNotFound", file=shown)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=shown) from exc
    return str(p.resolve()), raw


def load_document(path: str | Path) -> Document:
    """Parse a spec file. Malformed YAML/JSON, duplicate keys, non-UTF-8: SpecError."""
    file, raw = read_bytes(path)
    return parse_document(raw, file)


def parse_document(raw: bytes, file: str) -> Document:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(Problem(f"not UTF-8 text (byte {exc.start})", file=file, line=line)) from exc
    if text.startswith("\ufeff"):
        text = text[1:]
    yaml = YAML(typ="rt", pure=True)
    yaml.version = (1, 2)
    yaml.allow_duplicate_keys = False
    try:
        node = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(x for x in (exc.context, exc.problem) if x) or "malformed YAML"
        where = None
        if "duplicate key" in what:
            what = (exc.problem or what).split(" with value")[0]
            where = _duplicate_path(yaml, text, mark.line if mark else -1)
        raise SpecError(
            Problem(
                what,
                file=file,
                line=mark.line + 1 if mark else None,
                column=mark.column + 1 if mark else None,
                path=json_path(where) if where is not None else None,
            )
        ) from exc
    except YAMLError as exc:
        raise SpecError(Problem(f"malformed YAML: {exc}", file=file)) from exc
    doc = Document(file=file, data=None, raw=raw)
    doc.value_marks[()] = Mark(1, 1)
    lc = getattr(node, "lc", None)
    if lc is not None and getattr(lc, "line", None) is not None:
        doc.value_marks[()] = Mark(lc.line + 1, (lc.col or 0) + 1)
    doc.data = _plain(node, (), doc)
    if doc.data is None:
        raise SpecError(Problem("the spec is empty", file=file, line=1, column=1, path="$"))
    if not isinstance(doc.data, Mapping):
        m = doc.value_marks[()]
        raise SpecError(Problem("a spec must be a mapping at the top level", file=file,
                                line=m.line, column=m.column, path="$"))
    return doc


def _duplicate_path(yaml: YAML, text: str, line: int) -> PathKey | None:
    """The JSON path of the duplicated key on `line` (0-based), from the composed node tree."""
    try:
        root = yaml.compose(text)
    except YAMLError:
        return None

    def walk(node: Any, path: PathKey) -> PathKey | None:
        if isinstance(node, MappingNode):
            seen: set[str] = set()
            for k, v in node.value:
                key = str(getattr(k, "value", k))
                if key in seen and k.start_mark.line == line:
                    return (*path, key)
                seen.add(key)
                found = walk(v, (*path, key))
                if found is not None:
                    return found
        elif isinstance(node, SequenceNode):
            for i, v in enumerate(node.value):
                found = walk(v, (*path, i))
                if found is not None:
                    return found
        return None

    return walk(root, ())


def _plain(node: Any, path: PathKey, doc: Document) -> Any:
    """Convert ruamel nodes to plain Python values, recording positions on the way."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for k, v in node.items():
            key = k if isinstance(k, str) else str(k)
            child = (*path, key)
            try:
                kl, kc = node.lc.key(k)
                doc.key_marks[child] = Mark(kl + 1, kc + 1)
                vl, vc = node.lc.value(k)
                doc.value_marks[child] = Mark(vl + 1, vc + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            out[key] = _plain(v, child, doc)
        return out
    if isinstance(node, CommentedSeq):
        items: list[Any] = []
        for i, v in enumerate(node):
            child = (*path, i)
            try:
                il, ic = node.lc.item(i)
                doc.value_marks[child] = Mark(il + 1, ic + 1)
            except (KeyError, TypeError, AttributeError):
                pass
            items.append(_plain(v, child, doc))
        return items
    if isinstance(node, Mapping):
        return {str(k): _plain(v, (*path, str(k)), doc) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v, (*path, i), doc) for i, v in enumerate(node)]
    return plain_scalar(node)


def plain_scalar(value: Any) -> Any:
    """ruamel scalar subclasses to int/float/bool/str/None; dates to ISO strings."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_var_flags(flags: Iterable[str] | None) -> dict[str, Any]:
    """`--var key=value` flags, values typed as YAML 1.2 (`x=no` stays "no", `x=3` is 3)."""
    result: dict[str, Any] = {}
    for flag in flags or ():
        name, sep, value = flag.partition("=")
        name = name.strip()
        if not sep or not _VAR_NAME.match(name):
            raise InputError(
                f"--var {flag!r}: expected NAME=VALUE with NAME a letter or underscore followed by "
                "letters, digits or underscores",
                code="InvalidVar",
            )
        result[name] = parse_scalar(value)
    return result


def parse_scalar(text: str) -> Any:
    """Type one value as YAML 1.2 would; anything that isn't a plain scalar stays a string."""
    if text.strip() == "":
        return text
    yaml = YAML(typ="safe", pure=True)
    yaml.version = (1, 2)
    try:
        value = yaml.load(text)
    except YAMLError:
        return text
    if isinstance(value, dict | list):
        return _plain_any(value)
    return plain_scalar(value)


def _plain_any(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_any(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_any(v) for v in value]
    return plain_scalar(value)
