"""The local services' lifecycle: the state folder, ports, detached daemons, start and stop.

The local target is two processes on 127.0.0.1: bspec's own Batch service
(`python -m bspec.localbatch`) and Azurite's blob service. Both run detached (own
session, stdin from /dev/null, output to DIR/logs/*.log, no inherited descriptors) so
nothing holds a terminal or a CI pipe open; `endpoints.json` records where they listen
and their PIDs. Starting happens under an flock on DIR/services.lock, so two bspec
commands starting at once end up sharing one pair of services.

A third daemon runs only when asked for (`storage_faults`, BSPEC_STORAGE_FAULTS): the
fault-injecting storage proxy (bspec.local.storageproxy) in front of Azurite, recorded as
`storageProxy` in endpoints.json; clients then get its URL instead of Azurite's.

The engine reaches the services over HTTP only; this module never imports localbatch
internals beyond the account helper both sides share.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.common import proctree
from bspec.common.account import load_or_create_account
from bspec.errors import LocalServiceError
from bspec.local.azurite import Progress, azurite_command
from bspec.local.endpoints import (
    AZURITE_ACCOUNT,
    DEFAULT_AZURITE_PORT,
    DEFAULT_BATCH_PORT,
    HOST,
    Endpoints,
    connection_string,
    http_json,
    state_home,
)

START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
LOCK_TIMEOUT = 120.0

_ENDPOINTS_FILE = "endpoints.json"
_LOCK_FILE = "services.lock"

# Daemons this process started, so stop() can reap them (no zombies, no ResourceWarning).
_children: dict[int, subprocess.Popen[bytes]] = {}


# ---------------------------------------------------------------------------- processes


def _cmdline(pid: int) -> str | None:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return None


def _alive(pid: int | None, marker: str | None = None) -> bool:
    """Whether PID is a live (not zombie) process, and, where /proc tells, still ours."""
    if not pid:
        return False
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process took the PID
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except (OSError, IndexError):
        pass
    if marker is not None:
        cmd = _cmdline(pid)
        if cmd is not None and marker not in cmd:
            return False
    return True


def _spawn(args: Sequence[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start a detached daemon: own session, no terminal, output appended to LOG."""
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    _children[proc.pid] = proc
    return proc


