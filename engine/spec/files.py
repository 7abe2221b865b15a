"""The containers a spec declares and the local files they upload, with sizes and MD5s.

This is the only part of rendering that reads the disk besides templates: globs are resolved
relative to the spec's folder and every file is hashed once, so the planner can compare
blobs by Content-MD5 and task fingerprints can include what each task reads.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from bspec.model import BlobSpec, ContainerSpec
from bspec.spec.loading import PathKey
from bspec.spec.tree import Renderer

CONTAINER_NAME = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(?:-[a-z0-9]+)*$")
GLOB_CHARS = frozenset("*?[")


def containers(
    r: Renderer, rendered: Mapping[str, Any], stack: str
) -> tuple[list[ContainerSpec], list[BlobSpec]]:
    """The declared containers (real names checked) and every file they upload."""
    found: list[ContainerSpec] = []
    blobs: list[BlobSpec] = []
    declared = (rendered.get("storage") or {}).get("containers") or {}
    for key, body in declared.items():
        body = body or {}
        path: PathKey = ("storage", "containers", key)
        name = body.get("name") or f"{stack.lower()}-{key}"
        if not CONTAINER_NAME.match(name):
            if body.get("name"):
                r.problem(
                    (*path, "name"),
                    f"{name!r} is not a valid container name "
                    "(3 to 63 lowercase letters, digits and single hyphens)",
                )
            else:
                r.problem(
                    path,
                    f"the container's real name {name!r} is not valid "
                    "(3 to 63 lowercase letters, digits and single hyphens); give `name:`",
                    key=True,
                )
        if key == "_bspec" or name == f"{stack.lower()}-bspec":
            r.problem(path, f"container name {name!r} is reserved for bspec's logs", key=True)
        found.append(ContainerSpec(key=key, name=name))
        blobs.extend(files(r, key, body.get("files") or [], path))
    names: dict[str, str] = {}
    for c in found:
        if c.name in names:
            r.problem(
                ("storage", "containers", c.key),
                f"container {c.key!r} has the same real name {c.name!r} as {names[c.name]!r}",
                key=True,
            )
        names[c.name] = c.key
    return found, blobs


def files(r: Renderer, key: str, patterns: Sequence[str], path: PathKey) -> list[BlobSpec]:
    """The files a container uploads; blob names relative to each glob's non-wildcard part."""
    base_dir = r.doc.directory
    found: dict[str, BlobSpec] = {}
    for i, pattern in enumerate(patterns):
        ppath: PathKey = (*path, "files", i)
        parts = PurePosixPath(pattern).parts
        fixed: list[str] = []
        for part in parts:
            if GLOB_CHARS & set(part):
                break
            fixed.append(part)
        has_glob = len(fixed) < len(parts)
        full = os.path.join(base_dir, pattern)
        if has_glob:
            base = os.path.join(base_dir, *fixed) if fixed else str(base_dir)
            matches = sorted(m for m in glob.glob(full, recursive=True) if os.path.isfile(m))
            if not matches:
                r.problem(ppath, f"{pattern!r} matches no file (relative to {base_dir})")
                continue
        else:
            if os.path.isdir(full):
                r.problem(
                    ppath,
                    f"{pattern!r} is a folder; use {pattern.rstrip('/')}/** to upload "
                    "what is in it",
                )
                continue
            if not os.path.isfile(full):
                r.problem(ppath, f"{pattern!r}: no such file (relative to {base_dir})")
                continue
            base = os.path.dirname(full)
            matches = [full]
        for m in matches:
            name = Path(os.path.relpath(m, base)).as_posix()
            absolute = os.path.abspath(m)
            if name in found:
                if found[name].path != absolute:
                    r.problem(
                        ppath,
                        f"two files would be blob {key}/{name}: {found[name].path} and {absolute}",
                    )
                continue
            try:
                size, md5 = file_md5(absolute)
            except OSError as exc:
                r.problem(ppath, f"cannot read {absolute}: {exc.strerror}")
                continue
            found[name] = BlobSpec(container=key, name=name, path=absolute, size=size, md5=md5)
    return [found[n] for n in sorted(found)]


def file_md5(path: str) -> tuple[int, str]:
    """A file's size and hex MD5 (what Blob Storage keeps as Content-MD5), read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def stem(name: str) -> str:
    """The blob name without its last suffix (`sub/a.txt` -> `sub/a`), unique per file."""
    pure = PurePosixPath(name)
    return str(pure.with_suffix("")) if pure.suffix else name
