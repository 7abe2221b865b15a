"""Container tasks through podman, as Batch runs them on a Linux node.

Batch creates the container from the task's `containerSettings.imageName`, passes
`containerRunOptions` through to the create command, maps AZ_BATCH_NODE_ROOT_DIR into the
container at the same path (or only the folders `containerHostBatchBindMounts` names),
passes every task environment variable in, starts in AZ_BATCH_TASK_WORKING_DIR (or the
image's WORKDIR with `workingDirectory: containerImageDefault`) and runs the task's command
line in it: split into words, no shell in between, and the image's ENTRYPOINT when the
command line is empty. The container shares the node's network, as on Batch.

This module builds that `podman run` (`task_command`) and the commands around it: pulling
with registry credentials (`pull`), killing a task's container by name (`remove_container`)
and every container of a node or pool by label (`remove_containers`, `list_containers`).
The storage and its configuration are bspec.common.podman's: all under the state folder.
Secrets stay off command lines and out of logs: environment values reach podman through its
own environment (`--env NAME`), registry passwords through stdin.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.common.podman import (
    PodmanError,
    Storage,
    available,
    ensure_config,
    error_text,
    image_exists,
    import_from_user_storage,
    import_tarball,
    list_images,
    qualify,
    run,
)

__all__ = [
    "PodmanError",
    "Storage",
    "available",
    "ensure_config",
    "image_exists",
    "import_from_user_storage",
    "import_tarball",
    "list_images",
    "qualify",
]

# Batch's TaskFailureInfo codes for container tasks (category usererror).
CONTAINER_INVALID_IMAGE = (
    "ContainerInvalidImage"  # "One or more container images specified are invalid"
)
CONTAINER_INVALID_SETTINGS = "ContainerInvalidSettings"  # "At least one value of specified task container settings is invalid"

LABEL_POOL = "bspec.pool"
LABEL_NODE = "bspec.node"
LABEL_TASK = "bspec.task"
PODMAN_ERROR_EXIT = 125  # podman's own failure (bad option, no image), not the command's
PULL_TIMEOUT = 900.0
_NAME_OK = re.compile(r"[^A-Za-z0-9_.-]")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables podman itself reads (or the loader, or Go's runtime): passing one by name would
# change how podman runs, so these go on the command line as NAME=VALUE (settings, not secrets).
_PODMAN_OWN = re.compile(
    r"PATH|HOME|TMPDIR|USER|LOGNAME|SHELL|NOTIFY_SOCKET|REGISTRY_AUTH_FILE"
    r"|(CONTAINERS|CONTAINER|XDG|STORAGE|BUILDAH|PODMAN|DOCKER|LISTEN|LD|GO|_CONTAINERS)_.*"
    r"|GODEBUG|GOMAXPROCS|GOGC|GOTRACEBACK|(?i:(https?|ftp|all|no)_proxy)"
)
# containerHostBatchBindMounts sources -> the variable naming the host folder (Linux).
_MOUNT_SOURCES = {
    "Shared": "AZ_BATCH_NODE_SHARED_DIR",
    "Startup": "AZ_BATCH_NODE_STARTUP_DIR",
    "VfsMounts": "AZ_BATCH_NODE_MOUNTS_DIR",
    "Task": "AZ_BATCH_TASK_DIR",
    "JobPrep": "AZ_BATCH_JOB_PREP_DIR",
}


@dataclass(frozen=True)
class Registry:
    """Batch's ContainerRegistry(Reference); the password never appears in a repr."""

    server: str = "docker.io"
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Registry:
        server = str(body.get("registryServer") or "docker.io")
        server = re.sub(r"^https?://", "", server).rstrip("/")
        return cls(server, body.get("username"), body.get("password"))


@dataclass(frozen=True)
class BindMount:
    source: str  # Shared | Startup | VfsMounts | Task | JobPrep | Applications
    read_only: bool = False


@dataclass(frozen=True)
class ContainerSettings:
    """A task's `containerSettings` (Batch's BatchTaskContainerSettings)."""

    image_name: str
    run_options: str = ""
    working_directory: str = "taskWorkingDirectory"  # or containerImageDefault
    bind_mounts: tuple[BindMount, ...] | None = None  # None: the whole node root
    registry: Registry | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ContainerSettings:
        mounts = body.get("containerHostBatchBindMounts")
        return cls(
            image_name=str(body["imageName"]),
            run_options=str(body.get("containerRunOptions") or ""),
            working_directory=str(body.get("workingDirectory") or "taskWorkingDirectory"),
            bind_mounts=None
            if mounts is None
            else tuple(
                BindMount(str(m.get("source")), bool(m.get("isReadOnly", False))) for m in mounts
            ),
            registry=Registry.from_json(body["registry"]) if body.get("registry") else None,
        )


