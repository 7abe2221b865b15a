"""A project written by `bspec init` runs with `bspec apply` as it is, on the local services."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

BSPEC = str(Path(sys.executable).parent / "bspec")


def _bspec(services: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSPEC_HOME": str(services.home)}
    env.pop("BSPEC_TARGET", None)
    return subprocess.run(
        [BSPEC, *args], capture_output=True, text=True, env=env, timeout=240, check=False
    )


@pytest.mark.slow
def test_sweep_scaffold_applies_and_its_reduce_sees_every_map_output(
    local_services: Any, blob_service: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    name = unique_id("sweep")
    project = tmp_path / "grid"
    done = _bspec(local_services, "init", str(project), "-t", "sweep", "--name", name)
    assert done.returncode == 0, done.stderr
    spec = str(project / "bspec.yaml")
    try:
        # Fewer walks per task keep the test short; the grid (16 map tasks) stays as written.
        applied = _bspec(local_services, "apply", spec, "--yes", "--json", "--var", "walks=20")
        assert applied.returncode == 0, applied.stderr
        tasks = json.loads(applied.stdout)["outcome"]["tasks"]
        assert (tasks["succeeded"], tasks["failed"]) == (17, 0)

        summary = blob_service.get_blob_client(f"{name}-summary", "summary.csv")
        rows = list(csv.DictReader(io.StringIO(summary.download_blob().readall().decode())))
        assert [(r["steps"], r["dims"], r["seeds"]) for r in rows] == [
            ("100", "1", "4"),
            ("100", "2", "4"),
            ("1000", "1", "4"),
            ("1000", "2", "4"),
        ]

        again = _bspec(local_services, "plan", spec, "--var", "walks=20")
        assert again.returncode == 0, again.stderr
        assert again.stdout.rstrip().endswith("No changes.")
    finally:
        destroyed = _bspec(local_services, "destroy", spec, "--yes", "--var", "walks=20")
        assert destroyed.returncode == 0, destroyed.stderr
