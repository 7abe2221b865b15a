"""The local Batch account: a name and a random key, kept 0600 in the state folder.

Shared by the service (which verifies SharedKey signatures with it) and by bspec's
services lifecycle (which hands it to clients). Whoever starts first creates it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
from pathlib import Path

DEFAULT_ACCOUNT_NAME = "bspeclocal"
ACCOUNT_FILE = "account.json"


def load_or_create_account(home: Path, name: str = DEFAULT_ACCOUNT_NAME) -> tuple[str, str]:
    """Return (account name, base64 key) from HOME/account.json, creating it on first use.

    Creation is atomic (O_EXCL on a temporary name, then link), so two processes starting
    at once agree on one key.
    """
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / ACCOUNT_FILE
    if not path.exists():
        key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        tmp = home / f".{ACCOUNT_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"name": name, "key": key}, fh)
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # fails if another process won the race: use theirs
        finally:
            tmp.unlink(missing_ok=True)
    data = json.loads(path.read_text(encoding="utf-8"))
    return str(data["name"]), str(data["key"])
