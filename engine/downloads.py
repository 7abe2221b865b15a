"""Download each job's declared `outputs` to local folders, only what is new or changed.

A blob with a Content-MD5 is compared with the local file's MD5; a blob without one is
compared by the size and ETag recorded when it was last downloaded (`.bspec-outputs.json`
in the folder, written only for such blobs). Blob names keep their folders under `to`
(relative to the spec file); a name that would land outside `to` is skipped. What it
says about them is in bspec.reporting.outputs.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.model import DesiredState, JobOutputSpec, JobSpec, Kind, ScheduleSpec
from bspec.providers import inspection
from bspec.providers.storage import StorageProvider

MANIFEST = ".bspec-outputs.json"
DOWNLOAD_WORKERS = 8


@dataclass
class OutputFile:
    path: Path
    container: str  # container key
    blob: str
    downloaded: bool
    size: int

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "container": self.container,
            "blob": self.blob,
            "downloaded": self.downloaded,
            "size": self.size,
        }


@dataclass
class OutputsResult:
    files: list[OutputFile] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unsafe names

    @property
    def downloaded(self) -> list[OutputFile]:
        return [f for f in self.files if f.downloaded]

    def to_json(self) -> dict[str, Any]:
        down = len(self.downloaded)
        return {
            "downloaded": down,
            "unchanged": len(self.files) - down,
            "files": [f.to_json() for f in self.files],
            "skipped": list(self.skipped),
        }


def _manifest(folder: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads((folder / MANIFEST).read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _inside(folder: Path, name: str) -> Path | None:
    dest = (folder / name).resolve()
    try:
        dest.relative_to(folder.resolve())
    except ValueError:
        return None
    return dest if name and not name.endswith("/") else None


_TEMPORARY = re.compile(r"^\.bspec-(\d+)-")


def sweep_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary download files (`.bspec-<pid>-*`) that a bspec killed mid-download
    left under FOLDER; a live process's are kept. Returns what was removed."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for path in folder.rglob(".bspec-*"):
        found = _TEMPORARY.match(path.name)
        if found is None or not path.is_file() or _alive(int(found.group(1))):
            continue
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def download_outputs(
    storage: StorageProvider,
    desired: DesiredState,
    jobs: Iterable[str] | None = None,
    on_file: Callable[[OutputFile], None] | None = None,
    workers: int = DOWNLOAD_WORKERS,
) -> OutputsResult:
    """Download the outputs of `jobs` (default: every job of the spec), `workers` at once."""
    only = set(jobs) if jobs is not None else None
    result = OutputsResult()
    scheduled: tuple[ScheduleSpec, ...] = desired.of_kind(Kind("schedule"))
    every: tuple[JobSpec | ScheduleSpec, ...] = (*desired.jobs, *scheduled)
    for job in every:
        if only is not None and job.id not in only:
            continue
        for out in job.outputs:
            container = desired.container(out.container).name
            folder = Path(out.to)
            sweep_temporaries(folder)
            manifest = _manifest(folder)
            touched = False
            todo: list[tuple[inspection.BlobInfo, Path, bool]] = []
            for b in _listed(storage, container, out, job):
                dest = _inside(folder, b.name)
                if dest is None:
                    result.skipped.append(f"{out.container}/{b.name}")
                    continue
                todo.append((b, dest, _current(dest, b, manifest.get(b.name))))

            def fetch(item: tuple[inspection.BlobInfo, Path, bool], name: str = container) -> None:
                b, dest, current = item
                if not current:
                    inspection.download_blob(storage, name, b.name, dest)

            # Several downloads in flight (small outputs are latency-bound); files are
            # reported in list order, each once its download is done.
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for (b, dest, current), _ in zip(todo, pool.map(fetch, todo), strict=True):
                    if not current and b.md5 is None:
                        manifest[b.name] = [b.size, b.etag]
                        touched = True
                    f = OutputFile(dest, out.container, b.name, not current, b.size)
                    result.files.append(f)
                    if on_file:
                        on_file(f)
            if touched:
                (folder / MANIFEST).write_text(
                    json.dumps(manifest, indent=1, sort_keys=True), "utf-8"
                )
    return result


def _listed(
    storage: StorageProvider, container: str, out: JobOutputSpec, job: JobSpec | ScheduleSpec
) -> list[inspection.BlobInfo]:
    """A job's output blobs; a scheduled job's are its runs' (`<run job id>/...`, a folder
    per run), `prefix` applying within each run's folder."""
    if not isinstance(job, ScheduleSpec):
        return list(inspection.list_blobs(storage, container, out.prefix))
    within = out.prefix or ""
    return [
        b
        for b in inspection.list_blobs(storage, container, f"{job.id}:job-")
        if b.name.partition("/")[2].startswith(within)
    ]


def _current(dest: Path, b: inspection.BlobInfo, recorded: list[Any] | None) -> bool:
    if not dest.is_file():
        return False
    if dest.stat().st_size != b.size:
        return False
    if b.md5 is not None:
        return inspection.file_md5(dest) == b.md5
    return recorded is not None and list(recorded) == [b.size, b.etag]
