"""`bspec ui` as a user runs it: a subprocess on the local target that prints its address
(with the token) and answers 401 without it; bad flags exit 2 without a traceback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

BSPEC = str(Path(sys.executable).parent / "bspec")
REPO = Path(__file__).resolve().parents[2]
SPEC = {
    "apiVersion": "bspec/v1",
    "name": "uicmd",
    "pool": {
        "id": "uicmd-pool",
        "vmSize": "standard_d2s_v3",
        "image": {
            "publisher": "canonical",
            "offer": "0001-com-ubuntu-server-jammy",
            "sku": "22_04-lts",
            "nodeAgentSku": "batch.node.ubuntu 22.04",
        },
        "nodes": 0,
    },
    "jobs": [{"id": "uicmd-job", "tasks": [{"id": "a", "commandLine": "/bin/true"}]}],
}


@pytest.mark.parametrize(
    ("args", "says"),
    [(("x.yaml", "--port", "70000"), "is not a port"), (("--interval", "0"), "more than 0")],
)
def test_bad_flags_exit_2_without_a_traceback(args: tuple[str, ...], says: str) -> None:
    done = subprocess.run([BSPEC, "ui", *args], capture_output=True, text=True, check=False)
    assert done.returncode == 2, done.stderr
    assert says in done.stderr and "Traceback" not in done.stderr


def test_a_taken_port_exits_2_before_connecting(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        done = subprocess.run(
            [BSPEC, "ui", str(spec), "--port", port], capture_output=True, text=True, check=False
        )
    assert done.returncode == 2, done.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "Traceback" not in done.stderr


def test_serves_on_localhost_behind_its_token(local_services: Any, tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC))
    env = {**os.environ, "BSPEC_HOME": str(local_services.home)}
    proc = subprocess.Popen(
        [BSPEC, "ui", str(spec), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        text = ""
        while not text.rstrip().endswith("}"):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "no output"
            text += line
        shown = json.loads(text)
        schema = json.loads((REPO / "schema" / "output.schema.json").read_text())
        Draft202012Validator(schema).validate(shown)
        assert shown["formatVersion"] == 1
        url = shown["url"]
        assert url.startswith("http://127.0.0.1:") and "?token=" in url
        base = url.split("/?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "/")
        assert refused.value.code == 401
        refused.value.close()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        with opener.open(url) as r:
            assert r.status == 200 and "uicmd" in r.read().decode()
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(30)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert code == 0
