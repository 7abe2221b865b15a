"""Azure VM sizes as Batch allocates them: vCPUs, memory, GPUs and the quota family.

The family is the name Batch counts dedicated cores against (`standardDSv3Family`, as in
the account's `dedicatedCoreQuotaPerVMFamily`). Figures follow Microsoft's VM size pages
for the A, D, E, F, H, L, M, NC, ND and NV series in their current versions; a size that
is not here is unknown to the local service, as a size a region lacks is to Batch.
Names compare case-insensitively, as Batch compares them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class VmSize:
    name: str  # as Microsoft spells it, e.g. "Standard_D2s_v3"
    vcpus: int
    memory_gib: float
    family: str  # the core quota family, e.g. "standardDSv3Family"
    series: str  # e.g. "Dsv3"
    gpus: float = 0.0  # whole or fractional (NVv4, NVadsA10v5 share a GPU)


# (series, quota family, name pattern with {n}, [(n, vcpus, memory GiB[, gpus])...])
_Row = tuple[str, str, str, Sequence[tuple[object, ...]]]


def _scaled(counts: Iterable[int], per_vcpu: float) -> list[tuple[object, ...]]:
    return [(n, n, n * per_vcpu) for n in counts]


_D_V2 = [(n, c, c * 3.5) for n, c in ((1, 1), (2, 2), (3, 4), (4, 8), (5, 16))] + [
    (n, c, c * 7) for n, c in ((11, 2), (12, 4), (13, 8), (14, 16), (15, 20))
]
_D_V3 = (2, 4, 8, 16, 32, 48, 64)
_D_V5 = (2, 4, 8, 16, 32, 48, 64, 96)
_E_V3 = [(n, n, n * 8) for n in (2, 4, 8, 16, 20, 32, 48)]
_E_V4 = [*_E_V3, (64, 64, 504)]
_E_V5 = [*_E_V3, (64, 64, 512), (96, 96, 672)]

_TABLE: list[_Row] = [
    (
        "A",
        "standardA0_A7Family",
        "Standard_A{n}",
        [
            (0, 1, 0.75),
            (1, 1, 1.75),
            (2, 2, 3.5),
            (3, 4, 7),
            (4, 8, 14),
            (5, 2, 14),
            (6, 4, 28),
            (7, 8, 56),
        ],
    ),
    ("Av2", "standardAv2Family", "Standard_A{n}_v2", [(1, 1, 2), (2, 2, 4), (4, 4, 8), (8, 8, 16)]),
    ("Amv2", "standardAv2Family", "Standard_A{n}m_v2", [(2, 2, 16), (4, 4, 32), (8, 8, 64)]),
    (
        "Dv2",
        "standardDv2Family",
        "Standard_D{n}_v2",
        _D_V2,
    ),
    (
        "DSv2",
        "standardDSv2Family",
        "Standard_DS{n}_v2",
        _D_V2,
    ),
    ("Dv3", "standardDv3Family", "Standard_D{n}_v3", _scaled(_D_V3, 4)),
    ("Dsv3", "standardDSv3Family", "Standard_D{n}s_v3", _scaled(_D_V3, 4)),
    ("Dv4", "standardDv4Family", "Standard_D{n}_v4", _scaled(_D_V3, 4)),
    ("Dsv4", "standardDSv4Family", "Standard_D{n}s_v4", _scaled(_D_V3, 4)),
    ("Ddv4", "standardDDv4Family", "Standard_D{n}d_v4", _scaled(_D_V3, 4)),
    ("Ddsv4", "standardDDSv4Family", "Standard_D{n}ds_v4", _scaled(_D_V3, 4)),
    ("Dv5", "standardDv5Family", "Standard_D{n}_v5", _scaled(_D_V5, 4)),
    ("Dsv5", "standardDSv5Family", "Standard_D{n}s_v5", _scaled(_D_V5, 4)),
    ("Ddv5", "standardDDv5Family", "Standard_D{n}d_v5", _scaled(_D_V5, 4)),
    ("Ddsv5", "standardDDSv5Family", "Standard_D{n}ds_v5", _scaled(_D_V5, 4)),
    ("Dasv5", "standardDASv5Family", "Standard_D{n}as_v5", _scaled(_D_V5, 4)),
    ("Dadsv5", "standardDADSv5Family", "Standard_D{n}ads_v5", _scaled(_D_V5, 4)),
    ("Dlsv5", "standardDLSv5Family", "Standard_D{n}ls_v5", _scaled(_D_V5, 2)),
    ("Dsv6", "standardDSv6Family", "Standard_D{n}s_v6", _scaled((*_D_V5, 128), 4)),
    ("Ddsv6", "standardDDSv6Family", "Standard_D{n}ds_v6", _scaled((*_D_V5, 128), 4)),
    ("Dasv6", "standardDASv6Family", "Standard_D{n}as_v6", _scaled(_D_V5, 4)),
    ("Ev3", "standardEv3Family", "Standard_E{n}_v3", [*_E_V3, (64, 64, 432)]),
    ("Esv3", "standardESv3Family", "Standard_E{n}s_v3", [*_E_V3, (64, 64, 432)]),
    ("Ev4", "standardEv4Family", "Standard_E{n}_v4", _E_V4),
    ("Esv4", "standardESv4Family", "Standard_E{n}s_v4", _E_V4),
    ("Edv4", "standardEDv4Family", "Standard_E{n}d_v4", _E_V4),
    ("Edsv4", "standardEDSv4Family", "Standard_E{n}ds_v4", _E_V4),
    ("Ev5", "standardEv5Family", "Standard_E{n}_v5", _E_V5),
    ("Esv5", "standardESv5Family", "Standard_E{n}s_v5", _E_V5),
    ("Edv5", "standardEDv5Family", "Standard_E{n}d_v5", _E_V5),
    ("Edsv5", "standardEDSv5Family", "Standard_E{n}ds_v5", _E_V5),
    ("Easv5", "standardEASv5Family", "Standard_E{n}as_v5", _E_V5),
    ("Eadsv5", "standardEADSv5Family", "Standard_E{n}ads_v5", _E_V5),
    ("Fsv2", "standardFSv2Family", "Standard_F{n}s_v2", _scaled((2, 4, 8, 16, 32, 48, 64, 72), 2)),
    ("Fasv6", "standardFASv6Family", "Standard_F{n}as_v6", _scaled((2, 4, 8, 16, 32, 48, 64), 4)),
    ("HBv2", "standardHBrsv2Family", "Standard_HB{n}rs_v2", [(120, 120, 456)]),
    (
        "HBv3",
        "standardHBrsv3Family",
        "Standard_HB{n}rs_v3",
        [("120", 120, 448)] + [(f"120-{c}", c, 448) for c in (96, 64, 32, 16)],
    ),
    ("HBv4", "standardHBv4Family", "Standard_HB{n}rs_v4", [(176, 176, 768)]),
    ("HC", "standardHCSFamily", "Standard_HC{n}rs", [(44, 44, 352)]),
    ("HX", "standardHXFamily", "Standard_HX{n}rs", [(176, 176, 1408)]),
    ("Lsv3", "standardLSv3Family", "Standard_L{n}s_v3", _scaled((8, 16, 32, 48, 64, 80), 8)),
    ("Lasv3", "standardLASv3Family", "Standard_L{n}as_v3", _scaled((8, 16, 32, 48, 64, 80), 8)),
    (
        "M",
        "standardMSFamily",
        "Standard_M{n}",
        [
            ("8ms", 8, 218.75),
            ("16ms", 16, 437.5),
            ("32ts", 32, 192),
            ("32ls", 32, 256),
            ("32ms", 32, 875),
            ("64s", 64, 1000),
            ("64ls", 64, 512),
            ("64ms", 64, 1750),
            ("128s", 128, 2000),
            ("128ms", 128, 3800),
        ],
    ),
    (
        "Mv2",
        "standardMSv2Family",
        "Standard_M{n}_v2",
        [("208s", 208, 2850), ("208ms", 208, 5700), ("416s", 416, 5700), ("416ms", 416, 11400)],
    ),
    (
        "NCasT4_v3",
        "standardNCASv3_T4Family",
        "Standard_NC{n}as_T4_v3",
        [(4, 4, 28, 1), (8, 8, 56, 1), (16, 16, 110, 1), (64, 64, 440, 4)],
    ),
    (
        "NCv3",
        "standardNCSv3Family",
        "Standard_NC{n}_v3",
        [("6s", 6, 112, 1), ("12s", 12, 224, 2), ("24s", 24, 448, 4), ("24rs", 24, 448, 4)],
    ),
    (
        "NC_A100_v4",
        "StandardNCADSA100v4Family",
        "Standard_NC{n}ads_A100_v4",
        [(24, 24, 220, 1), (48, 48, 440, 2), (96, 96, 880, 4)],
    ),
    (
        "NCads_H100_v5",
        "standardNCadsH100v5Family",
        "Standard_NC{n}_H100_v5",
        [("40ads", 40, 320, 1), ("80adis", 80, 640, 2)],
    ),
    ("NDv2", "standardNDSv2Family", "Standard_ND{n}rs_v2", [(40, 40, 672, 8)]),
    ("ND_A100_v4", "standardNDASv4_A100Family", "Standard_ND{n}asr_v4", [(96, 96, 900, 8)]),
    (
        "NDm_A100_v4",
        "standardNDAMSv4_A100Family",
        "Standard_ND{n}amsr_A100_v4",
        [(96, 96, 1900, 8)],
    ),
    ("ND_H100_v5", "standardNDSH100v5Family", "Standard_ND{n}isr_H100_v5", [(96, 96, 1900, 8)]),
    (
        "NVv3",
        "standardNVSv3Family",
        "Standard_NV{n}s_v3",
        [(12, 12, 112, 1), (24, 24, 224, 2), (48, 48, 448, 4)],
    ),
    (
        "NVv4",
        "standardNVSv4Family",
        "Standard_NV{n}as_v4",
        [(4, 4, 14, 0.125), (8, 8, 28, 0.25), (16, 16, 56, 0.5), (32, 32, 112, 1)],
    ),
    (
        "NVadsA10_v5",
        "StandardNVADSA10v5Family",
        "Standard_NV{n}_A10_v5",
        [
            ("6ads", 6, 55, 1 / 6),
            ("12ads", 12, 110, 1 / 3),
            ("18ads", 18, 220, 0.5),
            ("36ads", 36, 440, 1),
            ("36adms", 36, 880, 1),
            ("72ads", 72, 880, 2),
        ],
    ),
]


@cache
def all_sizes() -> tuple[VmSize, ...]:
    out: list[VmSize] = []
    for series, family, pattern, rows in _TABLE:
        for n, vcpus, memory, *gpus in rows:
            out.append(
                VmSize(
                    name=pattern.format(n=n),
                    vcpus=int(str(vcpus)),
                    memory_gib=float(str(memory)),
                    family=family,
                    series=series,
                    gpus=float(str(gpus[0])) if gpus else 0.0,
                )
            )
    return tuple(out)


@cache
def _by_name() -> dict[str, VmSize]:
    return {s.name.lower(): s for s in all_sizes()}


def lookup(name: str) -> VmSize | None:
    """The size called NAME in any case (`standard_d2s_v3`), or None when unknown."""
    return _by_name().get(name.strip().lower())


def families() -> list[str]:
    return sorted({s.family for s in all_sizes()}, key=str.lower)


def find(*, family: str | None = None, vcpus: int | None = None) -> list[VmSize]:
    """The sizes of a quota family (any case) and/or with a number of vCPUs."""
    return [
        s
        for s in all_sizes()
        if (family is None or s.family.lower() == family.lower())
        and (vcpus is None or s.vcpus == vcpus)
    ]
