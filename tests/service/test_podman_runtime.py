"""Container tasks through the private podman, on a fake node folder tree, as the agent
will run them: a tiny busybox image built from scratch (no registry), the task's
`podman run` started like a plain task's process, stdout/stderr on files, kill by name.

Skipped with the reason when podman is not installed. The machine's own podman storage
(/var/lib/containers/storage) must come out untouched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from bspec.common import podman as common
from bspec.localbatch import podman

IMAGE = "localhost/bspec-busybox:test"
MACHINE_STORAGE = Path("/var/lib/containers/storage")
BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "sleep", "ls", "pwd", "env", "true", "false", "touch", "mkdir")


def _snapshot(folder: Path) -> list[tuple[str, int]] | None:
    if not folder.exists():
        return None
    return sorted((str(p), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_dir())


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[common.Storage]:
    """A private storage with the busybox image imported once for the whole module."""
    reason = common.available()
    if reason is not None:
        pytest.skip(f"podman not installed: apt-get install podman runc ({reason})")
    if not BUSYBOX.exists() or not _static(BUSYBOX):
        pytest.skip("busybox-static not installed: apt-get install busybox-static")
    before = _snapshot(MACHINE_STORAGE)
    base = tmp_path_factory.mktemp("podman")
    store = common.ensure_config(base / "state")
    assert common.import_tarball(store, busybox_rootfs(base), IMAGE) == IMAGE
    yield store
    podman.remove_containers(store)
    _discard(store)
    assert not [
        line for line in Path("/proc/self/mounts").read_text().splitlines() if str(base) in line
    ]
    assert _snapshot(MACHINE_STORAGE) == before, "the machine's podman storage was modified"


def busybox_rootfs(base: Path) -> Path:
    """A tarball of a root file system with only busybox-static and its applets in /bin."""
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "tmp").mkdir()
    tarball = base / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    return tarball


def _discard(store: common.Storage) -> None:
    """Leave nothing mounted, and remove the run state when it had to live in /tmp."""
    common.release(store)
    if not store.runroot.is_relative_to(store.base):
        shutil.rmtree(store.runroot, ignore_errors=True)


def _static(path: Path) -> bool:
    """No `file` command: a static ELF has no PT_INTERP program header."""
    return b"/lib64/ld-linux" not in path.read_bytes()[:4096]


@pytest.fixture
def node(tmp_path: Path) -> dict[str, str]:
    """A node's folder tree and a task's AZ_BATCH_* environment, as the scheduler makes them."""
    root = tmp_path / "nodes" / "tvmps_1"
    task = root / "workitems" / "job1" / "job-1" / "task1"
    for sub in ("shared", "startup", "fsmounts", "applications"):
        (root / sub).mkdir(parents=True)
    (task / "wd").mkdir(parents=True)
    return {
        "AZ_BATCH_POOL_ID": "pool1",
        "AZ_BATCH_NODE_ID": "tvmps_1",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(root / "startup"),
        "AZ_BATCH_NODE_MOUNTS_DIR": str(root / "fsmounts"),
        "AZ_BATCH_JOB_ID": "job1",
        "AZ_BATCH_TASK_ID": "task1",
        "AZ_BATCH_TASK_DIR": str(task),
        "AZ_BATCH_TASK_WORKING_DIR": str(task / "wd"),
    }


def _start(
    store: common.Storage,
    env: dict[str, str],
    command_line: str,
    **settings: object,
) -> tuple[subprocess.Popen[bytes], podman.TaskCommand]:
    """Start the task's container as the agent starts a task process."""
    body = {"imageName": IMAGE, **settings}
    cmd = podman.task_command(
        store,
        podman.ContainerSettings.from_json(body),
        pool_id=env["AZ_BATCH_POOL_ID"],
        node_id=env["AZ_BATCH_NODE_ID"],
        task=f"{env['AZ_BATCH_JOB_ID']}/{env['AZ_BATCH_TASK_ID']}",
        command_line=command_line,
        environment=env,
    )
    task_dir = Path(env["AZ_BATCH_TASK_DIR"])
    with (task_dir / "stdout.txt").open("wb") as out, (task_dir / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            cmd.argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=env["AZ_BATCH_TASK_WORKING_DIR"],
            env=cmd.env,
            start_new_session=True,
        )
    return proc, cmd


def _run(
    store: common.Storage, env: dict[str, str], command_line: str, **settings: object
) -> tuple[int, str, str]:
    proc, _ = _start(store, env, command_line, **settings)
    code = proc.wait(timeout=60)
    task_dir = Path(env["AZ_BATCH_TASK_DIR"])
    return code, (task_dir / "stdout.txt").read_text(), (task_dir / "stderr.txt").read_text()


def test_a_container_task_runs_like_a_plain_task(
    storage: common.Storage, node: dict[str, str]
) -> None:
    env = {**node, "SECRET_TOKEN": "s3cr3t value", "PATH": "/bin"}
    script = (
        "pwd; echo $AZ_BATCH_TASK_ID $AZ_BATCH_NODE_ID; echo $SECRET_TOKEN; "
        "echo made > result_OUTPUT.txt; echo oops >&2; exit 3"
    )
    code, out, err = _run(storage, env, f"/bin/sh -c '{script}'")
    assert code == 3
    assert out.splitlines() == [
        node["AZ_BATCH_TASK_WORKING_DIR"],
        "task1 tvmps_1",
        "s3cr3t value",
    ]
    assert err == "oops\n"
    made = Path(node["AZ_BATCH_TASK_WORKING_DIR"]) / "result_OUTPUT.txt"
    assert made.read_text() == "made\n"  # output files reach the host for the upload
    assert podman.list_containers(storage, node_id="tvmps_1") == []  # --rm