def _terminate(pid: int | None, marker: str, timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM PID, wait up to TIMEOUT, then SIGKILL its process group; reap if it is ours."""
    if not _alive(pid, marker):
        _reap(pid)
        return
    assert pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        end = time.monotonic() + 5
        while _alive(pid) and time.monotonic() < end:
            time.sleep(0.05)
    _reap(pid)


def _reap(pid: int | None) -> None:
    child = _children.pop(pid, None) if pid else None
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=5)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port on loopback nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _choose_port(wanted: int | None, default: int, exclude: set[int]) -> int:
    """WANTED (0 means any free port; None means DEFAULT), falling back to a free one if taken."""
    port = default if wanted is None else wanted
    if port and port not in exclude and _port_free(port):
        return port
    while True:
        port = free_port()
        if port not in exclude:
            return port


def _tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join("    " + line for line in text)


# ---------------------------------------------------------------------------- HTTP probes


def _batch_ready(url: str, pid: int) -> bool:
    try:
        health = http_json("GET", f"{url}/_local/health", timeout=2.0)
    except (OSError, ValueError):
        return False
    return (
        isinstance(health, dict)
        and health.get("status") == "ok"
        and health.get("pid") in (pid, None)
    )


def _azurite_ready(blob_url: str) -> bool:
    """Any HTTP answer from the blob endpoint (403 without auth is normal) means it serves."""
    try:
        with urllib.request.urlopen(f"{blob_url}?comp=list", timeout=2.0):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- state


def _read_endpoints(home: Path) -> dict[str, Any]:
    try:
        data = json.loads((home / _ENDPOINTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_endpoints(home: Path, data: dict[str, Any]) -> None:
    path = home / _ENDPOINTS_FILE
    tmp = home / f".{_ENDPOINTS_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)
    pidfiles = (("batch.pid", "batch"), ("azurite.pid", "storage"), ("storageproxy.pid", _PROXY))
    for name, key in pidfiles:
        pid = data.get(key, {}).get("pid")
        pidfile = home / name
        if pid:
            pidfile.write_text(f"{pid}\n")
        else:
            pidfile.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(home: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold DIR/services.lock so two commands don't start (or stop) the services at once."""
    fd = os.open(home / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LocalServiceError(
                        f"another bspec command has held {home / _LOCK_FILE} for {timeout:.0f} s",
                    ) from None
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


_BATCH_MARKER = "bspec.localbatch"
_AZURITE_MARKER = "azurite"
_PROXY_MARKER = "bspec.local.storageproxy"
_PROXY = "storageProxy"  # endpoints.json's entry for the fault-injecting proxy, when in use
STORAGE_FAULTS_ENV = "BSPEC_STORAGE_FAULTS"


@dataclass
class _Launch:
    """A daemon just spawned, not yet answering: what to poll and what to record."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ready: Callable[[], bool]
    entry: dict[str, Any]


def _await_ready(launch: _Launch, timeout: float) -> dict[str, Any]:
    """Poll until LAUNCH answers (and is still alive: another server on its port must not
    pass for it); its endpoints.json entry, or LocalServiceError with the log's tail."""
    pid = launch.proc.pid
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if launch.ready() and _alive(pid):
            return launch.entry
        if not _alive(pid):
            _reap(pid)
            raise LocalServiceError(
                f"the {launch.name} exited while starting; the end of {launch.log}:\n"
                f"{_tail(launch.log)}",
            )
        time.sleep(0.05)
    _terminate(pid, "")
    raise LocalServiceError(
        f"the {launch.name} did not answer within {timeout:.0f} s; the end of {launch.log}:\n"
        f"{_tail(launch.log)}",
    )


def _launch_batch(home: Path, port: int, extra_args: Sequence[str]) -> _Launch:
    log = home / "logs" / "batch.log"
    args = [sys.executable, "-m", "bspec.localbatch", "--home", str(home), "--host", HOST]
    proc = _spawn([*args, "--port", str(port), *extra_args], log, home)
    url = f"http://{HOST}:{port}"
    return _Launch(
        "local Batch service",
        port,
        proc,
        log,
        lambda: _batch_ready(url, proc.pid),
        # the flags, so that a restart after a crash (`bspec local up`) keeps them
        {"url": url, "pid": proc.pid, "port": port}
        | ({"args": list(extra_args)} if extra_args else {}),
    )


def _launch_azurite(home: Path, port: int, progress: Progress | None) -> _Launch:
    command = azurite_command(home, progress)
    log = home / "logs" / "azurite.log"
    location = home / "azurite"
    location.mkdir(exist_ok=True, mode=0o700)
    args = [*command, "--blobHost", HOST, "--blobPort", str(port), "--location", str(location)]
    flags = ["--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]
    proc = _spawn([*args, *flags], log, home)
    blob_url = f"http://{HOST}:{port}/{AZURITE_ACCOUNT}"
    return _Launch(
        "Azurite blob service",
        port,
        proc,
        log,
        lambda: _azurite_ready(blob_url),
        {
            "blobUrl": blob_url,
            "pid": proc.pid,
            "port": port,
            "connectionString": connection_string(blob_url),
        },
    )


def storage_faults_from_env() -> float | None:
    """BSPEC_STORAGE_FAULTS as a fault rate (0-1), or None when unset: the proxy is off."""
    value = os.environ.get(STORAGE_FAULTS_ENV, "").strip()
    if not value:
        return None
    try:
        rate = float(value)
    except ValueError:
        raise LocalServiceError(
            f"{STORAGE_FAULTS_ENV}={value!r} is not a fault rate",
            hint="set it to a number between 0 and 1 (0 puts the proxy in the path, no faults)",
        ) from None
    if not 0.0 <= rate <= 1.0:
        raise LocalServiceError(f"{STORAGE_FAULTS_ENV} must be between 0 and 1, not {value}")
    return rate


def _proxy_ready(url: str, pid: int) -> bool:
    try:
        health = http_json("GET", f"{url}/_local/health", timeout=2.0)
    except (OSError, ValueError):
        return False
    return isinstance(health, dict) and health.get("pid") == pid


def _launch_proxy(home: Path, port: int, upstream: str, rate: float) -> _Launch:
    log = home / "logs" / "storageproxy.log"
    args = [sys.executable, "-m", _PROXY_MARKER, "--upstream", upstream, "--host", HOST]
    args += ["--port", str(port), "--rate", str(rate)]
    seed = os.environ.get("BSPEC_STORAGE_FAULT_SEED", "").strip()
    if seed.isdigit():
        args += ["--seed", seed]
    proc = _spawn(args, log, home)
    url = f"http://{HOST}:{port}"
    return _Launch(
        "storage fault proxy",
        port,
        proc,
        log,
        lambda: _proxy_ready(url, proc.pid),
        {
            "url": url,
            "blobUrl": f"{url}/{AZURITE_ACCOUNT}",
            "pid": proc.pid,
            "port": port,
            "upstream": upstream,
        },
    )


def _ensure_proxy(
    home: Path, data: dict[str, Any], rate: float | None, timeout: float, progress: Progress | None
) -> None:
    """Keep, start or restart the storage proxy in front of Azurite: when RATE is given, or
    when one was in use (recorded in endpoints.json) and died or Azurite moved. Without
    either the proxy stays out of the path altogether."""
    entry = data.get(_PROXY) or {}
    if rate is None and not entry:
        return
    storage = data["storage"]
    upstream = f"http://{HOST}:{storage['port']}"
    if (
        entry.get("upstream") == upstream
        and _alive(entry.get("pid"), _PROXY_MARKER)
        and _proxy_ready(str(entry.get("url")), int(entry["pid"]))
    ):
        if rate is not None:
            try:
                http_json("PUT", f"{entry['url']}/_local/settings", {"faultRate": rate})
            except (OSError, ValueError) as exc:
                raise LocalServiceError(
                    f"cannot set the storage proxy's fault rate: {exc}"
                ) from None
        return
    _terminate(entry.get("pid"), _PROXY_MARKER)
    taken = {int(e["port"]) for e in (data.get("batch") or {}, storage) if e.get("port")}
    port = _choose_port(entry.get("port") or 0, 0, taken)
    if progress is not None:
        progress(f"Starting the storage fault proxy on {HOST}:{port} (in front of Azurite)")
    wanted = rate if rate is not None else float(entry.get("faultRate") or 0.0)
    launch = _launch_proxy(home, port, upstream, wanted)
    try:
        data[_PROXY] = {**_await_ready(launch, timeout), "faultRate": wanted}
    except LocalServiceError:
        data.pop(_PROXY, None)
        _write_endpoints(home, data)
        raise
    _write_endpoints(home, data)


def _blob_url(data: dict[str, Any]) -> str:
    """Where clients reach blobs: the proxy when it is in the path, else Azurite."""
    proxy = data.get(_PROXY) or {}
    return str(proxy.get("blobUrl") or data["storage"]["blobUrl"])


@dataclass(frozen=True)
class StorageEndpoint:
    """Where Azurite's blob service listens (its key is Azurite's public development key)."""

    blob_url: str
    connection_string: str = field(repr=False)
    pid: int
    port: int


def _storage_ok(storage: dict[str, Any]) -> bool:
    return _alive(storage.get("pid"), _AZURITE_MARKER) and _azurite_ready(
        str(storage.get("blobUrl"))
    )


def _batch_ok(batch: dict[str, Any]) -> bool:
    return _alive(batch.get("pid"), _BATCH_MARKER) and _batch_ready(
        str(batch.get("url")), int(batch["pid"])
    )


def _start_missing(
    home: Path,
    data: dict[str, Any],
    wanted: dict[str, int | None],
    batch_args: Sequence[str],
    timeout: float,
    progress: Progress | None,
) -> None:
    """Start the services named in WANTED ("batch", "storage": port or None) that are not
    running, all at once, and record each in endpoints.json as soon as it answers."""
    running = [data.get(k) or {} for k in ("batch", "storage") if k not in wanted]
    taken = {int(entry["port"]) for entry in running if entry.get("port")}
    labels = {"batch": "the local Batch service", "storage": "Azurite (blob)"}
    markers = {"batch": _BATCH_MARKER, "storage": _AZURITE_MARKER}

    # A service restarted without flags of its own keeps those it was started with.
    recorded = (data.get("batch") or {}).get("args")
    if not batch_args and isinstance(recorded, list):
        batch_args = [str(a) for a in recorded]

    def launch(key: str, port: int) -> _Launch:
        if key == "batch":
            return _launch_batch(home, port, batch_args)
        return _launch_azurite(home, port, progress)

    launches: list[tuple[str, _Launch]] = []
    errors: list[LocalServiceError] = []
    for key, port_wanted in wanted.items():
        old = data.get(key) or {}
        _terminate(old.get("pid"), markers[key])
        default = DEFAULT_BATCH_PORT if key == "batch" else DEFAULT_AZURITE_PORT
        port = _choose_port(
            port_wanted if port_wanted is not None else old.get("port"), default, taken
        )
        taken.add(port)
        if progress is not None:
            progress(f"Starting {labels[key]} on {HOST}:{port}")
        try:
            launches.append((key, launch(key, port)))
        except LocalServiceError as exc:
            errors.append(exc)
    for key, started in launches:
        try:
            try:
                data[key] = _await_ready(started, timeout)
            except LocalServiceError:
                if _port_free(started.port):
                    raise  # it failed for another reason: say so
                # Someone took the port between choosing and binding it: once more elsewhere.
                port = _choose_port(0, 0, taken | {started.port})
                taken.add(port)
                data[key] = _await_ready(launch(key, port), timeout)
        except LocalServiceError as exc:
            errors.append(exc)
            data.pop(key, None)
        _write_endpoints(home, data)
    if errors:
        raise errors[0]


def ensure_storage(
    home: Path | None = None,
    *,
    port: int | None = None,
    timeout: float = START_TIMEOUT,
    progress: Progress | None = None,
) -> StorageEndpoint:
    """Start Azurite alone if it is not running (for what needs blobs but no Batch)."""
    home = state_home(home)
    with _locked(home):
        data = _read_endpoints(home)
        if not _storage_ok(data.get("storage") or {}):
            _start_missing(home, data, {"storage": port}, (), timeout, progress)
        _ensure_proxy(home, data, storage_faults_from_env(), timeout, progress)
        storage = data["storage"]
        blob_url = _blob_url(data)
    return StorageEndpoint(
        blob_url=blob_url,
        connection_string=connection_string(blob_url),
        pid=int(storage["pid"]),
        port=int(storage["port"]),
    )


def ensure_running(
    home: Path | None = None,
    *,
    batch_port: int | None = None,
    azurite_port: int | None = None,
    batch_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT,
    progress: Progress | None = None,
    storage_faults: float | None = None,
) -> Endpoints:
    """Start whichever local service is not running, wait until both answer; idempotent.

    Ports: None means the default (10080 Batch, 10000 Azurite, or the port recorded for
    this state folder), 0 means any free port; a taken port falls back to a free one.
    `batch_args` are extra flags for `python -m bspec.localbatch` (e.g. --delete-delay).
    `progress` hears one line per service it starts (for stderr; nothing when all run).
    Both start at once, so a cold start takes as long as the slower of the two.
    `storage_faults` (else BSPEC_STORAGE_FAULTS), a rate from 0 to 1, puts the
    fault-injecting proxy (bspec.local.storageproxy) between clients and Azurite; once in
    the path it stays there until `stop()`.
    """
    home = state_home(home)
    name, key = load_or_create_account(home)
    with _locked(home):
        data = _read_endpoints(home)
        wanted: dict[str, int | None] = {}
        if not _batch_ok(data.get("batch") or {}):
            wanted["batch"] = batch_port
        if not _storage_ok(data.get("storage") or {}):
            wanted["storage"] = azurite_port
        if wanted:
            _start_missing(home, data, wanted, batch_args, timeout, progress)
        if storage_faults is None:
            storage_faults = storage_faults_from_env()
        _ensure_proxy(home, data, storage_faults, timeout, progress)
        batch, storage = data["batch"], data["storage"]
        blob_url = _blob_url(data)

    return Endpoints(
        home=home,
        batch_url=str(batch["url"]),
        account=name,
        key=key,
        storage_connection_string=connection_string(blob_url),
        blob_url=blob_url,
        batch_pid=int(batch["pid"]),
        storage_pid=int(storage["pid"]),
    )


def stop(home: Path | None = None, timeout: float = STOP_TIMEOUT) -> None:
    """Stop both services by PID (SIGTERM, then SIGKILL after TIMEOUT) and wait for them;
    then stop what tasks left running in the background on the nodes."""
    home = state_home(home)
    with _locked(home):
        data = _read_endpoints(home)
        proxy = data.pop(_PROXY, None)  # out of the path until asked for again
        if isinstance(proxy, dict):
            _terminate(proxy.get("pid"), _PROXY_MARKER, timeout)
        for key, marker in (("batch", _BATCH_MARKER), ("storage", _AZURITE_MARKER)):
            entry = data.get(key)
            if isinstance(entry, dict):
                _terminate(entry.get("pid"), marker, timeout)
                entry["pid"] = None
        _write_endpoints(home, data)
        _kill_task_leftovers(home / "batch" / "nodes")


def _kill_task_leftovers(nodes: Path) -> list[int]:
    """SIGKILL what tasks left running in the background on this state folder's nodes.

    The service kills its running tasks' process groups when it stops; a daemon a task
    started in its own session escapes that, but proctree finds it by its environment.
    """
    return proctree.kill_under(nodes, include_root=False)


def status(home: Path | None = None) -> dict[str, Any]:
    """What runs where, without starting anything: {"home", "batch": {...}, "storage": {...}}.

    Each service entry has `running`, `pid`, `port` and its URL; the storage connection
    string is left out (callers that need it use ensure_running()). When the storage
    fault proxy is in the path, `storageProxy` says where it runs, likewise.
    """
    home = state_home(home)
    data = _read_endpoints(home)
    batch = data.get("batch") or {}
    storage = data.get("storage") or {}
    batch_running = _batch_ok(batch)
    storage_running = _storage_ok(storage)
    result: dict[str, Any] = {
        "home": str(home),
        "batch": {
            "running": batch_running,
            "url": batch.get("url"),
            "pid": batch.get("pid") if batch_running else None,
            "port": batch.get("port"),
            "log": str(home / "logs" / "batch.log"),
        },
        "storage": {
            "running": storage_running,
            "blobUrl": storage.get("blobUrl"),
            "pid": storage.get("pid") if storage_running else None,
            "port": storage.get("port"),
            "log": str(home / "logs" / "azurite.log"),
        },
    }
    proxy = data.get(_PROXY)
    if isinstance(proxy, dict):
        running = _alive(proxy.get("pid"), _PROXY_MARKER) and _proxy_ready(
            str(proxy.get("url")), int(proxy.get("pid") or 0)
        )
        result[_PROXY] = {
            "running": running,
            "url": proxy.get("url"),
            "blobUrl": proxy.get("blobUrl"),
            "pid": proxy.get("pid") if running else None,
            "port": proxy.get("port"),
            "log": str(home / "logs" / "storageproxy.log"),
        }
    return result
