"""Containers, secrets and plan warnings for real on the local target, through bspec's
operations and the real SDKs: a container pool (a registry with its password from the
environment, a start task in a container) runs a container task that sees its secret;
the plan converges; a missing password variable stops everything before a write; the
plan warns (end of support, VM size, slots, prefetch, quota) and `--strict` exits 3.

The container test is skipped with the reason when podman or busybox-static is absent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec.cli import main
from bspec.common import podman as common
from bspec.errors import StalePlanError
from engine_support import Stack, changes, writes
from test_podman_runtime import BUSYBOX, IMAGE, _discard, _static, busybox_rootfs

HPC = {
    "publisher": "microsoft-dsvm",
    "offer": "ubuntu-hpc",
    "sku": "2204",
    "nodeAgentSku": "batch.node.ubuntu 22.04",
}
TOKEN = "tok-VALUE-never-shown-1234"
PASSWORD = "registry-PASSWORD-never-shown"
START = "start-SECRET-never-shown"


@pytest.fixture
def env(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    for name, value in (("TOKEN", TOKEN), ("REG_PW", PASSWORD), ("START_SECRET", START)):
        monkeypatch.setenv(name, value)
    yield local_services


@pytest.fixture
def make_stack(env: Any, tmp_path: Path, unique_id: Callable[[str], str]) -> Callable[..., Stack]:
    def make() -> Stack:
        name = unique_id("ctr")
        s = Stack(tmp_path / name, name)
        s.files = {}
        return s

    return make


@pytest.fixture(scope="module")
def busybox(local_services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The busybox image in the session service's private podman storage."""
    reason = common.available()
    if reason is not None:
        pytest.skip(f"podman not installed: apt-get install podman runc ({reason})")
    if not BUSYBOX.exists() or not _static(BUSYBOX):
        pytest.skip("busybox-static not installed: apt-get install busybox-static")
    store = common.ensure_config(local_services.home)
    base = tmp_path_factory.mktemp("busybox")
    assert common.import_tarball(store, busybox_rootfs(base), IMAGE) == IMAGE
    try:
        yield IMAGE
    finally:
        _discard(store)


def _secret_free(*texts: str) -> None:
    for text in texts:
        for value in (TOKEN, PASSWORD, START):
            assert value not in text


def test_a_container_pool_runs_a_container_task_with_its_secret(
    make_stack: Callable[..., Stack], busybox: str, batch_client: Any, tmp_path: Path
) -> None:
    s = make_stack()
    s.nodes = 1
    s.pool_extra = {
        "image": HPC,  # an image Batch lists as DockerCompatible
        "containers": {
            "images": [busybox],
            "registries": [
                {"server": "registry.invalid", "username": "me", "passwordEnv": "REG_PW"}
            ],
        },
        "startTask": {
            "commandLine": "/bin/sh -c 'test -n \"$START_SECRET\" && echo up > /tmp/st'",
            "container": {"image": busybox},
            "secretEnvironment": ["START_SECRET"],
        },
    }
    s.extra_tasks = [
        {
            "id": "c1",
            # ({% raw %}: ${#...} opens a Jinja comment)
            "commandLine": "/bin/sh -c 'test ! -e /usr && echo len={% raw %}${#TOKEN}{% endraw %}'",
            "container": {"image": busybox},
            "secretEnvironment": ["TOKEN"],
        }
    ]
    saved = tmp_path / "plan.json"
    p, data = s.plan(out_file=saved)
    assert ("create", f"pool/{s.pool_id}") in changes(p)
    assert _valid(json.dumps({"formatVersion": 1, **data}))["warnings"] == []  # all known
    assert data["compute"] == {"vcpus": 2, "nodes": 1, "nodeHoursPerHour": 1}
    _secret_free(json.dumps(data), saved.read_text())
    done = s.apply(path=saved, no_wait=False, wait_timeout=120)
    assert done.data["outcome"]["tasks"]["succeeded"] == 1, done.data
    out = b"".join(batch_client.download_task_file(s.job_id, "c1", "stdout.txt")).decode()
    assert out == f"len={len(TOKEN)}\n"  # ran in the container, with its secret's value
    _secret_free(json.dumps(done.data))
    # The pool, read back (Batch keeps no secret bspec can read): converged, no write.
    p2, _ = s.plan()
    assert p2.empty(), changes(p2)
    again = s.apply()
    assert writes(again.data) == {"batch": 0, "storage": 0}
    # A new password: a change (the pool has a node: a replace), without its value.
    import os

    os.environ["REG_PW"] = PASSWORD + "-2"
    try:
        p3, data3 = s.plan()
        # the saved plan was made with the old password: refused before anything else
        with pytest.raises(StalePlanError, match="REG_PW changed since it was made"):
            s.apply(path=saved)
    finally:
        os.environ["REG_PW"] = PASSWORD
    assert changes(p3) == [("replace", f"pool/{s.pool_id}")]
    assert "containers can only change on an empty pool" in data3["changes"][0]["reason"]
    _secret_free(json.dumps(data3))
    s.destroy()


