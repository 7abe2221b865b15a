"""A local Batch service SIGKILLed while a container task runs: its successor kills the task's
`podman run` process group and removes the container (by label) before it requeues the task,
so the next attempt never runs beside the old one. A private service and podman storage;
skipped with the reason when podman or busybox-static is not installed."""

from __future__ import annotations

import os
import signal

from azure.batch import models as m
from bspec.common import podman as common
from bspec.common import proctree
from bspec.localbatch import podman
from reference import Reference
from test_localbatch_api import IMAGE as VM_IMAGE
from test_localbatch_api import wait_for
from test_localbatch_containers import server  # noqa: F401 - a private service, busybox in
from test_localbatch_restart import Server
from test_podman_runtime import IMAGE


def test_a_dead_service_s_container_task_is_killed_and_removed_before_requeue(
    server: Server,  # noqa: F811 - the fixture imported above
    reference: Reference,
) -> None:
    srv = server
    home = srv.home
    store = common.ensure_config(home)
    try:
        vm = m.VirtualMachineConfiguration(
            image_reference=VM_IMAGE.image_reference,
            node_agent_sku_id=VM_IMAGE.node_agent_sku_id,
            container_configuration=m.BatchContainerConfiguration(
                type="dockerCompatible", container_image_names=[IMAGE]
            ),
        )
        with srv.client(reference) as c:
            c.create_pool(
                m.BatchPoolCreateOptions(
                    id="cp",
                    vm_size="standard_d2s_v3",
                    virtual_machine_configuration=vm,
                    target_dedicated_nodes=1,
                )
            )
            c.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(pool_id="cp")))
            c.create_task(
                "j",
                m.BatchTaskCreateOptions(
                    id="long",
                    command_line="/bin/sh -c 'sleep 120'",
                    container_settings=m.BatchTaskContainerSettings(image_name=IMAGE),
                ),
            )
            old = wait_for(
                lambda: [x for x in podman.list_containers(store) if x.state == "running"],
                60,
                "the task's container running",
            )
        assert srv.proc is not None
        os.kill(srv.proc.pid, signal.SIGKILL)
        srv.proc.wait()
        # the predecessor is gone; its `podman run` and the container are not
        assert [x.id for x in podman.list_containers(store)] == [x.id for x in old]
        srv.start()
        with srv.client(reference) as c:
            task = wait_for(
                lambda: (lambda t: t if t.state == "running" else None)(c.get_task("j", "long")),
                60,
                "the task running again",
            )
            assert task.execution_info.requeue_count == 1
            ids = {x.id for x in podman.list_containers(store)}
            assert not ids & {x.id for x in old}, "the old attempt's container is still there"
            c.begin_delete_job("j", polling_interval=0.05).result()
            c.begin_delete_pool("cp", polling_interval=0.05).result()
            wait_for(lambda: not podman.list_containers(store), 60, "containers removed")
        assert not proctree.processes_under(home / "batch" / "nodes")
    finally:
        common.release(store)
