"""Helpers for the engine's service tests: write specs, run plan/apply/destroy in process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bspec.cli  # noqa: F401  (loads every command module first, as `bspec` does)
import pytest
from bspec.commands.reconcile import run_apply, run_destroy, run_plan
from bspec.model import Plan
from bspec.operations import Outcome

IMAGE = {
    "publisher": "canonical",
    "offer": "0001-com-ubuntu-server-jammy",
    "sku": "22_04-lts",
    "nodeAgentSku": "batch.node.ubuntu 22.04",
}


class Stack:
    """One stack's spec in a folder, and the calls a user would make on it."""

    def __init__(self, folder: Path, name: str, target: str = "local") -> None:
        self.folder = folder
        self.name = name
        self.target = target
        self.files: dict[str, str] = {}
        self.nodes = 0
        self.vm_size = "standard_d2s_v3"
        self.extra_tasks: list[dict[str, Any]] = []
        self.per_file_constraints: dict[str, Any] | None = None
        self.reduce = False
        self.range_tasks = 0
        self.pool_id = f"{name}-pool"
        self.job_id = f"{name}-job"
        self.container_names: dict[str, str] = {}
        self.when_idle: str | None = None
        self.job_extra: dict[str, Any] = {}
        self.pool_extra: dict[str, Any] = {}

    @property
    def spec(self) -> Path:
        return self.folder / "spec.json"

    def write(self) -> Path:
        data_dir = self.folder / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        for old in data_dir.iterdir():
            if old.name not in self.files:
                old.unlink()
        for name, text in self.files.items():
            p = data_dir / name
            if not p.exists() or p.read_text() != text:
                p.write_text(text)
        tasks: list[dict[str, Any]] = []
        if self.files:
            t: dict[str, Any] = {
                "foreach": {"files": "input"},
                "id": "wc-{{ item.stem | batchid }}",
                "commands": ["wc -w {{ item.name | shquote }} > {{ item.stem }}_OUTPUT.txt"],
                "resourceFiles": [{"blob": "input/{{ item.name }}"}],
                "outputFiles": [{"pattern": "*_OUTPUT.txt", "container": "output"}],
            }
            if self.per_file_constraints:
                t["constraints"] = self.per_file_constraints
            tasks.append(t)
        if self.range_tasks:
            tasks.append(
                {
                    "foreach": {"range": [0, self.range_tasks]},
                    "id": "r{{ item }}",
                    "commandLine": "/bin/true",
                }
            )
        if self.reduce:
            tasks.append({"id": "reduce", "dependsOn": ["wc-*"], "commandLine": "/bin/true"})
        tasks.extend(self.extra_tasks)
        containers: dict[str, Any] = {
            "input": {"files": ["data/*.txt"]} if self.files else {},
            "output": {},
        }
        for key, real in self.container_names.items():
            containers[key]["name"] = real
        spec = {
            "apiVersion": "bspec/v1",
            "name": self.name,
            "storage": {"containers": containers},
            "pool": {
                "id": self.pool_id,
                "vmSize": self.vm_size,
                "image": IMAGE,
                "nodes": self.nodes,
            },
            "jobs": [{"id": self.job_id, "tasks": tasks}],
        }
        if self.when_idle:
            spec["pool"]["whenIdle"] = self.when_idle
        spec["pool"].update(self.pool_extra)
        spec["jobs"][0].update(self.job_extra)
        self.spec.write_text(json.dumps(spec, indent=1))
        return self.spec

    def plan(self, **kw: Any) -> tuple[Plan, dict[str, Any]]:
        self.write()
        return run_plan(self.spec, target=self.target, show=False, **kw)

    def apply(self, **kw: Any) -> Outcome:
        self.write()
        kw.setdefault("no_wait", True)
        return run_apply(kw.pop("path", self.spec), target=self.target, yes=True, show=False, **kw)

    def destroy(self) -> Outcome:
        self.write()
        return run_destroy(self.spec, target=self.target, yes=True, show=False)


def use_services(monkeypatch: pytest.MonkeyPatch, services: Any) -> None:
    """Point in-process commands at the session's local services (the local target)."""
    monkeypatch.setenv("BSPEC_HOME", str(services.home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)


def copy_spec(src: Path, dest: Path, old_name: str, new_name: str) -> Path:
    """An example spec copied to DEST with its stack renamed (a unique name per test run)."""
    dest.write_text(src.read_text().replace(f"name: {old_name}\n", f"name: {new_name}\n"))
    return dest


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run `bspec ARGS --json` in process, as a user would; (exit code, the JSON object)."""
    from bspec.cli import main

    try:
        main([*args, "--json"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return code, data


def changes(plan_or_data: Plan | dict[str, Any]) -> list[tuple[str, str]]:
    if isinstance(plan_or_data, Plan):
        return [(c.action.value, str(c.address)) for c in plan_or_data.pending()]
    return [(c["action"], c["address"]) for c in plan_or_data["changes"]]


def writes(data: dict[str, Any]) -> dict[str, int]:
    return {s: v["write"] for s, v in data["requests"].items()}


def total_requests(data: dict[str, Any]) -> int:
    return sum(v["read"] + v["write"] for v in data["requests"].values())


@contextmanager
def azure_env(monkeypatch: pytest.MonkeyPatch, services: Any) -> Iterator[None]:
    """Point the azure target at the local services, as `eval "$(bspec local env)"` does."""
    monkeypatch.setenv("AZURE_BATCH_ENDPOINT", services.batch_url)
    monkeypatch.setenv("AZURE_BATCH_ACCOUNT", services.account)
    monkeypatch.setenv("AZURE_BATCH_ACCESS_KEY", services.key)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", services.storage_connection_string)
    yield
