"""What bspec sends to Batch, built without a service: SAS least privilege, the logs
output files, the fingerprint, chunks of at most 100 tasks under 1 MB, durations."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from bspec.kinds import task as task_kind
from bspec.model import OutputFileSpec, Resource, ResourceFileSpec, TaskConstraintsSpec, TaskSpec
from bspec.providers.adapters import waves as _waves
from bspec.providers.batch import (
    MAX_CHUNK_BYTES,
    BatchProvider,
    _chunks,
    iso_duration,
    parse_duration,
)

ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


def fake_sas(key: str, blob: str | None, perm: str) -> str:
    where = f"{key}/{blob}" if blob else key
    return f"{ACCOUNT}/{where}?sp={perm}&sig=SECRET"


def provider() -> BatchProvider:
    return BatchProvider(client=None, blob_base=ACCOUNT, stack="s")  # type: ignore[arg-type]


def test_task_body() -> None:
    t = TaskSpec(
        "j",
        "t1",
        "echo hi",
        "v1:abc",
        resource_files=(ResourceFileSpec("input", "a.txt"), ResourceFileSpec("code")),
        output_files=(OutputFileSpec("*.out", "output"),),
        environment=(("A", "1"),),
        depends_on=("t0",),
        depends_on_ranges=((1, 3),),
        constraints=TaskConstraintsSpec(timedelta(minutes=5), None, 2),
    )
    names = {"input": "input", "code": "code", "output": "output"}
    task = Resource(t.address, task_kind.props_of(t, names, "_bspec"))
    body: dict[str, Any] = provider().task_body(task, fake_sas)
    assert body["resourceFiles"] == [
        {"httpUrl": f"{ACCOUNT}/input/a.txt?sp=r&sig=SECRET", "filePath": "a.txt"},
        {"storageContainerUrl": f"{ACCOUNT}/code?sp=rl&sig=SECRET"},
    ]
    outs = body["outputFiles"]
    assert outs[0] == {
        "filePattern": "*.out",
        "destination": {"container": {"containerUrl": f"{ACCOUNT}/output?sp=cw&sig=SECRET"}},
        "uploadOptions": {"uploadCondition": "tasksuccess"},
    }
    assert [
        (
            o["filePattern"],
            o["destination"]["container"]["path"],
            o["uploadOptions"]["uploadCondition"],
        )
        for o in outs[1:]
    ] == [
        ("../stdout.txt", "logs/j/t1/stdout.txt", "taskcompletion"),
        ("../stderr.txt", "logs/j/t1/stderr.txt", "taskcompletion"),
    ]
    assert body["environmentSettings"] == [
        {"name": "A", "value": "1"},
        {"name": "BSPEC_FINGERPRINT", "value": "v1:abc"},
    ]
    assert body["constraints"] == {"maxTaskRetryCount": 2, "maxWallClockTime": "PT5M"}
    assert body["dependsOn"] == {"taskIds": ["t0"], "taskIdRanges": [{"start": 1, "end": 3}]}


def test_resource_files_read_back_as_sources() -> None:
    p = provider()
    assert p.source_of(f"{ACCOUNT}/input/dir/a%20b.txt?sv=1&sig=x") == "input/dir/a b.txt"
    assert p.source_of(f"{ACCOUNT}/code?sp=rl&sig=x") == "code"


def test_chunks_hold_at_most_100_tasks_under_1_mb() -> None:
    small = [{"id": f"t{i}", "commandLine": "x"} for i in range(250)]
    assert [len(c) for c in _chunks(small)] == [100, 100, 50]
    big = [{"id": f"t{i}", "commandLine": "x" * 100_000} for i in range(30)]
    chunks = list(_chunks(big))
    assert all(len(json.dumps({"value": c})) < MAX_CHUNK_BYTES for c in chunks)
    assert sum(len(c) for c in chunks) == 30


def test_dependencies_are_submitted_after_what_they_wait_for() -> None:
    tasks = [
        TaskSpec("j", "reduce", "x", "v1:r", depends_on=("a", "b")),
        TaskSpec("j", "a", "x", "v1:a"),
        TaskSpec("j", "b", "x", "v1:b", depends_on=("a",)),
        TaskSpec("j", "c", "x", "v1:c", depends_on=("elsewhere",)),
    ]
    waves = _waves([Resource(t.address, task_kind.props_of(t, {}, "")) for t in tasks])
    assert [[t.address.parts[1] for t in w] for w in waves] == [["a", "c"], ["b"], ["reduce"]]


@pytest.mark.parametrize("seconds", [0.5, 59, 300, 5400, 86400 * 3 + 61])
def test_durations_round_trip(seconds: float) -> None:
    td = timedelta(seconds=seconds)
    assert parse_duration(iso_duration(td)) == td
