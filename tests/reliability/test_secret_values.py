"""Secrets named by environment variable (task and start task `secretEnvironment`, a
registry's `passwordEnv`) never appear in anything bspec writes: validate, render (text and
--json), plan (--json, saved), apply of the saved plan, status, logs, destroy, nor any file
of the state folder but the Batch service's own database (Batch stores environment
settings as given: docs/secrets.md says so). The tasks print only their secrets' lengths.

The registry needs a container pool, which the local service runs only with podman: it is
left out (and said so in the test's output) where podman is absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bspec.common import podman as common

from .conftest import Bspec, leaks
from .test_secrets import scan_tree

VALUES = {
    "TASK_TOKEN": "task-TOKEN-value-7f3a9c",
    "START_TOKEN": "start-TOKEN-value-1b2c3d",
    "REGISTRY_PASSWORD": "registry-PASSWORD-value-9e8d",
}


def test_secret_values_are_never_written(
    bspec: Bspec,
    local_services: Any,
    stack: Callable[..., tuple[str, Path]],
    tmp_path: Path,
) -> None:
    pool: dict[str, Any] = {
        "startTask": {
            "commandLine": '/bin/sh -c "test -n \\"$START_TOKEN\\""',
            "secretEnvironment": ["START_TOKEN"],
        }
    }
    if common.available() is None:
        pool["containers"] = {
            "registries": [
                {"server": "registry.invalid", "username": "me", "passwordEnv": "REGISTRY_PASSWORD"}
            ]
        }
    else:
        print("podman absent: the registry password is not part of this run")
    task = {
        "id": "secret",
        "commandLine": "/bin/sh -c 'echo {% raw %}${#TASK_TOKEN}{% endraw %}'",
        "secretEnvironment": ["TASK_TOKEN"],
    }
    _name, spec = stack("secv", files=0, tasks=0, nodes=1)
    data = json.loads(spec.read_text())
    data["pool"].update(pool)
    data["jobs"][0]["tasks"] = [task]
    spec.write_text(json.dumps(data))
    bspec.secrets = [*bspec.secrets, *VALUES.values()]
    saved = tmp_path / "saved-plan.json"

    def run(*args: str) -> Any:
        return bspec(*args, extra_env=VALUES, timeout=180)

    runs = [
        run("validate", str(spec)),
        run("render", str(spec)),
        run("render", str(spec), "--json"),
        run("plan", str(spec), "--json", "-o", str(saved)),
        run("apply", str(saved), "--yes", "--json", "--timeout", "120"),
        run("plan", str(spec)),
        run("status", str(spec)),
        run("logs", str(spec), "secret"),
        run("destroy", str(spec), "--yes", "--json"),
    ]
    assert all(r.returncode == 0 for r in runs), "\n".join(map(str, runs))
    assert runs[4].json()["outcome"]["tasks"]["succeeded"] == 1, str(runs[4])
    assert str(len(VALUES["TASK_TOKEN"])) in runs[7].stdout  # the task saw its value
    # Every run was scanned as it finished (Bspec.finish); the saved plan carries names.
    text = saved.read_text()
    assert not leaks(text, bspec.secrets)
    assert "TASK_TOKEN" in text
    # The state folder: bspec's and the services' logs, node folders, pid files.
    count, found = scan_tree(local_services.home, bspec.secrets)
    assert count > 0 and not found, found
    # A missing variable: exit 2, before anything is written.
    missing = {k: v for k, v in VALUES.items() if k != "TASK_TOKEN"}
    refused = bspec("apply", str(spec), "--yes", "--json", extra_env=missing)
    assert refused.returncode == 2, str(refused)
    assert refused.json()["error"]["path"] == "$.jobs[0].tasks[0].secretEnvironment[0]"
