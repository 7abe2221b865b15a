"""Saved plans round-trip the desired state exactly and refuse when stale."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from bspec import saved_plan
from bspec.errors import StalePlanError
from bspec.model import (
    ActualState,
    Address,
    BlobSpec,
    ContainerSpec,
    DesiredState,
    ImageSpec,
    JobConstraintsSpec,
    JobSpec,
    OutputFileSpec,
    PoolSpec,
    Resource,
    ResourceFileSpec,
    StartTaskSpec,
    TaskConstraintsSpec,
    TaskSpec,
    UploadCondition,
    WhenIdle,
)
from bspec.planning import basis, plan


def _desired(tmp_path: Path) -> DesiredState:
    f = tmp_path / "a.txt"
    f.write_text("hello")
    md5 = hashlib.md5(b"hello").hexdigest()
    return DesiredState(
        stack="s",
        spec_file=str(tmp_path / "s.yaml"),
        spec_hash="ab",
        vars={"n": 3, "x": "no"},
        target="local",
        containers=(ContainerSpec("input", "s-input"),),
        blobs=(BlobSpec("input", "a.txt", str(f), 5, md5),),
        pool=PoolSpec(
            "p",
            "standard_d2s_v3",
            ImageSpec("c", "u", "22", "n"),
            2,
            start_task=StartTaskSpec(
                "echo", (ResourceFileSpec("input"),), (("A", "1"),), elevated=True
            ),
            metadata=(("k", "v"),),
            when_idle=WhenIdle.SCALE_TO_ZERO,
        ),
        jobs=(
            JobSpec(
                "j",
                "p",
                constraints=JobConstraintsSpec(timedelta(hours=1), 2),
                uses_task_dependencies=True,
            ),
        ),
        tasks=(
            TaskSpec(
                "j",
                "t",
                "cat a.txt",
                "v1:x",
                (ResourceFileSpec("input", "a.txt"),),
                (OutputFileSpec("*.out", "input", when=UploadCondition.COMPLETION),),
                depends_on=("u",),
                depends_on_ranges=((1, 3),),
                constraints=TaskConstraintsSpec(timedelta(minutes=5)),
            ),
        ),
    )


def test_round_trip_and_freshness(tmp_path: Path) -> None:
    d = _desired(tmp_path)
    actual = ActualState({})
    p = plan(d, actual)
    path = tmp_path / "plan.json"
    saved_plan.save(path, p, d, basis(actual), adopt=False)
    assert saved_plan.is_saved_plan(path)
    loaded = saved_plan.load(path)
    assert loaded.desired == d
    assert "sig=" not in path.read_text()
    saved_plan.check_fresh(loaded, basis(actual))  # nothing changed: fine
    a = Address.pool("p")
    with pytest.raises(StalePlanError, match="pool/p"):
        saved_plan.check_fresh(loaded, basis(ActualState({a: Resource(a, {}, "s")})))
    (tmp_path / "a.txt").write_text("changed")
    with pytest.raises(StalePlanError, match="local file"):
        saved_plan.check_fresh(loaded, basis(actual))
