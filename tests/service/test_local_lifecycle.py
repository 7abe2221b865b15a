"""The local services' lifecycle: start, reuse, fall back, restart, stop; each in its own state folder."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from bspec import local as services
from bspec.errors import LocalServiceError
from bspec.local import azurite as azurite_finder

pytestmark = pytest.mark.service

# B1's server lands in parallel; until `python -m bspec.localbatch` exists, skip what needs it.
needs_batch = pytest.mark.skipif(
    importlib.util.find_spec("bspec.localbatch.__main__") is None,
    reason="the local Batch service (bspec.localbatch.__main__) is not there yet",
)


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    try:
        yield folder
    finally:
        services.stop(folder)


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


@needs_batch
def test_up_twice_reuses_the_running_pair_and_down_stops_it(home: Path) -> None:
    first = services.ensure_running(home, batch_port=0, azurite_port=0)
    second = services.ensure_running(home)
    assert (second.batch_pid, second.storage_pid) == (first.batch_pid, first.storage_pid)
    assert (second.batch_url, second.blob_url) == (first.batch_url, first.blob_url)

    recorded = json.loads((home / "endpoints.json").read_text())
    assert recorded["batch"] == {
        "url": first.batch_url,
        "pid": first.batch_pid,
        "port": int(first.batch_url.rsplit(":", 1)[1]),
    }
    assert recorded["storage"]["blobUrl"] == first.blob_url
    assert recorded["storage"]["pid"] == first.storage_pid
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "account.json").stat().st_mode & 0o777 == 0o600
    assert first.key not in (home / "endpoints.json").read_text()
    assert first.key not in repr(first)

    with urllib.request.urlopen(f"{first.batch_url}/_local/health") as resp:
        health = json.load(resp)
    assert health["status"] == "ok" and health["account"] == first.account

    services.stop(home)
    assert first.batch_pid is not None and first.storage_pid is not None
    assert gone(first.batch_pid) and gone(first.storage_pid)
    state = services.status(home)
    assert not state["batch"]["running"] and not state["storage"]["running"]


def test_daemons_are_detached_with_output_in_logs(home: Path) -> None:
    ep = services.ensure_storage(home, port=0)
    assert os.getsid(ep.pid) == ep.pid != os.getsid(0)  # its own session: no terminal shared
    assert os.readlink(f"/proc/{ep.pid}/fd/0") == "/dev/null"
    assert os.readlink(f"/proc/{ep.pid}/fd/1") == str(home / "logs" / "azurite.log")
    assert "listens on" in (home / "logs" / "azurite.log").read_text()


def test_a_taken_port_falls_back_to_a_free_one(home: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        ep = services.ensure_storage(home, port=taken)
    assert ep.port != taken
    assert json.loads((home / "endpoints.json").read_text())["storage"]["port"] == ep.port


def test_a_dead_daemon_is_started_again(home: Path) -> None:
    first = services.ensure_storage(home, port=0)
    os.kill(first.pid, signal.SIGKILL)
    second = services.ensure_storage(home)
    assert second.pid != first.pid
    assert second.port == first.port  # its recorded port was free again
    assert services.status(home)["storage"]["running"]


def test_two_commands_starting_at_once_share_one_azurite(home: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from bspec import local as services; "
        "print(services.ensure_storage(Path(sys.argv[1]), port=0).pid)"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(home)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    pids = {int(p.communicate(timeout=120)[0]) for p in procs}
    assert len(pids) == 1
    assert services.status(home)["storage"]["pid"] == pids.pop()


def test_stop_when_nothing_runs_is_quiet(home: Path) -> None:
    services.stop(home)
    services.stop(home)
    assert not services.status(home)["batch"]["running"]


def test_missing_azurite_says_what_to_install(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azurite_finder, "_checkout_root", lambda: tmp_path / "no-checkout")
    monkeypatch.delenv("BSPEC_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent) + os.pathsep + "/usr/bin:/bin")
    with pytest.raises(LocalServiceError) as info:
        services.ensure_storage(home, port=0)
    assert "Azurite" in str(info.value)
    assert "npm ci" in str(info.value) or "Node.js" in str(info.value)


def test_missing_node_says_to_install_it(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azurite_finder, "_checkout_root", lambda: tmp_path / "no-checkout")
    azurite = Path(__file__).resolve().parents[2] / "node_modules" / ".bin" / "azurite-blob"
    monkeypatch.setenv("BSPEC_AZURITE", str(azurite))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalServiceError, match=r"Node\.js is missing"):
        services.ensure_storage(home, port=0)


@pytest.mark.slow
def test_a_checkout_without_azurite_installs_it_with_npm_ci(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = Path(__file__).resolve().parents[2]
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("package.json", "package-lock.json"):
        (checkout / name).write_bytes((repo / name).read_bytes())
    monkeypatch.setattr(azurite_finder, "_checkout_root", lambda: checkout)
    monkeypatch.delenv("BSPEC_AZURITE", raising=False)
    said: list[str] = []
    ep = services.ensure_storage(home, port=0, progress=said.append)
    assert (checkout / "node_modules" / ".bin" / "azurite-blob").exists()
    assert any("npm ci" in line for line in said)
    assert str(checkout) in Path(f"/proc/{ep.pid}/cmdline").read_text()


@needs_batch
def test_when_azurite_cannot_start_the_batch_service_is_still_recorded(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(azurite_finder, "_checkout_root", lambda: tmp_path / "no-checkout")
    monkeypatch.delenv("BSPEC_AZURITE", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    with pytest.raises(LocalServiceError, match="Azurite"):
        services.ensure_running(home, batch_port=0, azurite_port=0)
    state = services.status(home)
    assert state["batch"]["running"] and not state["storage"]["running"]
    batch_pid = state["batch"]["pid"]
    services.stop(home)  # nothing was orphaned: stop finds it by its recorded PID
    assert gone(batch_pid)
