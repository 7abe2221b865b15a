"""docs/spec.md is generated from the schema, and says what the schema says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bspec import docgen

REPO = Path(__file__).resolve().parents[2]


def _walk_properties(node: Any, defs: dict[str, Any], seen: set[str]) -> set[str]:
    """Every property name that appears anywhere in the schema, following $refs."""
    names: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                names |= _walk_properties(defs[name], defs, seen)
        for key, value in node.items():
            if key == "properties":
                names |= set(value)
            if key != "$defs":
                names |= _walk_properties(value, defs, seen)
    elif isinstance(node, list):
        for value in node:
            names |= _walk_properties(value, defs, seen)
    return names


def test_docs_spec_md_is_current() -> None:
    current = (REPO / "docs" / "spec.md").read_text("utf-8")
    assert current == docgen.generate(), "docs/spec.md is out of date: run `make docs`"


def test_check_flag_reports_a_stale_file(tmp_path: Path) -> None:
    target = tmp_path / "spec.md"
    assert docgen.main(["-o", str(target)]) == 0
    assert docgen.main(["--check", "-o", str(target)]) == 0
    target.write_text(target.read_text("utf-8") + "edited by hand\n", "utf-8")
    assert docgen.main(["--check", "-o", str(target)]) == 1


def test_every_property_of_the_real_schema_is_documented_with_its_description() -> None:
    schema = docgen.load_schema()
    text = docgen.generate(schema)
    for name in _walk_properties(schema, schema.get("$defs", {}), set()):
        assert f"| `{name}` |" in text, name
    for description in ("The stack name", "What the task template expands over"):
        assert description in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    undescribed = [row.split(" | ")[0] for row in rows if row.endswith("|  |")]
    assert not undescribed, f"properties without a description: {undescribed}"


SMALL = {
    "title": "demo",
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "description": "The | name.", "maxLength": 5},
        "mode": {"enum": ["fast", "slow"], "default": "fast", "description": "How."},
        "count": {
            "description": "How many.",
            "anyOf": [{"type": "integer", "minimum": 1}, {"$ref": "#/$defs/template"}],
        },
        "a": {"$ref": "#/$defs/file"},
        "b": {"type": "array", "items": {"$ref": "#/$defs/file"}},
    },
    "$defs": {
        "template": {"type": "string", "pattern": "\\{[{%]"},
        "file": {
            "type": "object",
            "description": "A file.",
            "properties": {"path": {"type": "string", "description": "Where."}},
            "oneOf": [{"required": ["path"]}, {"required": ["url"]}],
        },
    },
}


def test_a_table_row_per_property_with_type_default_allowed_values() -> None:
    text = docgen.generate(json.loads(json.dumps(SMALL)))
    assert "| `name` | string | yes |  | at most 5 characters | The \\| name. |" in text
    assert '| `mode` | string |  | `"fast"` | `"fast"`, `"slow"` | How. |' in text
    assert "| `count` | integer (or a template) |  |  | at least 1 | How many. |" in text


def test_a_shared_definition_gets_one_section_linked_from_each_use() -> None:
    text = docgen.generate(json.loads(json.dumps(SMALL)))
    assert text.count("## `file`") == 1
    assert "| `a` | [object](#file) |" in text
    assert "| `b` | list of [object](#file) |" in text
    assert "Used at `a`, `b[]`." in text
    assert "Give exactly one of `path` or `url`." in text
