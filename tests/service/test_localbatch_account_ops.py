"""Operations clients call at start-up and around files (issue 11, item 7), through azure-batch
15 with every body checked against the reference: supported images (end-of-life dates
settable), node counts per pool, applications, file properties (HEAD), byte ranges and the
recursive node file listing."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from reference import Reference, load_reference
from test_localbatch_api import new_pool, wait_for


def _file_headers(reference: Reference, op_id: str) -> set[str]:
    """The response headers the definition lists for a file properties operation."""
    for path_ops in reference.spec["paths"].values():
        for op in path_ops.values():
            if isinstance(op, dict) and op.get("operationId") == op_id:
                return {h.lower() for h in op["responses"]["200"].get("headers", {})}
    raise AssertionError(op_id)


def test_supported_images_with_end_of_life(checked_client: Any, local_services: Any) -> None:
    images = list(checked_client.list_supported_images())
    assert images and all(i.verification_type in ("verified", "unverified") for i in images)
    jammy = [i for i in images if i.node_agent_sku_id == "batch.node.ubuntu 22.04"]
    assert jammy and all(i.batch_support_end_of_life for i in jammy)
    with local_services.settings(image_end_of_life={"batch.node.ubuntu 22.04": "2030-01-31"}):
        moved = [
            i
            for i in checked_client.list_supported_images(filter="verificationType eq 'verified'")
            if i.node_agent_sku_id == "batch.node.ubuntu 22.04"
        ]
    assert moved and {i.batch_support_end_of_life.date().isoformat() for i in moved} == {
        "2030-01-31"
    }
    page = list(checked_client.list_supported_images(max_results=2))
    assert len(page) == len(images)  # paged through nextLink


def test_applications_empty_and_not_found(checked_client: Any) -> None:
    assert list(checked_client.list_applications()) == []
    with pytest.raises(HttpResponseError) as err:
        checked_client.get_application("no-such-app")
    assert err.value.status_code == 404
    assert err.value.error is not None and err.value.error.code == "ApplicationNotFound"


def test_node_counts_files_ranges_recursive(
    checked_client: Any, local_services: Any, unique_id: Callable[[str], str]
) -> None:
    reference = load_reference()
    pool_id, job_id = unique_id("counts"), unique_id("files")
    new_pool(checked_client, pool_id, nodes=2)
    wait_for(
        lambda: [n for n in checked_client.list_nodes(pool_id) if n.state == "idle"][1:],
        what="two idle nodes",
    )
    counts = [c for c in checked_client.list_pool_node_counts() if c.pool_id == pool_id]
    assert len(counts) == 1
    assert counts[0].dedicated.idle == 2 and counts[0].dedicated.total == 2
    assert counts[0].low_priority.total == 0
    checked_client.create_job(
        m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id))
    )
    checked_client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="t", command_line="/bin/sh -c 'mkdir -p d/e && echo 0123456789 > d/e/f.txt'"
        ),
    )
    wait_for(lambda: checked_client.get_task(job_id, "t").state == "completed", what="task done")
    task = checked_client.get_task(job_id, "t")
    assert task.execution_info.exit_code == 0
    props = checked_client.get_task_file_properties(job_id, "t", "wd/d/e/f.txt")
    assert props.content_length == 11 and props.is_directory is False
    assert props.url.endswith("/files/wd/d/e/f.txt") and props.file_mode
    assert props.creation_time and props.last_modified
    got = b"".join(
        checked_client.download_task_file(job_id, "t", "wd/d/e/f.txt", ocp_range="bytes=2-5")
    )
    assert got == b"2345"
    node_id = task.node_info.node_id
    listed = [f.name for f in checked_client.list_node_files(pool_id, node_id, recursive=True)]
    nested = [n for n in listed if n.endswith("d/e/f.txt")]
    assert nested, listed
    shallow = [f.name for f in checked_client.list_node_files(pool_id, node_id)]
    assert not [n for n in shallow if n.endswith("d/e/f.txt")]
    node_props = checked_client.get_node_file_properties(pool_id, node_id, nested[0])
    assert node_props.content_length == 11
    assert (
        b"".join(
            checked_client.download_node_file(pool_id, node_id, nested[0], ocp_range="bytes=8-")
        )
        == b"89\n"
    )
    wanted = _file_headers(reference, "Tasks_GetTaskFileProperties")
    assert {"ocp-creation-time", "ocp-batch-file-isdirectory", "ocp-batch-file-url"} <= wanted
    raw = checked_client.send_request(
        _head(f"/jobs/{job_id}/tasks/t/files/wd%2Fd%2Fe%2Ff.txt"), stream=False
    )
    present = {h.lower() for h in raw.headers}
    assert wanted - {"client-request-id", "request-id", "etag"} <= present, wanted - present
    assert raw.headers["Content-Length"] == "11"
    checked_client.begin_delete_job(job_id, polling_interval=0.05).result()
    checked_client.begin_delete_pool(pool_id, polling_interval=0.05).result()
    assert json.dumps(counts[0].as_dict())


def _head(path: str) -> Any:
    from azure.core.rest import HttpRequest

    return HttpRequest("HEAD", f"{path}?api-version=2025-06-01.21.0")
