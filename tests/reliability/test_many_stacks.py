"""Many stacks at once against the same services: each applies, waits and is destroyed
while the others do the same; each converges; none touches another's resources (their
ETags are unchanged by the others' commands); none waits on another's lock (every command
runs with --lock-timeout 0, so a lock held by anyone else would fail it with exit 3).

Three stacks in `make test`; ten in `make chaos` (marker `chaos`, deselected by default).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from .conftest import Bspec, Run, Snapshot, assert_converged, desired_of, record


def etags(batch: Any, blobs: Any, stacks: dict[str, Path]) -> dict[str, str]:
    """The ETag of every pool, job and container of these stacks, by address."""
    found: dict[str, str] = {}
    for spec in stacks.values():
        desired = desired_of(spec)
        assert desired.pool is not None
        found[f"pool/{desired.pool.id}"] = str(batch.get_pool(desired.pool.id).etag)
        for job in desired.jobs:
            found[f"job/{job.id}"] = str(batch.get_job(job.id).etag)
        for c in [*desired.containers, desired.logs_container]:
            props = blobs.get_container_client(c.name).get_container_properties()
            found[f"container/{c.name}"] = str(props.etag)
    return found


def together(bspec: Bspec, commands: Sequence[Sequence[str]], timeout: float) -> list[Run]:
    """Start every command at once; wait for all."""
    procs: list[tuple[Sequence[str], subprocess.Popen[str]]] = [
        (args, bspec.popen(args)) for args in commands
    ]
    return [bspec.finish(args, p, timeout) for args, p in procs]


@pytest.mark.parametrize("count", [3, pytest.param(10, marks=pytest.mark.chaos)])
def test_stacks_at_once(
    count: int,
    bspec: Bspec,
    state: Callable[[str], Snapshot],
    stack: Callable[..., tuple[str, Path]],
    batch_client: Any,
    blob_service: Any,
) -> None:
    stacks = dict(stack(f"many{i}", files=2, tasks=6 + i, nodes=1) for i in range(count))
    no_wait = ["--lock-timeout", "0"]
    timing: dict[str, float] = {}

    started = time.monotonic()
    runs = together(
        bspec, [["apply", str(s), "--yes", "--json", *no_wait] for s in stacks.values()], 300
    )
    timing["apply"] = time.monotonic() - started
    for run in runs:
        assert run.returncode == 0, str(run)
        assert run.json()["outcome"]["tasksSubmitted"] > 0, str(run)
    for name, spec in stacks.items():
        assert_converged(state(name), desired_of(spec))

    # Half the stacks are destroyed while the other half waits and plans (reads only):
    # the survivors' resources are untouched, ETag for ETag.
    names = list(stacks)
    going, staying = names[: count // 2 + 1], names[count // 2 + 1 :]
    kept = {n: stacks[n] for n in staying}
    before = etags(batch_client, blob_service, kept)
    started = time.monotonic()
    runs = together(
        bspec,
        [["destroy", str(stacks[n]), "--yes", "--json", *no_wait] for n in going]
        + [["wait", str(stacks[n]), "--json"] for n in staying]
        + [["plan", str(stacks[n]), "--json"] for n in staying],
        300,
    )
    timing["destroyWhileOthersWait"] = time.monotonic() - started
    for run in runs:
        assert run.returncode == 0, str(run)
        if run.args[0] == "plan":
            assert not run.json()["changes"], run.json()["changes"]
    assert etags(batch_client, blob_service, kept) == before
    for name in staying:
        assert_converged(state(name), desired_of(stacks[name]))
    for name in going:
        snap = state(name)
        assert not snap.pools and not snap.jobs and not snap.containers, snap

    started = time.monotonic()
    runs = together(
        bspec, [["destroy", str(stacks[n]), "--yes", "--json", *no_wait] for n in staying], 300
    )
    timing["destroyRest"] = time.monotonic() - started
    assert all(r.returncode == 0 for r in runs), "\n".join(map(str, runs))
    for name in stacks:
        snap = state(name)
        assert not snap.pools and not snap.jobs and not snap.containers, snap
    record("manyStacks", {"stacks": count, "seconds": {k: round(v, 1) for k, v in timing.items()}})