@dataclass(frozen=True)
class TaskCommand:
    """What the agent starts instead of the command line: ARGV in ENV (which carries the
    task's environment values, so they stay off the command line); NAME kills it."""

    argv: list[str]
    env: dict[str, str]
    name: str


def container_name(node_id: str, task: str) -> str:
    """A name unique to one run of one task on one node, for `podman rm -f` on kill."""
    readable = _NAME_OK.sub("_", f"bspec-{node_id}-{task}")
    if len(readable) > 180:
        readable = readable[:160] + "-" + hashlib.sha256(readable.encode()).hexdigest()[:12]
    return f"{readable}-{uuid.uuid4().hex[:8]}"


def mount_folders(
    settings: ContainerSettings, environment: Mapping[str, str]
) -> list[tuple[str, bool]]:
    """The host folders mapped into the container (each at its own path), with read-only.

    Without containerHostBatchBindMounts: the whole AZ_BATCH_NODE_ROOT_DIR, read-write.
    With an empty list: nothing. A source whose folder the task does not have (JobPrep of a
    job without a preparation task) is left out.
    """
    root = environment.get("AZ_BATCH_NODE_ROOT_DIR")
    if settings.bind_mounts is None:
        return [(root, False)] if root else []
    folders: list[tuple[str, bool]] = []
    for mount in settings.bind_mounts:
        if mount.source == "Applications":
            folder = f"{root}/applications" if root else None
        else:
            variable = _MOUNT_SOURCES.get(mount.source)
            folder = environment.get(variable) if variable else None
        if folder and all(folder != f for f, _ in folders):
            folders.append((folder, mount.read_only))
    return folders


def task_command(
    storage: Storage,
    settings: ContainerSettings,
    *,
    pool_id: str,
    node_id: str,
    task: str,
    command_line: str,
    environment: Mapping[str, str],
    name: str | None = None,
) -> TaskCommand:
    """The `podman run` for one container task; ValueError for options that do not split.

    ENVIRONMENT is the task's (every AZ_BATCH_* plus its environmentSettings). The agent
    starts ARGV with ENV as it starts a plain task's command, with stdout and stderr on
    stdout.txt and stderr.txt (the container writes to them directly: passthrough), and
    the exit code is the command's (125 when podman itself failed: see `podman_failure`).
    """
    try:
        user_options = shlex.split(settings.run_options)
        command = shlex.split(command_line)
    except ValueError as exc:
        raise ValueError(f"cannot split into words: {exc}") from exc
    name = name or container_name(node_id, task)
    argv = storage.command("run", "--rm", "--log-driver", "passthrough")
    if not any(_is_option(o, "--network", "--net") for o in user_options):
        argv += ["--network", "host"]
    working_dir = environment.get("AZ_BATCH_TASK_WORKING_DIR")
    if settings.working_directory != "containerImageDefault" and working_dir:
        argv += ["--workdir", working_dir]
    for folder, read_only in mount_folders(settings, environment):
        argv += ["--volume", f"{folder}:{folder}:{'ro' if read_only else 'rw'}"]
    by_name: dict[str, str] = {}
    for key, value in environment.items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"the environment variable name {key!r} cannot reach a container")
        if _PODMAN_OWN.fullmatch(key):
            argv += ["--env", f"{key}={value}"]
        else:
            argv += ["--env", key]
            by_name[key] = value
    argv += user_options  # after ours: a user's --workdir or --entrypoint wins, as on Batch
    argv += [
        "--name",
        name,
        "--label",
        f"{LABEL_POOL}={pool_id}",
        "--label",
        f"{LABEL_NODE}={node_id}",
        "--label",
        f"{LABEL_TASK}={task}",
        "--pull",
        "never",  # images come from node start or `pull` first: never a silent pull here
        qualify(settings.image_name),
        *command,
    ]
    return TaskCommand(argv, storage.environment(by_name), name)


def _is_option(word: str, *names: str) -> bool:
    return any(word == n or word.startswith(n + "=") for n in names)


