"""What every operation starts with: read the spec, choose the target, connect, and close
the connection however the operation ends; and the result every operation returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.model import DesiredState, Plan
from bspec.spec import load, parse_var_flags
from bspec.targets import Target, choose, connect

# Spec vars: a mapping of typed values (the library), or NAME=VALUE flags (the CLI's --var).
Vars = Mapping[str, Any] | Sequence[str] | None


@dataclass
class Outcome:
    """What an operation did: its --json object (without formatVersion), the exit code
    the CLI ends with, and the plan for the operations that make one."""

    data: dict[str, Any] = field(default_factory=dict)
    exit_code: int = 0
    plan: Plan | None = None


def spec_vars(vars: Vars) -> dict[str, Any]:
    """Vars as the renderer takes them; flags are typed as YAML 1.2."""
    if vars is None:
        return {}
    if isinstance(vars, Mapping):
        return dict(vars)
    return parse_var_flags(list(vars))


def load_stack(spec: Path, vars: Vars, target: str | None) -> tuple[DesiredState, str]:
    """The rendered spec and the target it runs on (--target, BSPEC_TARGET, the spec, local)."""
    desired = load(Path(spec), spec_vars(vars))
    return desired, choose(target, desired.target)


@contextmanager
def connected(desired: DesiredState, target: str) -> Iterator[Target]:
    """The stack's providers on `target` (starting the local services when needed),
    closed on the way out."""
    tgt = connect(target, desired.stack)
    try:
        yield tgt
    finally:
        tgt.close()


@contextmanager
def opened(spec: Path, vars: Vars, target: str | None) -> Iterator[tuple[DesiredState, Target]]:
    """Load -> choose the target -> connect -> close, for the operations that need no
    more than that between the steps."""
    desired, name = load_stack(spec, vars, target)
    with connected(desired, name) as tgt:
        yield desired, tgt
