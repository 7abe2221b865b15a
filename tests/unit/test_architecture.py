"""The import walls of DESIGN.md, checked on the source: azure.* only in providers/ and
targets.py; the engine never imports bspec.localbatch; localbatch imports nothing of bspec
outside itself but the shared pure package bspec.common."""

from __future__ import annotations

import ast
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _sources() -> list[Path]:
    return sorted(p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(p: Path) -> str:
    return p.relative_to(ENGINE).as_posix()


def test_azure_is_imported_only_by_providers_and_targets() -> None:
    bad = [
        f"{_rel(p)} imports {name}"
        for p in _sources()
        if not (
            _rel(p).startswith("providers/")
            or _rel(p) == "targets.py"
            or _rel(p).startswith("localbatch/")
        )
        for name in _imports(p)
        if name == "azure" or name.startswith("azure.")
    ]
    assert bad == []


def test_engine_never_imports_localbatch() -> None:
    """The engine reaches the local service over HTTP only; what both need is in bspec.common."""
    bad = [
        f"{_rel(p)} imports {name}"
        for p in _sources()
        if not _rel(p).startswith("localbatch/")
        for name in _imports(p)
        if name.startswith("bspec.localbatch")
    ]
    assert bad == []


def test_localbatch_imports_nothing_of_the_engine() -> None:
    bad = [
        f"{_rel(p)} imports {name}"
        for p in _sources()
        if _rel(p).startswith("localbatch/")
        for name in _imports(p)
        if (name == "bspec" or name.startswith("bspec."))
        and not name.startswith(("bspec.localbatch", "bspec.common"))
    ]
    assert bad == []


def test_planning_is_pure() -> None:
    """planning.py does no I/O: it imports only the model, the errors and the stdlib's pure parts."""
    allowed = {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "typing",
        "bspec.errors",
        "bspec.model",
    }
    assert set(_imports(ENGINE / "planning.py")) <= allowed


def test_common_imports_nothing_of_bspec() -> None:
    """bspec.common is shared by both sides, so it depends on neither."""
    bad = [
        f"{_rel(p)} imports {name}"
        for p in _sources()
        if _rel(p).startswith("common/")
        for name in _imports(p)
        if (name == "bspec" or name.startswith("bspec.")) and not name.startswith("bspec.common")
    ]
    assert bad == []
