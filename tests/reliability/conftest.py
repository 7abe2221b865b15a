"""Helpers for the reliability suite: run `bspec` as a user does, write small specs, read
the services' actual state through the real SDKs, and scan everything for secrets.

Every `bspec` run here goes through `run_bspec`, which checks its stdout and stderr for the
account keys and SAS signatures on the spot, so every test in this folder is also a leak test.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bspec import local as services
from bspec.model import FINGERPRINT_ENV, STACK_CONTAINER_METADATA, STACK_METADATA, DesiredState
from bspec.spec import load

BSPEC = [str(Path(sys.executable).parent / "bspec")]
IMAGE = {
    "publisher": "canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "nodeAgentSku": "batch.node.ubuntu 22.04",
}
# A SAS signature that was not redacted: `sig=` followed by something other than REDACTED.
SIG = re.compile(r"sig=(?!REDACTED)[A-Za-z0-9%+/=]{8,}", re.IGNORECASE)


def secrets_of(local: Any) -> list[str]:
    """The secrets that must never appear: the Batch key and the storage account key."""
    found = [local.key]
    parts = dict(p.split("=", 1) for p in local.storage_connection_string.split(";") if "=" in p)
    if parts.get("AccountKey"):
        found.append(parts["AccountKey"])
    return found


def leaks(text: str, secrets: Sequence[str]) -> list[str]:
    """What in `text` is a secret: a key verbatim, or an unredacted SAS signature."""
    found = [f"key {s[:4]}..." for s in secrets if s and s in text]
    found += [f"SAS signature {m.group(0)[:12]}..." for m in SIG.finditer(text)]
    return found


@dataclass
class Run:
    """One finished `bspec` process."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.stdout)
        return data

    def __str__(self) -> str:
        return (
            f"bspec {' '.join(self.args)} -> {self.returncode}\n--- stdout\n"
            f"{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


class Bspec:
    """Runs `bspec` subprocesses against the session's services and checks them for leaks."""

    def __init__(self, local: Any) -> None:
        self.local = local
        self.secrets = secrets_of(local)
        self.runs: list[Run] = []

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "BSPEC_"))}
        env.update(self.local.env)
        env["NO_COLOR"] = "1"
        env.update(extra or {})
        return env

    def popen(
        self, args: Sequence[str], extra_env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*BSPEC, *args],
            env=self.env(extra_env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def finish(self, args: Sequence[str], proc: subprocess.Popen[str], timeout: float = 120) -> Run:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        run = Run(list(args), proc.returncode, stdout, stderr)
        self.runs.append(run)
        # `bspec local env` prints the keys: that is its purpose, and the one exception.
        bad = [] if list(args[:2]) == ["local", "env"] else leaks(stdout + stderr, self.secrets)
        assert not bad, f"secret in the output of bspec {' '.join(args)}: {bad}"
        assert "Traceback (most recent call last)" not in stderr or proc.returncode < 0, str(run)
        return run

    def __call__(
        self,
        *args: str,
        extra_env: dict[str, str] | None = None,
        timeout: float = 120,
        cwd: Path | None = None,
    ) -> Run:
        return self.finish(args, self.popen(args, extra_env, cwd), timeout)


@pytest.fixture
def bspec(local_services: Any) -> Bspec:
    return Bspec(local_services)


def write_spec(
    folder: Path,
    name: str,
    *,
    files: int = 3,
    tasks: int = 30,
    nodes: int = 0,
    pool_id: str | None = None,
    job_id: str | None = None,
    container_names: dict[str, str] | None = None,
    outputs: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """A small stack: `files` input blobs each read by one task, `tasks` in all (the rest
    `/bin/true` over a range), a pool of `nodes` nodes, an output container."""
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        (data / f"in{i}.txt").write_text(f"file {i}\n" + "word " * (i + 1) + "\n")
    task_list: list[dict[str, Any]] = []
    if files:
        task_list.append(
            {
                "foreach": {"files": "input"},
                "id": "wc-{{ item.stem | batchid }}",
                "commands": ["wc -w {{ item.name | shquote }} > {{ item.stem }}_OUTPUT.txt"],
                "resourceFiles": [{"blob": "input/{{ item.name }}"}],
                "outputFiles": [{"pattern": "*_OUTPUT.txt", "container": "output"}],
            }
        )
    if tasks - files > 0:
        task_list.append(
            {
                "foreach": {"range": [0, tasks - files]},
                "id": "r{{ item }}",
                "commandLine": "/bin/true",
            }
        )
    containers: dict[str, Any] = {"input": {"files": ["data/*.txt"]} if files else {}, "output": {}}
    for key, real in (container_names or {}).items():
        containers[key]["name"] = real
    spec: dict[str, Any] = {
        "apiVersion": "bspec/v1",
        "name": name,
        "storage": {"containers": containers},
        "pool": {
            "id": pool_id or f"{name}-pool",
            "vmSize": "standard_d2s_v3",
            "image": IMAGE,
            "nodes": nodes,
        },
        "jobs": [{"id": job_id or f"{name}-job", "tasks": task_list}],
    }
    if outputs:
        spec["jobs"][0]["outputs"] = [{"container": "output", "to": "out"}]
    spec.update(extra or {})
    path = folder / "spec.json"
    path.write_text(json.dumps(spec, indent=1))
    return path


@pytest.fixture
def stack(tmp_path: Path, unique_id: Callable[[str], str]) -> Callable[..., tuple[str, Path]]:
    """stack(prefix, **write_spec kw) -> (stack name, spec path) in its own folder."""

    def make(prefix: str = "rel", **kw: Any) -> tuple[str, Path]:
        name = unique_id(prefix)
        folder = tmp_path / name
        folder.mkdir()
        return name, write_spec(folder, name, **kw)

    return make


# ------------------------------------------------------------------ the services' actual state
@dataclass
class Snapshot:
    """Everything in the services that carries `stack`'s tag, as plain data."""

    pools: dict[str, dict[str, Any]]
    jobs: dict[str, dict[str, Any]]
    tasks: dict[str, list[tuple[str, str | None]]]  # job id -> [(task id, fingerprint)]
    containers: dict[str, dict[str, str | None]]  # name -> {blob name: content md5 (b64)}


def _meta(items: Any) -> dict[str, str]:
    return {m.name: m.value for m in items or ()}


def snapshot(batch: Any, blobs: Any, stack: str) -> Snapshot:
    """Read, through the SDKs, every pool, job, task and container tagged with `stack`."""
    pools = {
        p.id: {"vmSize": p.vm_size, "nodes": p.target_dedicated_nodes, "state": str(p.state)}
        for p in batch.list_pools()
        if _meta(p.metadata).get(STACK_METADATA) == stack
    }
    jobs = {
        j.id: {"poolId": j.pool_info.pool_id, "state": str(j.state)}
        for j in batch.list_jobs()
        if _meta(j.metadata).get(STACK_METADATA) == stack
    }
    tasks: dict[str, list[tuple[str, str | None]]] = {}
    for job_id in jobs:
        rows = []
        for t in batch.list_tasks(job_id):
            env = {e.name: e.value for e in t.environment_settings or ()}
            rows.append((t.id, env.get(FINGERPRINT_ENV)))
        tasks[job_id] = sorted(rows)
    containers: dict[str, dict[str, str | None]] = {}
    for c in blobs.list_containers(include_metadata=True):
        if (c.metadata or {}).get(STACK_CONTAINER_METADATA) != stack:
            continue
        cc = blobs.get_container_client(c.name)
        containers[c.name] = {
            b.name: (
                bytes(b.content_settings.content_md5).hex()
                if b.content_settings.content_md5
                else None
            )
            for b in cc.list_blobs()
        }
    return Snapshot(pools, jobs, tasks, containers)


def assert_converged(snap: Snapshot, desired: DesiredState) -> None:
    """The actual state is exactly the desired one: each task once with its fingerprint,
    each uploaded blob with its MD5, the pool and job, and nothing else of the stack."""
    assert desired.pool is not None
    assert set(snap.pools) == {desired.pool.id}, snap.pools
    assert snap.pools[desired.pool.id]["vmSize"] == desired.pool.vm_size
    assert snap.pools[desired.pool.id]["nodes"] == desired.pool.target_dedicated_nodes
    assert set(snap.jobs) == {j.id for j in desired.jobs}, snap.jobs
    for job in desired.jobs:
        assert snap.jobs[job.id]["poolId"] == job.pool_id
        want = sorted((t.id, t.fingerprint) for t in desired.tasks_of(job.id))
        got = snap.tasks[job.id]
        ids = [i for i, _ in got]
        assert len(ids) == len({i.lower() for i in ids}), "duplicate task ids"
        assert got == want, (
            f"tasks differ: missing {sorted(set(want) - set(got))[:5]},"
            f" extra {sorted(set(got) - set(want))[:5]}"
        )
    want_containers = {c.name for c in desired.containers} | {desired.logs_container.name}
    # The logs container exists once the lock was taken; the spec's containers always.
    assert {c.name for c in desired.containers} <= set(snap.containers) <= want_containers, sorted(
        snap.containers
    )
    for b in desired.blobs:
        name = desired.container(b.container).name
        assert snap.containers[name].get(b.name) == b.md5, (name, b.name)
    for c in desired.containers:
        uploaded = {b.name for b in desired.blobs if b.container == c.key}
        if uploaded:  # containers of inputs hold exactly those; others hold task outputs
            extra = set(snap.containers[c.name]) - uploaded
            assert not extra, f"unexpected blobs in {c.name}: {sorted(extra)}"


def container_bytes(blobs: Any, container: str) -> dict[str, bytes]:
    """Every blob of a container with its content (for comparing task outputs)."""
    cc = blobs.get_container_client(container)
    return {b.name: cc.download_blob(b.name).readall() for b in cc.list_blobs()}


def desired_of(spec: Path, var: dict[str, Any] | None = None) -> DesiredState:
    return load(spec, var or {})


@pytest.fixture
def inproc(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run bspec's command functions in this process against the session's services."""
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    for name in ("BSPEC_TARGET", "BSPEC_TEST_KILL_AFTER_WRITES"):
        monkeypatch.delenv(name, raising=False)
    return local_services


@pytest.fixture
def state(batch_client: Any, blob_service: Any) -> Callable[[str], Snapshot]:
    def read(stack: str) -> Snapshot:
        return snapshot(batch_client, blob_service, stack)

    return read


@pytest.fixture
def faults(local_services: Any) -> Iterator[Callable[..., dict[str, Any]]]:
    """Set fault injection for one test; always reset afterwards."""
    before = local_services.get_settings()

    def set_(**kw: Any) -> dict[str, Any]:
        result: dict[str, Any] = local_services.set_settings(**kw)
        return result

    try:
        yield set_
    finally:
        local_services.set_settings(
            faultRate=before.get("faultRate", 0.0),
            faultKinds=before.get("faultKinds", ["500", "503", "429", "drop"]),
        )


def batch_requests(local: Any) -> dict[str, Any]:
    result: dict[str, Any] = services.http_json("GET", f"{local.batch_url}/_local/requests")
    return result


def record(name: str, data: Any) -> None:
    """Append a figure for docs/reliability.md when BSPEC_RELIABILITY_FIGURES names a file."""
    target = os.environ.get("BSPEC_RELIABILITY_FIGURES")
    if target:
        with open(target, "a") as fh:
            fh.write(json.dumps({"test": name, "data": data}) + "\n")


SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "output.schema.json"


def check_output(data: dict[str, Any], definition: str) -> None:
    """`data` validates against schema/output.schema.json's top level and its `definition`."""
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.Draft202012Validator(sub).validate(data)


# ------------------------------------------------------------------ storage faults
@dataclass
class FaultedServices:
    """Private services (own state folder, free ports) with the storage fault proxy in the
    path: what `Bspec` needs, plus the proxy's control URL and Azurite's direct URL (for
    checks that must not be faulted)."""

    endpoints: services.Endpoints = field(repr=False)
    proxy_url: str
    azurite_blob_url: str
    home: Path
    key: str = field(repr=False)
    storage_connection_string: str = field(repr=False)
    env: dict[str, str]

    def proxy(self, **body: Any) -> dict[str, Any]:
        """PUT (with BODY) or GET the proxy's settings."""
        method = "PUT" if body else "GET"
        result: dict[str, Any] = services.http_json(
            method, f"{self.proxy_url}/_local/settings", body or None
        )
        return result

    def proxy_counts(self) -> dict[str, int]:
        result: dict[str, int] = services.http_json("GET", f"{self.proxy_url}/_local/requests")
        return result

    def clients(self) -> tuple[Any, Any]:
        """A BatchClient and a BlobServiceClient straight to Azurite (never faulted)."""
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential
        from azure.storage.blob import BlobServiceClient

        batch = BatchClient(
            self.endpoints.batch_url,
            AzureNamedKeyCredential(self.endpoints.account, self.endpoints.key),
        )
        blobs = BlobServiceClient.from_connection_string(
            services.connection_string(self.azurite_blob_url)
        )
        return batch, blobs


@pytest.fixture(scope="module")
def faulted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultedServices]:
    """Private services with the storage proxy in the path (no faults until a test sets
    them); never the session's shared services. Stopped at the end of the module."""
    home = tmp_path_factory.mktemp("storage-faults-home")
    try:
        ep = services.ensure_running(
            home,
            batch_port=0,
            azurite_port=0,
            batch_args=["--delete-delay", "0.2"],
            storage_faults=0.0,
        )
        state = services.status(home)
        yield FaultedServices(
            ep,
            state["storageProxy"]["url"],
            state["storage"]["blobUrl"],
            home=ep.home,
            key=ep.key,
            storage_connection_string=ep.storage_connection_string,
            env={"BSPEC_HOME": str(ep.home)},
        )
    finally:
        proxy = (services.status(home).get("storageProxy") or {}).get("pid")
        services.stop(home)
        if proxy:  # stopped with the others, by PID
            with contextlib.suppress(ChildProcessError):
                os.waitpid(proxy, os.WNOHANG)
            assert (
                not Path(f"/proc/{proxy}").exists()
                or "Z" in Path(f"/proc/{proxy}/stat").read_text().rsplit(")", 1)[1][:3]
            )
