"""Secrets: nothing bspec writes (human output, --json, saved plans) and nothing in the state
folder's logs holds the account keys or a SAS signature; `bspec local env`, whose purpose is
to print the key, is the one exception.

Excluded on purpose, and said so in docs/reliability.md: `account.json` and `endpoints.json`
(0600, they are where the keys live), the Batch service's SQLite database and Azurite's data
(they hold the SAS URLs that the Batch API returns on every GET of a task).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bspec.local.storageproxy import redact

from .conftest import SIG, Bspec, FaultedServices, leaks, write_spec

# Where the keys live by design, and the stores that hold SAS URLs because the API returns them.
EXCLUDED = re.compile(r"^(account\.json|endpoints\.json|batch/batch\.sqlite.*|azurite/.*)$")


def scan_tree(root: Path, secrets: list[str]) -> tuple[int, dict[str, list[str]]]:
    """Every file under `root` but the excluded ones: how many were read, and what leaked."""
    found: dict[str, list[str]] = {}
    count = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if not path.is_file() or EXCLUDED.match(rel):
            continue
        count += 1
        text = path.read_bytes().decode("utf-8", "replace")
        bad = leaks(text, secrets)
        if bad:
            found[rel] = bad
    return count, found


def test_nothing_bspec_writes_holds_a_key_or_a_signature(
        bspec: Bspec, local_services: Any, stack: Callable[..., tuple[str, Path]],
        tmp_path: Path) -> None:
    _name, spec = stack("sec", tasks=4, nodes=1)
    saved = tmp_path / "saved-plan.json"
    runs = [
        bspec("validate", str(spec)),
        bspec("plan", str(spec), "--json", "-o", str(saved)),
        bspec("apply", str(saved), "--yes", "--json"),
        bspec("apply", str(spec), "--yes"),
        bspec("plan", str(spec), "--var", "x=1", "--json"),
        bspec("apply", str(spec), "--yes", "--json", "--sas-ttl", "nonsense"),
        bspec("local", "status", "--json"),
    ]
    for extra in (["status", str(spec)], ["logs", str(spec)]):
        if extra[0] in bspec("--help").stdout:
            runs.append(bspec(*extra))
    runs.append(bspec("destroy", str(spec), "--yes", "--json"))
    assert runs[3].returncode == 0, str(runs[3])
    assert runs[4].returncode == 0, str(runs[4])
    # Each run was scanned as it finished (conftest.Bspec); the saved plan too:
    assert saved.exists()
    assert not leaks(saved.read_text(), bspec.secrets)
    assert "sig=" not in saved.read_text()
    # The state folder: bspec's and the services' logs, node folders, pid files.
    count, found = scan_tree(local_services.home, bspec.secrets)
    assert count > 0
    assert not found, found
    # The exception: `bspec local env` prints the key, which is its purpose.
    env = bspec("local", "env")
    assert env.returncode == 0 and local_services.key in env.stdout
    # And the scanner itself finds what it is looking for.
    assert leaks("x?sv=1&sig=abcdefghijk123&se=2", []) and SIG.search("sig=Zm9vYmFy%3D")
    assert not leaks("https://x/c/b?sv=1&sig=REDACTED", [])


def test_the_storage_proxy_and_its_commands_hold_no_key_or_signature(
    faulted: FaultedServices, tmp_path: Path
) -> None:
    """With the storage fault proxy in the path and faulting: `local up --storage-faults`,
    `local status` (both forms), apply, outputs (SAS URLs go through the proxy on the
    nodes' side too) and destroy print no secret, and nor does any file of the state folder,
    the proxy's log included (it records every request, never a query or a header)."""
    bspec = Bspec(faulted)
    name = f"sec-proxy-{tmp_path.name[-6:]}".lower().replace("_", "-")
    spec = write_spec(tmp_path / name, name, files=2, tasks=3, nodes=1, outputs=True)
    runs = [
        bspec("local", "up", "--storage-faults", "0.1", "--json"),
        bspec("local", "status"),
        bspec("local", "status", "--json"),
        bspec("apply", str(spec), "--yes", "--json", timeout=240),
        bspec("outputs", str(spec), "--json"),
        bspec("logs", str(spec), "wc-in0"),
        bspec("destroy", str(spec), "--yes", "--json", timeout=240),
    ]
    assert all(r.returncode == 0 for r in runs), "\n".join(map(str, runs))
    assert "Storage proxy  running" in runs[1].stdout, runs[1].stdout
    assert set(runs[2].json()) >= {"batch", "storage"}  # --json keeps its shape
    assert faulted.proxy_counts().get("total", 0) > 0
    log = faulted.home / "logs" / "storageproxy.log"
    assert log.stat().st_size > 0
    count, found = scan_tree(faulted.home, bspec.secrets)
    assert count > 0 and not found, found
    # The redaction itself.
    assert redact("GET /c/b?sv=1&sig=abcDEF123%3D&se=2") == "GET /c/b?sv=1&sig=REDACTED&se=2"
    assert "SharedKey" not in redact("Authorization: SharedKey devstoreaccount1:abc=")
    faulted.proxy(faultRate=0.0)
