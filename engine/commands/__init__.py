"""CLI command modules. Each registers its commands on `bspec.cli.app` when imported.

Modules are imported by name so that a feature's commands can land independently.
"""

from __future__ import annotations

import importlib
import pkgutil


def load_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")