def podman_failure(exit_code: int | None, stderr_file: Path) -> tuple[str, str] | None:
    """(Batch failure code, message) when exit code 125 came from podman, not the command:
    podman then wrote `Error: ...` as the last line of stderr.txt."""
    if exit_code != PODMAN_ERROR_EXIT:
        return None
    try:
        with stderr_file.open("rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("Error: "):
        return None
    message = lines[-1][len("Error: ") :]
    if "image not known" in message or "no such image" in message.lower():
        return CONTAINER_INVALID_IMAGE, message
    return CONTAINER_INVALID_SETTINGS, message


# ---------------------------------------------------------------------- images


def login(storage: Storage, registry: Registry, timeout: float = 60.0) -> None:
    """`podman login` into this storage's auth file; the password goes through stdin."""
    if not registry.username or registry.password is None:
        return
    run(
        storage,
        "login",
        "--authfile",
        str(storage.auth_file),
        "--username",
        registry.username,
        "--password-stdin",
        registry.server,
        input=registry.password,
        timeout=timeout,
    )


def registry_for(ref: str, registries: Iterable[Registry]) -> Registry | None:
    """The registry among REGISTRIES that serves REF (by server name), if any."""
    server = qualify(ref).split("/", 1)[0]
    for registry in registries:
        if registry.server == server or (
            server == "docker.io" and registry.server in ("index.docker.io", "hub.docker.com")
        ):
            return registry
    return None


def pull(
    storage: Storage,
    ref: str,
    registries: Iterable[Registry] = (),
    timeout: float = PULL_TIMEOUT,
) -> str:
    """Make REF present: nothing when it is, else log in to its registry (if REGISTRIES has
    credentials for it) and pull. Returns the qualified reference; PodmanError on failure."""
    full = qualify(ref)
    if image_exists(storage, full):
        return full
    registry = registry_for(full, registries)
    if registry is not None:
        login(storage, registry)
    run(storage, "pull", "--quiet", "--authfile", str(storage.auth_file), full, timeout=timeout)
    return full


def prepare_image(
    storage: Storage, settings: ContainerSettings, registries: Iterable[Registry] = ()
) -> tuple[str, str] | None:
    """Before a container task starts: its image present (pulled with the task's registry,
    else the pool's), or (Batch failure code, message) to fail the task with."""
    candidates = ((settings.registry,) if settings.registry else ()) + tuple(registries)
    try:
        pull(storage, settings.image_name, candidates)
    except PodmanError as exc:
        return (
            CONTAINER_INVALID_IMAGE,
            f"The image {settings.image_name} is not available: {exc.message}",
        )
    return None


def ensure_images(
    storage: Storage, refs: Iterable[str], registries: Iterable[Registry] = ()
) -> dict[str, str]:
    """Pull every REF (a pool's containerImageNames at node start); {ref: error} of those
    that failed, empty when all are present."""
    failed: dict[str, str] = {}
    registries = tuple(registries)
    for ref in refs:
        try:
            pull(storage, ref, registries)
        except PodmanError as exc:
            failed[ref] = exc.message
    return failed


# ---------------------------------------------------------------------- containers


@dataclass(frozen=True)
class Container:
    """A container of the private storage (running or left over)."""

    id: str
    name: str
    state: str  # podman's: running, exited, created, ...
    labels: Mapping[str, str]


def list_containers(
    storage: Storage, pool_id: str | None = None, node_id: str | None = None
) -> list[Container]:
    """Every container in the private storage (of POOL_ID's or NODE_ID's tasks if given):
    after tasks end there should be none."""
    args = ["ps", "--all", "--format", "json"]
    if pool_id is not None:
        args += ["--filter", f"label={LABEL_POOL}={pool_id}"]
    if node_id is not None:
        args += ["--filter", f"label={LABEL_NODE}={node_id}"]
    rows = json.loads(run(storage, *args).stdout or "[]")
    return [
        Container(
            id=str(row.get("Id", ""))[:12],
            name=(row.get("Names") or [""])[0],
            state=str(row.get("State", "")),
            labels=dict(row.get("Labels") or {}),
        )
        for row in rows
    ]


def remove_container(storage: Storage, name: str, timeout: float = 60.0) -> bool:
    """Kill and remove the container NAME at once (SIGKILL, no grace: the agent already
    gave the task its SIGTERM); True if one was there. Safe to call twice or too early."""
    done = subprocess.run(
        storage.command("rm", "--force", "--time", "0", "--ignore", name),
        capture_output=True,
        text=True,
        env=storage.environment(),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise PodmanError(f"`podman rm` of {name} failed: {error_text(done.stderr)}")
    return bool(done.stdout.strip())


def remove_containers(
    storage: Storage, pool_id: str | None = None, node_id: str | None = None
) -> list[str]:
    """Kill and remove every container of POOL_ID or NODE_ID (all when both are None), as
    a node or pool goes away; returns their names."""
    names = [c.name for c in list_containers(storage, pool_id, node_id)]
    if names:
        run(storage, "rm", "--force", "--time", "0", "--ignore", *names)
    return names
