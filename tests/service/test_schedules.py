"""Scheduled jobs for real: specs/nightly.yaml applied to a private local service whose clock
is stepped (never waited) across two recurrences. Both runs get their tasks from bspec's
job manager, run them and end (so the later run is not blocked by the earlier one), their
outputs land in a folder per run, a converged plan leaves the runs alone, `status` lists
them with the next run time, and `destroy` removes the schedule with its runs. A schedule
with `poolPerRun` runs each job on a pool of its own that goes when the run ends.

The spec is applied whole: the job's `preparation:` and the task's `onExit:` reach each run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.batch import BatchClient
from azure.core.credentials import AzureNamedKeyCredential
from bspec import api, operations
from bspec import local as services
from bspec.reporting.reporter import QuietReporter
from jsonschema import Draft202012Validator

pytestmark = pytest.mark.service  # its own services (a manual clock), not the session's

REPO = Path(__file__).resolve().parents[2]
OUTPUT_SCHEMA = json.loads((REPO / "schema" / "output.schema.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def manual_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Batch (manual clock, no delete delay) and Azurite of their own, for this module."""
    home = tmp_path_factory.mktemp("schedules-home")
    services.ensure_running(
        home,
        batch_port=0,
        azurite_port=0,
        batch_args=["--clock", "manual", "--delete-delay", "0"],
    )
    old = {k: os.environ.get(k) for k in ("BSPEC_HOME", "BSPEC_TARGET")}
    os.environ["BSPEC_HOME"] = str(home)
    os.environ.pop("BSPEC_TARGET", None)
    try:
        yield home
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        services.stop(home)


