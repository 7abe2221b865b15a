"""Handlers of the task and node file operations: listing, reading (ranges), deleting."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .. import odata
from ..files import entry
from ..resources import BatchError, http_date
from ..service import Batch
from .paging import conditions, maxresults, next_link, predicate, skiptoken
from .protocol import Call, Reply


class FilesApi:
    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.files = batch.files

    def _task(self, call: Call) -> tuple[Path, str]:
        job = self.batch.jobs.get(call.params["jobId"])
        row = self.batch.tasks.get(job, call.params["taskId"])
        return self.files.task_root(row), f"{row.body['url']}/files"

    def _node(self, call: Call) -> tuple[Path, str]:
        pool = self.batch.pools.get(call.params["poolId"])
        node = self.batch.nodes.get(pool, call.params["nodeId"])
        return self.files.node_root(node), f"{node.body['url']}/files"

    def list_task_files(self, call: Call) -> Reply:
        return self._list(call, *self._task(call))

    def list_node_files(self, call: Call) -> Reply:
        return self._list(call, *self._node(call))

    def get_task_file(self, call: Call) -> Reply:
        return self._serve(call, *self._task(call))

    def get_node_file(self, call: Call) -> Reply:
        return self._serve(call, *self._node(call))

    def delete_task_file(self, call: Call) -> Reply:
        return self._delete(call, self._task(call)[0])

    def delete_node_file(self, call: Call) -> Reply:
        return self._delete(call, self._node(call)[0])

    def _list(self, call: Call, root: Path, url: str) -> Reply:
        limit = maxresults(call)
        pred = predicate(call, odata.FILE_PROPS)
        recursive = call.query.get("recursive", "false").lower() == "true"
        after = skiptoken(call)
        matching = [e for e in self.files.listing(root, url, recursive) if pred(e)]
        out: dict[str, Any] = {
            "odata.metadata": f"{call.base}/$metadata#files",
            "value": matching[after : after + limit],
        }
        if after + limit < len(matching):
            out["odata.nextLink"] = next_link(call, after + limit)
        return Reply(200, out)

    def _serve(self, call: Call, root: Path, url: str) -> Reply:
        path, rel = self.files.inside(root, call.params["filePath"])
        found = entry(self.files.existing(path), rel, url)
        props = found["properties"]
        headers = {
            "ocp-creation-time": http_date(props["creationTime"]),
            "ocp-batch-file-isdirectory": str(found["isDirectory"]).lower(),
            "ocp-batch-file-url": found["url"],
            "ocp-batch-file-mode": props["fileMode"],
            "Last-Modified": http_date(props["lastModified"]),
            "ETag": f"0x8{int(path.stat().st_mtime_ns // 100):015X}"[:18],
            "Content-Type": props.get("contentType", "application/octet-stream"),
        }
        conditions(
            call, {"lastModified": props["lastModified"], "eTag": headers["ETag"]}, write=False
        )
        if found["isDirectory"]:
            headers["Content-Length"] = "0"
            return Reply(200, None, headers, raw=b"" if call.request.method == "GET" else None)
        size = int(props["contentLength"])
        start, end = _range(call.header("ocp-range") or call.header("Range"), size)
        if call.request.method == "HEAD":
            headers["Content-Length"] = str(size)
            return Reply(200, None, headers)
        return Reply(200, None, headers, raw=self.files.read(path, start, max(0, end - start + 1)))

    def _delete(self, call: Call, root: Path) -> Reply:
        path, _rel = self.files.inside(root, call.params["filePath"])
        self.files.delete(path, call.query.get("recursive", "false").lower() == "true")
        return Reply(200)


def _range(text: str | None, size: int) -> tuple[int, int]:
    """The byte range a `bytes=a-b` header asks for, clipped to SIZE; 416 when it can't be."""
    start, end = 0, size - 1
    if not text:
        return start, end
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", text)
    if not m or (not m[1] and not m[2]):
        raise BatchError(416, "InvalidRange", "The range specified is invalid.")
    if m[1]:
        start = int(m[1])
        end = min(int(m[2]), size - 1) if m[2] else size - 1
    else:
        start = max(0, size - int(m[2]))
    if start >= size or start > end:
        raise BatchError(
            416,
            "InvalidRange",
            "The range specified is invalid for the current size of the resource.",
        )
    return start, end
