"""`bspec validate`, `render` and `schema` as a user runs them: output, --json, exit codes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bspec.cli import main
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]
TOPWORDS = REPO / "specs" / "topwords.yaml"
OUTPUT_SCHEMA = Draft202012Validator(json.loads((REPO / "schema" / "output.schema.json").read_text()))


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = 0
    try:
        main(args)
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def json_of(out: str, shape: str) -> dict[str, object]:
    data = json.loads(out)
    assert not list(OUTPUT_SCHEMA.iter_errors(data))
    sub = Draft202012Validator({"$ref": f"#/$defs/{shape}", **OUTPUT_SCHEMA.schema})
    assert not list(sub.iter_errors(data)), shape
    return data  # type: ignore[no-any-return]


def test_validate_prints_a_one_screen_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["validate", str(TOPWORDS)], capsys)
    assert code == 0 and err == ""
    assert "valid (stack topwords)" in out
    assert "topwords-input" in out and "3 file(s)" in out
    assert "topwords-pool" in out and "2 node(s)" in out
    assert "topwords-job" in out and "3 task(s)" in out
    assert len(out.splitlines()) < 25


def test_validate_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["validate", str(TOPWORDS), "--json"], capsys)
    data = json_of(out, "validate")
    assert code == 0
    assert data["tasks"] == 3
    assert data["containers"][1] == {"key": "input", "name": "topwords-input", "files": 3,  # type: ignore[index]
                                     "bytes": sum(p.stat().st_size for p in
                                                  (REPO / "specs/topwords/data").glob("*.txt"))}


def test_render_json_is_the_desired_state_without_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["render", str(TOPWORDS), "--json", "--var", "numwords=7"], capsys)
    data = json_of(out, "render")
    assert code == 0
    tasks = data["jobs"][0]["tasks"]  # type: ignore[index]
    assert [t["id"] for t in tasks] == ["topN-taskdata1", "topN-taskdata2", "topN-taskdata3"]
    assert all("--numwords 7" in t["commandLine"] for t in tasks)
    assert tasks[0]["resourceFiles"] == [{"container": "input", "blob": "taskdata1.txt"}]
    assert data["vars"] == {"numwords": 7}
    assert "sig=" not in out and "http" not in out


def test_render_human_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["render", str(REPO / "specs" / "sweep.yaml")], capsys)
    assert code == 0
    assert out.count("task/sweep-job/") == 19
    assert "dependsOn:" in out


def test_schema_prints_the_spec_schema(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["schema"], capsys)
    assert code == 0
    assert json.loads(out) == json.loads((REPO / "schema" / "bspec.schema.json").read_text())


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["validate", "missing.yaml"], "no such file"),
        (["validate", "."], "directory"),
        (["validate", str(TOPWORDS), "--var", "oops"], "NAME=VALUE"),
        (["render", str(TOPWORDS), "--var", "numwords"], "NAME=VALUE"),
        (["validate"], "Missing argument"),
    ],
)
def test_bad_input_exits_2_with_one_message(args: list[str], fragment: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(args, capsys)
    assert code == 2
    assert fragment in err and "Traceback" not in err and out == ""
    code, out, _ = run([*args, "--json"], capsys)
    assert code == 2
    assert fragment in json_of(out, "error")["error"]["message"]  # type: ignore[index]


def test_nothing_is_written_anywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(REPO / "specs", tmp_path / "specs")
    bad = tmp_path / "specs" / "bad.yaml"
    bad.write_text(TOPWORDS.read_text().replace("vmSize", "vmsize"))
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert run(["validate", "specs/topwords.yaml"], capsys)[0] == 0
    assert run(["render", "specs/topwords.yaml", "--json"], capsys)[0] == 0
    code, _, err = run(["validate", "specs/bad.yaml"], capsys)
    assert code == 2 and "did you mean 'vmSize'" in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_the_console_script_reports_spec_errors_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: bspec/v1\nname: x\npool: 3\n")
    bspec = Path(sys.executable).with_name("bspec")
    proc = subprocess.run([str(bspec), "validate", str(bad)], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1"}, check=False)
    assert proc.returncode == 2
    assert f"{bad}:3:7: $.pool: expected a mapping" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("case", "limit"),
    [
        ("47-template-loop-steps", "limit of 100,000 steps per template"),
        ("48-template-macro-recursion", "nest deeper than the limit of 50"),
        ("49-template-center-width", "over the limit of 1,000,000 characters per template"),
        ("55-task-request-too-large", "over Batch's limit of 1,000,000 for adding tasks"),
    ],
)
def test_a_spec_over_a_limit_is_one_clear_error(case: str, limit: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """`bspec validate` as a user runs it: the file, line, JSON path and limit; exit 2; and
    nothing written (a spec over a limit never gets as far as planning)."""
    corpus = REPO / "tests" / "unit" / "invalid"
    shutil.copytree(corpus / "data", tmp_path / "data")
    spec = tmp_path / f"{case}.yaml"
    spec.write_text((corpus / f"{case}.yaml").read_text())
    path = spec.read_text().splitlines()[0].removeprefix("# path: ")
    line = next(i for i, t in enumerate(spec.read_text().splitlines(), 1) if t.endswith("# ERROR"))
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    code, out, err = run(["validate", str(spec)], capsys)
    assert code == 2 and out == ""
    assert f"{spec}:{line}:" in err and path in err and limit in err
    assert "Traceback" not in err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before