def _clock(home: Path, advance: str | None = None) -> dt.datetime:
    url = json.loads((home / "endpoints.json").read_text())["batch"]["url"] + "/_local/clock"
    data = None if advance is None else json.dumps({"advance": advance}).encode()
    req = urllib.request.Request(
        url,
        data=data,
        method="GET" if data is None else "POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        now = json.loads(resp.read())["now"]
    return dt.datetime.fromisoformat(now.replace("Z", "+00:00"))


def _nightly(tmp_path: Path, first_run: dt.datetime) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    scaffold = Path("templates", "init", "nightly")
    shutil.copytree(REPO / scaffold, tmp_path / scaffold)
    text = (REPO / "specs" / "nightly.yaml").read_text("utf-8")
    when = first_run.strftime("%Y-%m-%dT%H:%M:%SZ")
    text, n = re.subn(r'doNotRunUntil: "[^"]+"', f'doNotRunUntil: "{when}"', text)
    assert n == 1
    spec = specs / "nightly.yaml"
    spec.write_text(text, "utf-8")
    return spec


def _valid(data: dict[str, Any], definition: str) -> None:
    one = {"$defs": OUTPUT_SCHEMA["$defs"], "$ref": f"#/$defs/{definition}"}
    Draft202012Validator(one).validate(data)


def _run_done(spec: Path, run_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Poll status (real time: the tasks run as processes) until the run's job completed."""
    deadline = time.monotonic() + timeout
    while True:
        runs = {r["id"]: r for r in api.status(spec)["schedules"][0]["runs"]}
        run: dict[str, Any] | None = runs.get(run_id)
        if run is not None and run["state"] == "completed":
            return run
        assert time.monotonic() < deadline, f"{run_id} did not complete: {runs}"
        time.sleep(0.3)


@pytest.mark.slow
def test_nightly_runs_twice_keeps_both_outputs_and_destroys_cleanly(
    manual_home: Path, tmp_path: Path
) -> None:
    start = _clock(manual_home)
    first = (start + dt.timedelta(hours=1)).replace(microsecond=0)
    spec = _nightly(tmp_path, first)
    job = "nightly-job"

    planned = api.plan(spec)
    _valid(planned, "plan")
    creates = {c["address"] for c in planned["changes"] if c["action"] == "create"}
    assert f"schedule/{job}" in creates and f"job/{job}" not in creates
    # No doNotRunAfter: the schedule outlives its 7-day SAS tokens, and the plan says when.
    assert any(
        w["code"] == "sasExpiry"
        and w["address"] == f"schedule/{job}"
        and "run out at" in w["message"]
        for w in planned["warnings"]
    )

    # Applied with 1-day SAS tokens, the next plan renews them in place (within 2 days).
    applied = operations.apply(
        spec, QuietReporter(), yes=True, wait=False, sas_ttl=dt.timedelta(days=1)
    ).data
    assert applied["summary"]["create"] >= 1
    renew = api.plan(spec)
    assert [(c["action"], c["address"], c["fields"]) for c in renew["changes"]] == [
        ("update", f"schedule/{job}", ["sas"])
    ]
    assert "new ones in place" in renew["changes"][0]["reason"]
    _valid(api.apply(spec, wait=False), "apply")
    assert api.plan(spec)["changes"] == []
    status = api.status(spec)
    _valid(status, "status")
    (sched,) = status["schedules"]
    assert (sched["state"], sched["runs"]) == ("active", [])
    assert sched["nextRunTime"] == first.strftime("%Y-%m-%dT%H:%M:%SZ")

    # Step to the first run: its job manager adds the tasks, they run, the job ends.
    _clock(manual_home, "PT1H")
    run1 = _run_done(spec, f"{job}:job-1")
    assert run1["taskCounts"]["failed"] == 0
    assert run1["taskCounts"]["succeeded"] == 4  # the manager, two counts, the total

    # A day later the second run is not blocked by the first.
    _clock(manual_home, "P1D")
    run2 = _run_done(spec, f"{job}:job-2")
    assert run2["taskCounts"]["succeeded"] == 4
    status = api.status(spec)
    _valid(status, "status")
    assert [r["id"] for r in status["schedules"][0]["runs"]] == [f"{job}:job-2", f"{job}:job-1"]

    # Each run's outputs in a folder of its own.
    got = api.outputs(spec)
    _valid(got, "outputs")
    out = tmp_path / "out" / "nightly"
    for n in (1, 2):
        folder = out / f"{job}:job-{n}"
        assert sorted(p.name for p in folder.iterdir()) == ["fox.count", "night.count", "total.txt"]
        assert (folder / "total.txt").read_text().strip() == "2 files, 17 words"

    # Converged: the runs are the schedule's, not stray jobs of the stack.
    again = api.plan(spec)
    assert again["changes"] == [], again["changes"]

    gone = api.destroy(spec)
    _valid(gone, "destroy")
    deleted = {c["address"] for c in gone["changes"] if c["action"] == "delete"}
    assert {f"schedule/{job}", f"job/{job}:job-1", f"job/{job}:job-2"} <= deleted
    status = api.status(spec)
    assert status["schedules"][0]["exists"] is False
    assert status["pool"]["exists"] is False


POOL_PER_RUN = """apiVersion: bspec/v1
name: perrun
storage:
  containers:
    output: {}
pool:
  id: perrun-pool
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: 0001-com-ubuntu-server-jammy, sku: 22_04-lts,
          nodeAgentSku: batch.node.ubuntu 22.04}
  nodes: 1
  taskSlotsPerNode: 2
jobs:
  - id: hourly
    schedule: {recurrenceInterval: PT1H, poolPerRun: true}
    tasks:
      - id: hello
        commands: ["echo {{ run }} on $AZ_BATCH_POOL_ID > hello.txt"]
        outputFiles: [{pattern: hello.txt, container: output}]
    outputs: [{container: output, to: out}]
"""


def test_a_pool_per_run_comes_and_goes_with_the_run(manual_home: Path, tmp_path: Path) -> None:
    spec = tmp_path / "perrun.yaml"
    spec.write_text(POOL_PER_RUN, "utf-8")
    planned = api.plan(spec)
    assert "pool/perrun-pool" not in {c["address"] for c in planned["changes"]}
    api.apply(spec, wait=False)  # no doNotRunUntil: the first run starts at once
    run = _run_done(spec, "hourly:job-1")
    assert run["taskCounts"]["succeeded"] == 2
    api.outputs(spec)
    text = (tmp_path / "out" / "hourly:job-1" / "hello.txt").read_text().split()
    assert text[0] == "hourly:job-1" and text[2] != "perrun-pool"  # a pool of its own
    ends = services.ensure_running(manual_home)
    with BatchClient(ends.batch_url, AzureNamedKeyCredential(ends.account, ends.key)) as c:
        deadline = time.monotonic() + 30
        while [p.id for p in c.list_pools()] and time.monotonic() < deadline:
            time.sleep(0.2)  # the run's pool goes with its job (deleted, then gone)
        assert [p.id for p in c.list_pools()] == []
    assert api.status(spec)["pool"] is None
    api.destroy(spec)
    assert api.status(spec)["schedules"][0]["exists"] is False
