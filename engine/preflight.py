"""Plan warnings before money is spent, and what a plan's pools cost in compute. Pure.

`operations.preflight` does the reads (Batch's supported images, the local service's
quotas) and hands them here as `Facts`; this module decides. Only what a plan creates,
replaces or grows is checked: a converged plan warns about nothing, and a read is made only
when the plan is about to allocate nodes (a pool created with nodes, re-imaged, or grown).

Warnings, each `{code, message, address}`:

- `imageEndOfSupport`: a pool's image whose Batch end of support is past or within
  `EOL_DAYS` days; `imageNotSupported`: an image Batch does not list at all;
  `imageWithoutContainers`: a container pool on an image without the DockerCompatible
  capability;
- `unknownVmSize`: a vmSize not in the shared table (`common.vmsizes`);
- `taskSlotsOverLimit`: taskSlotsPerNode over Batch's limit, the smaller of 4 x the
  size's vCPUs and 256 (the REST reference's rule);
- `imageNotPrefetched`: a task (or start task) image the pool does not prefetch
  (`containers.images`): Batch pulls it when the task starts, which is slower;
  `containerPoolMissing`: a container task on a pool without `containers` (Batch fails it);
- `coreQuota`: on the local target, the cores the account's pools would need over its quota
  (Batch's data plane on Azure does not expose quotas).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bspec.common import vmsizes
from bspec.kinds import schedule as schedule_kind
from bspec.kinds.base import count
from bspec.model import Action, Address, Change, DesiredState, Kind, Plan, Resource

EOL_DAYS = 90
CONTAINER_CAPABILITY = "DockerCompatible"
MAX_SLOTS = 256
SLOTS_PER_VCPU = 4
GROWING = (Action.CREATE, Action.REPLACE)


@dataclass(frozen=True)
class PlanWarning:
    """One warning: a stable code, the words, and the resource it is about (if one)."""

    code: str
    message: str
    address: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "address": self.address}


@dataclass(frozen=True)
class SupportedImage:
    """One row of Batch's supported images, as the preflight reads it."""

    publisher: str
    offer: str
    sku: str
    node_agent_sku: str
    end_of_life: dt.date | None = None
    capabilities: tuple[str, ...] = ()

    def key(self) -> tuple[str, str, str]:
        return (self.publisher.lower(), self.offer.lower(), self.sku.lower())


@dataclass(frozen=True)
class Facts:
    """What the reads found. `images` None: not read (no pool created or re-imaged);
    `quotas` None: not known (the azure target, or nothing grows)."""

    today: dt.date
    images: Sequence[SupportedImage] | None = None
    quotas: Mapping[str, Any] | None = None
    pools: Sequence[Resource] = ()  # every pool of the account, for the quota
    unread: tuple[str, ...] = field(default_factory=tuple)  # reads that failed, and why


def legacy(plan: Plan) -> list[PlanWarning]:
    """The planner's own notes as warnings with a code: the schedules' (their SAS tokens
    run out before their last run) with theirs, the rest foreign tasks left alone."""
    coded = {
        message: PlanWarning(code, message, address)
        for code, message, address in schedule_kind.warnings(
            [c for c in plan.changes if c.address.kind == "schedule"]
        )
    }
    out = []
    for text in plan.warnings:
        first = text.split(" ", 1)[0]
        out.append(
            coded.get(text) or PlanWarning("foreignTask", text, first if "/" in first else None)
        )
    return out


def _pool_changes(plan: Plan) -> list[Change]:
    return [
        c
        for c in plan.pending()
        if c.address.kind is Kind.POOL and c.after is not None and c.action is not Action.DELETE
    ]


def _grows(c: Change) -> bool:
    """Whether a pool change asks for more cores than the pool had."""
    after = c.after.props if c.after is not None else {}
    if after.get("autoScale") and (c.action in GROWING or "autoScale" in c.fields):
        return True
    before = c.before.props if c.before is not None and c.action not in GROWING else {}
    if "vmSize" in c.fields and _nodes(after):
        return True
    return any(
        int(after.get(f) or 0) > int(before.get(f) or 0)
        for f in ("targetDedicatedNodes", "targetLowPriorityNodes")
    )


