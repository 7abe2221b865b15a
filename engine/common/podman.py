"""The local service's private podman: its configuration, its image storage and the image
commands that `bspec local images` and the node agent share.

Everything podman keeps lives under `<state folder>/containers/`: a containers.conf named by
CONTAINERS_CONF, a storage.conf named by CONTAINERS_STORAGE_CONF, the image storage
(`--root`), the run state (`--runroot`), runc's state (`--runtime-flag root=`), the network
configuration, the events log, the temporary files (TMPDIR) and the registry logins
(REGISTRY_AUTH_FILE). Nothing goes to /etc/containers or to the machine's own storage under
/var/lib/containers/storage, so tests and the service never touch the user's images. One
exception podman 4.3 does not let us move: importing or loading an image as root updates
its blob-info cache, /var/lib/containers/cache/blob-info-cache-v1.boltdb (digests only).

The configuration is what makes podman work headless as root on machines like ours (no
systemd, cgroup v1 or v2 without delegation): `cgroup_manager = "cgroupfs"`,
`default_ulimits = []` (a container may not raise limits the service itself lacks), runc as
the runtime and a file events log. Pure of the rest of bspec: the engine (the CLI) imports
it, and bspec.localbatch builds its task runtime on it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = (
    "install podman and runc (Debian or Ubuntu: `sudo apt-get install podman runc`), then retry"
)
MIN_VERSION = (4, 0)  # --log-driver passthrough
TIMEOUT = 120.0  # seconds for any local podman command (imports of big images included)
_SEARCH_PATH = os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
)
_MAX_RUNROOT = 50  # podman refuses a longer runroot (its sockets' paths must fit)
_VERSION = re.compile(r"(\d+)\.(\d+)")


class PodmanError(Exception):
    """A podman command failed; `message` says what, in words fit for the user."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class Image:
    """One image of the private storage, as `bspec local images list` shows it."""

    id: str  # the 12-hex short id
    names: tuple[str, ...]  # e.g. ("localhost/busybox:latest",); empty when untagged
    size: int  # bytes
    created: str  # ISO 8601, as podman reports it

    def to_json(self) -> dict[str, object]:
        """The `--json` shape of `bspec local images list`: one object per image."""
        return {
            "id": self.id,
            "names": list(self.names),
            "size": self.size,
            "created": self.created,
        }


def _which(name: str) -> str | None:
    """Find NAME on PATH or in the sbin folders (runc lives in /usr/sbin on Debian)."""
    return shutil.which(name, path=_SEARCH_PATH)


