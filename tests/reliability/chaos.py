"""Helpers for the crash, preemption and soak tests: private services that a test may kill
and restart, specs whose tasks notice a second attempt running beside them, and the checks
for what a dead service may have left behind (processes, containers, temporaries). Every
private state folder is scanned for keys and SAS signatures when its services stop.

Never the session's shared services: each test starts its own in a state folder of its own,
on free ports, and stops them at the end.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec import local as services
from bspec.common import proctree
from bspec.localbatch import leftovers

from .conftest import IMAGE, secrets_of
from .test_secrets import scan_tree


@dataclass
class Private:
    """Services of one test's own (what `Bspec` needs, plus kill, restart and checks)."""

    home: Path
    key: str = field(repr=False)
    storage_connection_string: str = field(repr=False)
    batch_url: str
    azurite_blob_url: str
    env: dict[str, str]

    def pid(self, which: str) -> int | None:
        """The PID of "batch" or "storage" (Azurite) as endpoints.json records it."""
        data = json.loads((self.home / "endpoints.json").read_text())
        pid = (data.get(which) or {}).get("pid")
        return int(pid) if pid else None

    def kill(self, which: str) -> int | None:
        """SIGKILL "batch" or "storage" (Azurite) and wait until it is gone; its PID."""
        pid = self.pid(which)
        if pid is None or not proctree.alive(pid):
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self.wait_gone(pid)
        return pid

    def wait_gone(self, pid: int, timeout: float = 15) -> None:
        """Until PID is gone; `status()` reaps it when this process started it (the
        supervisor keeps its daemons' handles)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            services.status(self.home)
            if not proctree.alive(pid):
                break
            time.sleep(0.02)
        services.status(self.home)

    def up(self) -> None:
        """`bspec local up`, as a user restarts the services."""
        proc = subprocess.run(
            [*bspec_argv(), "local", "up"],
            env={**clean_env(), **self.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr

    def settings(self, **body: Any) -> dict[str, Any]:
        result: dict[str, Any] = services.http_json(
            "PUT", f"{self.batch_url}/_local/settings", body
        )
        return result

    def proxy(self, **body: Any) -> dict[str, Any]:
        """PUT BODY to the storage fault proxy's settings (when it is in the path)."""
        url = services.status(self.home)["storageProxy"]["url"]
        result: dict[str, Any] = services.http_json("PUT", f"{url}/_local/settings", body)
        return result

    def proxy_counts(self) -> dict[str, int]:
        url = (services.status(self.home).get("storageProxy") or {}).get("url")
        if not url:
            return {}
        result: dict[str, int] = services.http_json("GET", f"{url}/_local/requests")
        return result

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return services.http_json("POST", f"{self.batch_url}{path}", body)

    def get(self, path: str) -> Any:
        return services.http_json("GET", f"{self.batch_url}{path}")

    def clients(self) -> tuple[Any, Any]:
        """A BatchClient and a BlobServiceClient straight to Azurite (never faulted)."""
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.storage.blob import BlobServiceClient

        account = json.loads((self.home / "account.json").read_text())
        batch = BatchClient(
            self.batch_url, AzureNamedKeyCredential(account["name"], account["key"])
        )
        blobs = BlobServiceClient.from_connection_string(
            services.connection_string(self.azurite_blob_url)
        )
        return batch, blobs

    def leftovers(self) -> list[str]:
        """Processes of this state folder's tasks still alive: recorded process groups and
        anything carrying one of its node folders in its environment."""
        found = [f"pid {p}" for p in proctree.processes_under(self.home / "batch" / "nodes")]
        recorded = leftovers.read(self.home / "batch" / leftovers.JOURNAL)
        groups = proctree.live_groups()
        found += [
            f"group {g}"
            for g, start in recorded.items()
            if proctree.recorded_alive(g, start, groups)
        ]
        return found

    def containers(self) -> list[str]:
        """Containers in this state folder's private podman storage (none unless it ran
        container tasks)."""
        if not (self.home / "containers").exists():
            return []
        from bspec.localbatch import podman

        storage = podman.ensure_config(self.home)
        return [str(c) for c in podman.list_containers(storage)]


def bspec_argv() -> list[str]:
    from .conftest import BSPEC

    return list(BSPEC)


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BSPEC_"))}
    env["NO_COLOR"] = "1"
    return env


