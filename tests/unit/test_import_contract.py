"""import-linter's contract (pyproject.toml) holds on the engine and fails on a violating
import, relative ones included: each case copies the engine to a temporary `bspec`
package, adds one bad import, and runs `lint-imports` on it with the same contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed")


def _lint(tmp_path: Path, bad: tuple[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """lint-imports over a copy of engine/ as the package bspec, with `bad` = (file, line)
    appended to one of its files."""
    package = tmp_path / "bspec"
    shutil.copytree(ROOT / "engine", package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    # the data-only packages the layers contract lists as ignored
    for data in ("schema", "templates"):
        (package / data).mkdir(exist_ok=True)
        (package / data / "__init__.py").touch()
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if bad is not None:
        target = package / bad[0]
        target.write_text(target.read_text(encoding="utf-8") + "\n" + bad[1] + "\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [str(LINT), "--config", str(tmp_path / "pyproject.toml"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_engine_keeps_the_contract(tmp_path: Path) -> None:
    done = _lint(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        # relative: the local service reaching into the engine's errors
        (("localbatch/store.py", "from ..errors import BspecError"), "bspec.errors"),
        # relative: the planner reaching a provider
        (("planning.py", "from .providers import inspection"), "bspec.providers"),
        # absolute: the library API importing the CLI
        (("api.py", "from bspec.cli import out"), "bspec.cli"),
        # absolute: the model importing a layer above it
        (("model.py", "import bspec.reporting.plan"), "bspec.reporting"),
        # the engine importing the local service's code
        (("targets.py", "from bspec.localbatch import server"), "bspec.localbatch"),
        # azure outside the providers and targets
        (("watching.py", "import azure.core.exceptions"), "azure"),
    ],
    ids=["localbatch-relative", "planning-relative", "api-cli", "model-up", "localbatch", "azure"],
)
def test_a_violating_import_breaks_the_contract(
    tmp_path: Path, bad: tuple[str, str], says: str
) -> None:
    done = _lint(tmp_path, bad)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "BROKEN" in done.stdout
    assert says in done.stdout
