"""Issue 5 on the local services: waiting (failures with stderr, start task failures,
timeouts, nodes starting), --rerun-failed, outputs, status, logs (from the node and from the
logs container after the pool is gone), destroy --keep-storage, and the library API.

The commands run as a user runs them (`bspec` subprocesses, whose stderr is a pipe, so
progress must come as plain lines), or in process through `bspec.*` where only the data
matters. Every --json object is checked against schema/output.schema.json.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bspec
import bspec.cli  # loads every command module, as `bspec` does
import pytest
from bspec.errors import NotFoundError, WaitTimeoutError
from jsonschema import Draft202012Validator

REPO = Path(__file__).resolve().parents[2]
BSPEC = str(Path(sys.executable).parent / "bspec")
SCHEMA = json.loads((REPO / "schema" / "output.schema.json").read_text("utf-8"))
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

IMAGE = (
    "{publisher: canonical, offer: 0001-com-ubuntu-server-jammy, sku: 22_04-lts,"
    " nodeAgentSku: batch.node.ubuntu 22.04}"
)


def _check(data: dict[str, Any], shape: str) -> None:
    errors = list(Draft202012Validator({**SCHEMA, "$ref": f"#/$defs/{shape}"}).iter_errors(data))
    assert not errors, [e.message for e in errors]
    assert not list(Draft202012Validator(SCHEMA).iter_errors(data))


@pytest.fixture
def env(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    yield local_services


class Project:
    """A spec in tmp_path with unique ids; `run` is the bspec command."""

    def __init__(self, folder: Path, name: str, services: Any) -> None:
        self.folder, self.name, self.services = folder, name, services
        self.spec = folder / "spec.yaml"
        self.job = f"{name}-job"
        self.pool = f"{name}-pool"

    def write(
        self,
        tasks: str,
        *,
        nodes: int = 1,
        start_task: str = "",
        storage: str = "    output: {}\n",
        outputs: str = "",
    ) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spec.write_text(
            "apiVersion: bspec/v1\n"
            f"name: {self.name}\n"
            "storage:\n  containers:\n"
            + storage
            + f"pool:\n  id: {self.pool}\n  vmSize: standard_d2s_v3\n  image: {IMAGE}\n"
            f"  nodes: {nodes}\n"
            + start_task
            + f"jobs:\n  - id: {self.job}\n    tasks:\n"
            + tasks
            + outputs,
            "utf-8",
        )
        return self.spec

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "BSPEC_HOME": str(self.services.home)}
        env.pop("BSPEC_TARGET", None)
        return subprocess.run(
            [BSPEC, args[0], str(self.spec), *args[1:]],
            cwd=self.folder,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )

    def destroy(self) -> None:
        done = self.run("destroy", "--yes")
        assert done.returncode == 0, done.stderr


@pytest.fixture
def project(env: Any, tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[Project]:
    p = Project(tmp_path / "p", unique_id("w"), env)
    try:
        yield p
    finally:
        if p.spec.exists():
            p.destroy()


FAILING = """\
      - id: bad
        commands:
          - echo to stdout
          - for i in $(seq 1 25); do echo "problem $i" >&2; done
          - exit 3
      - id: good
        commandLine: /bin/true