@contextlib.contextmanager
def private_services(
    home: Path, *, batch_args: list[str] | None = None, storage_faults: float | None = None
) -> Iterator[Private]:
    """Start services in HOME (free ports); stop them at the end and check that nothing of
    their tasks is left running."""
    home.mkdir(parents=True, exist_ok=True)
    ep = services.ensure_running(
        home,
        batch_port=0,
        azurite_port=0,
        batch_args=batch_args or ["--delete-delay", "0.2", "--max-processes", "6"],
        storage_faults=storage_faults,
    )
    state = services.status(home)
    svc = Private(
        home=ep.home,
        key=ep.key,
        storage_connection_string=ep.storage_connection_string,
        batch_url=ep.batch_url,
        azurite_blob_url=state["storage"]["blobUrl"],
        env={"BSPEC_HOME": str(ep.home)},
    )
    try:
        yield svc
    finally:
        services.stop(home)
    # Everything the services, the restarts and the crashes wrote: the Batch service's and the
    # storage proxy's logs (requests, faults, what a restart killed), Azurite's log, the
    # process group journal, the nodes' task files. No key, no SAS signature.
    count, found = scan_tree(home, secrets_of(svc))
    assert count > 0 and not found, found


# ------------------------------------------------------------------ specs

# Each attempt records its PID under MARKS; an attempt that finds another live attempt of its
# task (a live process, not a zombie waiting to be reaped) writes OVERLAP. The output names
# only the task, so every clean run writes the same bytes. Attempts hold until MARKS/GO exists
# (`go=True` makes it at once), so that a test can choose when the tasks' work begins.
_TASK_SCRIPT = (
    'm={marks}; t="$AZ_BATCH_TASK_ID"; me=$$; '
    'check() {{ for f in "$m/$t".*; do [ -e "$f" ] || continue; p="${{f##*.}}"; '
    '[ "$p" = "$me" ] && continue; '
    's=$(sed "s/.*) //" "/proc/$p/stat" 2>/dev/null | cut -c1); '
    '[ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ] && echo "$t $p $me" >> "$m/OVERLAP"; '
    "done; }}; "
    ': > "$m/$t.$me"; echo "$t $me $(date +%s.%N)" >> "$m/START"; '
    'while [ ! -e "$m/GO" ]; do sleep 0.1; done; check; sleep {sleep}; check; '
    'printf "task %s\\n" "$t" > "${{t}}_OUTPUT.txt"; echo "$t $me $(date +%s.%N)" >> "$m/DONE"'
)


def task_command(marks: Path, sleep: float) -> str:
    return "/bin/sh -c " + shlex.quote(
        _TASK_SCRIPT.format(marks=shlex.quote(str(marks)), sleep=sleep)
    )


def crash_spec(
    folder: Path,
    name: str,
    *,
    tasks: int,
    marks: Path,
    sleep: float = 1.0,
    nodes: int = 2,
    spot: int = 0,
    slots: int = 3,
    files: int = 2,
    extra_task: dict[str, Any] | None = None,
    go: bool = True,
) -> Path:
    """A stack with `files` input blobs and TASKS tasks (each sleeps SLEEP seconds and
    writes `<task>_OUTPUT.txt` to the output container, noting a twin attempt in MARKS)."""
    folder.mkdir(parents=True, exist_ok=True)
    marks.mkdir(parents=True, exist_ok=True)
    if go:
        (marks / "GO").touch()
    data = folder / "data"
    data.mkdir(exist_ok=True)
    for i in range(files):
        (data / f"in{i}.txt").write_text(f"input {i}\n" * (i + 1))
    pool: dict[str, Any] = {
        "id": f"{name}-pool",
        "vmSize": "standard_d2s_v3",
        "image": IMAGE,
        "taskSlotsPerNode": slots,
    }
    if nodes:
        pool["nodes"] = nodes
    if spot:
        pool["lowPriorityNodes"] = spot
    task: dict[str, Any] = {
        "foreach": {"range": [0, tasks]},
        "id": "t{{ item }}",
        "commandLine": task_command(marks, sleep),
        "outputFiles": [{"pattern": "*_OUTPUT.txt", "container": "output"}],
    }
    task.update(extra_task or {})
    spec = {
        "apiVersion": "bspec/v1",
        "name": name,
        "storage": {
            "containers": {"input": {"files": ["data/*.txt"]} if files else {}, "output": {}}
        },
        "pool": pool,
        "jobs": [
            {
                "id": f"{name}-job",
                "tasks": [task],
                "outputs": [{"container": "output", "to": "out"}],
            }
        ],
    }
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


def overlaps(marks: Path) -> list[str]:
    """Lines of OVERLAP: two attempts of one task ran at once."""
    path = marks / "OVERLAP"
    return path.read_text().splitlines() if path.exists() else []


def task_results(batch: Any, job_id: str) -> dict[str, tuple[str, str | None, int]]:
    """task id -> (state, result, requeue count), as Batch records them."""
    found = {}
    for t in batch.list_tasks(job_id):
        info = t.execution_info
        found[t.id] = (
            str(getattr(t.state, "value", t.state)),
            str(getattr(info.result, "value", info.result)) if info and info.result else None,
            int(info.requeue_count or 0) if info else 0,
        )
    return found


def temporaries(folder: Path) -> list[str]:
    """bspec's temporary download names (`.bspec-*`) left anywhere under FOLDER."""
    return sorted(str(p) for p in folder.rglob(".bspec-*"))
