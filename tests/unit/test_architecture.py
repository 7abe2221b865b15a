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
    """planning.py does no I/O: it imports only the model, the errors, the kinds and the
    stdlib's pure parts."""
    allowed = {
        "__future__",
        "collections.abc",
        "dataclasses",
        "datetime",
        "typing",
        "bspec.errors",
        "bspec.model",
        "bspec.kinds",
        "bspec.kinds.base",
    }
    assert set(_imports(ENGINE / "planning.py")) <= allowed


def test_kinds_are_pure() -> None:
    """The kinds (issue 9) do no I/O and import no Azure SDK: only the model, each other,
    the shared pure package and the stdlib's pure parts."""
    allowed = {
        "__future__",
        "collections",
        "collections.abc",
        "dataclasses",
        "datetime",
        "enum",
        "typing",
    }
    bad = [
        f"{_rel(p)} imports {name}"
        for p in _sources()
        if _rel(p).startswith("kinds/")
        for name in _imports(p)
        if name not in allowed
        and name != "bspec.model"
        and not name.startswith(("bspec.kinds", "bspec.common"))
    ]
    assert bad == []


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


def _private_uses(source: str, name: str) -> list[str]:
    """`x._name` where x is not self/cls: a private attribute of another object (an SDK
    client, a provider), e.g. `client._delete_pool_internal` or `batch._raw_list`. (`__self`
    is self in Jinja's `call` signature, which keeps the name free for keyword arguments.)"""
    out = []
    for node in ast.walk(ast.parse(source, name)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "__self"))
        ):
            out.append(f"{name}:{node.lineno}: .{node.attr}")
    return out


def test_no_private_sdk_or_provider_calls() -> None:
    """Public SDK API only (issue 9): no `client._...`, `._delete_...`, `._config` on SDK
    objects, and nothing above a provider reaches into its private methods. (The spec's
    Jinja undefined keeps one attribute of its own class.)"""
    allowed = {"spec/rendering.py: ._unknown"}
    bad = [
        hit
        for p in _sources()
        if not _rel(p).startswith("localbatch/")
        for hit in _private_uses(p.read_text(encoding="utf-8"), _rel(p))
        if hit.split(":")[0] + ": " + hit.split(": ")[-1] not in allowed
    ]
    assert bad == []


def test_the_private_call_check_catches_sdk_and_provider_calls() -> None:
    probe = "def f(c, batch):\n    c.client._delete_pool_internal('p')\n    batch._raw_list()\n"
    assert _private_uses(probe, "probe.py") == [
        "probe.py:2: ._delete_pool_internal",
        "probe.py:3: ._raw_list",
    ]


def test_every_kind_has_words_and_an_apply_step() -> None:
    """Adding a kind is its module plus the line in `kinds.KINDS`; the applier and
    `read_actual` must find its adapter too (issue 9), or the kind is half added."""
    from bspec.kinds import KINDS
    from bspec.model import Kind
    from bspec.providers.adapters import ADAPTERS

    assert [k.kind for k in KINDS] == list(Kind)
    assert set(ADAPTERS) == set(Kind)
    assert all(k.heading and k.noun and k.nouns for k in KINDS)


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
