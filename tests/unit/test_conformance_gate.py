"""Conformance is never silently off: without the official definition, the tests that check
requests and answers against it skip with a visible reason, and under CI they fail."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

SERVICE_TESTS = Path(__file__).resolve().parents[1] / "service"


@cache
def _reference_module() -> ModuleType:
    """tests/service/reference.py, loaded under its own name (not a conftest here)."""
    spec = importlib.util.spec_from_file_location(
        "conformance_gate_reference", SERVICE_TESTS / "reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("value", "ci"),
    [("true", True), ("1", True), ("True", True), ("", False), ("false", False), ("0", False)],
)
def test_under_ci(value: str, ci: bool) -> None:
    assert _reference_module().under_ci({"CI": value}) is ci
    assert _reference_module().under_ci({}) is False


def test_present_definition_passes_everywhere(tmp_path: Path) -> None:
    ref = _reference_module()
    present = tmp_path / "definition.json"
    present.write_text("{}")
    ref.require_definition(present, {"CI": "true"})
    ref.require_definition(present, {})


def test_missing_definition_skips_locally_and_fails_under_ci(tmp_path: Path) -> None:
    ref = _reference_module()
    missing = tmp_path / "shared" / "reference" / "definition.json"
    with pytest.raises(pytest.skip.Exception, match=r"not at .*definition\.json"):
        ref.require_definition(missing, {"CI": "false"})
    with pytest.raises(pytest.fail.Exception, match=re.escape(f"not at {missing}") + ".*under CI"):
        ref.require_definition(missing, {"CI": "true"})


CONFTEST = """
import sys
from pathlib import Path

sys.path.insert(0, {service!r})
import reference as reference_module
from reference import reference

reference_module.SPEC_FILE = Path({missing!r})
"""

TESTS = """
def test_through_the_fixture(reference):
    assert reference.operations

def test_through_load_reference():
    from reference import load_reference
    assert load_reference().operations
"""


def _run_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    missing = tmp_path / "shared" / "reference" / "azure-batch.json"
    (tmp_path / "conftest.py").write_text(
        CONFTEST.format(service=str(SERVICE_TESTS), missing=str(missing))
    )
    (tmp_path / "test_conformance.py").write_text(TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    if ci is not None:
        env["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-ra", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_suite_without_the_definition_skips_with_the_reason(tmp_path: Path) -> None:
    result = _run_suite(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    assert "SKIPPED" in result.stdout and str(tmp_path / "shared" / "reference") in result.stdout


def test_a_suite_under_ci_without_the_definition_fails_naming_the_path(tmp_path: Path) -> None:
    result = _run_suite(tmp_path, ci="true")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 passed" not in result.stdout and "skipped" not in result.stdout
    assert f"not at {tmp_path / 'shared' / 'reference' / 'azure-batch.json'}" in result.stdout
