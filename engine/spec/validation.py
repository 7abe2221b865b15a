"""Check a loaded spec against schema/bspec.schema.json and report every problem at once.

Each jsonschema error becomes a `Problem` at the offending node's line and column with its
JSON path; errors about a key (unknown, misspelled, a bad name) point at the key itself and
unknown keys get a did-you-mean from the schema's known names.
"""

from __future__ import annotations

import difflib
import json
from functools import cache
from importlib import resources
from typing import Any

from bspec.errors import Problem
from bspec.spec.loading import Document, PathKey
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

_TEMPLATE_PATTERN = r"\{[{%]"


@cache
def schema() -> dict[str, Any]:
    """The spec schema shipped in the package (bspec/schema/bspec.schema.json)."""
    text = resources.files("bspec.schema").joinpath("bspec.schema.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _validator() -> Draft202012Validator:
    return Draft202012Validator(schema())


def validate(doc: Document, data: Any = None, *, rendered: bool = False) -> list[Problem]:
    """Every schema problem of `data` (default: the document's data), sorted by position."""
    instance = doc.data if data is None else data
    problems: list[Problem] = []
    seen: set[tuple[str | None, str]] = set()
    for error in _validator().iter_errors(instance):
        for path, message, is_key in _explain(error):
            if rendered:
                message = f"after rendering: {message}"
            problem = doc.problem(path, message, key=is_key)
            if (problem.path, problem.message) not in seen:
                seen.add((problem.path, problem.message))
                problems.append(problem)
    problems.sort(key=lambda p: (p.line or 0, p.column or 0, p.path or ""))
    return problems


def _explain(error: ValidationError) -> list[tuple[PathKey, str, bool]]:
    """(path, message, is-about-a-key) for one jsonschema error, in a user's words."""
    path: PathKey = tuple(error.absolute_path)
    validator = str(error.validator)
    sch = error.schema if isinstance(error.schema, dict) else {}
    custom = sch.get("x-messages", {}).get(validator)
    if "propertyNames" in error.absolute_schema_path:
        key = str(error.instance)
        why = custom or "not a valid name here"
        return [((*path, key), f"{key!r}: {why}", True)]
    if validator == "additionalProperties" and isinstance(error.instance, dict):
        known = sorted(sch.get("properties", {}))
        out: list[tuple[PathKey, str, bool]] = []
        for key in error.instance:
            if key in known:
                continue
            message = f"unknown key {key!r}"
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            if not close:
                close = [k for k in known if k.lower() == key.lower()]
            if close:
                message += f"; did you mean {close[0]!r}?"
            elif known:
                message += f" (expected one of: {', '.join(known)})"
            out.append(((*path, key), message, True))
        return out
    if custom and validator == "pattern":
        return [(path, f"{error.instance!r}: {custom}", False)]
    if custom:
        return [(path, custom, False)]
    if validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return [(path, f"missing required key {k!r}", True) for k in missing]
    if validator in ("anyOf", "oneOf") and error.context:
        return [(path, _best_message(error), False)]
    if validator == "const":
        return [(path, f"must be {error.validator_value!r}, not {error.instance!r}", False)]
    if validator == "enum":
        options = ", ".join(str(v) for v in error.validator_value)
        return [(path, f"{error.instance!r} is not one of: {options}", False)]
    if validator == "type":
        return [(path, f"expected {_type_words(error.validator_value)}, got "
                        f"{_got(error.instance)}", False)]
    if validator == "pattern":
        what = sch.get("description", "").split(":")[0].split(";")[0].rstrip(".")
        return [(path, f"{error.instance!r} is not valid: {what or 'bad format'}", False)]
    if validator == "dependentRequired":
        return [(path, error.message.replace("is a dependency of", "is needed with"), False)]
    return [(path, error.message, False)]


def _best_message(error: ValidationError) -> str:
    """For "integer or template" and similar unions, the non-template alternative's complaint."""
    candidates = [
        e for e in error.context or ()
        if not (isinstance(e.schema, dict) and e.schema.get("pattern") == _TEMPLATE_PATTERN)
        and e.validator != "type"
    ]
    if candidates:
        best = candidates[0]
        if best.validator == "minimum":
            return f"{best.instance!r} is less than the minimum of {best.validator_value}"
        if best.validator == "maximum":
            return f"{best.instance!r} is more than the maximum of {best.validator_value}"
        return _explain(best)[0][1] if _explain(best) else best.message
    wanted = []
    for e in error.context or ():
        if e.validator == "type":
            wanted.append(_type_words(e.validator_value))
        elif isinstance(e.schema, dict) and e.schema.get("pattern") == _TEMPLATE_PATTERN:
            wanted.append("a {{ template }} string")
    want = " or ".join(dict.fromkeys(wanted)) or "a valid value"
    return f"expected {want}, got {_got(error.instance)}"


def _got(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{_type_words(_json_type(value))} {text}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


_TYPE_WORDS = {
    "null": "null",
    "boolean": "a boolean",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
}


def _type_words(t: Any) -> str:
    if isinstance(t, list):
        return " or ".join(_TYPE_WORDS.get(str(x), str(x)) for x in t)
    return _TYPE_WORDS.get(str(t), str(t))
