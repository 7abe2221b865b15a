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


def test_a_plan_saved_by_an_older_bspec_is_refused_clearly(tmp_path: Path) -> None:
    """Version 2 (issue 9) changed the props a plan is based on: version 1 files are refused
    with a message that says to plan again (exit 2), never applied."""
    import json

    from bspec.errors import InputError
    from bspec.saved_plan import PLAN_FORMAT, PLAN_VERSION, load

    old = tmp_path / "plan.json"
    old.write_text(json.dumps({"format": PLAN_FORMAT, "version": 1}))
    assert PLAN_VERSION == 2
    with pytest.raises(InputError, match=r"saved plan version 1 is not supported.*plan again") as e:
        load(old)
    assert e.value.exit_code == 2
