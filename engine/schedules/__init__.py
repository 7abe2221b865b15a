"""bspec's job manager for scheduled jobs (`jobmanager.py`), shipped as package data: the
provider uploads it beside each schedule's task collection and Batch runs it as the first
task of every run. It imports only the standard library: it runs on the pool's nodes."""

from __future__ import annotations

from importlib import resources

SCRIPT = "jobmanager.py"


def script_bytes() -> bytes:
    """The job manager script as it is uploaded."""
    return resources.files(__name__).joinpath(SCRIPT).read_bytes()


__all__ = ["SCRIPT", "script_bytes"]
