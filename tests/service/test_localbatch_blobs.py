"""Resource files and output files through the service, with Azurite serving the blobs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from azure.batch import models as m
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from test_localbatch_scheduler import done, make_job, make_pool, read, sh


def container_sas(blob_service: Any, name: str, permission: str) -> str:
    sas = generate_container_sas(
        blob_service.account_name,
        name,
        account_key=blob_service.credential.account_key,
        permission=ContainerSasPermissions.from_string(permission),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
    )
    return f"{blob_service.url.rstrip('/')}/{name}?{sas}"


def test_resource_and_output_files(
    checked_client: Any, blob_service: Any, unique_id: Callable[[str], str]
) -> None:
    app, data, out = unique_id("app"), unique_id("data"), unique_id("out")
    for name in (app, data, out):
        blob_service.create_container(name)
    blob_service.get_blob_client(app, "tools/tool.sh").upload_blob(b"echo tool ran\n")
    blob_service.get_blob_client(app, "other.txt").upload_blob(b"not this one\n")
    blob_service.get_blob_client(data, "in.txt").upload_blob(b"hello blobs\n")
    app_url = container_sas(blob_service, app, "rl")
    data_url = container_sas(blob_service, data, "r")
    out_url = container_sas(blob_service, out, "cw")
    in_blob = data_url.replace("?", "/in.txt?", 1)

    pool_id, job_id = unique_id("pool"), unique_id("job")
    start = m.BatchStartTask(
        command_line=sh("cp -r tools $AZ_BATCH_NODE_SHARED_DIR/"),
        resource_files=[
            m.ResourceFile(storage_container_url=app_url, blob_prefix="tools/", file_mode="0755")
        ],
        wait_for_success=True,
    )
    make_pool(checked_client, pool_id, nodes=1, start=start)
    make_job(checked_client, job_id, pool_id)
    upload = m.OutputFileUploadConfiguration
    checked_client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="work",
            command_line=sh(
                "sh $AZ_BATCH_NODE_SHARED_DIR/tools/tool.sh; tr a-z A-Z < input/in.txt > result.out"
            ),
            resource_files=[m.ResourceFile(http_url=in_blob, file_path="input/in.txt")],
            output_files=[
                m.OutputFile(
                    file_pattern="*.out",
                    destination=m.OutputFileDestination(
                        container=m.OutputFileBlobContainerDestination(
                            container_url=out_url, path="results"
                        )
                    ),
                    upload_options=upload(upload_condition="tasksuccess"),
                ),
                m.OutputFile(
                    file_pattern="../std*.txt",
                    destination=m.OutputFileDestination(
                        container=m.OutputFileBlobContainerDestination(
                            container_url=out_url, path="logs/work"
                        )
                    ),
                    upload_options=upload(upload_condition="taskcompletion"),
                ),
                m.OutputFile(
                    file_pattern="*.out",
                    destination=m.OutputFileDestination(
                        container=m.OutputFileBlobContainerDestination(
                            container_url=out_url, path="never"
                        )
                    ),
                    upload_options=upload(upload_condition="taskfailure"),
                ),
            ],
        ),
    )
    task = done(checked_client, job_id, "work")
    assert task.execution_info.result == "success", task.execution_info.failure_info
    assert read(checked_client, job_id, "work", "stdout.txt") == "tool ran\n"
    container = blob_service.get_container_client(out)
    names = sorted(b.name for b in container.list_blobs())
    assert names == ["logs/work/stderr.txt", "logs/work/stdout.txt", "results/result.out"]
    assert container.download_blob("results/result.out").readall() == b"HELLO BLOBS\n"

    checked_client.create_task(
        job_id,
        m.BatchTaskCreateOptions(
            id="missing",
            command_line="true",
            resource_files=[m.ResourceFile(http_url=data_url.replace("?", "/nope.txt?", 1))],
        ),
    )
    missing = done(checked_client, job_id, "missing")
    assert missing.execution_info.result == "failure"
    assert missing.execution_info.failure_info.category == "usererror"
    assert "sig=" not in str(missing.execution_info.failure_info.as_dict()).replace(
        "sig=REDACTED", ""
    )
