"""A bspec killed mid-download leaves its temporary file (`.bspec-<pid>-*`): the next download
into the folder removes it, and never a live process's or the manifest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from bspec.downloads import MANIFEST, sweep_temporaries


def test_a_dead_process_s_temporaries_go_a_live_one_s_stay(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "sub").mkdir()
    stale = tmp_path / "sub" / f".bspec-{dead.pid}-abc123"
    live = tmp_path / f".bspec-{os.getpid()}-def456"
    keep = [live, tmp_path / MANIFEST, tmp_path / "out.txt", tmp_path / ".bspec-nopid"]
    for path in [stale, *keep]:
        path.write_bytes(b"x")
    assert sweep_temporaries(tmp_path) == [stale]
    assert not stale.exists() and all(p.exists() for p in keep)
    assert sweep_temporaries(tmp_path / "missing") == []
