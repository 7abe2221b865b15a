"""The Marketplace images Batch supports, with their node agent SKUs and end-of-life dates.

What `GET /supportedimages` answers (BatchSupportedImage): publisher/offer/sku, the
`nodeAgentSKUId` a pool must name with it, the OS type, whether Batch verifies the pair,
and `batchSupportEndOfLife`, the day Batch stops accepting new pools of it. The dates follow
the publishers' end of standard support as Batch announces it (batch.node.ubuntu 22.04 on
2027-06-30, for one); callers can replace them (`end_of_life=`), so that nothing that tests
them depends on today's date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class SupportedImage:
    publisher: str
    offer: str
    sku: str
    node_agent_sku_id: str
    os_type: str  # linux | windows
    verification_type: str  # verified | unverified
    end_of_life: dt.date | None = None
    capabilities: tuple[str, ...] = ()

    def to_rest(self) -> dict[str, Any]:
        """The image as Batch's REST API shows it."""
        out: dict[str, Any] = {
            "nodeAgentSKUId": self.node_agent_sku_id,
            "imageReference": {
                "publisher": self.publisher,
                "offer": self.offer,
                "sku": self.sku,
                "version": "latest",
            },
            "osType": self.os_type,
            "verificationType": self.verification_type,
        }
        if self.capabilities:
            out["capabilities"] = list(self.capabilities)
        if self.end_of_life is not None:
            out["batchSupportEndOfLife"] = f"{self.end_of_life.isoformat()}T00:00:00.0000000Z"
        return out


UBUNTU_2004 = "batch.node.ubuntu 20.04"
UBUNTU_2204 = "batch.node.ubuntu 22.04"
UBUNTU_2404 = "batch.node.ubuntu 24.04"
EL_8 = "batch.node.el 8"
EL_9 = "batch.node.el 9"
DEBIAN_11 = "batch.node.debian 11"
DEBIAN_12 = "batch.node.debian 12"
WINDOWS = "batch.node.windows amd64"

# End of Batch support per node agent SKU (and per Windows Server release below).
_AGENT_END: dict[str, dt.date | None] = {
    UBUNTU_2004: dt.date(2025, 4, 23),
    UBUNTU_2204: dt.date(2027, 6, 30),
    UBUNTU_2404: dt.date(2029, 5, 31),
    EL_8: dt.date(2029, 5, 31),
    EL_9: dt.date(2032, 5, 31),
    DEBIAN_11: dt.date(2026, 8, 31),
    DEBIAN_12: dt.date(2028, 6, 30),
    WINDOWS: None,
}
_WINDOWS_END = {
    "2016": dt.date(2027, 1, 12),
    "2019": dt.date(2029, 1, 9),
    "2022": dt.date(2031, 10, 14),
    "2025": dt.date(2034, 10, 10),
}
_CONTAINERS = ("DockerCompatible", "NvidiaTeslaDriverInstalled")


def _linux(
    publisher: str,
    offer: str,
    sku: str,
    agent: str,
    verified: bool = True,
    caps: tuple[str, ...] = (),
) -> SupportedImage:
    return SupportedImage(
        publisher,
        offer,
        sku,
        agent,
        "linux",
        "verified" if verified else "unverified",
        _AGENT_END[agent],
        caps,
    )


def _windows(offer: str, sku: str, caps: tuple[str, ...] = ()) -> SupportedImage:
    release = next(y for y in _WINDOWS_END if y in sku)
    return SupportedImage(
        "microsoftwindowsserver",
        offer,
        sku,
        WINDOWS,
        "windows",
        "verified",
        _WINDOWS_END[release],
        caps,
    )


_IMAGES: tuple[SupportedImage, ...] = (
    _linux("canonical", "0001-com-ubuntu-server-focal", "20_04-lts", UBUNTU_2004),
    _linux("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts", UBUNTU_2204),
    _linux("canonical", "0001-com-ubuntu-server-jammy", "22_04-lts-gen2", UBUNTU_2204),
    _linux("canonical", "ubuntu-24_04-lts", "server", UBUNTU_2404),
    _linux("canonical", "ubuntu-24_04-lts", "server-gen1", UBUNTU_2404),
    _linux("microsoft-dsvm", "ubuntu-hpc", "2204", UBUNTU_2204, caps=_CONTAINERS),
    _linux("microsoft-dsvm", "ubuntu-hpc", "2404", UBUNTU_2404, caps=_CONTAINERS),
    _linux("almalinux", "almalinux-x86_64", "8-gen2", EL_8),
    _linux("almalinux", "almalinux-x86_64", "9-gen2", EL_9),
    _linux("almalinux", "almalinux-hpc", "9-hpc-gen2", EL_9, verified=False),
    _linux("resf", "rockylinux-x86_64", "9-base", EL_9, verified=False),
    _linux("redhat", "rhel", "9_4", EL_9, verified=False),
    _linux("debian", "debian-11", "11", DEBIAN_11, verified=False),
    _linux("debian", "debian-12", "12", DEBIAN_12, verified=False),
    _windows("windowsserver", "2016-datacenter"),
    _windows("windowsserver", "2016-datacenter-smalldisk"),
    _windows("windowsserver", "2019-datacenter"),
    _windows("windowsserver", "2019-datacenter-core"),
    _windows("windowsserver", "2019-datacenter-smalldisk"),
    _windows("windowsserver", "2019-datacenter-with-containers", ("DockerCompatible",)),
    _windows("windowsserver", "2022-datacenter"),
    _windows("windowsserver", "2022-datacenter-azure-edition"),
    _windows("windowsserver", "2022-datacenter-core"),
    _windows("windowsserver", "2022-datacenter-smalldisk"),
    _windows("windowsserver", "2025-datacenter"),
    _windows("windowsserver", "2025-datacenter-azure-edition"),
)


def supported_images(
    end_of_life: Mapping[str, str | dt.date] | None = None,
) -> list[SupportedImage]:
    """Every supported image; END_OF_LIFE maps node agent SKUs (any case) to the dates that
    replace the table's, as dates or ISO 8601 date strings (ValueError for others)."""
    if not end_of_life:
        return list(_IMAGES)
    dates = {k.lower(): _date(v) for k, v in end_of_life.items()}
    return [
        replace(image, end_of_life=dates[image.node_agent_sku_id.lower()])
        if image.node_agent_sku_id.lower() in dates
        else image
        for image in _IMAGES
    ]


def find_image(publisher: str, offer: str, sku: str) -> SupportedImage | None:
    """The supported image with this reference (any case), or None."""
    key = (publisher.lower(), offer.lower(), sku.lower())
    return next(
        (i for i in _IMAGES if (i.publisher.lower(), i.offer.lower(), i.sku.lower()) == key), None
    )


def node_agent_skus() -> list[str]:
    return sorted({i.node_agent_sku_id for i in _IMAGES})


def _date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(value[:10])
