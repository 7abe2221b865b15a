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
