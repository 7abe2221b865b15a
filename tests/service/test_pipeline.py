"""specs/pipeline.yaml and `bspec init --template pipeline` validate, and the spec is applied
for real on a private local service whose clock is stepped (issue 13): a preprocessing step
on a Spot pool that the `queue` autoscale preset sizes, a container step on a second pool
(busybox imported into the service's podman storage, no registry), and a reduce step.

The container step is skipped with the reason where podman or busybox-static is missing."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import test_pool_autoscale
from bspec.cli import main
from bspec.spec import load
from engine_support import copy_spec, run_json
from test_localbatch_restart import Server

REPO = Path(__file__).resolve().parents[2]
step = test_pool_autoscale.step


@pytest.fixture
def manual(tmp_path: Path, azurite: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A private manual-clock service (deletes at once: no clock to wait on) that bspec
    reaches as its azure target."""
    with Server(tmp_path / "home", "--clock", "manual", "--delete-delay", "0").running() as srv:
        account = json.loads((srv.home / "account.json").read_text())
        monkeypatch.setenv("AZURE_BATCH_ENDPOINT", srv.url)
        monkeypatch.setenv("AZURE_BATCH_ACCOUNT", account["name"])
        monkeypatch.setenv("AZURE_BATCH_ACCESS_KEY", account["key"])
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        monkeypatch.setenv("BSPEC_TARGET", "azure")
        yield srv
IMAGE = "localhost/bspec-busybox:test"


@pytest.fixture
def busybox(manual: Server, tmp_path: Path) -> str:
    """The busybox image in the private service's podman storage."""
    from bspec.common import podman as common
    from test_podman_runtime import BUSYBOX, _static, busybox_rootfs

    reason = common.available()
    if reason is not None:
        pytest.skip(f"podman not installed: apt-get install podman runc ({reason})")
    if not BUSYBOX.exists() or not _static(BUSYBOX):
        pytest.skip("busybox-static not installed: apt-get install busybox-static")
    store = common.ensure_config(manual.home)
    return common.import_tarball(store, busybox_rootfs(tmp_path), IMAGE)


@pytest.mark.slow
def test_pipeline_runs_on_two_pools(
    manual: Server,
    busybox: str,
    tmp_path: Path,
    unique_id: Callable[[str], str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = unique_id("pipe")
    folder = tmp_path / "specs"
    shutil.copytree(REPO / "specs" / "pipeline", folder / "pipeline")
    spec = copy_spec(REPO / "specs" / "pipeline.yaml", folder / "pipeline.yaml", "pipeline", name)
    image = ["--var", f"image={busybox}"]
    try:
        code, applied = run_json(capsys, "apply", str(spec), "--yes", "--no-wait", *image)
        assert code == 0, applied
        # The preset's first evaluation saw no tasks: its next one (the service's clock
        # stepped by the interval) sizes the Spot pool to the queue.
        step(manual, "PT5M")
        code, waited = run_json(capsys, "wait", str(spec), "--timeout", "240", *image)
        assert code == 0, waited
        assert (waited["tasks"]["succeeded"], waited["tasks"]["failed"]) == (7, 0)
        summary = (tmp_path / "out" / "pipeline" / "summary.csv").read_text().splitlines()
        assert summary[0] == "text,words"
        assert sorted(summary[1:]) == ["dickens,24", "lincoln,19", "melville,19"]
        assert sorted(p.name for p in (tmp_path / "out" / "pipeline" / "clean").iterdir()) == [
            "dickens.words",
            "lincoln.words",
            "melville.words",
        ]
        code, again = run_json(capsys, "plan", str(spec), *image)
        assert (code, again["changes"]) == (0, [])
        # Reads only: pools, jobs, a page of tasks per job and the prep pool's formula
        # evaluated now (Batch); the containers and a list per container (Storage).
        assert again["requests"] == {
            "batch": {"read": 5, "write": 0},
            "storage": {"read": 5, "write": 0},
        }
    finally:
        run_json(capsys, "destroy", str(spec), "--yes", *image)


def test_pipeline_scaffold_validates(tmp_path: Path) -> None:
    main(["init", str(tmp_path / "p"), "-t", "pipeline", "--name", "pipe-1"])
    d = load(tmp_path / "p" / "bspec.yaml")
    assert [(p.key, p.id) for p in d.pools] == [("prep", "pipe-1-prep"), ("main", "pipe-1-main")]
    assert len(d.tasks) == 7


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
