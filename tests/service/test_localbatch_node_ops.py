"""Node operations through the real azure-batch SDK, responses checked against the reference
definition (`checked_client`): a reboot and a reimage rerun the start task (a reimage on a
fresh disk), requeue a running task per nodeReimageOption, and remote login settings are
refused honestly (no SSH to a local node)."""

from __future__ import annotations

from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from test_localbatch_api import wait_for
from test_localbatch_scheduler import Ids, done, make_job, make_pool, sh


def _boots(client: Any, pool_id: str, node_id: str) -> list[str]:
    data = b"".join(client.download_node_file(pool_id, node_id, "shared/boots")).decode()
    return data.split()


def test_reboot_and_reimage_rerun_the_start_task(checked_client: Any, unique_id: Ids) -> None:
    c = checked_client
    pool_id, job_id = unique_id("pool"), unique_id("job")
    start = m.BatchStartTask(
        command_line=sh("echo boot >> $AZ_BATCH_NODE_SHARED_DIR/boots"), wait_for_success=True
    )
    (node,) = make_pool(c, pool_id, nodes=1, start=start)
    assert node.start_task_info.result == "success"
    assert _boots(c, pool_id, node.id) == ["boot"]

    def idle() -> bool:
        return bool(c.get_node(pool_id, node.id).state == "idle")

    # A reboot keeps the disk: the start task runs again and appends.
    c.begin_reboot_node(pool_id, node.id, {"nodeRebootOption": "requeue"}, polling_interval=0.05)
    wait_for(lambda: c.get_node(pool_id, node.id).state != "idle" or None, what="rebooting")
    wait_for(idle, what="idle after reboot")
    assert _boots(c, pool_id, node.id) == ["boot", "boot"]

    # A reimage requeues the running task and starts from a fresh disk.
    make_job(c, job_id, pool_id)
    c.create_task(job_id, m.BatchTaskCreateOptions(id="t", command_line=sh("sleep 1; echo ok")))
    wait_for(lambda: c.get_task(job_id, "t").state == "running", what="task running")
    c.begin_reimage_node(pool_id, node.id, {"nodeReimageOption": "requeue"}, polling_interval=0.05)
    assert c.get_node(pool_id, node.id).state in ("reimaging", "starting", "waitingforstarttask")
    task = done(c, job_id, "t")
    assert task.execution_info.result == "success"
    assert task.execution_info.requeue_count == 1 and task.execution_info.retry_count == 0
    wait_for(idle, what="idle after reimage")
    assert _boots(c, pool_id, node.id) == ["boot"]  # fresh disk, one start task run
    after = c.get_node(pool_id, node.id)
    assert after.start_task_info.result == "success" and after.start_task_info.retry_count == 0


def test_remote_login_settings_are_refused_honestly(checked_client: Any, unique_id: Ids) -> None:
    pool_id = unique_id("pool")
    (node,) = make_pool(checked_client, pool_id, nodes=1)
    with pytest.raises(HttpResponseError) as err:
        checked_client.get_node_remote_login_settings(pool_id, node.id)
    assert err.value.status_code == 501
    assert err.value.error is not None and err.value.error.code == "OperationNotSupported"
    assert "SSH" in str(err.value)
    with pytest.raises(HttpResponseError) as err:
        checked_client.get_node_remote_login_settings(pool_id, "tvmps_nope")
    assert err.value.status_code == 404
