"""`bspec local up|down|status|env` as a user runs them: subprocesses, a temporary BSPEC_HOME."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec import services

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

    status = json.loads(bspec(home, "local", "status", "--json").stdout)
    validate(status, "localStatus")
    assert status["batch"]["running"] and status["storage"]["running"]
    assert status["batch"]["url"] == first["batch"]["url"]
    assert isinstance(status["pools"], list) and isinstance(status["runningTasks"], list)

    human = bspec(home, "local", "status").stdout
    assert first["batch"]["url"] in human and "running" in human

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
    after = json.loads(bspec(home, "local", "status", "--json").stdout)
    assert not after["batch"]["running"] and not after["storage"]["running"]
    assert "not running" in bspec(home, "local", "down").stdout


def test_status_when_stopped_starts_nothing(tmp_path: Path) -> None:
    proc = bspec(tmp_path / "fresh", "local", "status")
    assert "stopped" in proc.stdout
    assert not (tmp_path / "fresh" / "endpoints.json").exists()