def test_the_command_line_is_not_wrapped_in_a_shell(
    storage: common.Storage, node: dict[str, str]
) -> None:
    code, out, _ = _run(storage, node, "echo $AZ_BATCH_TASK_ID 'two  words'")
    assert code == 0
    assert out == "$AZ_BATCH_TASK_ID two  words\n"


def test_container_image_default_and_bind_mounts(
    storage: common.Storage, node: dict[str, str]
) -> None:
    shared = Path(node["AZ_BATCH_NODE_SHARED_DIR"])
    (shared / "tool.txt").write_text("shared\n")
    code, out, err = _run(
        storage,
        node,
        f"/bin/sh -c 'pwd; cat {shared}/tool.txt; ls {node['AZ_BATCH_NODE_STARTUP_DIR']}; "
        f"touch {shared}/new'",
        workingDirectory="containerImageDefault",
        containerHostBatchBindMounts=[{"source": "Shared", "isReadOnly": True}],
    )
    assert out.splitlines()[:2] == ["/", "shared"]
    assert "No such file or directory" in err  # Startup is not mounted
    assert "Read-only file system" in err
    assert code != 0
    assert not (shared / "new").exists()


def test_run_options_pass_through_after_batchs(
    storage: common.Storage, node: dict[str, str]
) -> None:
    code, out, _ = _run(
        storage, node, "pwd", containerRunOptions="--workdir /tmp --env EXTRA='a b'"
    )
    assert (code, out) == (0, "/tmp\n")


def test_kill_on_timeout_leaves_no_container(storage: common.Storage, node: dict[str, str]) -> None:
    proc, cmd = _start(storage, node, "sleep 60")
    deadline = time.monotonic() + 30
    while not podman.list_containers(storage, node_id="tvmps_1"):
        assert time.monotonic() < deadline, "the container never started"
        time.sleep(0.05)
    started = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)  # what the agent's kill() does to a task's group
    assert podman.remove_container(storage, cmd.name)  # and then this, by name
    proc.wait(timeout=30)
    assert time.monotonic() - started < 10
    assert podman.list_containers(storage) == []
    assert not podman.remove_container(storage, cmd.name)  # idempotent


def test_remove_containers_of_a_node(storage: common.Storage, node: dict[str, str]) -> None:
    procs = [_start(storage, node, "sleep 60")[0] for _ in range(2)]
    other = {**node, "AZ_BATCH_NODE_ID": "tvmps_2"}
    keep, _ = _start(storage, other, "sleep 60")
    deadline = time.monotonic() + 30
    while len(podman.list_containers(storage)) < 3:
        assert time.monotonic() < deadline, "the containers never started"
        time.sleep(0.05)
    assert len(podman.remove_containers(storage, node_id="tvmps_1")) == 2
    for proc in procs:
        proc.wait(timeout=30)
    assert [c.labels[podman.LABEL_NODE] for c in podman.list_containers(storage)] == ["tvmps_2"]
    assert podman.remove_containers(storage, pool_id="pool1")
    keep.wait(timeout=30)
    assert podman.list_containers(storage) == []


def test_a_missing_image_is_a_clear_failure(storage: common.Storage, node: dict[str, str]) -> None:
    code, _, _ = _run(storage, node, "true", imageName="localhost/no-such-image:1")
    assert code == podman.PODMAN_ERROR_EXIT
    failure = podman.podman_failure(code, Path(node["AZ_BATCH_TASK_DIR"]) / "stderr.txt")
    assert failure is not None
    assert failure[0] == podman.CONTAINER_INVALID_IMAGE
    assert "no-such-image" in failure[1]
    assert not common.image_exists(storage, "localhost/no-such-image:1")
    settings = podman.ContainerSettings("localhost:1/no-such-image:1")  # no registry there
    failed = podman.prepare_image(storage, settings)
    assert failed is not None and failed[0] == podman.CONTAINER_INVALID_IMAGE
    assert "no-such-image" in failed[1]
    assert podman.prepare_image(storage, podman.ContainerSettings(IMAGE)) is None


def test_images_list_and_import(
    storage: common.Storage, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    listed = [image.to_json() for image in common.list_images(storage)]
    assert any(IMAGE in row["names"] for row in listed)
    assert common.open_storage(storage.state_dir) == storage
    assert podman.pull(storage, IMAGE) == IMAGE  # present: no registry needed
    other = common.ensure_config(tmp_path / "other")
    request.addfinalizer(lambda: _discard(other))
    # from another podman storage by name (the user's own storage, in real use)
    assert common.import_from_user_storage(other, IMAGE, source=storage) == IMAGE
    assert common.image_exists(other, IMAGE)
    # from an image archive, under a new name
    archive = tmp_path / "image.tar"
    common.run(storage, "save", "--format", "oci-archive", "--output", str(archive), IMAGE)
    assert common.import_tarball(other, archive, "localhost/copy:2") == "localhost/copy:2"
    names = {n for image in common.list_images(other) for n in image.names}
    assert {IMAGE, "localhost/copy:2"} <= names
    with pytest.raises(common.PodmanError, match="not-there"):
        common.import_from_user_storage(other, "localhost/not-there:1", source=storage)
    with pytest.raises(common.PodmanError, match="root file system"):
        plain = tmp_path / "plain.tar"
        with tarfile.open(plain, "w") as tar:
            tar.add(__file__, arcname="x")
        common.import_tarball(other, plain)
