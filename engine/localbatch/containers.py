"""Container pools and tasks, wired to the podman runtime (podman.py, docs/containers.md).

A pool with `virtualMachineConfiguration.containerConfiguration` is refused at creation when
podman cannot run here (never a task run on the host pretending it was in a container); its
nodes pull `containerImageNames` when they start (failures become node errors); a task with
`containerSettings` runs through `podman run` in the agent, and a task with containerSettings
on a pool without containerConfiguration fails as Batch fails it. The private podman storage
is opened once when the service starts, and left-over containers removed.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import podman
from .resources import BatchError
from .store import Row

log = logging.getLogger("bspec.localbatch.containers")
TYPES = ("dockercompatible", "cricompatible")
NOT_CONTAINER_POOL = (
    "ContainerSettingsNotSupported",  # the task's failureInfo code
    "The task has containerSettings, but its pool has no containerConfiguration: its nodes "
    "are not container-enabled",
)


@dataclass(frozen=True)
class ContainerRun:
    """A task that runs in a container (its containerSettings, on a container pool): what
    the agent asks before, to start, and after it."""

    storage: podman.Storage
    settings: podman.ContainerSettings
    registries: tuple[podman.Registry, ...]
    pool_id: str
    node_id: str
    task: str
    invalid: str = podman.CONTAINER_INVALID_SETTINGS

    def prepare(self) -> tuple[str, str] | None:
        """The image present (pulled if need be), or (failure code, message)."""
        return podman.prepare_image(self.storage, self.settings, self.registries)

    def command(self, ex: Any) -> tuple[list[str], dict[str, str], str]:
        """(argv, environment, container name) of the `podman run`; ValueError if invalid."""
        cmd = podman.task_command(
            self.storage,
            self.settings,
            pool_id=self.pool_id,
            node_id=self.node_id,
            task=self.task,
            command_line=ex.command_line,
            environment=ex.environment,
        )
        return cmd.argv, cmd.env, cmd.name

    def failure(self, exit_code: int | None, task_dir: Path) -> tuple[str, str] | None:
        """Exit code 125 written by podman itself: (failure code, message)."""
        return podman.podman_failure(exit_code, task_dir / "stderr.txt")

    def remove(self, name: str) -> None:
        """Kill and remove the container NAME (in a worker thread); errors are logged."""
        try:
            podman.remove_container(self.storage, name)
        except (podman.PodmanError, OSError, subprocess.SubprocessError) as exc:
            log.warning("cannot remove container %s: %s", name, exc)


class Containers:
    """The service's podman storage, if podman runs here, and what uses it."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.storage: podman.Storage | None = None
        self.unavailable: str | None = "podman has not been checked yet"
        self._checked = False

    async def start(self) -> None:
        """A state folder that ran containers before: open its storage now and remove the
        containers a previous run left (their tasks were requeued by the restart). Otherwise
        podman is checked when a container pool first needs it, so that a service without
        container pools starts as fast as before."""
        if not (self.home / "containers").exists():
            return
        await asyncio.to_thread(self._check)
        if self.storage is not None:
            try:
                await asyncio.to_thread(podman.remove_containers, self.storage)
            except (podman.PodmanError, OSError) as exc:
                log.warning("cannot remove the containers left by a previous run: %s", exc)

    def _check(self) -> None:
        """Once: can podman run here, and the private storage configured."""
        if self._checked:
            return
        self._checked = True
        self.unavailable = podman.available()
        if self.unavailable is not None:
            return
        try:
            self.storage = podman.ensure_config(self.home)
        except (podman.PodmanError, OSError) as exc:
            self.unavailable = f"podman's storage cannot be used: {exc}"

    # ------------------------------------------------------------------ pools

    def check_pool(self, req: dict[str, Any]) -> None:
        """At pool creation: a container pool needs podman here and a known type."""
        config = container_configuration(req)
        if config is None:
            return
        kind = str(config.get("type") or "")
        self._check()  # the first container pool: a few milliseconds, once
        if kind.lower() not in TYPES:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                "The value provided for one of the properties in the request body is invalid.",
                {
                    "PropertyName": "containerConfiguration.type",
                    "PropertyValue": kind,
                    "Reason": "The type must be dockerCompatible or criCompatible.",
                },
            )
        if self.unavailable is not None:
            raise BatchError(
                400,
                "InvalidPropertyValue",
                f"The local Batch service cannot run container pools: {self.unavailable}",
                {
                    "PropertyName": "virtualMachineConfiguration.containerConfiguration",
                    "Reason": self.unavailable,
                },
            )

    async def pull_for_node(self, pool: Row) -> list[dict[str, Any]]:
        """At node start: the pool's containerImageNames present; Batch's node errors."""
        config = container_configuration(pool.body)
        if config is None or self.storage is None:
            return []
        refs = [str(r) for r in config.get("containerImageNames") or []]
        if not refs:
            return []
        failed = await asyncio.to_thread(
            podman.ensure_images, self.storage, refs, registries(pool.body)
        )
        return [
            {
                "code": podman.CONTAINER_INVALID_IMAGE,
                "message": f"The container image {ref} could not be pulled",
                "errorDetails": [{"name": "Message", "value": message}],
            }
            for ref, message in failed.items()
        ]

    async def remove_for(self, pool_id: str, node_id: str | None = None) -> None:
        """A node or pool went away: its containers go too."""
        if self.storage is None:
            return
        try:
            await asyncio.to_thread(podman.remove_containers, self.storage, pool_id, node_id)
        except (podman.PodmanError, OSError) as exc:
            log.warning("cannot remove the containers of %s: %s", pool_id, exc)

    # ------------------------------------------------------------------ tasks

    def run_for(
        self, pool: Row, node: Row, task_id: str, settings: dict[str, Any] | None
    ) -> tuple[ContainerRun | None, tuple[str, str] | None]:
        """(the ContainerRun, None) for a container task, (None, None) for a plain one, or
        (None, (code, message)) when the task cannot run on this pool."""
        if not settings:
            return None, None
        if container_configuration(pool.body) is None:
            return None, NOT_CONTAINER_POOL
        if self.storage is None:
            return None, (podman.CONTAINER_INVALID_SETTINGS, str(self.unavailable))
        try:
            parsed = podman.ContainerSettings.from_json(settings)
        except (KeyError, TypeError, ValueError) as exc:
            return None, (podman.CONTAINER_INVALID_SETTINGS, f"invalid containerSettings: {exc}")
        run = ContainerRun(
            self.storage,
            parsed,
            registries(pool.body),
            pool.body["id"],
            node.body["id"],
            task_id,
        )
        return run, None


def container_configuration(body: dict[str, Any]) -> dict[str, Any] | None:
    config = (body.get("virtualMachineConfiguration") or {}).get("containerConfiguration")
    return config if isinstance(config, dict) else None


def registries(body: dict[str, Any]) -> tuple[podman.Registry, ...]:
    config = container_configuration(body) or {}
    return tuple(podman.Registry.from_json(r) for r in config.get("containerRegistries") or [])
