"""The plan's warnings and compute figures (bspec.preflight, pure): each warning from a
spec that earns it, none for what the plan does not touch, and no read asked for a plan
that allocates nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from bspec import preflight
from bspec.model import ActualState, Address, Resource
from bspec.planning import PlanOptions, plan
from bspec.preflight import Facts, SupportedImage, normal_image
from bspec.spec import load
from spec_helpers import write

TODAY = dt.date(2026, 12, 1)
JAMMY = SupportedImage(
    "canonical",
    "0001-com-ubuntu-server-jammy",
    "22_04-lts",
    "batch.node.ubuntu 22.04",
    dt.date(2027, 6, 30),
)
FOCAL = SupportedImage(
    "canonical",
    "0001-com-ubuntu-server-focal",
    "20_04-lts",
    "batch.node.ubuntu 20.04",
    dt.date(2025, 4, 23),
)
HPC = SupportedImage(
    "microsoft-dsvm",
    "ubuntu-hpc",
    "2204",
    "batch.node.ubuntu 22.04",
    dt.date(2027, 6, 30),
    ("DockerCompatible",),
)
IMAGES = (JAMMY, FOCAL, HPC)


def spec(pool: str = "", task: str = "", nodes: int = 2, image: str = "jammy") -> str:
    ref = {
        "jammy": "{publisher: canonical, offer: 0001-com-ubuntu-server-jammy, sku: 22_04-lts,"
        " nodeAgentSku: batch.node.ubuntu 22.04}",
        "focal": "{publisher: canonical, offer: 0001-com-ubuntu-server-focal, sku: 20_04-lts,"
        " nodeAgentSku: batch.node.ubuntu 20.04}",
        "odd": "{publisher: acme, offer: os, sku: '1', nodeAgentSku: batch.node.ubuntu 22.04}",
        "hpc": "{publisher: microsoft-dsvm, offer: ubuntu-hpc, sku: '2204',"
        " nodeAgentSku: batch.node.ubuntu 22.04}",
    }[image]
    return f"""apiVersion: bspec/v1