def _nodes(props: Mapping[str, Any] | None) -> int:
    p = props or {}
    return int(p.get("targetDedicatedNodes") or 0) + int(p.get("targetLowPriorityNodes") or 0)


def needs_images(plan: Plan) -> bool:
    """Whether the supported images are worth a read: money is about to be spent on an
    image, i.e. a pool with nodes (or autoscale) is created, replaced or re-imaged, or a
    pool without nodes gets some. A pool created empty costs nothing: no read."""
    return any(_allocates(c) for c in _pool_changes(plan))


def _allocates(c: Change) -> bool:
    """Whether a pool change is about to allocate nodes on its image."""
    assert c.after is not None
    after = c.after.props
    if not (_nodes(after) or after.get("autoScale")):
        return False
    if c.action in GROWING or "image" in c.fields:
        return True
    return c.before is not None and not _nodes(c.before.props)


def needs_quotas(plan: Plan) -> bool:
    """Whether the account's quotas are worth a read: a pool is created or grows."""
    return any(_grows(c) for c in _pool_changes(plan))


def check(plan: Plan, desired: DesiredState, facts: Facts) -> list[PlanWarning]:
    """Every warning about what `plan` would do."""
    out: list[PlanWarning] = [
        PlanWarning("preflightUnread", f"could not check {what}", None) for what in facts.unread
    ]
    pools = _pool_changes(plan)
    for c in pools:
        out.extend(_pool_warnings(c, facts))
    out.extend(_image_warnings(plan, desired))
    if facts.quotas is not None and any(_grows(c) for c in pools):
        out.extend(_quota_warnings(plan, pools, facts))
    return out


def _pool_warnings(c: Change, facts: Facts) -> list[PlanWarning]:
    assert c.after is not None
    p = c.after.props
    addr = str(c.address)
    out: list[PlanWarning] = []
    img = p.get("image") or {}
    if facts.images is not None and _allocates(c):
        out.extend(_eol(addr, img, facts, containers=p.get("containers") is not None))
    new = c.action in GROWING
    size = vmsizes.lookup(str(p.get("vmSize") or ""))
    if size is None and (new or "vmSize" in c.fields):
        out.append(
            PlanWarning(
                "unknownVmSize",
                f"vmSize {p.get('vmSize')} is not in bspec's table of Azure VM sizes "
                "(bspec.common.vmsizes): check its spelling; Batch refuses sizes the "
                "region does not offer",
                addr,
            )
        )
    slots = int(p.get("taskSlotsPerNode") or 1)
    limit = min(MAX_SLOTS, SLOTS_PER_VCPU * size.vcpus) if size is not None else MAX_SLOTS
    touched = new or "vmSize" in c.fields or "taskSlotsPerNode" in c.fields
    if slots > limit and touched:
        why = (
            f"{SLOTS_PER_VCPU} x the {size.vcpus} vCPUs of {size.name}"
            if size is not None and limit < MAX_SLOTS
            else f"Batch's maximum of {MAX_SLOTS}"
        )
        out.append(
            PlanWarning(
                "taskSlotsOverLimit",
                f"taskSlotsPerNode {slots} is over Batch's limit of {limit} ({why}): "
                "Batch refuses the pool",
                addr,
            )
        )
    return out


