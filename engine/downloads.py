"""Download each job's declared `outputs` to local folders, only what is new or changed.

A blob with a Content-MD5 is compared with the local file's MD5; a blob without one is
compared by the size and ETag recorded when it was last downloaded (`.bspec-outputs.json`
in the folder, written only for such blobs). Blob names keep their folders under `to`
(relative to the spec file); a name that would land outside `to` is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bspec.model import DesiredState
from bspec.providers import inspection
from bspec.providers.storage import StorageProvider

MANIFEST = ".bspec-outputs.json"
PREVIEW_BYTES = 4096
PREVIEW_LINES = 12


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


def download_outputs(
    storage: StorageProvider,
    desired: DesiredState,
    jobs: Iterable[str] | None = None,
    on_file: Callable[[OutputFile], None] | None = None,
) -> OutputsResult:
    """Download the outputs of `jobs` (default: every job of the spec)."""
    only = set(jobs) if jobs is not None else None
    result = OutputsResult()
    for job in desired.jobs:
        if only is not None and job.id not in only:
            continue
        for out in job.outputs:
            container = desired.container(out.container).name
            folder = Path(out.to)
            manifest = _manifest(folder)
            touched = False
            for b in inspection.list_blobs(storage, container, out.prefix):
                dest = _inside(folder, b.name)
                if dest is None:
                    result.skipped.append(f"{out.container}/{b.name}")
                    continue
                if _current(dest, b, manifest.get(b.name)):
                    f = OutputFile(dest, out.container, b.name, False, b.size)
                else:
                    inspection.download_blob(storage, container, b.name, dest)
                    if b.md5 is None:
                        manifest[b.name] = [b.size, b.etag]
                        touched = True
                    f = OutputFile(dest, out.container, b.name, True, b.size)
                result.files.append(f)
                if on_file:
                    on_file(f)
            if touched:
                (folder / MANIFEST).write_text(
                    json.dumps(manifest, indent=1, sort_keys=True), "utf-8"
                )
    return result


def _current(dest: Path, b: inspection.BlobInfo, recorded: list[Any] | None) -> bool:
    if not dest.is_file():
        return False
    if dest.stat().st_size != b.size:
        return False
    if b.md5 is not None:
        return inspection.file_md5(dest) == b.md5
    return recorded is not None and list(recorded) == [b.size, b.etag]


def preview(path: Path) -> list[str] | None:
    """The lines of a small text file, for printing the outcome (the topwords counts);
    None for large or binary files."""
    try:
        if path.stat().st_size > PREVIEW_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    lines = [line.expandtabs(8) for line in lines]
    return lines[:PREVIEW_LINES] + (["..."] if len(lines) > PREVIEW_LINES else [])


def render_outputs(
    result: OutputsResult,
    *,
    base: Path | None = None,
    show_content: bool = True,
    limit: int = 10,
) -> list[str]:
    """Lines for people: what was downloaded where, and the content of small text files
    (the first `limit` downloaded files; the rest are counted)."""

    def rel(p: Path) -> str:
        if base is not None:
            try:
                return str(p.relative_to(base.resolve()))
            except ValueError:
                pass
        return str(p)

    if not result.files:
        return ["Outputs: none yet."]
    down = result.downloaded
    folders = sorted({rel(f.path.parent) for f in result.files})
    where = ", ".join(folders[:3]) + (
        f" and {len(folders) - 3} more folders" if len(folders) > 3 else ""
    )
    lines = [
        f"Outputs: {len(down)} downloaded, {len(result.files) - len(down)} unchanged in {where}"
    ]
    for f in down[:limit]:
        lines.append(f"  {rel(f.path)}")
        body = preview(f.path) if show_content else None
        if body:
            lines.extend(f"    {line}" for line in body)
    if len(down) > limit:
        lines.append(f"  ... and {len(down) - limit:,} more files")
    for name in result.skipped:
        lines.append(f"  skipped {name}: its name leaves the output folder")
    return lines
