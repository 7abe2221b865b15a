"""A service of its own (not the session's): restart keeps state and requeues running tasks;
the bearer-token mode accepts its token and rejects others."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.batch import models as m
from azure.core.credentials import AzureNamedKeyCredential
from reference import Reference, get_json, response_hook
from test_localbatch_api import IMAGE, wait_for

TOKEN = "local-test-token"


class Server:
    """`python -m bspec.localbatch` in a folder of its own, stopped by PID."""

    def __init__(self, home: Path, *extra: str, scheme: str = "http") -> None:
        self.home = home
        self.extra = list(extra)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with (self.home / "batch.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bspec.localbatch",
                    "--home",
                    str(self.home),
                    "--port",
                    str(self.port),
                    "--delete-delay",
                    "0.1",
                    "--bearer-token",
                    TOKEN,
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for(self._healthy, 20, "service up")

    def _healthy(self) -> bool:
        if not self.url.startswith("http:"):
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                return False
        try:
            get_json(f"{self.url}/_local/health")
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)

    @contextlib.contextmanager
    def running(self) -> Iterator[Server]:
        """Started in its own folder for a with-block, stopped after it."""
        self.home.mkdir(exist_ok=True)
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def client(self, reference: Reference, **kw: Any) -> BatchClient:
        account = json.loads((self.home / "account.json").read_text())
        return BatchClient(
            self.url,
            AzureNamedKeyCredential(account["name"], account["key"]),
            raw_response_hook=response_hook(reference),
            **kw,
        )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "home")
    srv.home.mkdir()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_restart_keeps_state_and_requeues_running_tasks(
    server: Server, reference: Reference
) -> None:
    with server.client(reference) as c:
        c.create_pool(
            m.BatchPoolCreateOptions(
                id="p",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=IMAGE,
                target_dedicated_nodes=1,
            )
        )
        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        c.create_task("j", m.BatchTaskCreateOptions(id="first", command_line="true"))
        wait_for(lambda: c.get_task("j", "first").state == "completed", what="first done")
        c.create_task(
            "j",
            m.BatchTaskCreateOptions(
                id="long", command_line="/bin/sh -c 'test -f ../../first/wd/../stdout.txt; sleep 3'"
            ),
        )
        wait_for(lambda: c.get_task("j", "long").state == "running", what="long running")

        def long_pid() -> int | None:  # the process starts a moment after the task shows running
            status = get_json(f"{server.url}/_local/status")
            return next((t["pid"] for t in status["runningTasks"] if t["taskId"] == "long"), None)

        pid = wait_for(long_pid, what="long's process")
    server.stop()
    with pytest.raises(ProcessLookupError):  # SIGTERM took the task's process group down
        os.kill(pid, 0)
    server.start()
    with server.client(reference) as c:
        assert c.get_task("j", "first").execution_info.result == "success"
        long = c.get_task("j", "long")
        assert long.execution_info.requeue_count == 1
        assert long.state in ("active", "preparing", "running")
        long = wait_for(
            lambda: (lambda t: t if t.state == "completed" else None)(c.get_task("j", "long")),
            30,
            "long completed after restart",
        )
        assert long.execution_info.result == "success"
        assert [n.state for n in c.list_nodes("p")] == ["idle"]


def test_bearer_token_mode(server: Server) -> None:
    pools = get_json(
        f"{server.url}/pools?api-version=2025-06-01.21.0", {"Authorization": f"Bearer {TOKEN}"}
    )
    assert pools["value"] == []
    bad = urllib.request.Request(
        f"{server.url}/pools?api-version=2025-06-01.21.0", headers={"Authorization": "Bearer nope"}
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(bad, timeout=5)
    with err.value:
        assert err.value.code == 401


def test_tls_mode(tmp_path: Path, reference: Reference) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    home = tmp_path / "home"
    home.mkdir()
    srv = Server(home, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    srv.start()
    try:
        with srv.client(reference, connection_verify=str(cert)) as c:
            c.create_job(m.BatchJobCreateOptions(id="tls", pool_info=m.BatchPoolInfo(pool_id="p")))
            assert c.get_job("tls").url.startswith("https://127.0.0.1:")
    finally:
        srv.stop()
