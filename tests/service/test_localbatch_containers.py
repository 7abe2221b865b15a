"""Container pools and tasks through the real azure-batch SDK against a private service: a
pool with containerConfiguration pulls its image at node start and runs its start task in a
container, a task with containerSettings runs in a busybox container (no /usr in it: not on
the host; imported from a busybox-static root file system, no registry), its stdout reads
through the files API and its output file uploads; a task with containerSettings on a plain
pool fails. Skipped with the reason when podman or busybox-static is not installed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from azure.batch import models as m
from bspec.common import podman as common
from reference import Reference
from test_localbatch_api import IMAGE as VM_IMAGE
from test_localbatch_api import wait_for
from test_localbatch_blobs import container_sas
from test_localbatch_restart import Server
from test_podman_runtime import BUSYBOX, IMAGE, _discard, _static, busybox_rootfs


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A private service whose podman storage holds the busybox image."""
    reason = common.available()
    if reason is not None:
        pytest.skip(f"podman not installed: apt-get install podman runc ({reason})")
    if not BUSYBOX.exists() or not _static(BUSYBOX):
        pytest.skip("busybox-static not installed: apt-get install busybox-static")
    base = tmp_path_factory.mktemp("containers")
    home = base / "home"
    home.mkdir()
    store = common.ensure_config(home)
    assert common.import_tarball(store, busybox_rootfs(base), IMAGE) == IMAGE
    srv = Server(home)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        _discard(store)


def _vm(container: bool) -> m.VirtualMachineConfiguration:
    vm = m.VirtualMachineConfiguration(
        image_reference=VM_IMAGE.image_reference,
        node_agent_sku_id=VM_IMAGE.node_agent_sku_id,
    )
    if container:
        vm.container_configuration = m.BatchContainerConfiguration(
            type="dockerCompatible", container_image_names=[IMAGE]
        )
    return vm


def test_container_task_runs_reads_and_uploads(
    server: Server, reference: Reference, blob_service: Any, unique_id: Any
) -> None:
    out = unique_id("ctr")
    blob_service.create_container(out)
    out_url = container_sas(blob_service, out, "cw")
    with server.client(reference) as c:
        c.create_pool(
            m.BatchPoolCreateOptions(
                id="cp",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=_vm(True),
                target_dedicated_nodes=1,
                start_task=m.BatchStartTask(
                    command_line="/bin/sh -c 'test ! -e /usr && echo up > $AZ_BATCH_NODE_SHARED_DIR/started'",
                    container_settings=m.BatchTaskContainerSettings(image_name=IMAGE),
                    wait_for_success=True,
                ),
            )
        )
        c.create_pool(
            m.BatchPoolCreateOptions(
                id="plain",
                vm_size="standard_d2s_v3",
                virtual_machine_configuration=_vm(False),
                target_dedicated_nodes=1,
            )
        )
        for pool in ("cp", "plain"):
            wait_for(
                lambda p=pool: [n.state for n in c.list_nodes(p)] == ["idle"], what=f"{pool} idle"
            )
        node = next(iter(c.list_nodes("cp")))
        assert node.start_task_info.result == "success", node.start_task_info
        started = b"".join(c.download_node_file("cp", node.id, "shared/started"))
        assert started == b"up\n"  # the start task ran in its container, the node mounted
        pool = c.get_pool("cp")
        assert pool.virtual_machine_configuration.container_configuration.type == "dockerCompatible"
        settings = m.BatchTaskContainerSettings(image_name=IMAGE)
        c.create_job(m.BatchJobCreateOptions(id="cj", pool_info=m.BatchPoolInfo(pool_id="cp")))
        c.create_task(
            "cj",
            m.BatchTaskCreateOptions(
                id="t",
                command_line=(
                    "/bin/sh -c 'echo in-container $AZ_BATCH_TASK_ID; "
                    "echo result > result.txt; test ! -e /usr'"
                ),
                container_settings=settings,
                output_files=[
                    m.OutputFile(
                        file_pattern="result.txt",
                        destination=m.OutputFileDestination(
                            container=m.OutputFileBlobContainerDestination(
                                container_url=out_url, path="t/result.txt"
                            )
                        ),
                        upload_options=m.OutputFileUploadConfiguration(
                            upload_condition="tasksuccess"
                        ),
                    )
                ],
            ),
        )
        done = wait_for(
            lambda: (lambda t: t if t.state == "completed" else None)(c.get_task("cj", "t")),
            timeout=60,
            what="container task completed",
        )
        info = done.execution_info
        assert info.result == "success", info.failure_info
        assert info.exit_code == 0
        stdout = b"".join(c.download_task_file("cj", "t", "stdout.txt")).decode()
        assert stdout == "in-container t\n"
        blob = blob_service.get_container_client(out).download_blob("t/result.txt")
        assert blob.readall() == b"result\n"

        # containerSettings on a pool without containerConfiguration: the task fails.
        c.create_job(m.BatchJobCreateOptions(id="pj", pool_info=m.BatchPoolInfo(pool_id="plain")))
        c.create_task(
            "pj",
            m.BatchTaskCreateOptions(id="x", command_line="true", container_settings=settings),
        )
        failed = wait_for(
            lambda: (lambda t: t if t.state == "completed" else None)(c.get_task("pj", "x")),
            what="refused task completed",
        )
        assert failed.execution_info.result == "failure"
        assert failed.execution_info.failure_info.category == "usererror"
        assert failed.execution_info.failure_info.code == "ContainerSettingsNotSupported"
