"""bspec: a declarative runner for Azure Batch.

One spec describes the containers, files, pool, jobs and templated tasks; a reconcile
engine diffs it against what Batch and Blob Storage hold and applies only the difference.

As a library: `bspec.load`, `bspec.plan`, `bspec.apply`, `bspec.destroy`, `bspec.status`
(and `bspec.wait`, `bspec.outputs`, `bspec.logs`) return what the commands print with
`--json`; see `bspec.api`. They are imported on first use, so `import bspec` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = ("load", "plan", "apply", "destroy", "status", "wait", "outputs", "logs")

if TYPE_CHECKING:
    from bspec.api import apply, destroy, load, logs, outputs, plan, status, wait


def __getattr__(name: str) -> Any:
    if name in _API:
        from bspec import api

        return getattr(api, name)
    raise AttributeError(f"module 'bspec' has no attribute {name!r}")


__all__ = ["__version__", "apply", "destroy", "load", "logs", "outputs", "plan", "status", "wait"]
