"""Where the local services listen and how to reach them: the state folder, the fixed
development account of Azurite, the endpoints record and the loopback JSON probe."""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.errors import LocalServiceError

DEFAULT_BATCH_PORT = 10080
DEFAULT_AZURITE_PORT = 10000
HOST = "127.0.0.1"

# Azurite's documented development account: public, the same on every machine.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@dataclass(frozen=True)
class Endpoints:
    """Where the local services listen and how to authenticate; what targets.py needs."""

    home: Path
    batch_url: str
    account: str
    key: str = field(repr=False)
    storage_connection_string: str = field(repr=False)
    blob_url: str
    batch_pid: int | None = None
    storage_pid: int | None = None


def state_home(home: Path | None = None) -> Path:
    """The per-user state folder: HOME, else BSPEC_HOME, else XDG_STATE_HOME/bspec, created 0700."""
    if home is None:
        env = os.environ.get("BSPEC_HOME")
        if env:
            home = Path(env)
        else:
            xdg = os.environ.get("XDG_STATE_HOME")
            base = Path(xdg) if xdg else Path.home() / ".local" / "state"
            home = base / "bspec"
    home = home.expanduser().absolute()
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / "logs").mkdir(exist_ok=True, mode=0o700)
    except OSError as exc:
        raise LocalServiceError(
            f"cannot create the state folder {home}: {exc.strerror}",
            hint="set BSPEC_HOME to a writable folder",
        ) from exc
    return home


def connection_string(blob_url: str) -> str:
    """Azurite's connection string for a blob endpoint URL (which ends in the account name)."""
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};"
        f"AccountKey={AZURITE_KEY};BlobEndpoint={blob_url};"
    )


def http_json(method: str, url: str, body: Any | None = None, timeout: float = 5.0) -> Any:
    """A small JSON request to a loopback-only `/_local/*` path of the Batch service."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None
