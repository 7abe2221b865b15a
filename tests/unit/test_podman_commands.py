"""The container task's `podman run`, built without running podman: Batch's mounts, working
directory, environment (values never on the command line), options and names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bspec.common import podman as common
from bspec.localbatch import podman

ROOT = "/state/nodes/tvm-1"
TASK = f"{ROOT}/workitems/job1/job-1/task1"
ENV = {
    "AZ_BATCH_NODE_ID": "tvm-1",
    "AZ_BATCH_NODE_ROOT_DIR": ROOT,
    "AZ_BATCH_NODE_SHARED_DIR": f"{ROOT}/shared",
    "AZ_BATCH_NODE_STARTUP_DIR": f"{ROOT}/startup",
    "AZ_BATCH_NODE_MOUNTS_DIR": f"{ROOT}/fsmounts",
    "AZ_BATCH_TASK_DIR": TASK,
    "AZ_BATCH_TASK_WORKING_DIR": f"{TASK}/wd",
    "DB_PASSWORD": "hunter2 secret",
}
STORAGE = common.Storage(Path("/state"))


def _command(command_line: str = "python3 -c 'print(1)'", **body: object) -> podman.TaskCommand:
    settings = podman.ContainerSettings.from_json({"imageName": "ubuntu", **body})
    return podman.task_command(
        STORAGE,
        settings,
        pool_id="pool1",
        node_id="tvm-1",
        task="job1/task1",
        command_line=command_line,
        environment=ENV,
        name="c1",
    )


def _after_run(argv: list[str]) -> list[str]:
    return argv[argv.index("run") + 1 :]


def test_defaults_are_batchs() -> None:
    cmd = _command()
    argv = _after_run(cmd.argv)
    assert cmd.argv[1:3] == ["--root", "/state/containers/storage"]
    assert argv[:2] == ["--rm", "--log-driver"]
    assert argv[argv.index("--network") + 1] == "host"
    assert argv[argv.index("--workdir") + 1] == f"{TASK}/wd"
    assert argv[argv.index("--volume") + 1] == f"{ROOT}:{ROOT}:rw"
    assert argv.count("--volume") == 1
    assert argv[argv.index("--name") + 1] == "c1"
    assert "bspec.node=tvm-1" in argv and "bspec.pool=pool1" in argv
    assert argv[-4:] == ["docker.io/library/ubuntu:latest", "python3", "-c", "print(1)"]
    assert argv[argv.index("--pull") + 1] == "never"


def test_environment_values_stay_off_the_command_line() -> None:
    cmd = _command()
    assert all("hunter2" not in word for word in cmd.argv)
    assert "DB_PASSWORD" in cmd.argv and cmd.env["DB_PASSWORD"] == "hunter2 secret"
    assert cmd.env["CONTAINERS_CONF"] == "/state/containers/containers.conf"
    assert cmd.env["TMPDIR"] == "/state/containers/tmp"


def test_podman_own_variables_go_by_value() -> None:
    settings = podman.ContainerSettings(image_name="alpine")
    cmd = podman.task_command(
        STORAGE,
        settings,
        pool_id="p",
        node_id="n",
        task="t",
        command_line="",
        environment={
            "PATH": "/opt/bin:/bin",
            "CONTAINERS_CONF": "/x",
            "LD_LIBRARY_PATH": "/opt/lib",
            "https_proxy": "http://p:3128",
        },
    )
    for pair in ("PATH=/opt/bin:/bin", "CONTAINERS_CONF=/x", "LD_LIBRARY_PATH=/opt/lib"):
        assert pair in cmd.argv
    assert "https_proxy=http://p:3128" in cmd.argv
    assert cmd.env.get("LD_LIBRARY_PATH") != "/opt/lib"
    assert cmd.env["CONTAINERS_CONF"] == "/state/containers/containers.conf"
    assert cmd.argv[-1] == "docker.io/library/alpine:latest"  # empty: the image's ENTRYPOINT


def test_run_options_follow_batchs_and_the_name_is_ours() -> None:
    argv = _after_run(
        _command(
            containerRunOptions="--workdir /app --network bridge --name theirs -e A='b c'"
        ).argv
    )
    assert argv.index("/app") > argv.index("--workdir")
    assert "host" not in argv  # the user's --network replaces the default
    assert argv[argv.index("theirs") + 1 :].count("--name") == 1
    assert "A=b c" in argv


def test_image_default_working_directory_and_bind_mounts() -> None:
    argv = _command(
        workingDirectory="containerImageDefault",
        containerHostBatchBindMounts=[
            {"source": "Shared", "isReadOnly": True},
            {"source": "Task"},
            {"source": "JobPrep"},  # the job has none: left out
            {"source": "Applications"},
        ],
    ).argv
    assert "--workdir" not in argv
    volumes = [argv[i + 1] for i, w in enumerate(argv) if w == "--volume"]
    assert volumes == [
        f"{ROOT}/shared:{ROOT}/shared:ro",
        f"{TASK}:{TASK}:rw",
        f"{ROOT}/applications:{ROOT}/applications:rw",
    ]
    assert "--volume" not in _command(containerHostBatchBindMounts=[]).argv


@pytest.mark.parametrize(
    ("ref", "full"),
    [
        ("ubuntu", "docker.io/library/ubuntu:latest"),
        ("ubuntu:22.04", "docker.io/library/ubuntu:22.04"),
        ("library/ubuntu", "docker.io/library/ubuntu:latest"),
        ("myacr.azurecr.io/tools/app", "myacr.azurecr.io/tools/app:latest"),
        ("localhost:5000/app:1", "localhost:5000/app:1"),
        ("localhost/app", "localhost/app:latest"),
        ("alpine@sha256:abc", "docker.io/library/alpine@sha256:abc"),
    ],
)
def test_image_names_are_qualified_as_batch_does(ref: str, full: str) -> None:
    assert podman.qualify(ref) == full


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="split"):
        _command(containerRunOptions="--env 'unclosed")
    with pytest.raises(ValueError, match="split"):
        _command("echo 'unclosed")


def test_container_names_are_valid_and_unique() -> None:
    a = podman.container_name("tvm-1", "job/ta sk")
    b = podman.container_name("tvm-1", "job/ta sk")
    assert a != b and a.startswith("bspec-tvm-1-job_ta_sk-")
    assert len(podman.container_name("n", "x" * 500)) < 200


def test_registry_password_stays_out_of_reprs() -> None:
    registry = podman.Registry.from_json(
        {"registryServer": "https://myacr.azurecr.io/", "username": "u", "password": "pw!"}
    )
    assert registry.server == "myacr.azurecr.io"
    assert "pw!" not in repr(registry)
    assert "pw!" not in repr(podman.ContainerSettings("x", registry=registry))
    assert podman.registry_for("myacr.azurecr.io/app", [registry]) is registry
    assert podman.registry_for("ubuntu", [registry]) is None


def test_podman_failures_are_told_from_the_commands(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    stderr.write_text("Error: localhost/x:1: image not known\n")
    assert podman.podman_failure(125, stderr) == (
        podman.CONTAINER_INVALID_IMAGE,
        "localhost/x:1: image not known",
    )
    stderr.write_text("Error: unknown flag: --bogus\n")
    assert podman.podman_failure(125, stderr) == (
        podman.CONTAINER_INVALID_SETTINGS,
        "unknown flag: --bogus",
    )
    stderr.write_text("my program failed\n")
    assert podman.podman_failure(125, stderr) is None
    assert podman.podman_failure(3, stderr) is None


def test_config_stays_in_the_state_folder(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    storage = common.ensure_config(tmp_path)
    if not storage.runroot.is_relative_to(tmp_path):  # too long a path: made in /tmp
        request.addfinalizer(lambda: shutil.rmtree(storage.runroot, ignore_errors=True))
    conf = storage.conf.read_text()
    assert "default_ulimits = []" in conf and 'cgroup_manager = "cgroupfs"' in conf
    assert 'runtime = "runc"' in conf and 'events_logger = "file"' in conf
    assert str(tmp_path) in storage.storage_conf.read_text()
    assert (storage.auth_file.stat().st_mode & 0o777) == 0o600
    assert common.ensure_config(tmp_path) == storage  # idempotent
    short = common.Storage(Path("/s"))
    assert short.runroot == Path("/s/containers/run")
    long = common.Storage(Path("/" + "x" * 60))
    assert len(str(long.runroot)) <= 50
