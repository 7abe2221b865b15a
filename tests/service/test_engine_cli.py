"""`bspec plan|apply|destroy` as a user runs them: output, --json against the output schema,
exit codes (0, 3 refused, 4 --detailed-exitcode), the lock held by another command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from engine_support import Stack

BSPEC = [str(Path(sys.executable).parent / "bspec")]


def _run(args: list[str], services: Any, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BSPEC_HOME": str(services.home)}
    env.pop("BSPEC_TARGET", None)
    return subprocess.run(
        [*BSPEC, *args], capture_output=True, text=True, input=stdin, env=env, timeout=120
    )


def _validate(text: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(text)
    schema = json.loads(resources.files("bspec.schema").joinpath("output.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    return data


def test_plan_apply_destroy_from_the_command_line(
    local_services: Any, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    name = unique_id("cli")
    s = Stack(tmp_path / name, name)
    s.files = {"a.txt": "one two"}
    spec = str(s.write())

    human = _run(["plan", spec], local_services)
    assert human.returncode == 0, human.stderr
    assert "  + task/" in human.stdout
    assert human.stdout.rstrip().endswith(
        "Plan: 7 to create, 0 to update, 0 to replace, 0 to delete."
    )

    detailed = _run(["plan", spec, "--detailed-exitcode", "--json"], local_services)
    assert detailed.returncode == 4
    assert _validate(detailed.stdout)["summary"]["create"] == 7

    refused = _run(["apply", spec, "--json"], local_services)  # no terminal, no --yes
    assert refused.returncode == 3
    err = _validate(refused.stdout)["error"]
    assert err["code"] == "NotConfirmed"

    applied = _run(["apply", spec, "--yes", "--no-wait", "--json"], local_services)
    assert applied.returncode == 0, applied.stderr
    data = _validate(applied.stdout)
    assert data["outcome"]["tasksSubmitted"] == 1
    assert "sig=" not in applied.stdout + applied.stderr

    converged = _run(["plan", spec, "--detailed-exitcode"], local_services)
    assert converged.returncode == 0
    assert converged.stdout.strip() == "No changes."

    gone = _run(["destroy", spec, "--yes", "--json"], local_services)
    assert gone.returncode == 0, gone.stderr
    assert len(_validate(gone.stdout)["changes"]) == 5
    again = _run(["destroy", spec, "--yes"], local_services)
    assert again.returncode == 0
    assert again.stdout.strip() == "Nothing to destroy."


def test_a_held_lock_refuses_with_its_holder(
    local_services: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    unique_id: Callable[[str], str],
) -> None:
    from bspec.locking import StackLock
    from bspec.targets import connect

    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    name = unique_id("lock")
    s = Stack(tmp_path / name, name)
    s.files = {"a.txt": "x"}
    spec = str(s.write())
    tgt = connect("local", name)
    try:
        with StackLock(tgt.storage, f"{name}-bspec", 0, "apply"):
            held = _run(["apply", spec, "--yes", "--no-wait", "--json", "--lock-timeout", "2"],
                        local_services)
    finally:
        tgt.close()
    assert held.returncode == 3
    err = _validate(held.stdout)["error"]
    assert err["code"] == "LockHeld"
    assert "bspec apply" in err["message"] and "pid" in err["message"]
    # released: the next apply goes ahead
    ok = _run(["apply", spec, "--yes", "--no-wait"], local_services)
    assert ok.returncode == 0, ok.stderr
    s.destroy()
