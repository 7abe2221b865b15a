"""`bspec init --template nightly`: a scheduled job's project; its spec validates and its scripts count and add up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from bspec.cli import main
from bspec.spec import load


def test_nightly_scaffold_is_a_schedule_whose_scripts_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "night-shift"
    main(["init", str(project), "--template", "nightly", "--json"])
    files = json.loads(capsys.readouterr().out)["files"]
    assert sorted(files) == ["bspec.yaml", "count.py", "data/fox.txt", "data/night.txt", "total.py"]
    spec = project / "bspec.yaml"
    text = spec.read_text("utf-8")
    assert "preparation:" in text and "onExit:" in text and "schedule:" in text
    desired = load(spec)
    (schedule,) = desired.more.values()
    assert [s.id for s in schedule] == ["night-shift-job"]
    assert desired.jobs == ()

    counts = project / "counts" / "night-shift-job:job-1"
    counts.mkdir(parents=True)
    for name in ("fox", "night"):
        subprocess.run(
            [sys.executable, "count.py", f"data/{name}.txt", str(counts / f"{name}.count")],
            cwd=project,
            check=True,
        )
    total = subprocess.run(
        [sys.executable, "total.py", "counts"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    )
    assert total.stdout.strip() == "2 files, 17 words"


def test_render_says_the_files_are_fixed_at_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "nights"
    main(["init", str(project), "--template", "nightly"])
    spec = project / "bspec.yaml"
    capsys.readouterr()
    main(["render", str(spec)])
    text = capsys.readouterr().out
    assert "schedule/nights-job  pool=nights-pool every P1D" in text
    assert "files added later reach the runs only after the next `bspec apply`" in text
    assert "outputFile: *.count -> results/$AZ_BATCH_JOB_ID" in text
    main(["render", str(spec), "--json"])
    (schedule,) = json.loads(capsys.readouterr().out)["schedules"]
    assert "fixed when the spec is applied" in schedule["note"]
    assert [t["id"] for t in schedule["tasks"]] == ["count-fox", "count-night", "total"]
