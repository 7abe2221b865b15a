"""The example specs run end to end on the local services: topwords (the seed workload) and
sweep (matrix x range, then a reduce step that must see every map task's output).

Each test copies the example with its files to tmp_path and gives its stack, pool and job
unique ids, so that it can share the session's services with other tests; nothing else in the
spec changes.
"""

from __future__ import annotations

import collections
import csv
import io
import json
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


def _bspec(services: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSPEC_HOME": str(services.home)}
    env.pop("BSPEC_TARGET", None)
    return subprocess.run(
        [BSPEC, *args], capture_output=True, text=True, env=env, timeout=240, check=False
    )


def _copy_example(example: str, tmp_path: Path, stack: str) -> Path:
    """specs/<example>.yaml and specs/<example>/ under tmp_path/specs, with unique ids."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs" / example, specs / example)
    text = (REPO / "specs" / f"{example}.yaml").read_text("utf-8")
    text, renamed = re.subn(rf"(?m)^name: {example}\b", f"name: {stack}", text)
    assert renamed == 1
    text = text.replace(f"{example}-pool", f"{stack}-pool").replace(
        f"{example}-job", f"{stack}-job"
    )
    spec = specs / f"{example}.yaml"
    spec.write_text(text, "utf-8")
    return spec


def _independent_top(text: str, n: int) -> list[tuple[str, int]]:
    """The top words counted without the task script's code: a plain dict, first-seen ties."""
    counts: dict[str, int] = {}
    for raw in text.split():
        word = raw.strip(string.punctuation)
        if word:
            counts[word] = counts.get(word, 0) + 1
    order = {w: i for i, w in enumerate(counts)}
    return sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]]))[:n]


@pytest.mark.slow
def test_topwords_counts_match_an_independent_count(
    local_services: Any, blob_service: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    stack = unique_id("topwords")
    spec = _copy_example("topwords", tmp_path, stack)
    try:
        applied = _bspec(local_services, "apply", str(spec), "--yes", "--json")
        assert applied.returncode == 0, applied.stderr
        tasks = json.loads(applied.stdout)["outcome"]["tasks"]
        assert (tasks["succeeded"], tasks["failed"]) == (3, 0)

        output = blob_service.get_container_client(f"{stack}-output")
        inputs = sorted((tmp_path / "specs" / "topwords" / "data").glob("*.txt"))
        assert sorted(b.name for b in output.list_blobs()) == [
            f"{p.stem}_OUTPUT.txt" for p in inputs
        ]
        for path in inputs:
            text = output.download_blob(f"{path.stem}_OUTPUT.txt").readall().decode()
            found = [
                (word, int(count))
                for word, count in (
                    line.split(":\t") for line in text.splitlines() if ":\t" in line
                )
            ]
            assert found == _independent_top(path.read_text("utf-8"), 3), path.name
            assert f"Task: topN-{path.stem}" in text
            assert f"Pool: {stack}-pool" in text

        again = _bspec(local_services, "apply", str(spec), "--yes")
        assert again.returncode == 0, again.stderr
        assert "No changes." in again.stdout
    finally:
        destroyed = _bspec(local_services, "destroy", str(spec), "--yes")
        assert destroyed.returncode == 0, destroyed.stderr


@pytest.mark.slow
def test_sweep_reduce_sees_every_map_output(
    local_services: Any, blob_service: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    stack = unique_id("sweep")
    spec = _copy_example("sweep", tmp_path, stack)
    var = ["--var", "samples=2000"]  # a smaller sample keeps the test short; same grid
    try:
        applied = _bspec(local_services, "apply", str(spec), "--yes", "--json", *var)
        assert applied.returncode == 0, applied.stderr
        tasks = json.loads(applied.stdout)["outcome"]["tasks"]
        # alpha (3) x beta (2) x seed in range(0, 3): 18 map tasks, then the reduce task.
        assert (tasks["succeeded"], tasks["failed"]) == (19, 0)

        results = blob_service.get_container_client(f"{stack}-results")
        assert len(list(results.list_blobs(name_starts_with="sweep/"))) == 18
        summary = blob_service.get_blob_client(f"{stack}-output", "summary.csv")
        rows = list(csv.DictReader(io.StringIO(summary.download_blob().readall().decode())))
        points = collections.Counter((r["alpha"], r["beta"]) for r in rows)
        assert len(points) == 6 and set(points.values()) == {1}
        assert {r["seeds"] for r in rows} == {"3"}, "each point's row averages all its seeds"

        again = _bspec(local_services, "plan", str(spec), *var)
        assert again.returncode == 0, again.stderr
        assert again.stdout.rstrip().endswith("No changes.")
    finally:
        destroyed = _bspec(local_services, "destroy", str(spec), "--yes", *var)
        assert destroyed.returncode == 0, destroyed.stderr
