"""`bspec init --template pipeline` (issue 13): two pools, the `queue` autoscale preset on a
Spot pool, a container step and a reduce step. That the project validates is
tested in tests/service/test_pipeline.py."""

from __future__ import annotations

from pathlib import Path

from bspec.cli import main


def test_init_pipeline_writes_the_project(tmp_path: Path) -> None:
    main(["init", str(tmp_path / "p"), "-t", "pipeline", "--name", "pipe-1"])
    written = sorted(str(p.relative_to(tmp_path / "p")) for p in (tmp_path / "p").rglob("*"))
    assert written == [
        "README.md",
        "bspec.yaml",
        "data",
        "data/dickens.txt",
        "data/lincoln.txt",
        "data/melville.txt",
    ]
    spec = (tmp_path / "p" / "bspec.yaml").read_text()
    assert "name: pipe-1" in spec and "preset: queue" in spec and "pool: main" in spec
