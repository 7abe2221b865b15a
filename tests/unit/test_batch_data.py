"""The shared Batch tables (bspec.common.vmsizes, bspec.common.images): their shape, the
series and node agent SKUs they must hold, lookups in any case, end-of-life overrides."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from bspec.common import images, vmsizes

SERIES_PREFIXES = ("A", "D", "E", "F", "H", "L", "M", "NC", "ND", "NV")


def test_every_size_is_well_formed_and_unique() -> None:
    sizes = vmsizes.all_sizes()
    assert len({s.name.lower() for s in sizes}) == len(sizes)
    for s in sizes:
        assert re.fullmatch(r"Standard_[A-Z]+[0-9][A-Za-z0-9_-]*", s.name), s.name
        assert s.vcpus >= 1 and s.memory_gib > 0 and s.gpus >= 0, s
        assert re.fullmatch(r"[sS]tandard[A-Za-z0-9_]+Family", s.family), s.family
        assert s.memory_gib / s.vcpus <= 30, s  # no series has more than M's ~29 GiB a vCPU


def test_each_required_series_is_there() -> None:
    series = {s.name.removeprefix("Standard_") for s in vmsizes.all_sizes()}
    for prefix in SERIES_PREFIXES:
        others = [p for p in SERIES_PREFIXES if len(p) > len(prefix) and p.startswith(prefix)]
        assert any(n.startswith(prefix) and not n.startswith(tuple(others)) for n in series), prefix
    for name in (
        "Standard_D2s_v3",
        "Standard_D2s_v4",
        "Standard_D2s_v5",
        "Standard_E8s_v5",
        "Standard_F4s_v2",
        "Standard_NC4as_T4_v3",
        "Standard_ND96asr_v4",
        "Standard_NV36ads_A10_v5",
        "Standard_HB120rs_v3",
        "Standard_L8s_v3",
        "Standard_M128s",
        "Standard_A1_v2",
    ):
        assert vmsizes.lookup(name) is not None, name


def test_lookup_by_name_family_and_vcpus() -> None:
    d2 = vmsizes.lookup("STANDARD_d2S_V3")
    assert d2 is not None
    assert (d2.name, d2.vcpus, d2.memory_gib, d2.family) == (
        "Standard_D2s_v3",
        2,
        8.0,
        "standardDSv3Family",
    )
    assert vmsizes.lookup("standard_nope_v9") is None
    dsv3 = vmsizes.find(family="STANDARDDSV3FAMILY")
    assert {s.vcpus for s in dsv3} == {2, 4, 8, 16, 32, 48, 64}
    assert all(s.vcpus == 4 for s in vmsizes.find(vcpus=4))
    assert vmsizes.find(family="standardFSv2Family", vcpus=72)[0].name == "Standard_F72s_v2"
    assert "standardNCASv3_T4Family" in vmsizes.families()
    t4 = vmsizes.lookup("standard_nc64as_t4_v3")
    assert t4 is not None and t4.gpus == 4


def test_images_are_well_formed() -> None:
    found = images.supported_images()
    refs = [(i.publisher.lower(), i.offer.lower(), i.sku.lower()) for i in found]
    assert len(set(refs)) == len(refs)
    for image in found:
        assert image.os_type in ("linux", "windows")
        assert image.verification_type in ("verified", "unverified")
        assert image.node_agent_sku_id.startswith("batch.node.")
        body = image.to_rest()
        assert set(body) >= {"nodeAgentSKUId", "imageReference", "osType", "verificationType"}
    for sku in (
        "batch.node.ubuntu 22.04",
        "batch.node.ubuntu 24.04",
        "batch.node.windows amd64",
        "batch.node.el 9",
    ):
        assert sku in images.node_agent_skus()


def test_find_image_and_end_of_life() -> None:
    jammy = images.find_image("Canonical", "0001-com-ubuntu-server-jammy", "22_04-LTS")
    assert jammy is not None and jammy.node_agent_sku_id == "batch.node.ubuntu 22.04"
    assert jammy.to_rest()["batchSupportEndOfLife"].startswith("2027-06-30T")
    assert images.find_image("canonical", "nope", "1") is None


def test_end_of_life_dates_can_be_replaced() -> None:
    moved = images.supported_images({"BATCH.NODE.UBUNTU 22.04": "2030-01-02"})
    jammy = [i for i in moved if i.node_agent_sku_id == "batch.node.ubuntu 22.04"]
    assert jammy and all(i.end_of_life == dt.date(2030, 1, 2) for i in jammy)
    others = [i for i in moved if i.node_agent_sku_id != "batch.node.ubuntu 22.04"]
    assert others == [
        i for i in images.supported_images() if i.node_agent_sku_id != "batch.node.ubuntu 22.04"
    ]
    with pytest.raises(ValueError):
        images.supported_images({"batch.node.el 9": "soon"})
