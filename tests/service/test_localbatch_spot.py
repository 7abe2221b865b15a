"""Spot nodes and preemption, through the real azure-batch SDK against a private service with
a manual clock: a preemption mid-run requeues the node's tasks (not a retry), their killed
attempts upload nothing, every task succeeds exactly once, and the node comes back fresh."""

from __future__ import annotations

import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError
from bspec.local import http_json
from reference import Reference, get_json
from test_localbatch_api import IMAGE, wait_for
from test_localbatch_blobs import container_sas
from test_localbatch_clock import post_json
from test_localbatch_restart import Server


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "home", "--clock", "manual")
    srv.home.mkdir()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _spot_pool(c: Any, pool_id: str, spot: int, dedicated: int = 0, slots: int = 1) -> None:
    c.create_pool(
        m.BatchPoolCreateOptions(
            id=pool_id,
            vm_size="standard_d2s_v3",
            virtual_machine_configuration=IMAGE,
            target_dedicated_nodes=dedicated,
            target_low_priority_nodes=spot,
            task_slots_per_node=slots,
        )
    )
    wait_for(
        lambda: [n.state for n in c.list_nodes(pool_id)] == ["idle"] * (spot + dedicated),
        what="nodes idle",
    )


def test_preemption_requeues_and_every_task_succeeds_once(
    manual: Server, reference: Reference, blob_service: Any, tmp_path: Path, unique_id: Any
) -> None:
    out = unique_id("spot")
    blob_service.create_container(out)
    out_url = container_sas(blob_service, out, "cw")
    marks = tmp_path / "marks"
    marks.mkdir()
    # Each attempt counts itself in MARKS (outside the node), writes out-<attempt>.txt and
    # waits for the gate; a working folder left over from an earlier attempt fails it.
    script = (
        "test ! -e left || exit 7; touch left; "
        f'n=$(ls {marks} | grep -c "^$AZ_BATCH_TASK_ID\\."); touch {marks}/$AZ_BATCH_TASK_ID.$n; '
        'echo "attempt-$n" > out-$n.txt; echo "attempt-$n"; '
        f"while [ ! -e {tmp_path}/gate ]; do sleep 0.05; done"
    )
    http_json("PUT", f"{manual.url}/_local/settings", {"maxProcesses": 8})
    with manual.client(reference) as c:
        _spot_pool(c, "p", spot=2, slots=2)
        pool = c.get_pool("p")
        assert pool.current_low_priority_nodes == 2 and pool.current_dedicated_nodes == 0
        assert all(n.is_dedicated is False for n in c.list_nodes("p"))
        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        ids = [f"t{i}" for i in range(4)]
        for tid in ids:
            c.create_task(
                "j",
                m.BatchTaskCreateOptions(
                    id=tid,
                    command_line=f"/bin/sh -c '{script}'",
                    output_files=[
                        m.OutputFile(
                            file_pattern="out-*.txt",
                            destination=m.OutputFileDestination(
                                container=m.OutputFileBlobContainerDestination(
                                    container_url=out_url, path=tid
                                )
                            ),
                            upload_options=m.OutputFileUploadConfiguration(
                                upload_condition="taskcompletion"
                            ),
                        )
                    ],
                ),
            )
        wait_for(lambda: len(list(marks.iterdir())) == 4, what="four first attempts")
        victim = next(n for n in c.list_nodes("p") if n.running_tasks_count == 2)
        on_victim = {t.id for t in c.list_tasks("j") if t.node_info.node_id == victim.id}
        assert len(on_victim) == 2

        status, body = post_json(
            f"{manual.url}/_local/preempt", {"poolId": "p", "nodeIds": [victim.id]}
        )
        assert status == 200 and body["preempted"] == [victim.id]
        assert c.get_node("p", victim.id).state == "preempted"
        with pytest.raises(HttpResponseError) as refused:  # nothing to reboot
            c.begin_reboot_node("p", victim.id, {"nodeRebootOption": "requeue"})
        assert refused.value.status_code == 409
        for tid in on_victim:
            task = c.get_task("j", tid)
            assert task.state in ("active", "running", "preparing")
            assert task.execution_info.retry_count == 0
            assert task.execution_info.requeue_count == 1
        # Preempted Spot nodes still count in currentLowPriorityNodes, as Batch documents.
        assert c.get_pool("p").current_low_priority_nodes == 2
        states = sorted(n.state for n in c.list_nodes("p"))
        assert states == ["preempted", "running"]

        (tmp_path / "gate").touch()
        wait_for(
            lambda: all(t.state == "completed" for t in c.list_tasks("j")), what="all completed"
        )
        container = blob_service.get_container_client(out)
        for tid in ids:
            task = c.get_task("j", tid)
            assert task.execution_info.result == "success", tid
            assert task.execution_info.retry_count == 0
            attempts = sorted(p.name for p in marks.iterdir() if p.name.startswith(f"{tid}."))
            last = len(attempts) - 1
            assert last == (1 if tid in on_victim else 0)
            stdout = b"".join(c.download_task_file("j", tid, "stdout.txt")).decode()
            assert stdout.strip() == f"attempt-{last}"
            blobs = sorted(b.name for b in container.list_blobs(name_starts_with=f"{tid}/"))
            assert blobs == [f"{tid}/out-{last}.txt"], blobs  # nothing from a killed attempt
        counts = c.get_job_task_counts("j").task_counts
        assert (counts.completed, counts.succeeded, counts.failed) == (4, 4, 0)

        # The control gives the node back, fresh: booted again, no task folders left.
        status, body = post_json(f"{manual.url}/_local/restore", {"poolId": "p"})
        assert status == 200 and body["restored"] == [victim.id]
        wait_for(lambda: c.get_node("p", victim.id).state == "idle", what="restored idle")
        files = [f.name or "" for f in c.list_node_files("p", victim.id, recursive=True)]
        assert not any(name.startswith("workitems/") and name.count("/") > 1 for name in files)

    # Bad control input answers 4xx, never a traceback.
    assert post_json(f"{manual.url}/_local/preempt", {"poolId": "p"})[0] == 400
    assert post_json(f"{manual.url}/_local/preempt", {"poolId": "nope", "count": 1})[0] == 404
    status, body = post_json(f"{manual.url}/_local/preempt", {"poolId": "p", "nodeIds": ["x"]})
    assert status == 404 and body["code"] == "NodeNotFound"


