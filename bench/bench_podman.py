"""Container task overhead (issue 12): the same command run as a plain task process and as a
container task through the service's private podman (`bspec.localbatch.podman`), the image
already present, N runs each, interleaved, each started as the node agent starts a task
(its own session, stdout.txt and stderr.txt in the task folder, exit code waited for).

Goal: at most 1.5 s per task on top of the plain run. The image is a busybox-static root file
system imported from a tarball, so no registry is needed.

    python -m bench podman [--quick]
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from bspec.common import podman as common
from bspec.localbatch import podman

IMAGE = "localhost/bspec-bench:1"
COMMAND = "/bin/sh -c 'echo hello > out.txt; cat out.txt'"
GOAL = 1.5


def run(quick: bool) -> str:
    reason = common.available()
    if reason is not None or not Path("/bin/busybox").exists():
        return (
            "## Container tasks (`bench/bench_podman.py`)\n\n"
            f"Not measured: {reason or 'busybox-static is not installed'}.\n"
        )
    n = 5 if quick else 30
    with tempfile.TemporaryDirectory(prefix="bspec-bench-podman.") as tmp:
        base = Path(tmp)
        store = common.ensure_config(base / "state")
        try:
            started = time.perf_counter()
            _build_image(store, base)
            import_s = time.perf_counter() - started
            env = _node(base)
            plain: list[float] = []
            container: list[float] = []
            for _ in range(n):  # interleaved, so load on the shared machine hits both alike
                plain.append(_plain_run(env))
                container.append(_container_run(store, env))
            leftovers = len(podman.list_containers(store))
        finally:
            podman.remove_containers(store)
            common.release(store)
            if not store.runroot.is_relative_to(store.base):
                shutil.rmtree(store.runroot, ignore_errors=True)
    return _section(n, plain, container, import_s, leftovers, quick)


def _build_image(store: common.Storage, base: Path) -> None:
    rootfs = base / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    for applet in ("sh", "echo", "cat"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    with tarfile.open(base / "rootfs.tar", "w") as tar:
        tar.add(rootfs, arcname=".")
    common.import_tarball(store, base / "rootfs.tar", IMAGE)


def _node(base: Path) -> dict[str, str]:
    root = base / "nodes" / "tvm-bench"
    task = root / "workitems" / "job" / "job-1" / "task"
    (task / "wd").mkdir(parents=True)
    (root / "shared").mkdir()
    return {
        "AZ_BATCH_POOL_ID": "bench",
        "AZ_BATCH_NODE_ID": "tvm-bench",
        "AZ_BATCH_NODE_ROOT_DIR": str(root),
        "AZ_BATCH_NODE_SHARED_DIR": str(root / "shared"),
        "AZ_BATCH_JOB_ID": "job",
        "AZ_BATCH_TASK_ID": "task",
        "AZ_BATCH_TASK_DIR": str(task),
        "AZ_BATCH_TASK_WORKING_DIR": str(task / "wd"),
    }


def _timed(argv: list[str], env: Mapping[str, str], task_env: Mapping[str, str]) -> float:
    task_dir = Path(task_env["AZ_BATCH_TASK_DIR"])
    started = time.perf_counter()
    with (task_dir / "stdout.txt").open("wb") as out, (task_dir / "stderr.txt").open("wb") as err:
        code = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=task_env["AZ_BATCH_TASK_WORKING_DIR"],
            env=dict(env),
            start_new_session=True,
            check=False,
        ).returncode
    elapsed = time.perf_counter() - started
    if code != 0 or (task_dir / "stdout.txt").read_text() != "hello\n":
        raise RuntimeError(f"the benchmark task failed: {(task_dir / 'stderr.txt').read_text()}")
    return elapsed


def _plain_run(env: Mapping[str, str]) -> float:
    import shlex

    return _timed(shlex.split(COMMAND), {"PATH": "/usr/bin:/bin", **env}, env)


def _container_run(store: common.Storage, env: Mapping[str, str]) -> float:
    cmd = podman.task_command(
        store,
        podman.ContainerSettings(image_name=IMAGE),
        pool_id="bench",
        node_id="tvm-bench",
        task="job/task",
        command_line=COMMAND,
        environment=env,
    )
    return _timed(cmd.argv, cmd.env, env)


def _section(
    n: int, plain: list[float], container: list[float], import_s: float, leftovers: int, quick: bool
) -> str:
    def row(name: str, xs: list[float]) -> str:
        xs = sorted(xs)
        p95 = xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]
        return (
            f"| {name} | {statistics.median(xs) * 1000:.0f} | {statistics.mean(xs) * 1000:.0f} "
            f"| {p95 * 1000:.0f} | {xs[-1] * 1000:.0f} |"
        )

    over = statistics.median(container) - statistics.median(plain)
    verdict = "met" if over <= GOAL else "NOT met"
    return "\n".join(
        [
            "## Container tasks (`bench/bench_podman.py`)",
            "",
            f"The same command (`{COMMAND}`) started {n} times as a plain task process and {n}",
            "times as a container task through the private podman (busybox-static image already",
            "present, `podman run --rm` as `bspec.localbatch.podman.task_command` builds it),",
            "interleaved; each run from the start of the process to its exit, stdout.txt checked.",
            "",
            "| run | median (ms) | mean (ms) | p95 (ms) | max (ms) |",
            "| --- | ---: | ---: | ---: | ---: |",
            row("plain process", plain),
            row("container task (podman run)", container),
            "",
            f"Overhead per task: **{over:.2f} s** (median against median; goal: at most {GOAL} s on",
            f"top: {verdict}). Importing the image from its tarball (setup, once): {import_s:.1f} s.",
            f"Containers left after the runs: {leftovers}." + (" (quick sizes)" if quick else ""),
            "",
        ]
    )
