"""What waiting, outputs and destroy say, without services: the destroy question,
--keep-storage, plain progress lines off a terminal, failure reports, output previews."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bspec.destroying import keep_containers
from bspec.downloads import OutputFile, OutputsResult, _inside
from bspec.model import Action, Address, Change, Plan, Resource
from bspec.reporting.destroy import destroy_question
from bspec.reporting.outputs import preview, render_outputs
from bspec.reporting.progress import Display
from bspec.reporting.tasks import render_result
from bspec.watching import NodeFailure, TaskOutcome, WatchResult


def _delete(addr: Address, name: str | None = None) -> Change:
    props = {"name": name} if name else {}
    return Change(Action.DELETE, addr, Resource(addr, props, owner="s"), None)


def _destroy_plan(containers: int = 2) -> Plan:
    changes = [_delete(Address.job("s-job")), _delete(Address.pool("s-pool"))]
    keys = ["input", "output", "results", "_bspec"][:containers]
    changes += [_delete(Address.container(k), f"s-{k}") for k in keys]
    return Plan("s", "local", tuple(changes))


@pytest.mark.parametrize(
    ("containers", "question"),
    [
        (0, "Delete job s-job and pool s-pool?"),
        (2, "Delete job s-job, pool s-pool and containers s-input, s-output with their blobs?"),
        (
            4,
            "Delete job s-job, pool s-pool and 4 containers with their blobs (task logs included)?",
        ),
    ],
)
def test_destroy_asks_about_what_it_deletes(containers: int, question: str) -> None:
    assert destroy_question(_destroy_plan(containers)) == question


def test_keep_storage_drops_only_containers() -> None:
    kept = keep_containers(_destroy_plan(4))
    assert [str(c.address) for c in kept.pending()] == ["job/s-job", "pool/s-pool"]
    assert destroy_question(kept) == "Delete job s-job and pool s-pool?"


def test_plain_progress_is_periodic_lines_without_control_characters(
    capsys: pytest.CaptureFixture[str],
) -> None:
    shown = Display(tty=False, interval=3600)
    counts = {"active": 3, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
    with shown.running():
        shown.update("job", 3, counts)
        shown.update("job", 3, counts)  # unchanged, not due: nothing
        shown.say("Waiting for 2 nodes to start (nodes starting)")
        done = {"active": 0, "running": 0, "completed": 3, "succeeded": 2, "failed": 1}
        shown.update("job", 3, done, final=True)
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "job: 0/3 completed (active 3, running 0, succeeded 0, failed 0)",
        "Waiting for 2 nodes to start (nodes starting)",
        "job: 3/3 completed (active 0, running 0, succeeded 2, failed 1)",
    ]
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", err)


def test_quiet_display_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    shown = Display(quiet=True)
    with shown.running():
        shown.say("x")
        shown.update(
            "job", 1, {"active": 1, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
        )
    assert capsys.readouterr() == ("", "")


def test_a_failure_report_names_task_exit_code_and_stderr_tail() -> None:
    w = WatchResult(
        succeeded=2,
        failed_count=3,
        failed=[
            TaskOutcome("job", "t1", 3, "exit code 3", "node-1", ["oops", "boom"]),
            TaskOutcome("job", "t2", 1, None, None, []),
        ],
    )
    lines = render_result(w)
    assert lines[0] == "Tasks: 2 succeeded, 3 failed."
    assert lines[1] == "  failed: task/job/t1 (exit code 3) on node node-1: exit code 3"
    assert lines[2:5] == ["    stderr (last 2 lines):", "    | oops", "    | boom"]
    assert "    (stderr is empty)" in lines
    assert any("1 more failed tasks" in x for x in lines)
    assert w.to_json()["failedTasks"][0]["stderrTail"] == ["oops", "boom"]
    assert "startTaskFailures" not in w.to_json()
    w.start_task_failures.append(NodeFailure("pool", "n1", 7, None, ["x"]))
    assert w.to_json()["startTaskFailures"][0]["nodeId"] == "n1"


def test_output_names_stay_inside_their_folder(tmp_path: Path) -> None:
    assert _inside(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()
    assert _inside(tmp_path, "../escape.txt") is None
    assert _inside(tmp_path, "/etc/passwd") is None
    assert _inside(tmp_path, "dir/") is None


def test_outputs_show_small_text_files(tmp_path: Path) -> None:
    small = tmp_path / "out" / "a_OUTPUT.txt"
    small.parent.mkdir()
    small.write_text("Top 3 words in a.txt:\nthe:\t43\nto:\t40\n")
    big = tmp_path / "out" / "big.bin"
    big.write_bytes(b"\0" * 10)
    assert preview(big) is None
    assert preview(small) == ["Top 3 words in a.txt:", "the:    43", "to:     40"]
    result = OutputsResult(
        [
            OutputFile(small.resolve(), "output", "a_OUTPUT.txt", True, 30),
            OutputFile(big.resolve(), "output", "big.bin", False, 10),
        ]
    )
    lines = render_outputs(result, base=tmp_path)
    assert lines[0] == "Outputs: 1 downloaded, 1 unchanged in out"
    assert lines[1:] == [
        "  out/a_OUTPUT.txt",
        "    Top 3 words in a.txt:",
        "    the:    43",
        "    to:     40",
    ]
    assert render_outputs(OutputsResult()) == ["Outputs: none yet."]


def test_task_output_shown_never_carries_a_sas_signature() -> None:
    from bspec.providers.inspection import lines_tail, text_of

    data = b"downloading https://acct/c/b.txt?sv=2025&sig=abc%2Bdef123&se=x\nok\n"
    assert "abc%2Bdef123" not in text_of(data)
    assert lines_tail(data, 1) == ["ok"]
    assert "sig=REDACTED" in lines_tail(data, 2)[0]


def test_on_a_terminal_each_job_gets_a_bar_with_its_counts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import io

    from bspec.reporting import console
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(console, "err", Console(file=screen, force_terminal=True, width=120))
    shown = Display(tty=True)
    with shown.running():
        shown.say("Waiting for 1 node to start (nodes starting)")
        for job, done in (("map-job", 3), ("reduce-job", 0)):
            counts = {
                "active": 1 - min(done, 1),
                "running": 0,
                "completed": done,
                "succeeded": done,
                "failed": 0,
            }
            shown.update(job, 3 if job == "map-job" else 1, counts)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert "Waiting for 1 node to start (nodes starting)" in text
    assert re.search(r"map-job .*3/3 active 0  running 0  succeeded 3  failed 0", text)
    assert re.search(r"reduce-job .*0/1 active 1  running 0  succeeded 0  failed 0", text)


def test_many_outputs_are_counted_not_listed(tmp_path: Path) -> None:
    files = [
        OutputFile((tmp_path / f"d{i % 5}" / f"f{i}.txt").resolve(), "output", f"f{i}", True, 1)
        for i in range(25)
    ]
    lines = render_outputs(OutputsResult(files), base=tmp_path, show_content=False)
    assert lines[0] == "Outputs: 25 downloaded, 0 unchanged in d0, d1, d2 and 2 more folders"
    assert len(lines) == 12 and lines[-1] == "  ... and 15 more files"
