"""Read-only Batch and Blob calls for watching, status, logs and outputs.

Kept apart from `batch.py`/`storage.py` (which plan and write) so that what the user
inspects never changes the world: nothing here writes (`--rerun-failed` reactivates tasks
through `applying.rerun_failed`). Every SDK exception leaves as a bspec error through the
boundary `errors.sdk_errors`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bspec.errors import NotFoundError, ServiceError
from bspec.providers.batch import BatchProvider
from bspec.providers.errors import redact, sdk_errors
from bspec.providers.storage import StorageProvider

# Answers that mean "the node no longer has this task's files": read the logs container.
FILES_GONE = frozenset(
    {
        "TaskFilesCleanedup",
        "TaskFilesUnavailable",
        "NodeNotFound",
        "FileNotFound",
        "PoolNotFound",
        "NodeUnusable",
        "TaskNotFound",
    }
)


def _raw(batch: BatchProvider, what: str, path: str, **params: str) -> list[dict[str, Any]]:
    return list(batch.list_raw(what, path, {"maxresults": "1000", **params}))


def quote_id(text: str) -> str:
    """An id inside an OData string literal (a quote doubled)."""
    return text.replace("'", "''")


def get_pool(batch: BatchProvider, pool_id: str) -> dict[str, Any] | None:
    """The pool as JSON (state, allocation, node counts), or None."""
    found = _raw(
        batch,
        "list pools",
        "pools",
        **{
            "$filter": f"id eq '{quote_id(pool_id)}'",
            "$select": "id,state,allocationState,targetDedicatedNodes,targetLowPriorityNodes,"
            "currentDedicatedNodes,currentLowPriorityNodes,resizeErrors,metadata,"
            "enableAutoScale,autoScaleEvaluationInterval,autoScaleRun",
        },
    )
    return found[0] if found else None


def get_job(
    batch: BatchProvider, job_id: str, select: str = "id,state,poolInfo,metadata"
) -> dict[str, Any] | None:
    found = _raw(
        batch,
        "list jobs",
        "jobs",
        **{"$filter": f"id eq '{quote_id(job_id)}'", "$select": select},
    )
    return found[0] if found else None


def list_nodes(
    batch: BatchProvider, pool_id: str, select: str = "id,state,startTaskInfo"
) -> list[dict[str, Any]]:
    """The pool's nodes (by default id, state, start task info); [] when the pool is missing."""
    try:
        return _raw(
            batch,
            f"list nodes of pool {pool_id}",
            f"pools/{quote(pool_id, safe='')}/nodes",
            **{"$select": select},
        )
    except NotFoundError:
        return []


def task_counts(batch: BatchProvider, job_id: str) -> dict[str, int] | None:
    """The job's task counts, or None when the job does not exist."""
    try:
        return batch.task_counts(job_id)
    except NotFoundError:
        return None


def list_tasks(
    batch: BatchProvider,
    job_id: str,
    *,
    flt: str | None = None,
    select: str = "id,state,executionInfo,nodeInfo",
) -> list[dict[str, Any]]:
    """The job's tasks as JSON; [] when the job does not exist."""
    params = {"$select": select}
    if flt:
        params["$filter"] = flt
    try:
        return _raw(
            batch, f"list tasks of job {job_id}", f"jobs/{quote(job_id, safe='')}/tasks", **params
        )
    except NotFoundError:
        return []


def any_incomplete(batch: BatchProvider, job_id: str, wanted: Collection[str]) -> bool:
    """Whether any of `wanted` (task ids) is not completed, reading the job's incomplete
    tasks a page at a time and stopping at the first one wanted: a poll costs one request
    however many tasks are still running (the rest of the list is never read)."""
    path: str | None = f"jobs/{quote(job_id, safe='')}/tasks"
    params = {"$filter": "state ne 'completed'", "$select": "id", "maxresults": "1000"}
    while path is not None:
        try:
            items, path, params = batch.list_page(f"list tasks of job {job_id}", path, params)
        except NotFoundError:
            return False
        if any(t.get("id") in wanted for t in items):
            return True
    return False


def _read(fn: Any, what: str, *args: Any, ocp_range: str | None = None) -> bytes:
    kw = {"ocp_range": ocp_range} if ocp_range else {}
    with sdk_errors("batch", what):
        return b"".join(fn(*args, **kw))


def task_file(
    batch: BatchProvider, job_id: str, task_id: str, name: str, offset: int = 0
) -> bytes | None:
    """A task's file from its node (from byte `offset`), or None when the node no longer
    has it (cleaned up, node gone) or never had it."""
    try:
        return _read(
            batch.client.download_task_file,
            f"read {job_id}/{task_id}/{name}",
            job_id,
            task_id,
            name,
            ocp_range=f"bytes={offset}-" if offset else None,
        )
    except ServiceError as err:
        if err.status in (404, 409, 416) or err.service_code in FILES_GONE:
            return None
        raise


def preparation_status(batch: BatchProvider, job_id: str) -> list[dict[str, Any]]:
    """The job's preparation and release task status on each node that ran them."""
    return _raw(
        batch,
        f"preparation status of job {job_id}",
        f"jobs/{quote(job_id, safe='')}/jobpreparationandreleasetaskstatus",
    )


def node_file(batch: BatchProvider, pool_id: str, node_id: str, path: str) -> bytes | None:
    """A file from a node's folder (e.g. startup/stderr.txt), or None."""
    try:
        return _read(
            batch.client.download_node_file,
            f"read {pool_id}/{node_id}/{path}",
            pool_id,
            node_id,
            path,
        )
    except ServiceError as err:
        if err.status in (404, 409) or err.service_code in FILES_GONE:
            return None
        raise


# ------------------------------------------------------------------------- blobs


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    md5: str | None  # hex Content-MD5, when the blob has one
    etag: str


def list_blobs(
    storage: StorageProvider, container: str, prefix: str | None = None
) -> list[BlobInfo]:
    """The container's blobs (under `prefix`); [] when the container does not exist."""
    try:
        items = storage.list_blob_items(container, prefix)
    except NotFoundError:
        return []
    out = []
    for b in items:
        md5 = b.content_settings.content_md5 if b.content_settings else None
        out.append(
            BlobInfo(b.name, int(b.size or 0), bytes(md5).hex() if md5 else None, str(b.etag or ""))
        )
    return out


def read_blob(storage: StorageProvider, container: str, name: str) -> bytes | None:
    """A blob's bytes, or None when it (or its container) does not exist."""
    try:
        return storage.download(container, name)
    except NotFoundError:
        return None


def download_blob(storage: StorageProvider, container: str, name: str, dest: Path) -> str:
    """Download a blob to `dest` atomically (temp file, then rename); returns the hex MD5
    of what was written."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.md5(usedforsecurity=False)
    # the PID in the name lets a later download tell a killed process's leftover from a
    # live one's (downloads.sweep_temporaries)
    fd, tmp = tempfile.mkstemp(prefix=f".bspec-{os.getpid()}-", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:

            def sink(chunk: bytes) -> None:
                digest.update(chunk)
                fh.write(chunk)

            storage.download_to(container, name, sink)
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return digest.hexdigest()


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def text_of(data: bytes) -> str:
    """Task output as text to show: decoded leniently, SAS signatures redacted (a task may
    print its resource file URLs)."""
    return redact(data.decode("utf-8", errors="replace"))


def lines_tail(data: bytes, n: int) -> list[str]:
    """The last `n` lines of `data`, as `text_of` shows them."""
    text = text_of(data)
    lines = text.splitlines()
    return lines[-n:] if n > 0 else lines