def test_a_missing_password_variable_changes_nothing(
    make_stack: Callable[..., Stack],
    monkeypatch: pytest.MonkeyPatch,
    batch_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_stack()
    s.pool_extra = {
        "containers": {
            "images": ["busybox"],
            "registries": [{"server": "r.invalid", "username": "me", "passwordEnv": "REG_PW"}],
        }
    }
    spec = s.write()
    monkeypatch.delenv("REG_PW")
    with pytest.raises(SystemExit) as exited:
        main(["apply", str(spec), "--yes", "--json"])
    assert exited.value.code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["path"] == "$.pool.containers.registries[0].passwordEnv"
    assert error["line"]
    assert list(batch_client.list_pools(filter=f"id eq '{s.pool_id}'")) == []
    assert list(batch_client.list_jobs(filter=f"id eq '{s.job_id}'")) == []


def test_plan_warnings_and_strict(
    make_stack: Callable[..., Stack],
    env: Any,
    batch_client: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    s = make_stack()
    s.nodes = 2
    s.pool_extra = {"taskSlotsPerNode": 9, "containers": {"images": ["busybox"]}}
    s.extra_tasks = [{"id": "c", "commandLine": "true", "container": {"image": "alpine"}}]
    spec = str(s.write())
    eol = {"imageEndOfLife": {"batch.node.ubuntu 22.04": "2026-01-01"}}
    with env.settings(dedicated_core_quota=3, **eol):
        with pytest.raises(SystemExit) as exited:
            main(["plan", spec, "--strict", "--json"])
        assert exited.value.code == 3
        data = _valid(capsys.readouterr().out)
        codes = sorted((w["code"], w["address"]) for w in data["warnings"])
        assert codes == [
            ("coreQuota", f"pool/{s.pool_id}"),
            ("imageEndOfSupport", f"pool/{s.pool_id}"),
            ("imageNotPrefetched", f"job/{s.job_id}"),
            ("imageWithoutContainers", f"pool/{s.pool_id}"),
            ("taskSlotsOverLimit", f"pool/{s.pool_id}"),
        ]
        # one read more than a plan without nodes: the supported images; the quota is
        # the local service's own path, not a Batch request
        assert data["requests"]["batch"] == {"read": 3, "write": 0}
        # without --strict the plan exits 0, the warnings above it
        assert main_exit(["plan", spec]) == 0
        text = capsys.readouterr().out
        first = text.splitlines()[0]
        assert first.startswith(f"Warning: pool/{s.pool_id}: "), text
        assert "Compute: 4 vCPUs on 2 nodes in the pools it creates or resizes" in text
        # apply --strict refuses before anything is written
        assert main_exit(["apply", spec, "--strict", "--yes", "--json"]) == 3
        error = _valid(capsys.readouterr().out)["error"]
        assert error["code"] == "PlanWarnings"
    assert list(batch_client.list_pools(filter=f"id eq '{s.pool_id}'")) == []
    # an unknown VM size (a plan that allocates nothing makes no read for the images)
    s.vm_size = "standard_nope_v9"
    s.nodes = 0
    s.pool_extra = {}
    s.extra_tasks = []
    _, data = s.plan()
    assert [w["code"] for w in data["warnings"]] == ["unknownVmSize"]
    assert data["requests"]["batch"] == {"read": 2, "write": 0}


def _valid(text: str) -> dict[str, Any]:
    """The --json object, checked against schema/output.schema.json."""
    from importlib import resources

    import jsonschema

    data: dict[str, Any] = json.loads(text)
    schema = json.loads(resources.files("bspec.schema").joinpath("output.schema.json").read_text())
    jsonschema.Draft202012Validator(schema).validate(data)
    return data


def main_exit(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_containers_change_in_place_on_an_empty_pool(
    make_stack: Callable[..., Stack], busybox: str
) -> None:
    s = make_stack()
    s.pool_extra = {"image": HPC, "containers": {"images": [busybox]}}
    s.apply()
    s.pool_extra["containers"] = {
        "images": [busybox, "localhost/other:1"],
        "registries": [{"server": "registry.invalid", "username": "me", "passwordEnv": "REG_PW"}],
    }
    p, data = s.plan()
    assert changes(p) == [("update", f"pool/{s.pool_id}")]
    assert data["changes"][0]["reason"] == "containers changed in place (the pool has no nodes)"
    done = s.apply()
    assert writes(done.data)["batch"] == 1  # one PATCH: the configuration and the digests
    p2, _ = s.plan()
    assert p2.empty(), changes(p2)
    s.destroy()