def _eol(
    addr: str, img: Mapping[str, Any], facts: Facts, *, containers: bool = False
) -> list[PlanWarning]:
    assert facts.images is not None
    key = (
        str(img.get("publisher") or "").lower(),
        str(img.get("offer") or "").lower(),
        str(img.get("sku") or "").lower(),
    )
    name = f"{img.get('publisher')}/{img.get('offer')}/{img.get('sku')}"
    found = [i for i in facts.images if i.key() == key]
    if not found:
        return [
            PlanWarning(
                "imageNotSupported",
                f"image {name} is not among Batch's supported images: the pool may fail to "
                "allocate (bspec local images, or `az batch pool supported-images list`)",
                addr,
            )
        ]
    agent = str(img.get("nodeAgentSku") or "").lower()
    row = next((i for i in found if i.node_agent_sku.lower() == agent), found[0])
    out: list[PlanWarning] = []
    if containers and CONTAINER_CAPABILITY not in row.capabilities:
        out.append(
            PlanWarning(
                "imageWithoutContainers",
                f"image {name} does not list the {CONTAINER_CAPABILITY} capability among "
                "Batch's supported images, but the pool has `containers`: on Azure its nodes "
                "cannot run container tasks; use an image with container support (like "
                "microsoft-dsvm/ubuntu-hpc)",
                addr,
            )
        )
    end = row.end_of_life
    if end is None:
        return out
    days = (end - facts.today).days
    if days < 0:
        text = f"reached Batch's end of support on {end.isoformat()}"
    elif days <= EOL_DAYS:
        text = f"reaches Batch's end of support on {end.isoformat()}, in {count(days, 'day')}"
    else:
        return out
    out.append(
        PlanWarning(
            "imageEndOfSupport",
            f"image {name} ({row.node_agent_sku}) {text}: move to a newer image",
            addr,
        )
    )
    return out


def normal_image(name: str) -> str:
    """An image reference as Batch and Docker read it: `busybox` is
    `docker.io/library/busybox:latest`; a reference without a tag gets `:latest`."""
    ref = name.strip()
    first, _, rest = ref.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        host, path = "docker.io", ref
    else:
        host, path = first.lower(), rest
    if host == "docker.io" and "/" not in path:
        path = "library/" + path
    if "@" not in path and ":" not in path.rsplit("/", 1)[-1]:
        path += ":latest"
    return f"{host}/{path}"


def _image_warnings(plan: Plan, desired: DesiredState) -> list[PlanWarning]:
    """Container images that a created task (or a created pool's start task) uses and its
    pool does not prefetch; container tasks on a pool without `containers`."""
    pool_changes = [c for c in plan.changes if c.address.kind is Kind.POOL and c.after is not None]
    pools = {c.address.parts[0]: c.after.props for c in pool_changes if c.after is not None}
    pool_of = {j.id: j.pool_id for j in desired.jobs}
    out: list[PlanWarning] = []
    for c in pool_changes:
        assert c.after is not None
        start = (c.after.props.get("startTask") or {}).get("container")
        if start is not None and c.action is not Action.NOOP:
            out.extend(_prefetch(c.after.props, [start["image"]], str(c.address), "the start task"))
    used: dict[tuple[str, str], int] = {}  # (job, image) -> tasks
    for c in plan.pending():
        if c.address.kind is not Kind.TASK or c.action not in GROWING or c.after is None:
            continue
        cont = c.after.props.get("container")
        if cont is not None:
            key = (c.address.parts[0], str(cont["image"]))
            used[key] = used.get(key, 0) + 1
    for (job, image), n in sorted(used.items()):
        pool = pools.get(pool_of.get(job, ""))
        if pool is not None:
            who = f"{count(n, 'task')} of job {job}"
            out.extend(_prefetch(pool, [image], str(Address.job(job)), who))
    return out


def _prefetch(
    props: Mapping[str, Any], images: Iterable[str], addr: str, who: str
) -> list[PlanWarning]:
    containers = props.get("containers")
    out: list[PlanWarning] = []
    one = who == "the start task" or who.startswith("1 task ")
    for image in images:
        if containers is None:
            out.append(
                PlanWarning(
                    "containerPoolMissing",
                    f"{who} run{'s' if one else ''} in container image {image}, but the "
                    "pool has no `containers`: Batch fails container tasks on it; add "
                    f"`containers: {{images: [{image}]}}` to the pool",
                    addr,
                )
            )
            continue
        prefetched = {normal_image(i) for i in containers.get("images") or ()}
        if normal_image(image) not in prefetched:
            out.append(
                PlanWarning(
                    "imageNotPrefetched",
                    f"{who} use{'s' if one else ''} container image "
                    f"{image}, which the pool does not prefetch: Batch pulls it when a "
                    "task starts on a node, which is slower; add it to the pool's "
                    "`containers.images`",
                    addr,
                )
            )
    return out


