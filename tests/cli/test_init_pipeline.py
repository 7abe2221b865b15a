"""`bspec init --template pipeline` and specs/pipeline.yaml (issue 13): two pools, the `queue`
autoscale preset on a Spot pool, a container step and a reduce step.

The files are written now; that they validate needs the autoscale and container parts of the
spec language, built on other branches: those tests skip, with the reason, until the schema
has them (the lead unguards them after merging)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bspec.cli import main
from bspec.spec import load, schema

REPO = Path(__file__).resolve().parents[2]


def missing_features() -> list[str]:
    """The spec features specs/pipeline.yaml uses that this schema lacks."""
    defs = schema()["$defs"]
    pool = defs.get("pool", {}).get("properties", {})
    task = defs.get("task", {}).get("properties", {})
    wanted = {
        "pool autoscale": "autoscale" in pool,
        "pool containers": "containers" in pool,
        "task container": "container" in task,
    }
    return [name for name, present in wanted.items() if not present]


needs_features = pytest.mark.skipif(
    bool(missing_features()),
    reason="needs autoscale presets and container tasks: merged later"
    f" (missing: {', '.join(missing_features())})",
)


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


@needs_features
def test_pipeline_scaffold_validates(tmp_path: Path) -> None:
    main(["init", str(tmp_path / "p"), "-t", "pipeline", "--name", "pipe-1"])
    d = load(tmp_path / "p" / "bspec.yaml")
    assert [(p.key, p.id) for p in d.pools] == [("prep", "pipe-1-prep"), ("main", "pipe-1-main")]
    assert len(d.tasks) == 7


@needs_features
def test_pipeline_spec_validates() -> None:
    d = load(REPO / "specs" / "pipeline.yaml")
    assert [(p.key, p.id) for p in d.pools] == [
        ("prep", "pipeline-prep"),
        ("main", "pipeline-main"),
    ]
    assert [(j.id, j.pool_id) for j in d.jobs] == [
        ("pipeline-prep", "pipeline-prep"),
        ("pipeline-count", "pipeline-main"),
    ]
    assert len(d.tasks) == 7