"""


def test_a_failed_task_is_reported_with_its_stderr_and_logs_outlive_the_pool(
    project: Project,
) -> None:
    project.write(FAILING)
    first = project.run("apply", "--yes")
    assert first.returncode == 1, first.stderr
    assert f"failed: task/{project.job}/bad (exit code 3)" in first.stdout
    assert "stderr (last 20 lines):" in first.stdout
    shown = re.findall(r"(?m)^    \| (problem \d+)$", first.stdout)
    assert shown == [f"problem {i}" for i in range(6, 26)]
    assert not CONTROL.search(first.stderr)

    again = project.run("apply", "--yes", "--json")
    assert again.returncode == 1  # still failed, from the earlier apply
    data = json.loads(again.stdout)
    _check(data, "apply")
    assert data["changes"] == []
    (failed,) = data["outcome"]["tasks"]["failedTasks"]
    assert (failed["taskId"], failed["exitCode"]) == ("bad", 3)
    assert failed["stderrTail"][-1] == "problem 25"

    status = project.run("status", "--json")
    assert status.returncode == 0, status.stderr
    st = json.loads(status.stdout)
    _check(st, "status")
    assert st["pool"]["exists"] and sum(st["pool"]["nodes"].values()) == 1
    (job,) = st["jobs"]
    assert job["taskCounts"]["succeeded"] == 1 and job["taskCounts"]["failed"] == 1
    assert [(f["taskId"], f["exitCode"]) for f in job["failedTasks"]] == [("bad", 3)]
    text = project.run("status").stdout
    assert f"Job {project.job}: active; tasks: 0 active, 0 running, 2 completed" in text
    assert f"failed: task/{project.job}/bad (exit code 3)" in text

    out = project.run("logs", "bad")
    assert (out.returncode, out.stdout) == (0, "to stdout\n")
    err = project.run("logs", "bad", "--stderr", "--tail", "2", "--json")
    logs = json.loads(err.stdout)
    _check(logs, "logs")
    assert (logs["source"], logs["text"]) == ("node", "problem 24\nproblem 25\n")

    # without the pool (and its nodes), logs come from the stack's logs container
    kept = project.run("destroy", "--yes", "--keep-storage", "--json")
    assert kept.returncode == 0, kept.stderr
    assert {c["address"] for c in json.loads(kept.stdout)["changes"]} == {
        f"job/{project.job}",
        f"pool/{project.pool}",
    }
    later = bspec.logs(project.spec, "bad", stderr=True, tail=1)
    assert (later["source"], later["text"]) == ("logs", "problem 25\n")
    missing = project.run("logs", "nosuchtask")
    assert missing.returncode == 1 and "has no stdout.txt" in missing.stderr


def test_rerun_failed_reactivates_the_failed_task(project: Project) -> None:
    # fails on its first run, succeeds on the next (the single node keeps the marker)
    project.write("""\
      - id: flaky
        commands:
          - test -f $AZ_BATCH_NODE_SHARED_DIR/ran || { touch $AZ_BATCH_NODE_SHARED_DIR/ran; exit 5; }
""")
    assert bspec.apply(project.spec)["outcome"]["tasks"]["failed"] == 1
    rerun = project.run("apply", "--yes", "--rerun-failed", "--json")
    assert rerun.returncode == 0, rerun.stderr
    data = json.loads(rerun.stdout)
    assert data["outcome"]["rerun"] == [f"task/{project.job}/flaky"]
    assert (data["outcome"]["tasks"]["succeeded"], data["outcome"]["tasks"]["failed"]) == (1, 0)


def test_a_failed_start_task_names_the_node_and_shows_its_stderr(project: Project) -> None:
    project.write(
        "      - id: t\n        commandLine: /bin/true\n",
        start_task="""\
  startTask:
    commands:
      - echo cannot install the tools >&2
      - exit 7
    waitForSuccess: true
""",
    )
    run = project.run("apply", "--yes", "--timeout", "120")
    assert run.returncode == 1
    assert re.search(
        rf"Start task failed on node \S+ of pool {project.pool} \(exit code 7\)", run.stderr
    )
    assert "    | cannot install the tools" in run.stderr
    assert f"no node of pool {project.pool} can run tasks" in run.stderr
    assert "Traceback" not in run.stderr


def test_no_wait_then_wait_with_a_timeout_says_why_tasks_wait(project: Project) -> None:
    project.write("      - id: t\n        commandLine: /bin/true\n", nodes=0)
    submitted = project.run("apply", "--yes", "--no-wait")
    assert submitted.returncode == 0, submitted.stderr
    assert "Waiting for" not in submitted.stderr
    waited = project.run("wait", "--timeout", "2")
    assert waited.returncode == 1
    assert f"pool {project.pool} has no nodes" in waited.stderr
    assert "still not completed after 2 s" in waited.stderr
    with pytest.raises(WaitTimeoutError):
        bspec.wait(project.spec, timeout=1)
    # nodes come: wait returns once the task is done
    project.write("      - id: t\n        commandLine: /bin/true\n", nodes=1)
    assert project.run("apply", "--yes", "--no-wait").returncode == 0
    done = project.run("wait", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    _check(data, "wait")
    assert data["tasks"]["succeeded"] == 1


def test_outputs_download_only_what_is_new_or_changed(project: Project) -> None:
    project.write(
        """\
      - foreach: {list: [a, b]}
        id: "make-{{ item }}"
        commands:
          - echo "result {{ item }}" > {{ item }}.txt
        outputFiles:
          - pattern: "{{ item }}.txt"
            container: output
