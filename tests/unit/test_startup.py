"""The offline commands never load the service libraries: `bspec validate`, `render`,
`schema`, `init` and `--help` start without importing azure.* or aiohttp, which take most
of a second to import. Each case runs in a fresh interpreter, as a user's command does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SPEC = str(REPO / "specs" / "topwords.yaml")

# Runs `bspec <argv>` in-process, then prints the loaded service modules as JSON.
_PROBE = """
import json, sys
import bspec.cli
try:
    bspec.cli.main(sys.argv[1:])
except SystemExit as exc:
    if exc.code not in (0, None):
        raise
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("azure", "aiohttp"))
sys.stderr.write("HEAVY=" + json.dumps(heavy) + "\\n")
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", SPEC],
        ["render", SPEC],
        ["schema"],
        ["--help"],
        ["init", "--list"],
        ["init", "{tmp}/proj"],
    ],
    ids=["validate", "render", "schema", "help", "init-list", "init"],
)
def test_offline_commands_never_import_service_libraries(argv: list[str], tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    line = next(ln for ln in done.stderr.splitlines() if ln.startswith("HEAVY="))
    assert json.loads(line.removeprefix("HEAVY=")) == []
    assert done.stdout  # the command did its work (printed its result)