name: w
pool:
  id: p
  vmSize: standard_d2s_v3
  image: {ref}
  nodes: {nodes}
{pool}
jobs:
  - id: j
    tasks:
      - foreach: {{range: [0, 3]}}
        id: "t{{{{ item }}}}"
        commandLine: /bin/true
{task}
"""


def warnings(
    tmp: Path, text: str, actual: ActualState | None = None, **facts: object
) -> list[tuple[str, str | None]]:
    d = load(write(tmp, text))
    p = plan(d, actual or ActualState({}), PlanOptions("local"))
    f = Facts(today=TODAY, **facts)  # type: ignore[arg-type]
    return [(w.code, w.address) for w in preflight.check(p, d, f)]


def test_a_clean_plan_has_no_warnings(tmp_path: Path) -> None:
    assert warnings(tmp_path, spec(), images=IMAGES, quotas={}) == []


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (dt.date(2026, 12, 1), []),  # 211 days left
        (dt.date(2027, 4, 1), [("imageEndOfSupport", "pool/p")]),  # 90 days left
        (dt.date(2027, 7, 1), [("imageEndOfSupport", "pool/p")]),  # past
    ],
)
def test_image_end_of_support_within_90_days(
    tmp_path: Path, today: dt.date, expected: list[tuple[str, str]]
) -> None:
    d = load(write(tmp_path, spec()))
    p = plan(d, ActualState({}), PlanOptions("local"))
    found = preflight.check(p, d, Facts(today=today, images=IMAGES))
    assert [(w.code, w.address) for w in found] == expected
    if expected:
        assert "2027-06-30" in found[0].message


def test_past_and_unknown_images(tmp_path: Path) -> None:
    assert warnings(tmp_path, spec(image="focal"), images=IMAGES) == [
        ("imageEndOfSupport", "pool/p")
    ]
    assert warnings(tmp_path, spec(image="odd"), images=IMAGES) == [("imageNotSupported", "pool/p")]
    # not read (no facts): no image warning
    assert warnings(tmp_path, spec(image="focal")) == []


def test_a_container_pool_needs_an_image_with_container_support(tmp_path: Path) -> None:
    pool = "  containers: {images: [busybox]}"
    assert warnings(tmp_path, spec(pool=pool), images=IMAGES) == [
        ("imageWithoutContainers", "pool/p")
    ]
    assert warnings(tmp_path, spec(pool=pool, image="hpc"), images=IMAGES) == []
    assert warnings(tmp_path, spec(image="jammy"), images=IMAGES) == []  # no containers


def test_unknown_vm_size_and_slots(tmp_path: Path) -> None:
    text = spec().replace("standard_d2s_v3", "standard_d2s_v9")
    assert warnings(tmp_path, text) == [("unknownVmSize", "pool/p")]
    # standard_d2s_v3 has 2 vCPUs: at most 8 slots; 300 is over 256 for any size
    assert warnings(tmp_path, spec(pool="  taskSlotsPerNode: 8")) == []
    assert warnings(tmp_path, spec(pool="  taskSlotsPerNode: 9")) == [
        ("taskSlotsOverLimit", "pool/p")
    ]
    big = spec(pool="  taskSlotsPerNode: 300").replace("standard_d2s_v3", "standard_d96s_v5")
    assert warnings(tmp_path, big) == [("taskSlotsOverLimit", "pool/p")]


def test_images_the_pool_does_not_prefetch(tmp_path: Path) -> None:
    task = "        container: {image: alpine:3}"
    assert warnings(tmp_path, spec(pool="  containers: {images: [busybox]}", task=task)) == [
        ("imageNotPrefetched", "job/j")
    ]
    # the same image, spelled as Batch reads it: no warning
    ok = spec(pool="  containers: {images: [docker.io/library/alpine:3]}", task=task)
    assert warnings(tmp_path, ok) == []
    assert warnings(tmp_path, spec(task=task)) == [("containerPoolMissing", "job/j")]
    start = "  startTask: {commandLine: /bin/true, container: {image: tool}}\n  containers: {}"
    assert warnings(tmp_path, spec(pool=start)) == [("imageNotPrefetched", "pool/p")]


def test_the_normal_image_name() -> None:
    assert normal_image("busybox") == "docker.io/library/busybox:latest"
    assert normal_image("me/tool:1") == "docker.io/me/tool:1"
    assert normal_image("myreg.azurecr.io/x") == "myreg.azurecr.io/x:latest"
    assert normal_image("localhost:5000/x:2") == "localhost:5000/x:2"
    assert normal_image("x@sha256:abc") == "docker.io/library/x@sha256:abc"


def test_core_quotas_count_the_accounts_other_pools(tmp_path: Path) -> None:
    other = Resource(
        Address.pool("theirs"),
        {"vmSize": "standard_d2s_v3", "targetDedicatedNodes": 3, "targetLowPriorityNodes": 0},
        owner="x",
        state="active",
    )
    quotas = {"dedicatedCoreQuota": 10, "lowPriorityCoreQuota": 100}
    # 2 nodes x 2 vCPUs = 4 cores: alone it fits, with the other pool's 6 it fits (10)
    assert warnings(tmp_path, spec(), quotas=quotas, pools=(other,)) == []
    found = warnings(tmp_path, spec(nodes=3), quotas=quotas, pools=(other,))
    assert found == [("coreQuota", "pool/p")]
    family = {"dedicatedCoreQuota": 100, "dedicatedCoreQuotaPerVMFamily": {"standardDSv3Family": 4}}
    assert warnings(tmp_path, spec(nodes=3), quotas=family) == [("coreQuota", "pool/p")]
    spot = spec(pool="  lowPriorityNodes: 4", nodes=0)
    assert warnings(tmp_path, spot, quotas={"lowPriorityCoreQuota": 4}) == [("coreQuota", "pool/p")]


def test_reads_only_when_nodes_are_allocated(tmp_path: Path) -> None:
    d = load(write(tmp_path, spec(nodes=0)))
    empty = plan(d, ActualState({}), PlanOptions("local"))
    assert not preflight.needs_images(empty) and not preflight.needs_quotas(empty)
    d = load(write(tmp_path, spec(nodes=2)))
    busy = plan(d, ActualState({}), PlanOptions("local"))
    assert preflight.needs_images(busy) and preflight.needs_quotas(busy)


def test_compute_beside_the_summary(tmp_path: Path) -> None:
    d = load(write(tmp_path, spec(nodes=3, pool="  lowPriorityNodes: 1")))
    p = plan(d, ActualState({}), PlanOptions("local"))
    c = preflight.compute(p)
    assert c.to_json() == {"vcpus": 8, "nodes": 4, "nodeHoursPerHour": 4}
    assert c.line() == (
        "Compute: 8 vCPUs on 4 nodes in the pools it creates or resizes;"
        " 4 node-hours per hour of running."
    )
    d0 = load(write(tmp_path, spec(nodes=0)))
    assert preflight.compute(plan(d0, ActualState({}), PlanOptions("local"))).line() is None


def test_an_existing_pool_is_checked_only_for_what_changes(tmp_path: Path) -> None:
    from bspec.kinds import pool as pool_kind

    text = spec(pool="  taskSlotsPerNode: 9").replace("standard_d2s_v3", "standard_d2s_v9")
    d = load(write(tmp_path, text))
    assert d.pool is not None
    have = pool_kind.from_spec(d.pool, d)
    props = {**have.props, "metadata": {"old": "1"}}  # only the metadata differs
    actual = ActualState({have.address: Resource(have.address, props, owner="w")})
    assert warnings(tmp_path, text, actual, images=IMAGES) == []