@functools.cache
def available() -> str | None:
    """None when podman can run container tasks here, else why not and how to install it."""
    podman = _which("podman")
    if podman is None:
        return f"podman is not installed: {INSTALL_HINT}"
    if _which("runc") is None:
        return f"runc (podman's runtime) is not installed: {INSTALL_HINT}"
    try:
        out = subprocess.run(
            [podman, "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"podman does not run ({exc}): {INSTALL_HINT}"
    found = _VERSION.search(out)
    if found is None or (int(found.group(1)), int(found.group(2))) < MIN_VERSION:
        wanted = ".".join(map(str, MIN_VERSION))
        return f"podman {wanted} or later is needed, found {out.strip()!r}: {INSTALL_HINT}"
    return None


@dataclass(frozen=True)
class Storage:
    """The private podman of one state folder: where everything lives and how to call it."""

    state_dir: Path

    @property
    def base(self) -> Path:
        return self.state_dir / "containers"

    @property
    def conf(self) -> Path:
        return self.base / "containers.conf"

    @property
    def storage_conf(self) -> Path:
        return self.base / "storage.conf"

    @property
    def root(self) -> Path:
        return self.base / "storage"

    @property
    def runroot(self) -> Path:
        """<state>/containers/run, unless that is longer than podman accepts (50 characters):
        then a short private folder in the temporary folder. Run state is volatile anyway."""
        natural = self.base / "run"
        if len(str(natural)) <= _MAX_RUNROOT:
            return natural
        digest = hashlib.sha256(str(self.base).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"bspec-{os.getuid()}-{digest}"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def tmp(self) -> Path:
        return self.base / "tmp"

    @property
    def auth_file(self) -> Path:
        return self.base / "auth.json"

    def command(self, *args: str) -> list[str]:
        """`podman` with this storage's global options, then ARGS."""
        return [
            _which("podman") or "podman",
            "--root",
            str(self.root),
            "--runroot",
            str(self.runroot),
            "--runtime-flag",
            f"root={self.runc_root}",
            *args,
        ]

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment podman runs in: the service's own, this storage's configuration
        files, then EXTRA (values that podman hands to a container by name)."""
        env = dict(os.environ)
        env["PATH"] = _SEARCH_PATH
        env.update(extra or {})
        env.update(
            CONTAINERS_CONF=str(self.conf),
            CONTAINERS_STORAGE_CONF=str(self.storage_conf),
            REGISTRY_AUTH_FILE=str(self.auth_file),
            TMPDIR=str(self.tmp),
        )
        return env


def ensure_config(state_dir: Path) -> Storage:
    """Create the private folders and write the configuration files (when they changed)."""
    storage = Storage(Path(state_dir).absolute())
    for folder in (storage.base, storage.root, storage.runc_root, storage.tmp):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _private_folder(storage.runroot)
    with contextlib.suppress(FileExistsError):  # podman refuses a missing REGISTRY_AUTH_FILE
        fd = os.open(storage.auth_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write('{"auths": {}}\n')
    _write_if_changed(storage.conf, _containers_conf(storage))
    _write_if_changed(storage.storage_conf, _storage_conf(storage))
    return storage


def _private_folder(folder: Path) -> None:
    """Create FOLDER 0700 and make sure it is a real folder of ours (it may be in /tmp)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PodmanError(f"{folder} is not a folder of this user: remove it and retry")
    if info.st_mode & 0o077:
        folder.chmod(0o700)


def open_storage(state_dir: Path) -> Storage:
    """The private storage of STATE_DIR, configured and ready; PodmanError (with how to
    install podman as the hint) where podman cannot run. What `bspec local images` opens."""
    reason = available()
    if reason is not None:
        raise PodmanError(reason.split(": ", 1)[0], hint=INSTALL_HINT)
    return ensure_config(state_dir)


def _containers_conf(storage: Storage) -> str:
    base = storage.base
    return (
        "# Written by bspec: the local Batch service's private podman (see docs/containers.md).\n"
        "[containers]\n"
        "default_ulimits = []\n"
        "http_proxy = false\n"  # the service's proxy settings are not the task's
        'log_driver = "passthrough"\n'
        "\n[network]\n"
        f'network_backend = "{_network_backend()}"\n'
        f"network_config_dir = {_toml(base / 'networks')}\n"
        "\n[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f"events_logfile_path = {_toml(base / 'events.log')}\n"
        'runtime = "runc"\n'
        f"tmp_dir = {_toml(storage.tmp)}\n"
        f"image_copy_tmp_dir = {_toml(storage.tmp)}\n"
    )


def _network_backend() -> str:
    """CNI when its plugins are installed (it keeps nothing outside the state folder); else
    netavark, podman's other network stack (it keeps an empty /run/containers/networks)."""
    for folder in ("/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin"):
        if Path(folder, "bridge").exists():
            return "cni"
    return "netavark"


def _storage_conf(storage: Storage) -> str:
    return (
        "# Written by bspec: the local Batch service's private image storage.\n"
        "[storage]\n"
        f'driver = "{_storage_driver(storage.base)}"\n'
        f"graphroot = {_toml(storage.root)}\n"
        f"runroot = {_toml(storage.runroot)}\n"
    )


def _storage_driver(folder: Path) -> str:
    """overlay, unless the folder is itself on overlayfs (a container's disk), where an
    overlay cannot stack: vfs (copies, slower, but works everywhere)."""
    best, fstype = "", ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) < 3:
                continue
            mount = fields[1].replace("\\040", " ")
            inside = str(folder) == mount or str(folder).startswith(mount.rstrip("/") + "/")
            if inside and len(mount) >= len(best):
                best, fstype = mount, fields[2]
    return "vfs" if fstype == "overlay" else "overlay"


def _toml(path: Path) -> str:
    return json.dumps(str(path))  # a TOML basic string is a JSON string for paths


def _write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(OSError):
        if path.read_text() == text:
            return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run(
    storage: Storage, *args: str, input: str | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run one podman command on STORAGE; PodmanError with podman's own message on failure."""
    argv = storage.command(*args)
    try:
        done = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            env=storage.environment(),
            timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"`podman {args[0]}` did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise PodmanError(f"cannot run podman: {exc.strerror}", hint=INSTALL_HINT) from exc
    if done.returncode != 0:
        release(storage)
        raise PodmanError(f"`podman {args[0]}` failed: {error_text(done.stderr)}")
    return done


def release(storage: Storage) -> list[str]:
    """Unmount what podman left mounted in the storage: a podman command that fails can
    leave the overlay driver's bind mount of `<root>/overlay` on itself, which keeps the
    state folder from being removed. Call it after failures and before removing the state
    folder; returns the mount points it unmounted."""
    root = str(storage.root)
    found: list[str] = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) >= 2:
                mount = fields[1].replace("\\040", " ")
                if mount == root or mount.startswith(root + "/"):
                    found.append(mount)
    done: list[str] = []
    for mount in sorted(found, key=len, reverse=True):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            if subprocess.run(["umount", mount], capture_output=True, timeout=30).returncode == 0:
                done.append(mount)
    return done


def error_text(stderr: str) -> str:
    """Podman's last `Error: ...` line (what it says went wrong), else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith("Error: "):
            return line[len("Error: ") :]
    return lines[-1] if lines else "no message"


def qualify(ref: str) -> str:
    """The full reference Batch means: docker.io (and library/) when no registry is named,
    :latest when no tag or digest is given."""
    first, _, rest = ref.partition("/")
    if not rest:
        ref = f"docker.io/library/{ref}"
    elif "." not in first and ":" not in first and first != "localhost":
        ref = f"docker.io/{ref}"
    last = ref.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        ref += ":latest"
    return ref


def image_exists(storage: Storage, ref: str) -> bool:
    """Whether REF (a name or an id) is in the private storage."""
    argv = storage.command("image", "exists", ref)
    done = subprocess.run(
        argv,
        capture_output=True,
        env=storage.environment(),
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    return done.returncode == 0


def list_images(storage: Storage) -> list[Image]:
    """Every image of the private storage, newest first."""
    out = run(storage, "images", "--format", "json").stdout
    rows = json.loads(out or "[]")
    images = [
        Image(
            id=str(row.get("Id", ""))[:12],
            names=tuple(row.get("Names") or ()),
            size=int(row.get("Size") or 0),
            created=str(row.get("CreatedAt") or ""),
        )
        for row in rows
    ]
    return images


def import_tarball(storage: Storage, path: Path, ref: str | None = None) -> str:
    """Add the image in the tarball PATH to the private storage; returns its name.

    An image archive (what `podman save` or `docker save` write) is loaded as it is, and
    tagged REF if given; any other tarball is a root file system, imported as the image REF
    (required then), as `podman import` does. REF is qualified as a task's imageName is
    (`mytool` is docker.io/library/mytool:latest), so a task finds it by the same name.
    """
    path = Path(path)
    ref = qualify(ref) if ref else None
    if not path.is_file():
        raise PodmanError(f"no such file: {path}")
    if _is_image_archive(path):
        loaded = _loaded_names(run(storage, "load", "--input", str(path)).stdout)
        if ref:
            if not loaded:
                raise PodmanError(f"{path} holds no image to tag as {ref}")
            run(storage, "tag", loaded[0], ref)
            return ref
        if not loaded:
            raise PodmanError(f"{path} holds no image")
        return loaded[0]
    if not ref:
        raise PodmanError(
            f"{path} is a root file system, not an image archive: give the image a name",
            hint="for example: bspec local images import rootfs.tar --name localhost/mytool:1",
        )
    run(storage, "import", str(path), ref)
    return ref


def _is_image_archive(path: Path) -> bool:
    """A docker-archive (manifest.json) or oci-archive (oci-layout) rather than a root fs."""
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                if name in ("manifest.json", "oci-layout", "index.json"):
                    return True
    except (tarfile.TarError, OSError) as exc:
        raise PodmanError(f"{path} is not a readable tarball: {exc}") from exc
    return False


def _loaded_names(out: str) -> list[str]:
    """The names `podman load` reports ("Loaded image: NAME" or "Loaded image(s): A,B")."""
    names: list[str] = []
    for line in out.splitlines():
        if line.startswith("Loaded image"):
            names += [n.strip() for n in line.split(":", 1)[1].split(",") if n.strip()]
    return names


def import_from_user_storage(
    storage: Storage, ref: str, source: Storage | None = None, timeout: float = TIMEOUT
) -> str:
    """Copy the image REF from the user's own podman storage (or SOURCE) into STORAGE.

    `podman save REF | podman --root <ours> load`, without a file in between. The user's
    podman runs with the user's own configuration: none of this storage's variables.
    Returns REF qualified as a task's imageName is, the name the copy is found by.
    """
    if source is not None:
        save_argv = source.command("save", "--format", "oci-archive", ref)
        save_env = source.environment()
    else:
        save_argv = [_which("podman") or "podman", "save", "--format", "oci-archive", ref]
        save_env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "REGISTRY_AUTH_FILE")
        }
    load_argv = storage.command("load")
    try:
        with subprocess.Popen(
            save_argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=save_env,
        ) as save:
            assert save.stdout is not None
            load = subprocess.run(
                load_argv,
                stdin=save.stdout,
                capture_output=True,
                text=True,
                env=storage.environment(),
                timeout=timeout,
            )
            save.stdout.close()
            save_err = save.stderr.read().decode(errors="replace") if save.stderr else ""
            save.wait(timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise PodmanError(f"copying {ref} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise PodmanError(f"cannot run podman: {exc.strerror}", hint=INSTALL_HINT) from exc
    if save.returncode != 0 or load.returncode != 0:
        release(storage)
        if source is not None:
            release(source)
    if save.returncode != 0:
        where = "the source storage" if source is not None else "your podman storage"
        raise PodmanError(
            f"cannot read {ref} from {where}: {error_text(save_err)}",
            hint="`podman images` lists what your own storage holds",
        )
    if load.returncode != 0:
        raise PodmanError(f"`podman load` failed: {error_text(load.stderr)}")
    loaded = _loaded_names(load.stdout)
    full = qualify(ref)
    if loaded and not image_exists(storage, full):
        run(storage, "tag", loaded[0], full)
    return full


def remove_image(storage: Storage, ref: str) -> None:
    """Remove REF from the private storage (containers using it are the caller's concern)."""
    run(storage, "rmi", ref)
