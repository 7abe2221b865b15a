"""Loading: YAML 1.2 and JSON, positions of keys and values, duplicate keys, bad files, --var."""

from __future__ import annotations

from pathlib import Path

import pytest
from bspec.errors import InputError, SpecError
from bspec.spec import load, load_document, parse_var_flags
from bspec.spec.loading import json_path, parse_document


def test_positions_of_keys_and_values() -> None:
    doc = parse_document(b"a: 1\npool:\n  id: x\n  l: [1, 2]\n", "/s.yaml")
    assert doc.data == {"a": 1, "pool": {"id": "x", "l": [1, 2]}}
    assert doc.mark(("pool", "id"), key=True).line == 3
    assert doc.mark(("pool", "id")).column == 7
    assert doc.mark(("pool", "l", 1)).column == 10
    assert doc.mark(("pool", "missing", "deeper")).line == doc.mark(("pool",)).line


def test_yaml_12_typing_keeps_no_a_string() -> None:
    doc = parse_document(b"a: no\nb: yes\nc: on\nd: true\ne: 010\n", "/s.yaml")
    assert doc.data == {"a": "no", "b": "yes", "c": "on", "d": True, "e": 10}


def test_json_specs_load_with_positions() -> None:
    doc = parse_document(b'{\n  "name": "x",\n  "pool": {"id": "p"}\n}\n', "/s.json")
    assert doc.data == {"name": "x", "pool": {"id": "p"}}
    assert doc.mark(("pool",), key=True).line == 3


def test_duplicate_keys_are_errors_at_the_second_key() -> None:
    with pytest.raises(SpecError) as err:
        parse_document(b"a: 1\nb:\n  c: 1\n  c: 2\n", "/s.yaml")
    p = err.value.problems[0]
    assert (p.line, p.path) == (4, "$.b.c")
    assert "duplicate key" in p.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"a: [1\n", "expected"),
        (b"\xff\xfe bad", "not UTF-8"),
        (b"", "empty"),
        (b"- 1\n- 2\n", "mapping at the top level"),
        (b"a: 'unterminated\n", "quoted scalar"),
    ],
)
def test_malformed_input_is_a_spec_error(raw: bytes, fragment: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_document(raw, "/s.yaml")
    assert fragment in str(err.value)
    assert err.value.exit_code == 2


def test_missing_file_and_directory_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        load_document(tmp_path / "nope.yaml")
    assert err.value.exit_code == 2 and "no such file" in str(err.value)
    with pytest.raises(InputError) as err:
        load(tmp_path)
    assert "directory" in str(err.value)


@pytest.mark.parametrize(
    ("flag", "value"),
    [("x=no", "no"), ("x=3", 3), ("x=1.5", 1.5), ("x=true", True), ("x=", ""),
     ("x=a=b", "a=b"), ("x=[1, 2]", [1, 2]), ("x=hello world", "hello world"),
     ("x=0o17", 15), ("x=~", None)],
)
def test_var_flags_are_typed_as_yaml_12(flag: str, value: object) -> None:
    assert parse_var_flags([flag]) == {"x": value}


@pytest.mark.parametrize("flag", ["novalue", "=3", "1x=3", "a-b=3"])
def test_malformed_var_flags_are_input_errors(flag: str) -> None:
    with pytest.raises(InputError) as err:
        parse_var_flags([flag])
    assert err.value.exit_code == 2


def test_json_path_brackets_odd_keys() -> None:
    assert json_path(("jobs", 0, "tasks", 2, "id")) == "$.jobs[0].tasks[2].id"
    assert json_path(("vars", "a b")) == "$.vars['a b']"
