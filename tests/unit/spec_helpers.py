"""Small helpers the spec unit tests share: write a spec and its files into tmp_path."""

from __future__ import annotations

from pathlib import Path

from bspec.model import DesiredState
from bspec.spec import load

POOL = """pool:
  id: p
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu, sku: 22_04-lts, nodeAgentSku: batch.node.ubuntu 22.04}
"""


def write(tmp: Path, spec: str, files: dict[str, str] | None = None, name: str = "spec.yaml") -> Path:
    for rel, text in (files or {}).items():
        p = tmp / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    path = tmp / name
    path.write_text(spec)
    return path


def render(tmp: Path, spec: str, files: dict[str, str] | None = None, **overrides: object) -> DesiredState:
    return load(write(tmp, spec, files), overrides or None)
