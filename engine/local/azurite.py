"""Finding Azurite (the local Blob Storage emulator): the checkout's node_modules,
installed with `npm ci` once when npm is there, else BSPEC_AZURITE, else PATH."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from bspec.errors import LocalServiceError

Progress = Callable[[str], None]


def _checkout_root() -> Path:
    """bspec's own checkout (engine/..), where `npm ci` puts node_modules in development."""
    return Path(__file__).resolve().parents[2]


def _on_path(name: str) -> str | None:
    """NAME on PATH, looking only in absolute folders: never the current one."""
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not os.path.isabs(folder):
            continue
        candidate = os.path.join(folder, name)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _npm_ci(root: Path, log: Path, progress: Progress | None) -> bool:
    """Install the pinned Azurite with `npm ci` in bspec's checkout; whether it worked."""
    npm = _on_path("npm")
    if (
        npm is None
        or not (root / "package.json").exists()
        or not (root / "package-lock.json").exists()
    ):
        return False
    if progress is not None:
        progress(f"Installing Azurite with `npm ci` in {root} (once)")
    with open(log, "ab") as fh:
        try:
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=root,
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
    return done.returncode == 0


def azurite_command(home: Path | None = None, progress: Progress | None = None) -> list[str]:
    """How to run azurite-blob: the checkout's node_modules (installed with `npm ci` when
    npm is there and it is missing), else BSPEC_AZURITE, else PATH; never the current folder."""
    root = _checkout_root()
    local = root / "node_modules" / ".bin" / "azurite-blob"
    missing = not local.exists() and not os.environ.get("BSPEC_AZURITE")
    if missing and _on_path("azurite-blob") is None and _on_path("node") and home is not None:
        _npm_ci(root, home / "logs" / "npm.log", progress)
    candidates = [str(local)] if local.exists() else []
    env = os.environ.get("BSPEC_AZURITE")
    if env:
        candidates.append(env)
    found = _on_path("azurite-blob")
    if found:
        candidates.append(found)
    for candidate in candidates:
        if not Path(candidate).exists():
            continue
        if _on_path("node") is None:
            raise LocalServiceError(
                "Node.js is missing: Azurite, the local Blob Storage emulator, needs it",
                hint="install Node.js 18 or newer (with npm), e.g. `apt-get install nodejs npm`",
            )
        return [candidate]
    has_npm = _on_path("npm") is not None
    raise LocalServiceError(
        "Azurite (the local Blob Storage emulator) is not installed",
        hint=(
            f"run `make install` (or `npm ci`) in {root}, or set BSPEC_AZURITE "
            "to an azurite-blob executable"
            if has_npm
            else "install Node.js 18 or newer with npm, then run `make install` "
            f"(or `npm ci`) in {root}"
        ),
    )