def test_seeded_rate_preempts_spot_nodes_and_they_come_back(
    manual: Server, reference: Reference
) -> None:
    settings = f"{manual.url}/_local/settings"
    with manual.client(reference) as c:
        _spot_pool(c, "r", spot=3, dedicated=1)
        put = {"preemptionRate": 1.0, "preemptionSeed": 7, "preemptionRestoreAfter": 120}
        assert http_json("PUT", settings, put)["preemptionRate"] == 1.0
        # A minute of service clock: every Spot node is preempted (rate 1), never a dedicated.
        assert post_json(f"{manual.url}/_local/clock", {"seconds": 60})[0] == 200
        nodes = list(c.list_nodes("r"))
        assert sorted((n.is_dedicated, n.state) for n in nodes) == [
            (False, "preempted"),
            (False, "preempted"),
            (False, "preempted"),
            (True, "idle"),
        ]
        http_json("PUT", settings, {"preemptionRate": 0})
        # Two minutes later Batch restores them.
        assert post_json(f"{manual.url}/_local/clock", {"seconds": 120})[0] == 200
        wait_for(lambda: all(n.state == "idle" for n in c.list_nodes("r")), what="nodes restored")
        pool = c.get_pool("r")
        assert (pool.current_dedicated_nodes, pool.current_low_priority_nodes) == (1, 3)
    with pytest.raises(urllib.error.HTTPError) as err:
        http_json("PUT", settings, {"preemptionRate": "x"})
    assert err.value.code == 400
    err.value.close()  # the error holds the response's socket
    assert get_json(settings)["preemptionSeed"] == 7
