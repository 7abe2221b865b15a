"""`make demo`: `bspec apply specs/topwords.yaml --yes` from the repository, as a user sees it.

The spec and its files are copied to tmp_path (with unique stack, pool and job ids, so the
session's services are shared safely), which keeps the repository's out/ untouched; the
command is the one the Makefile's demo target runs. The downloaded counts are checked
against an independent count of the same input files.
"""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BSPEC = str(Path(sys.executable).parent / "bspec")


def _demo_command() -> list[str]:
    """The bspec arguments of the Makefile's `demo` recipe."""
    text = (REPO / "Makefile").read_text("utf-8")
    recipe = re.search(r"(?m)^demo:.*\n((?:\t.*\n)+)", text)
    assert recipe, "the Makefile has a demo target"
    line = next(ln for ln in recipe.group(1).splitlines() if "bspec apply" in ln)
    return line.split("bspec", 1)[1].split()


def _copy(tmp_path: Path, stack: str) -> Path:
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs" / "topwords", specs / "topwords")
    text = (REPO / "specs" / "topwords.yaml").read_text("utf-8")
    text = re.sub(r"(?m)^name: topwords\b", f"name: {stack}", text)
    text = text.replace("topwords-pool", f"{stack}-pool").replace("topwords-job", f"{stack}-job")
    (specs / "topwords.yaml").write_text(text, "utf-8")
    return specs / "topwords.yaml"


def _independent_top(text: str, n: int) -> list[tuple[str, int]]:
    """Top words without the task script's code: a plain dict, ties in first-seen order."""
    counts: dict[str, int] = {}
    for raw in text.split():
        word = raw.strip(string.punctuation)
        if word:
            counts[word] = counts.get(word, 0) + 1
    order = {w: i for i, w in enumerate(counts)}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))[:n]


def _run(services: Any, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSPEC_HOME": str(services.home)}
    env.pop("BSPEC_TARGET", None)
    return subprocess.run(
        [BSPEC, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False
    )


@pytest.mark.slow
def test_make_demo_downloads_the_counts_then_changes_nothing(
    local_services: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    args = _demo_command()
    assert args[:3] == ["apply", "specs/topwords.yaml", "--yes"]
    stack = unique_id("demo")
    spec = _copy(tmp_path, stack)
    try:
        first = _run(local_services, tmp_path, *args)
        assert first.returncode == 0, first.stderr
        assert "Tasks: 3 succeeded, 0 failed." in first.stdout
        assert "Outputs: 3 downloaded, 0 unchanged in out/topwords" in first.stdout
        # off a terminal, progress is plain lines: no control characters at all
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", first.stderr)
        assert f"{stack}-job: 3/3 completed" in first.stderr

        inputs = sorted((tmp_path / "specs" / "topwords" / "data").glob("*.txt"))
        out = tmp_path / "out" / "topwords"
        assert sorted(p.name for p in out.iterdir()) == [f"{p.stem}_OUTPUT.txt" for p in inputs]
        for path in inputs:
            text = (out / f"{path.stem}_OUTPUT.txt").read_text("utf-8")
            found = [
                (w, int(c)) for w, c in (ln.split(":\t") for ln in text.splitlines() if ":\t" in ln)
            ]
            expected = _independent_top(path.read_text("utf-8"), 3)
            assert found == expected, path.name
            # ... and the apply printed each file's top words
            for word, count in expected:
                assert re.search(rf"(?m)^\s+{re.escape(word)}:\s+{count}$", first.stdout)

        again = _run(local_services, tmp_path, *args)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("No changes.")
        assert "Outputs: 0 downloaded, 3 unchanged in out/topwords" in again.stdout
    finally:
        destroyed = _run(local_services, tmp_path, "destroy", str(spec), "--yes")
        assert destroyed.returncode == 0, destroyed.stderr
