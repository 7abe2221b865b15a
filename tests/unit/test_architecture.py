"""The import walls of DESIGN.md, checked on the source: azure.* only in providers/ and
targets.py; the engine never imports bspec.localbatch; localbatch imports nothing of bspec
outside itself but the shared pure package bspec.common. Relative imports are resolved
to absolute names, so `from ..errors import X` counts as `bspec.errors`. (import-linter's
contract in pyproject.toml checks the layers; see test_import_contract.py.)"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "engine"


def _module(path: Path) -> str:
    """The dotted name of an engine file (engine/ is the package bspec)."""
    parts = ["bspec", *path.relative_to(ENGINE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, source: str | None = None) -> list[str]:
    """Every module the file imports, relative imports resolved against its package."""
    text = path.read_text(encoding="utf-8") if source is None else source
    tree = ast.parse(text, str(path))
    package = _module(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.append(str(node.module))
                continue
            base = ".".join(package[: len(package) - (node.level - 1)])
            if node.module:
                names.append(f"{base}.{node.module}")
            else:  # from . import x: x may be a module of the package
                names.extend(f"{base}.{a.name}" for a in node.names)
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


def test_relative_imports_are_resolved() -> None:
    """`from ..errors import X` inside localbatch/ is an import of bspec.errors."""
    path = ENGINE / "localbatch" / "store.py"
    source = "from ..errors import BspecError\nfrom . import odata\nfrom .agent import x\n"
    assert _imports(path, source) == [
        "bspec.errors",
        "bspec.localbatch.odata",
        "bspec.localbatch.agent",
    ]
    init = ENGINE / "providers" / "__init__.py"
    assert _imports(init, "from .batch import B\nfrom ..model import M\n") == [
        "bspec.providers.batch",
        "bspec.model",
    ]


def test_the_localbatch_contract_lists_every_engine_module() -> None:
    """import-linter's localbatch contract forbids each of bspec's other modules by name;
    a module added to the engine must be added there too."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}
    forbidden = set(contracts["localbatch-alone"]["forbidden_modules"])
    children = {
        f"bspec.{p.stem if p.is_file() else p.name}"
        for p in ENGINE.iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert forbidden == children - {"bspec.localbatch", "bspec.common"}