def _cores(props: Mapping[str, Any]) -> tuple[int, int, str | None]:
    """(dedicated cores, low-priority cores, quota family) a pool's target asks for."""
    size = vmsizes.lookup(str(props.get("vmSize") or ""))
    if size is None:
        return 0, 0, None
    dedicated = int(props.get("targetDedicatedNodes") or 0) * size.vcpus
    low = int(props.get("targetLowPriorityNodes") or 0) * size.vcpus
    return dedicated, low, size.family


def _quota_warnings(plan: Plan, pools: Sequence[Change], facts: Facts) -> list[PlanWarning]:
    assert facts.quotas is not None
    planned = {c.address: c.after.props for c in pools if c.after is not None}
    gone = {
        c.address
        for c in plan.pending()
        if c.address.kind is Kind.POOL and c.action is Action.DELETE
    }
    others = [
        r.props
        for r in facts.pools
        if r.address not in planned and r.address not in gone and r.state != "deleting"
    ]
    dedicated = low = 0
    family: dict[str, int] = {}
    for props in [*others, *planned.values()]:
        d, lp, fam = _cores(props)
        dedicated, low = dedicated + d, low + lp
        if fam:
            family[fam] = family.get(fam, 0) + d
    q = facts.quotas
    out: list[PlanWarning] = []
    addr = str(pools[0].address) if len(pools) == 1 else None
    checks = [
        ("dedicated", dedicated, q.get("dedicatedCoreQuota")),
        ("low-priority (Spot)", low, q.get("lowPriorityCoreQuota")),
    ]
    per_family = q.get("dedicatedCoreQuotaPerVMFamily") or {}
    checks.extend(
        (f"{fam} dedicated", cores, per_family.get(fam))
        for fam, cores in sorted(family.items())
        if fam in per_family
    )
    for what, cores, quota in checks:
        if quota is not None and cores > int(quota):
            out.append(
                PlanWarning(
                    "coreQuota",
                    f"the account's pools would need {cores} {what} cores, over its quota "
                    f"of {quota}: Batch allocates the nodes that fit and stops with a "
                    "resize error",
                    addr,
                )
            )
    return out


@dataclass(frozen=True)
class Compute:
    """What the pools a plan creates or resizes run: vCPUs in all, and for fixed-size
    pools the node-hours each hour of running costs (no prices: none are reachable)."""

    vcpus: int = 0
    nodes: int = 0
    node_hours_per_hour: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "vcpus": self.vcpus,
            "nodes": self.nodes,
            "nodeHoursPerHour": self.node_hours_per_hour,
        }

    def line(self) -> str | None:
        if not self.vcpus and not self.nodes:
            return None
        text = (
            f"Compute: {self.vcpus} vCPUs on {count(self.nodes, 'node')}"
            " in the pools it creates or resizes"
        )
        if self.node_hours_per_hour:
            text += f"; {self.node_hours_per_hour} node-hours per hour of running"
        return text + "."


def compute(plan: Plan) -> Compute:
    vcpus = nodes = hours = 0
    for c in _pool_changes(plan):
        assert c.after is not None
        if c.action not in GROWING and not any(
            f in c.fields for f in ("targetDedicatedNodes", "targetLowPriorityNodes", "vmSize")
        ):
            continue
        p = c.after.props
        n = int(p.get("targetDedicatedNodes") or 0) + int(p.get("targetLowPriorityNodes") or 0)
        size = vmsizes.lookup(str(p.get("vmSize") or ""))
        vcpus += n * (size.vcpus if size is not None else 0)
        nodes += n
        if not p.get("autoScale"):
            hours += n
    return Compute(vcpus, nodes, hours)
