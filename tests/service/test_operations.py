"""The operations layer with a reporter of its own, as a web dashboard would call it: every
word comes through the reporter (nothing on stdout or stderr), the question `destroy`
asks reaches it without a terminal, and the results are the --json objects."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from bspec import operations
from bspec.errors import ConfirmationError
from engine_support import Stack

pytestmark = pytest.mark.service


class RecordingProgress:
    def __init__(self, said: list[str], counts: list[tuple[str, int, int]]) -> None:
        self.said, self.counts = said, counts

    @contextmanager
    def running(self) -> Iterator[RecordingProgress]:
        yield self

    def say(self, text: str) -> None:
        self.said.append(text)

    def update(
        self, job_id: str, total: int, counts: dict[str, int], *, final: bool = False
    ) -> None:
        self.counts.append((job_id, total, counts["completed"]))


class Recorder:
    """A reporter that keeps everything; `answer` is what a person would click."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.shown: list[str] = []
        self.notes: list[str] = []
        self.questions: list[str] = []
        self.said: list[str] = []
        self.counts: list[tuple[str, int, int]] = []

    def show(self, line: str) -> None:
        self.shown.append(line)

    def write(self, text: str) -> None:
        self.shown.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def confirm(self, question: str, *, declined: str, no_terminal_hint: str) -> None:
        self.questions.append(question)
        if not self.answer:
            raise ConfirmationError(declined)

    def progress(self) -> RecordingProgress:
        return RecordingProgress(self.said, self.counts)


@pytest.fixture
def stack(
    local_services: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    unique_id: Callable[[str], str],
) -> Stack:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    name = unique_id("ops")
    s = Stack(tmp_path / name, name)
    s.files = {"a.txt": "one two", "b.txt": "three"}
    s.nodes = 1
    s.write()
    return s


def test_a_reporter_of_its_own_gets_every_word(
    stack: Stack, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = Recorder()
    applied = operations.apply(stack.spec, rec, wait=True, wait_timeout=120)
    assert applied.exit_code == 0
    assert applied.plan is not None and not applied.plan.empty()
    assert rec.questions == ["Apply these changes?"]
    assert any(line.startswith("Apply complete: ") for line in rec.shown)
    assert "Tasks: 2 succeeded, 0 failed." in rec.shown
    assert rec.said[0] == "Waiting for 2 tasks to complete"
    assert rec.counts[-1] == (stack.job_id, 2, 2)
    assert applied.data["outcome"]["tasks"]["succeeded"] == 2

    status = operations.status(stack.spec, Recorder())
    assert status.data["jobs"][0]["taskCounts"]["succeeded"] == 2

    declined = Recorder(answer=False)
    with pytest.raises(ConfirmationError):
        operations.destroy(stack.spec, declined)
    assert declined.questions == [
        f"Delete job {stack.job_id}, pool {stack.pool_id} and containers {stack.name}-input,"
        f" {stack.name}-output, {stack.name}-bspec with their blobs (task logs included)?"
    ]
    done = operations.destroy(stack.spec, Recorder())
    assert done.data["applied"] is True
    assert capfd.readouterr().out == ""  # nothing went around the reporter to stdout
