"""Task and node files: the folders behind the files API, and what it may reach in them.

A task's files are its folder on its node until its retention time passes; a node's files
are the node's folder. Paths from a request never leave the folder they name.
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import shutil
import stat
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .resources import BatchError, iso
from .runs import Runtime
from .store import Row

OUTSIDE = (400, "InvalidUri", "The file path must stay inside the task or node directory.")


class Files:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def task_root(self, row: Row) -> Path:
        """The task's folder; Batch's errors when it is cleaned up or was never made."""
        if row.meta.get("cleaned"):
            raise BatchError(
                409,
                "TaskFilesCleanedup",
                "The task's files have been cleaned up after its retention time.",
            )
        where = row.meta.get("dir")
        if not where:
            raise BatchError(
                409,
                "TaskFilesUnavailable",
                "The task has not been scheduled on a node yet, so it has no files.",
            )
        return Path(where)

    def node_root(self, node: Row) -> Path:
        return self.runtime.node_dir(node.parent, node.key)

    @staticmethod
    def listing(root: Path, url: str, recursive: bool) -> list[dict[str, Any]]:
        if not root.is_dir():
            return []
        paths = sorted(root.rglob("*") if recursive else root.iterdir())
        return [entry(path, path.relative_to(root).as_posix(), url) for path in paths]

    @staticmethod
    def inside(root: Path, text: str) -> tuple[Path, str]:
        """ROOT/TEXT and its cleaned relative name, refusing anything that steps outside."""
        parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
        if not parts or ".." in parts:
            raise BatchError(*OUTSIDE)
        path = root.joinpath(*parts)
        try:
            path.resolve().relative_to(root.resolve())
        except (ValueError, OSError):
            raise BatchError(*OUTSIDE) from None
        return path, "/".join(parts)

    @staticmethod
    def existing(path: Path) -> Path:
        if not path.exists():
            raise BatchError(404, "FileNotFound", "The specified file does not exist.")
        return path

    @staticmethod
    def read(path: Path, start: int, length: int) -> bytes:
        with path.open("rb") as handle:
            handle.seek(start)
            return handle.read(length)

    def delete(self, path: Path, recursive: bool) -> None:
        self.existing(path)
        if path.is_dir():
            if not recursive and any(path.iterdir()):
                raise BatchError(
                    409,
                    "OperationInvalidForCurrentState",
                    "The directory is not empty; delete it with recursive=true.",
                )
            shutil.rmtree(path)
        else:
            path.unlink()


def entry(path: Path, rel: str, url: str) -> dict[str, Any]:
    """One file as the files API lists it (times from the file system)."""
    info = path.stat()
    is_dir = stat.S_ISDIR(info.st_mode)
    props: dict[str, Any] = {
        "creationTime": iso(_mtime(info.st_ctime)),
        "lastModified": iso(_mtime(info.st_mtime)),
        "contentLength": "0" if is_dir else str(info.st_size),
        "fileMode": f"{stat.S_IMODE(info.st_mode) | (0o40000 if is_dir else 0o100000):o}",
    }
    if not is_dir:
        props["contentType"] = mimetypes.guess_type(rel)[0] or "application/octet-stream"
    return {
        "name": rel,
        "url": f"{url}/{quote(rel, safe='/')}",
        "isDirectory": is_dir,
        "properties": props,
    }


def _mtime(value: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(value, dt.UTC)
