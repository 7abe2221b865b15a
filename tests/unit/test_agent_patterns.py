"""The node agent's pure parts: output file patterns as Batch reads them, and redaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from bspec.localbatch.agent import match_output_files, redact


@pytest.fixture
def task(tmp_path: Path) -> Path:
    wd = tmp_path / "wd"
    for name in ["a.txt", "b.log", ".hidden.txt", "sub/c.txt", "sub/deep/d.txt", "abc*"]:
        (wd / name).parent.mkdir(parents=True, exist_ok=True)
        (wd / name).write_text(name)
    (tmp_path / "stdout.txt").write_text("out")
    (tmp_path / "stderr.txt").write_text("err")
    return wd


@pytest.mark.parametrize(
    ("pattern", "names", "wildcard"),
    [
        ("*.txt", ["a.txt"], True),
        ("**/*.txt", ["a.txt", "sub/c.txt", "sub/deep/d.txt"], True),
        ("sub/*.txt", ["c.txt"], True),
        (".*.txt", [".hidden.txt"], True),
        ("?.log", ["b.log"], True),
        ("[ab].*", ["a.txt", "b.log"], True),
        ("[!a].*", ["b.log"], True),
        ("abc[*]", ["abc*"], True),
        ("../std*.txt", ["stderr.txt", "stdout.txt"], True),
        ("sub/c.txt", ["c.txt"], False),
        ("../stdout.txt", ["stdout.txt"], False),
        ("missing.txt", [], False),
        ("none/*.txt", [], True),
        ("$SUBDIR/*.txt", ["c.txt"], True),
    ],
)
def test_patterns(task: Path, pattern: str, names: list[str], wildcard: bool) -> None:
    files, has_wildcard = match_output_files(pattern, task, {"SUBDIR": "sub"})
    assert [name for _, name in files] == names
    assert has_wildcard is wildcard
    assert all(path.is_file() for path, _ in files)


def test_absolute_pattern(task: Path) -> None:
    files, _ = match_output_files(str(task / "sub" / "*.txt"), Path("/nonexistent"), {})
    assert [name for _, name in files] == ["c.txt"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://h/c?sv=1&sig=abc%2Fdef&se=2", "http://h/c?sv=1&sig=REDACTED&se=2"),
        ("url 'http://h/c?SIG=xyz' done", "url 'http://h/c?SIG=REDACTED' done"),
        ("no secret here", "no secret here"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
