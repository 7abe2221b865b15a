"""`bspec init`: every scaffold writes a project whose spec validates and whose scripts work."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from bspec.cli import main
from bspec.model import Kind
from bspec.spec import load
from jsonschema import Draft202012Validator

TEMPLATES = ("nightly", "pipeline", "sweep", "topwords")
LISTED = TEMPLATES
REPO = Path(__file__).resolve().parents[2]


def check_output(data: dict[str, Any], definition: str) -> None:
    """The --json object matches its shape in schema/output.schema.json, and the whole schema."""
    schema = json.loads((REPO / "schema" / "output.schema.json").read_text("utf-8"))
    Draft202012Validator(schema).validate(data)
    one = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    Draft202012Validator(one).validate(data)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("template", TEMPLATES)
def test_each_scaffold_writes_a_spec_that_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], template: str
) -> None:
    project = tmp_path / f"My {template.title()}_Project"
    code, out, _ = run(capsys, "init", str(project), "--template", template, "--json")
    assert code == 0
    result = json.loads(out)
    check_output(result, "init")
    assert result["template"] == template
    assert result["name"] == f"my-{template}-project"
    assert "bspec.yaml" in result["files"]
    for rel in result["files"]:
        assert (project / rel).is_file(), rel
    assert not list(project.rglob("_*")), "scaffold metadata must not be copied"
    text = (project / "bspec.yaml").read_text("utf-8")
    assert "[[" not in text and "{{ item" in text  # init rendered its own markers only

    code, out, err = run(capsys, "validate", str(project / "bspec.yaml"))
    assert code == 0, err
    desired = load(project / "bspec.yaml")
    assert desired.stack == f"my-{template}-project"
    assert desired.pools and all(
        p.id.startswith(f"my-{template}-project") for p in desired.pools
    )
    # a scheduled job's tasks are its schedule's (each run gets them from the job manager)
    scheduled = [t for s in desired.of_kind(Kind("schedule")) for t in s.tasks]
    assert desired.tasks or scheduled


def test_topwords_scaffold_has_one_task_per_data_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "init", str(tmp_path / "words"))
    assert code == 0
    desired = load(tmp_path / "words" / "bspec.yaml")
    data = sorted(p.stem for p in (tmp_path / "words" / "data").glob("*.txt"))
    assert len(data) >= 3
    assert [t.id for t in desired.tasks] == [f"topN-{stem}" for stem in data]
    [output] = desired.jobs[0].outputs
    assert Path(output.to) == (tmp_path / "words" / "out").resolve()


def test_sweep_scaffold_reduce_depends_on_every_map_task_and_reads_their_container(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run(capsys, "init", str(tmp_path / "grid"), "-t", "sweep")
    assert code == 0
    desired = load(tmp_path / "grid" / "bspec.yaml")
    *maps, reduce = desired.tasks
    assert len(maps) == 16  # steps x dims x seeds: 2 x 2 x 4
    assert reduce.id == "reduce"
    assert set(reduce.depends_on) == {t.id for t in maps}
    assert desired.jobs[0].uses_task_dependencies
    map_containers = {o.container for t in maps for o in t.output_files}
    whole = [rf.container for rf in reduce.resource_files if rf.blob is None]
    assert map_containers == {"results"} and whole == ["results"]


def test_refuses_to_overwrite_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "p"
    project.mkdir()
    (project / "topwords.py").write_text("# mine\n", "utf-8")
    code, _, err = run(capsys, "init", str(project))
    assert code == 2
    assert "would overwrite topwords.py" in err and "--force" in err
    assert (project / "topwords.py").read_text("utf-8") == "# mine\n"
    assert not (project / "bspec.yaml").exists(), "nothing is written when anything clashes"

    code, _, _ = run(capsys, "init", str(project), "--force")
    assert code == 0
    assert (project / "topwords.py").read_text("utf-8") != "# mine\n"
    assert (project / "bspec.yaml").is_file()


def test_an_existing_directory_with_other_files_is_fine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("keep me", "utf-8")
    code, out, _ = run(capsys, "init", str(tmp_path), "--name", "demo-1")
    assert code == 0
    assert "stack 'demo-1'" in out
    assert (tmp_path / "notes.txt").read_text("utf-8") == "keep me"
    assert load(tmp_path / "bspec.yaml").stack == "demo-1"


def test_list_shows_every_template_with_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "init", "--list")
    assert code == 0
    lines = out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(LISTED)
    assert all(len(line.split()) > 3 for line in lines)

    code, out, _ = run(capsys, "init", "--list", "--json")
    assert code == 0
    check_output(json.loads(out), "initList")
    listed = json.loads(out)["templates"]
    assert [t["name"] for t in listed] == list(LISTED)
    assert all(t["description"] for t in listed)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--template", "nope"], "unknown template 'nope'"),
        (["--name", "Bad_Name"], "invalid project name"),
        ([], None),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str | None
) -> None:
    target = tmp_path / "new"
    argv = ["init", *([str(target)] if message else []), *args, "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 2
    check_output(json.loads(out), "error")
    error = json.loads(out)["error"]
    assert message is None or message in error["message"]
    assert not target.exists()


def _python(script: Path, *args: str, cwd: Path) -> str:
    env = {
        **os.environ,
        "AZ_BATCH_NODE_ID": "node-0",
        "AZ_BATCH_TASK_ID": "t1",
        "AZ_BATCH_JOB_ID": "j",
        "AZ_BATCH_POOL_ID": "p",
    }
    done = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout


def test_topwords_script_counts_words_like_an_independent_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "w"
    run(capsys, "init", str(project))
    sample = project / "data" / "two-cities.txt"
    _python(project / "topwords.py", "--filepath", str(sample), "--numwords", "3", cwd=tmp_path)
    lines = (tmp_path / "two-cities_OUTPUT.txt").read_text("utf-8").splitlines()
    counted = [line.split(":\t") for line in lines if ":\t" in line]
    # Independently, with a regex over the text: the three most common words, case kept.
    text = sample.read_text("utf-8")
    tally = {
        w: len(re.findall(rf"(?<![A-Za-z']){w}(?![A-Za-z'])", text))
        for w in set(re.findall(r"[A-Za-z']+", text))
    }
    top = sorted(tally.items(), key=lambda kv: -kv[1])[:3]
    assert [(w, int(c)) for w, c in counted] == top
    assert top[0][1] > top[1][1] > top[2][1] > sorted(tally.values())[-4]  # no ties
    assert "Node: node-0" in lines and "Pool: p" in lines


def test_sweep_scripts_map_then_reduce(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = tmp_path / "s"
    run(capsys, "init", str(project), "-t", "sweep")
    work = tmp_path / "work"
    work.mkdir()
    for steps in (10, 20):
        for seed in (0, 1):
            _python(
                project / "walk.py",
                "--steps",
                str(steps),
                "--dims",
                "2",
                "--seed",
                str(seed),
                "--walks",
                "5",
                cwd=work,
            )
    _python(project / "reduce.py", "--expect", "4", cwd=work)
    with (work / "summary.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [(r["steps"], r["dims"], r["seeds"]) for r in rows] == [
        ("10", "2", "2"),
        ("20", "2", "2"),
    ]
    with pytest.raises(subprocess.CalledProcessError) as failed:
        _python(project / "reduce.py", "--expect", "5", cwd=work)
    assert "expected 5 results, found 4" in failed.value.stderr
