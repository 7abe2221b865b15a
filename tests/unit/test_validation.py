"""The corpus of invalid specs: each names the JSON path it breaks and marks the line.

Every case runs through the CLI's main() in-process, as a user would: exit code 2, one JSON
error on stdout whose problems include the marked line and the expected path, and a human
message on stderr without a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bspec.cli import main

CORPUS = Path(__file__).parent / "invalid"
CASES = sorted(CORPUS.glob("*.yaml"))


def _expected(spec: Path) -> tuple[int, str | None]:
    lines = spec.read_text().splitlines()
    path = lines[0].removeprefix("# path: ").strip()
    line = next(i for i, text in enumerate(lines, 1) if text.rstrip().endswith("# ERROR"))
    return line, None if path == "-" else path


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30


@pytest.mark.parametrize("spec", CASES, ids=[c.stem for c in CASES])
def test_invalid_spec_reports_line_and_path(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, path = _expected(spec)
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(spec), "--json"])
    assert exited.value.code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    problems = error.get("problems") or [error]
    places = [(p["line"], p["path"]) for p in problems]
    assert (line, path) in places, f"{spec.name}: expected line {line} {path}, got {places}"
    assert all(p["file"] == str(spec.resolve()) for p in problems)


@pytest.mark.parametrize("spec", CASES[:5], ids=[c.stem for c in CASES[:5]])
def test_human_error_names_file_line_and_path(spec: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line, path = _expected(spec)
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(spec)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{spec.name}:{line}:" in captured.err
    assert path is None or path in captured.err
    assert "Traceback" not in captured.err


def _property_schemas(node: object, where: str = "$") -> list[tuple[str, dict[str, object]]]:
    """Every schema that describes a property (under `properties`), with where it is."""
    found: list[tuple[str, dict[str, object]]] = []
    if isinstance(node, dict):
        for name, sub in (node.get("properties") or {}).items():
            found.append((f"{where}.{name}", sub))
        for key, value in node.items():
            found.extend(_property_schemas(value, f"{where}/{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_property_schemas(value, f"{where}[{i}]"))
    return found


def test_schema_is_draft_2020_12_and_every_property_is_described() -> None:
    from bspec.spec import schema
    from jsonschema import Draft202012Validator

    data = schema()
    Draft202012Validator.check_schema(data)
    assert data["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    undocumented = [w for w, sub in _property_schemas(data) if not sub.get("description")]
    assert undocumented == []
    assert all(d.get("description") for d in data["$defs"].values())


def test_examples_validate_with_a_plain_schema_validator() -> None:
    """What an editor with `yaml-language-server: $schema=` sees: no complaints."""
    from bspec.spec import load_document, schema
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema())
    for name in ("topwords.yaml", "sweep.yaml"):
        doc = load_document(CORPUS.parents[2] / "specs" / name)
        assert list(validator.iter_errors(doc.data)) == []


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    from bspec.errors import SpecError
    from bspec.spec import load

    spec = tmp_path / "s.yaml"
    spec.write_text("apiVersion: bspec/v1\nname: a_b\ntarget: cloud\npool:\n  id: p\n"
                    "  vmSzie: x\n  image: {publisher: a, offer: b, sku: c, nodeAgentSku: d}\n")
    with pytest.raises(SpecError) as err:
        load(spec)
    places = [(p.line, p.path) for p in err.value.problems]
    assert places == [(2, "$.name"), (3, "$.target"), (4, "$.pool"), (6, "$.pool.vmSzie")]
    assert "did you mean 'vmSize'" in err.value.problems[-1].message
    assert str(err.value).endswith("4 problems found.")