""",
        outputs="    outputs:\n      - container: output\n        to: results\n",
    )
    first = bspec.apply(project.spec)
    _check(first, "apply")
    assert first["outcome"]["outputs"]["downloaded"] == 2
    results = project.folder / "results"
    assert (results / "a.txt").read_text() == "result a\n"
    (results / "a.txt").write_text("edited locally\n")
    (results / "b.txt").unlink()
    again = project.run("outputs", "--json")
    data = json.loads(again.stdout)
    _check(data, "outputs")
    assert {(Path(f["path"]).name, f["downloaded"]) for f in data["outputs"]["files"]} == {
        ("a.txt", True),
        ("b.txt", True),
    }
    assert (results / "a.txt").read_text() == "result a\n"
    current = project.run("outputs")
    assert "Outputs: 0 downloaded, 2 unchanged in results" in current.stdout


def test_library_status_and_errors(project: Project) -> None:
    project.write("      - id: t\n        commandLine: /bin/true\n", nodes=0)
    before = bspec.status(project.spec)
    _check(before, "status")
    assert before["pool"]["exists"] is False and before["jobs"][0]["exists"] is False
    with pytest.raises(NotFoundError):
        bspec.wait(project.spec, timeout=1)
    plan = bspec.plan(project.spec)
    _check(plan, "plan")
    assert f"pool/{project.pool}" in {c["address"] for c in plan["changes"]}
    desired = bspec.load(project.spec)
    assert desired.stack == project.name


def test_logs_follow_prints_until_the_task_completes(project: Project) -> None:
    project.write("""\
      - id: slow
        commands:
          - for i in 1 2 3; do echo "line $i"; sleep 0.5; done
""")
    assert project.run("apply", "--yes", "--no-wait").returncode == 0
    followed = project.run("logs", "slow", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "line 1\nline 2\nline 3\n"
    refused = project.run("logs", "slow", "--follow", "--json")
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "InvalidFlag"


def test_outputs_without_content_md5_compare_by_size_and_etag(
    project: Project, blob_service: Any
) -> None:
    project.write(
        "      - id: t\n        commandLine: /bin/true\n",
        nodes=0,
        outputs="    outputs:\n      - container: output\n        to: results\n",
    )
    assert bspec.outputs(project.spec)["outputs"]["files"] == []  # no container yet
    container = blob_service.get_container_client(f"{project.name}-output")
    container.create_container(metadata={"bspec_stack": project.name})  # destroy removes it
    blob = container.get_blob_client("deep/part.bin")

    def put_in_blocks(data: bytes) -> None:  # a block list has no Content-MD5
        blob.stage_block("YmxvY2sx", data)
        blob.commit_block_list(["YmxvY2sx"])

    put_in_blocks(b"first")
    assert blob.get_blob_properties().content_settings.content_md5 is None
    got = bspec.outputs(project.spec)["outputs"]
    assert (got["downloaded"], got["unchanged"]) == (1, 0)
    local = project.folder / "results" / "deep" / "part.bin"
    assert local.read_bytes() == b"first"
    assert (project.folder / "results" / ".bspec-outputs.json").exists()
    assert bspec.outputs(project.spec)["outputs"]["unchanged"] == 1
    put_in_blocks(b"again")
    assert bspec.outputs(project.spec)["outputs"]["downloaded"] == 1
    assert local.read_bytes() == b"again"
