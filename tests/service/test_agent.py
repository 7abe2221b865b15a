"""The node agent against a real Azurite: resource files in, a real process, output files out."""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)
from bspec import local as services
from bspec.localbatch.agent import (
    Execution,
    Outcome,
    OutputFile,
    ResourceFile,
    TaskRun,
    kill_node_processes,
)

PY = sys.executable


@pytest.fixture
def container(
    azurite: services.StorageEndpoint, unique_id: Callable[[str], str]
) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    client = service.create_container(unique_id("agent"))
    try:
        yield client
    finally:
        client.delete_container()
        service.close()


def container_sas(client: ContainerClient, **perms: bool) -> str:
    token = generate_container_sas(
        services.AZURITE_ACCOUNT,
        client.container_name,
        account_key=services.AZURITE_KEY,
        permission=ContainerSasPermissions(**perms),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{client.url}?{token}"


def blob_sas(client: ContainerClient, name: str) -> str:
    token = generate_blob_sas(
        services.AZURITE_ACCOUNT,
        client.container_name,
        name,
        account_key=services.AZURITE_KEY,
        permission="r",
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    return f"{client.url}/{name}?{token}"


def execution(tmp_path: Path, command: str, **kw: Any) -> Execution:
    task_dir = tmp_path / "task"
    env = {
        "AZ_BATCH_TASK_ID": "t1",
        "AZ_BATCH_TASK_DIR": str(task_dir),
        "AZ_BATCH_TASK_WORKING_DIR": str(task_dir / "wd"),
        **kw.pop("environment", {}),
    }
    return Execution(
        command_line=command, task_dir=task_dir, working_dir=task_dir / "wd", environment=env, **kw
    )


def run(ex: Execution, cap: int = 2, kill_after_start: bool = False) -> tuple[Outcome, list[int]]:
    """Run one task to its outcome; returns it with the PIDs on_running saw."""
    pids: list[int] = []

    async def main() -> Outcome:
        async with aiohttp.ClientSession() as http:
            task = TaskRun(ex, http, asyncio.Semaphore(cap))

            async def on_running(pid: int) -> None:
                pids.append(pid)
                if kill_after_start:
                    task.kill()

            return await task.run(on_running)

    return asyncio.run(main()), pids


def blob_names(client: ContainerClient) -> set[str]:
    return {b.name for b in client.list_blobs()}


def gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for a reaper."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, seconds: float = 10.0) -> bool:
    end = datetime.now(UTC) + timedelta(seconds=seconds)
    while datetime.now(UTC) < end:
        if gone(pid):
            return True
        asyncio.run(asyncio.sleep(0.05))
    return gone(pid)


# ---------------------------------------------------------------------------- processes


def test_command_runs_without_a_shell_with_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, azurite: services.StorageEndpoint
) -> None:
    monkeypatch.setenv("BSPEC_SERVICE_ONLY", "leak")
    script = (
        "import os, sys; print(sys.argv[1:]); print(os.environ['AZ_BATCH_TASK_ID']); "
        "print(os.environ.get('BSPEC_SERVICE_ONLY')); print(os.getcwd())"
    )
    ex = execution(
        tmp_path, f"{PY} -c \"{script}\" 'a b' '$HOME' \"x;y\"", environment={"MY_SETTING": "v"}
    )
    outcome, pids = run(ex)
    assert outcome.result == "success" and outcome.exit_code == 0 and outcome.stage == "done"
    assert outcome.failure_info is None and outcome.start_time is not None
    assert len(pids) == 1
    lines = (ex.task_dir / "stdout.txt").read_text().splitlines()
    assert lines == ["['a b', '$HOME', 'x;y']", "t1", "None", str(ex.working_dir)]


def test_nonzero_exit_is_a_failure_with_stderr(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    ex = execution(tmp_path, "/bin/sh -c 'echo oops >&2; exit 3'")
    outcome, _ = run(ex)
    assert (outcome.result, outcome.exit_code, outcome.stage) == ("failure", 3, "process")
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "FailureExitCode"
    assert outcome.failure_info["category"] == "usererror"
    assert (ex.task_dir / "stderr.txt").read_text() == "oops\n"


def test_missing_program_is_reported_not_raised(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    outcome, pids = run(execution(tmp_path, "no-such-program-bspec --flag"))
    assert (outcome.result, outcome.exit_code, pids) == ("failure", None, [])
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "CommandProgramNotFound"


def test_wall_clock_kills_the_whole_process_group(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    ex = execution(
        tmp_path,
        "/bin/sh -c 'sleep 60 & echo $! > grandchild.pid; sleep 60'",
        max_wall_clock_time=1.0,
    )
    outcome, pids = run(ex)
    assert (outcome.result, outcome.exit_code, outcome.stage) == ("failure", None, "timeout")
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "MaxWallClockTimeExpiry"
    grandchild = int((ex.working_dir / "grandchild.pid").read_text())
    assert wait_gone(pids[0]) and wait_gone(grandchild)


def test_kill_ends_a_running_task(tmp_path: Path, azurite: services.StorageEndpoint) -> None:
    ex = execution(tmp_path, "/bin/sh -c 'sleep 60 & sleep 60'")
    outcome, pids = run(ex, kill_after_start=True)
    assert (outcome.result, outcome.stage, outcome.exit_code) == ("failure", "killed", None)
    assert wait_gone(pids[0])


def test_cancelling_the_run_kills_the_process_group(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    ex = execution(tmp_path, "/bin/sh -c 'sleep 60 & echo $! > grandchild.pid; sleep 60'")
    pids: list[int] = []

    async def main() -> None:
        started = asyncio.Event()

        async def on_running(pid: int) -> None:
            pids.append(pid)
            started.set()

        async with aiohttp.ClientSession() as http:
            job = asyncio.ensure_future(TaskRun(ex, http, asyncio.Semaphore(1)).run(on_running))
            await started.wait()
            marker = ex.working_dir / "grandchild.pid"
            while not (marker.exists() and marker.read_text().endswith("\n")):  # written whole
                await asyncio.sleep(0.02)
            job.cancel()
            with pytest.raises(asyncio.CancelledError):
                await job

    asyncio.run(main())
    grandchild = int((ex.working_dir / "grandchild.pid").read_text())
    assert wait_gone(pids[0]) and wait_gone(grandchild)


def test_kill_before_start_runs_nothing(tmp_path: Path, azurite: services.StorageEndpoint) -> None:
    ex = execution(tmp_path, "/bin/sh -c 'touch ran'")

    async def main() -> Outcome:
        async with aiohttp.ClientSession() as http:
            task = TaskRun(ex, http, asyncio.Semaphore(1))
            task.kill()
            task.kill()  # idempotent
            return await task.run()

    outcome = asyncio.run(main())
    assert outcome.stage == "killed" and outcome.start_time is None
    assert not (ex.working_dir / "ran").exists()


def test_processes_semaphore_caps_concurrency(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    marker = tmp_path / "busy"
    script = (
        f"import os, sys, time; p = {str(marker)!r}\n"
        "try: fd = os.open(p, os.O_CREAT | os.O_EXCL)\n"
        "except FileExistsError: sys.exit(9)\n"
        "time.sleep(0.3); os.close(fd); os.unlink(p)"
    )

    async def main() -> list[Outcome]:
        cap = asyncio.Semaphore(1)
        async with aiohttp.ClientSession() as http:
            runs = [
                TaskRun(execution(tmp_path / f"t{i}", f"{PY} -c {shlex.quote(script)}"), http, cap)
                for i in range(3)
            ]
            return list(await asyncio.gather(*(r.run() for r in runs)))

    assert [o.exit_code for o in asyncio.run(main())] == [0, 0, 0]


# ---------------------------------------------------------------------------- resource files


def test_resource_files_from_http_and_container(tmp_path: Path, container: ContainerClient) -> None:
    container.upload_blob("data/a.txt", b"alpha\n")
    container.upload_blob("data/sub/b.txt", b"beta\n")
    container.upload_blob("elsewhere/c.txt", b"not wanted\n")
    container.upload_blob("tool.sh", b"#!/bin/sh\necho tool ran\n")
    ex = execution(
        tmp_path,
        "./bin/tool.sh",
        resource_files=(
            ResourceFile(
                http_url=blob_sas(container, "tool.sh"), file_path="bin/tool.sh", file_mode="0755"
            ),
            ResourceFile(
                storage_container_url=container_sas(container, read=True, list=True),
                blob_prefix="data/",
                file_path="inputs",
            ),
            ResourceFile(
                http_url=blob_sas(container, "elsewhere/c.txt"), file_path="c.txt", file_mode="0640"
            ),
        ),
    )
    outcome, _ = run(ex)
    assert outcome.result == "success", outcome
    wd = ex.working_dir
    assert (wd / "inputs/data/a.txt").read_text() == "alpha\n"
    assert (wd / "inputs/data/sub/b.txt").read_text() == "beta\n"
    assert not (wd / "inputs/elsewhere").exists()
    assert (wd / "inputs/data/a.txt").stat().st_mode & 0o777 == 0o770  # Batch's default
    assert (wd / "c.txt").stat().st_mode & 0o777 == 0o640
    assert (ex.task_dir / "stdout.txt").read_text() == "tool ran\n"


def test_missing_resource_file_fails_before_the_process(
    tmp_path: Path, container: ContainerClient
) -> None:
    ex = execution(
        tmp_path,
        "/bin/sh -c 'touch ran'",
        resource_files=(ResourceFile(http_url=blob_sas(container, "absent.txt"), file_path="x"),),
    )
    outcome, pids = run(ex)
    assert (outcome.result, outcome.exit_code, outcome.stage, pids) == (
        "failure",
        None,
        "resourcefiles",
        [],
    )
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "BlobNotFound"
    assert "sig=" not in repr(outcome.failure_info) or "sig=REDACTED" in repr(outcome.failure_info)
    assert not (ex.working_dir / "ran").exists()


def test_container_listing_without_permission_is_access_denied(
    tmp_path: Path, container: ContainerClient
) -> None:
    container.upload_blob("a.txt", b"a")
    ex = execution(
        tmp_path,
        "/bin/true",
        resource_files=(ResourceFile(storage_container_url=container_sas(container, write=True)),),
    )
    outcome, _ = run(ex)
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "ResourceContainerAccessDenied"
    assert outcome.stage == "resourcefiles"


def test_resource_file_path_cannot_leave_the_working_dir(
    tmp_path: Path, container: ContainerClient
) -> None:
    container.upload_blob("a.txt", b"a")
    ex = execution(
        tmp_path,
        "/bin/true",
        resource_files=(
            ResourceFile(http_url=blob_sas(container, "a.txt"), file_path="../../escaped.txt"),
        ),
    )
    outcome, _ = run(ex)
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "ResourceFileCreateFailed"
    assert not (tmp_path / "escaped.txt").exists()


# ---------------------------------------------------------------------------- output files

MAKE_OUTPUTS = (
    "/bin/sh -c 'mkdir -p sub/deep; echo a > a_OUTPUT.txt; echo b > b_OUTPUT.txt; "
    "echo h > .h_OUTPUT.txt; echo c > sub/deep/c.txt; echo d > sub/d.txt; echo out; echo err >&2; exit {code}'"
)


def outputs(url: str) -> tuple[OutputFile, ...]:
    return (
        OutputFile("*_OUTPUT.txt", url, "results"),
        OutputFile("**/*.txt", url, "all", "taskcompletion"),
        OutputFile("../std*.txt", url, "logs", "taskcompletion"),
        OutputFile("sub/d.txt", url, "single/renamed.txt"),
        OutputFile("sub/deep/c.txt", url, None, "taskfailure"),
        OutputFile("nothing-*.bin", url, "none", "taskcompletion"),
    )


def test_output_files_on_success(tmp_path: Path, container: ContainerClient) -> None:
    url = container_sas(container, create=True, write=True)
    ex = execution(tmp_path, MAKE_OUTPUTS.format(code=0), output_files=outputs(url))
    outcome, _ = run(ex)
    assert outcome.result == "success", outcome
    assert blob_names(container) == {
        "results/a_OUTPUT.txt",
        "results/b_OUTPUT.txt",
        "all/a_OUTPUT.txt",
        "all/b_OUTPUT.txt",
        "all/sub/d.txt",
        "all/sub/deep/c.txt",
        "logs/stdout.txt",
        "logs/stderr.txt",
        "single/renamed.txt",
    }
    assert container.download_blob("logs/stdout.txt").readall() == b"out\n"
    assert container.download_blob("single/renamed.txt").readall() == b"d\n"
    assert "sig=" not in (ex.task_dir / "fileuploadout.txt").read_text().replace("sig=REDACTED", "")


def test_output_files_on_failure(tmp_path: Path, container: ContainerClient) -> None:
    url = container_sas(container, create=True, write=True)
    ex = execution(tmp_path, MAKE_OUTPUTS.format(code=2), output_files=outputs(url))
    outcome, _ = run(ex)
    assert (outcome.result, outcome.exit_code) == ("failure", 2)
    assert outcome.failure_info is not None and outcome.failure_info["code"] == "FailureExitCode"
    assert blob_names(container) == {
        "all/a_OUTPUT.txt",
        "all/b_OUTPUT.txt",
        "all/sub/d.txt",
        "all/sub/deep/c.txt",
        "logs/stdout.txt",
        "logs/stderr.txt",
        "c.txt",
    }


def test_output_files_after_a_timeout_use_the_failure_condition(
    tmp_path: Path, container: ContainerClient
) -> None:
    url = container_sas(container, create=True, write=True)
    ex = execution(
        tmp_path,
        "/bin/sh -c 'echo started; sleep 60'",
        max_wall_clock_time=0.5,
        output_files=(OutputFile("../stdout.txt", url, "timeout/stdout.txt", "taskfailure"),),
    )
    outcome, _ = run(ex)
    assert outcome.stage == "timeout"
    assert container.download_blob("timeout/stdout.txt").readall() == b"started\n"


def test_upload_failure_is_recorded(tmp_path: Path, container: ContainerClient) -> None:
    read_only = container_sas(container, read=True, list=True)
    ex = execution(
        tmp_path, "/bin/sh -c 'echo x > out.txt'", output_files=(OutputFile("out.txt", read_only),)
    )
    outcome, _ = run(ex)
    assert (outcome.result, outcome.exit_code, outcome.stage) == ("failure", 0, "outputfiles")
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "FileUploadAccessDenied"
    errors = (ex.task_dir / "fileuploaderr.txt").read_text()
    assert "out.txt" in errors
    assert blob_names(container) == set()


def test_upload_to_a_missing_container_is_recorded(
    tmp_path: Path, azurite: services.StorageEndpoint, unique_id: Callable[[str], str]
) -> None:
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    doomed = service.create_container(unique_id("gone"))
    url = container_sas(doomed, create=True, write=True)
    doomed.delete_container()
    service.close()
    ex = execution(
        tmp_path, "/bin/sh -c 'echo x > out.txt'", output_files=(OutputFile("out.txt", url),)
    )
    outcome, _ = run(ex)
    assert (outcome.result, outcome.stage) == ("failure", "outputfiles")
    assert outcome.failure_info is not None
    assert outcome.failure_info["code"] == "FileUploadContainerNotFound"


def test_large_output_file_goes_up_in_blocks(tmp_path: Path, container: ContainerClient) -> None:
    url = container_sas(container, create=True, write=True)
    size = 9 * 1024 * 1024 + 123
    ex = execution(
        tmp_path,
        f"{PY} -c \"import os; open('big.bin', 'wb').write(os.urandom({size}))\"",
        output_files=(OutputFile("big.bin", url, "big.bin"),),
    )
    outcome, _ = run(ex)
    assert outcome.result == "success", outcome
    data = container.download_blob("big.bin").readall()
    assert data == (ex.working_dir / "big.bin").read_bytes()
    assert os.path.getsize(ex.working_dir / "big.bin") == size


def test_background_processes_outlive_the_task_until_their_node_goes(
    tmp_path: Path, azurite: services.StorageEndpoint
) -> None:
    command = "/bin/sh -c 'setsid sleep 60 > /dev/null 2>&1 & echo $! > bg.pid'"
    pids = {}
    for node in ("node1", "node2"):
        root = tmp_path / "pool" / node
        ex = execution(root, command, environment={"AZ_BATCH_NODE_ROOT_DIR": str(root)})
        outcome, _ = run(ex)
        assert outcome.result == "success"  # the task completes; its daemon stays, as on Batch
        pids[node] = int((ex.working_dir / "bg.pid").read_text())
    assert not gone(pids["node1"]) and not gone(pids["node2"])

    assert kill_node_processes(tmp_path / "pool" / "node1") == [pids["node1"]]
    assert wait_gone(pids["node1"]) and not gone(pids["node2"])
    assert kill_node_processes(tmp_path / "pool") == [pids["node2"]]
    assert wait_gone(pids["node2"])


def test_a_flaky_download_is_tried_again(tmp_path: Path) -> None:
    """A 503 and then the file: the task still gets its resource file, as Batch retries."""
    from aiohttp import web

    calls: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        calls.append(1)
        if len(calls) == 1:
            return web.Response(status=503)
        return web.Response(body=b"second time lucky\n")

    async def main() -> Outcome:
        app = web.Application()
        app.router.add_get("/data.txt", flaky)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            ex = execution(
                tmp_path,
                "/bin/cat data.txt",
                resource_files=(
                    ResourceFile(
                        http_url=f"http://127.0.0.1:{port}/data.txt?sig=x", file_path="data.txt"
                    ),
                ),
            )
            async with aiohttp.ClientSession() as http:
                return await TaskRun(ex, http, asyncio.Semaphore(1)).run()
        finally:
            await runner.cleanup()

    outcome = asyncio.run(main())
    assert outcome.result == "success", outcome
    assert len(calls) == 2
    assert (tmp_path / "task" / "stdout.txt").read_text() == "second time lucky\n"
