"""Batch REST body fragments turned into the node agent's inputs."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import agent


def resource_files(items: Iterable[dict[str, Any]] | None) -> list[agent.ResourceFile]:
    out = []
    for rf in items or []:
        out.append(
            agent.ResourceFile(
                http_url=rf.get("httpUrl"),
                storage_container_url=rf.get("storageContainerUrl"),
                blob_prefix=rf.get("blobPrefix"),
                file_path=rf.get("filePath"),
                file_mode=rf.get("fileMode"),
            )
        )
    return out


def output_files(items: Iterable[dict[str, Any]] | None) -> list[agent.OutputFile]:
    out = []
    for of in items or []:
        container = of.get("destination", {}).get("container", {})
        out.append(
            agent.OutputFile(
                file_pattern=of["filePattern"],
                container_url=container.get("containerUrl", ""),
                path=container.get("path"),
                upload_condition=of.get("uploadOptions", {}).get("uploadCondition", "tasksuccess"),
            )
        )
    return out
