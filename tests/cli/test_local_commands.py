"""`bspec local up|down|status|env` as a user runs them: subprocesses, a temporary BSPEC_HOME."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec import local as services

pytestmark = pytest.mark.service

needs_batch = pytest.mark.skipif(
    importlib.util.find_spec("bspec.localbatch.__main__") is None,
    reason="the local Batch service (bspec.localbatch.__main__) is not there yet",
)

BSPEC = str(Path(sys.executable).parent / "bspec")
SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "output.schema.json"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("local-cli")
    try:
        yield folder
    finally:
        services.stop(folder)


def bspec(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSPEC_HOME": str(home)}
    proc = subprocess.run(
        [BSPEC, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def validate(data: dict[str, Any], definition: str) -> None:
    """Check against schema/output.schema.json's $defs when that file has them."""
    if not SCHEMA.exists():
        return
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    if definition not in schema.get("$defs", {}):
        return
    validator_cls = jsonschema.validators.validator_for(schema)
    one = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    validator_cls(one).validate(data)
    validator_cls(schema).validate(data)  # and as the file's top level accepts any output


def start_a_long_task(home: Path, url: str) -> tuple[str, int]:
    """A pool of one node running one `sleep`, through the real SDK; (pool id, task pid)."""
    from azure.batch import BatchClient
    from azure.batch import models as m
    from azure.core.credentials import AzureNamedKeyCredential

    account = json.loads((home / "account.json").read_text())
    client = BatchClient(url, AzureNamedKeyCredential(account["name"], account["key"]))
    image = m.BatchVmImageReference(publisher="canonical", offer="ubuntu", sku="22_04-lts")
    client.create_pool(
        m.BatchPoolCreateOptions(
            id="cli-pool",
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=m.VirtualMachineConfiguration(
                image_reference=image, node_agent_sku_id="batch.node.ubuntu 22.04"
            ),
            target_dedicated_nodes=1,
        )
    )
    client.create_job(
        m.BatchJobCreateOptions(id="cli-job", pool_info=m.BatchPoolInfo(pool_id="cli-pool"))
    )
    daemon = "setsid sleep 120 > /dev/null 2>&1 & echo $! > $AZ_BATCH_NODE_SHARED_DIR/daemon.pid"
    client.create_task(
        "cli-job", m.BatchTaskCreateOptions(id="daemon", command_line=f"/bin/sh -c '{daemon}'")
    )
    client.create_task("cli-job", m.BatchTaskCreateOptions(id="sleeper", command_line="sleep 120"))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = services.http_json("GET", f"{url}/_local/status")["runningTasks"]
        if running and running[0].get("pid") and running[0]["taskId"] == "sleeper":
            client.close()
            return "cli-pool", int(running[0]["pid"])
        time.sleep(0.1)
    client.close()
    raise AssertionError("the task never started")


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@needs_batch
def test_up_status_env_down(home: Path) -> None:
    up = bspec(home, "local", "up", "--json", "--batch-port", "0", "--storage-port", "0")
    first = json.loads(up.stdout)
    validate(first, "localUp")
    assert sorted(first["started"]) == ["batch", "storage"]
    assert first["home"] == str(home)
    assert "Starting" in up.stderr  # progress goes to stderr, never into --json

    again = json.loads(bspec(home, "local", "up", "--json").stdout)
    assert again["started"] == []
    assert again["batch"]["pid"] == first["batch"]["pid"]
    assert again["storage"]["pid"] == first["storage"]["pid"]

    pool, task_pid = start_a_long_task(home, first["batch"]["url"])
    (pid_file,) = (home / "batch" / "nodes" / pool).glob("*/shared/daemon.pid")
    daemon_pid = int(pid_file.read_text())
    assert not gone(daemon_pid)  # it outlived its task, as on Batch
    status = json.loads(bspec(home, "local", "status", "--json").stdout)
    validate(status, "localStatus")
    assert status["batch"]["running"] and status["storage"]["running"]
    assert status["batch"]["url"] == first["batch"]["url"]
    assert [p["id"] for p in status["pools"]] == [pool]
    assert len(status["pools"][0]["nodes"]) == 1
    assert [(t["jobId"], t["taskId"]) for t in status["runningTasks"]] == [("cli-job", "sleeper")]

    human = bspec(home, "local", "status").stdout
    assert first["batch"]["url"] in human and "running" in human
    assert f"pool {pool}" in human and "cli-job/sleeper" in human

    key = json.loads((home / "account.json").read_text())["key"]
    for out in (up.stdout, up.stderr, human, json.dumps(status)):
        assert key not in out

    # eval "$(bspec local env)" points the Azure SDK at the local services.
    script = (
        f'eval "$({BSPEC} local env)" && {sys.executable} -c "'
        "import os; from azure.storage.blob import BlobServiceClient as B; "
        "c = B.from_connection_string(os.environ['AZURE_STORAGE_CONNECTION_STRING']); "
        "print(os.environ['AZURE_BATCH_ENDPOINT'], os.environ['AZURE_BATCH_ACCOUNT'], "
        "len(os.environ['AZURE_BATCH_ACCESS_KEY']), sum(1 for _ in c.list_containers()) >= 0)\""
    )
    shell = subprocess.run(
        ["/bin/bash", "-c", script],
        env={**os.environ, "BSPEC_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shell.returncode == 0, shell.stderr
    endpoint, account, key_len, listed = shell.stdout.split()
    assert (endpoint, account, int(key_len), listed) == (
        first["batch"]["url"],
        first["batch"]["account"],
        len(key),
        "True",
    )

    env_json = json.loads(bspec(home, "local", "env", "--json").stdout)
    validate(env_json, "localEnv")
    assert env_json["variables"]["AZURE_BATCH_ACCESS_KEY"] == key

    down = json.loads(bspec(home, "local", "down", "--json").stdout)
    validate(down, "localDown")
    assert sorted(s["service"] for s in down["stopped"]) == ["batch", "storage"]
    assert gone(task_pid)  # down stops the tasks with the service
    assert gone(daemon_pid)  # and what a task left running in the background
    after = services.status(home)
    assert not after["batch"]["running"] and not after["storage"]["running"]
    assert "not running" in bspec(home, "local", "down").stdout


def test_status_when_stopped_starts_nothing(tmp_path: Path) -> None:
    proc = bspec(tmp_path / "fresh", "local", "status")
    assert "stopped" in proc.stdout
    assert not (tmp_path / "fresh" / "endpoints.json").exists()
