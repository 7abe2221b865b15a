"""The service clock: a private service started with `--clock manual` steps its clock
across a pool's delete delay, a task's retention time and a task's maxWallClockTime, and
each happens when the step answers, without sleeping; the session's service runs in real
time and refuses a step."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.core.rest import HttpRequest
from reference import Reference, get_json
from test_localbatch_api import IMAGE, wait_for
from test_localbatch_restart import Server

API = "2025-06-01.21.0"


def post_json(url: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def manual(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path / "home", "--clock", "manual", "--delete-delay", "60")
    srv.home.mkdir()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_manual_clock_steps_over_pool_delete_retention_and_wall_clock(
    manual: Server, reference: Reference
) -> None:
    clock = get_json(f"{manual.url}/_local/clock")
    assert clock["mode"] == "manual"
    assert get_json(f"{manual.url}/_local/settings")["clock"] == "manual"
    start = clock["now"]
    with manual.client(reference) as c:
        c.create_pool(
            m.BatchPoolCreateOptions(
                id="p",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=IMAGE,
                target_dedicated_nodes=1,
                task_slots_per_node=2,
            )
        )
        c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="p")))
        c.create_task(
            "j",
            m.BatchTaskCreateOptions(
                id="kept",
                command_line="/bin/sh -c 'echo hi'",
                constraints=m.BatchTaskConstraints(retention_time="PT1H"),
            ),
        )
        c.create_task(
            "j",
            m.BatchTaskCreateOptions(
                id="slow",
                command_line="sleep 300",
                constraints=m.BatchTaskConstraints(max_wall_clock_time="PT10M"),
            ),
        )
        kept = wait_for(
            lambda: (lambda t: t if t.state == "completed" else None)(c.get_task("j", "kept")),
            what="kept completed",
        )
        # Service time stands still: every timestamp is the clock's.
        assert kept.execution_info.end_time == kept.creation_time
        assert [f.name for f in c.list_task_files("j", "kept")]
        wait_for(lambda: c.get_task("j", "slow").state == "running", what="slow running")
        wait_for(
            lambda: any(
                t["taskId"] == "slow"
                for t in get_json(f"{manual.url}/_local/status")["runningTasks"]
                if t["pid"]
            ),
            what="slow's process",
        )

        # Past the wall clock limit: the step answers with the task killed and recorded.
        status, after = post_json(f"{manual.url}/_local/clock", {"advance": "PT11M"})
        assert status == 200 and after["now"] > start
        slow = c.get_task("j", "slow")
        assert slow.state == "completed"
        assert slow.execution_info.failure_info.code == "MaxWallClockTimeExpiry"

        # The kept task's files stay for its retention time (an hour from its end;
        # 11 minutes have passed), then go.
        assert post_json(f"{manual.url}/_local/clock", {"advance": "PT40M"})[0] == 200
        assert [f.name for f in c.list_task_files("j", "kept")]
        assert post_json(f"{manual.url}/_local/clock", {"advance": "PT10M"})[0] == 200
        with pytest.raises(HttpResponseError) as err:
            list(c.list_task_files("j", "kept"))
        assert err.value.error is not None and err.value.error.code == "TaskFilesCleanedup"

        # A pool delete waits for the delete delay (60 s) on the service clock.
        deleted = c.send_request(HttpRequest("DELETE", f"/pools/p?api-version={API}"))
        assert deleted.status_code == 202
        assert c.get_pool("p").state == "deleting"
        assert post_json(f"{manual.url}/_local/clock", {"seconds": 30})[0] == 200
        assert c.get_pool("p").state == "deleting"
        assert post_json(f"{manual.url}/_local/clock", {"seconds": 30})[0] == 200
        with pytest.raises(ResourceNotFoundError):
            c.get_pool("p")

    assert post_json(f"{manual.url}/_local/clock", {"advance": "-PT1M"})[0] == 400
    assert post_json(f"{manual.url}/_local/clock", {"minutes": 1})[0] == 400


def test_real_clock_refuses_a_step(local_services: Any) -> None:
    clock = get_json(f"{local_services.batch_url}/_local/clock")
    assert clock["mode"] == "real"
    status, body = post_json(f"{local_services.batch_url}/_local/clock", {"seconds": 1})
    assert status == 409 and "--clock manual" in body["error"]
