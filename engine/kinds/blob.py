"""Files bspec uploads. Props: {"md5", "container"} (the real container name), and for
uploading: {"path", "size"} (the local file). Blobs bspec did not upload are never touched."""

from __future__ import annotations

from bspec.kinds.base import KindDef, PlanContext, Rule, container_names, gone
from bspec.model import Action, Address, BlobSpec, Change, Kind, Resource, reason


def from_spec(b: BlobSpec, container: str, stack: str) -> Resource:
    props = {"md5": b.md5, "container": container, "path": b.path, "size": b.size}
    return Resource(b.address, props, owner=stack)


def from_listing(
    key: str, container: str, name: str, md5_hex: str | None, owner: str | None, size: int
) -> Resource:
    """A blob as a container listing reports it (Content-MD5, metadata, size)."""
    props = {"md5": md5_hex, "container": container}
    return Resource(Address.blob(key, name), props, owner=owner, info={"size": size})


def plan(ctx: PlanContext) -> list[Change]:
    changes: list[Change] = []
    wanted = {b.address for b in ctx.desired.blobs}
    for r in sorted(ctx.actual.of_kind(Kind.BLOB), key=lambda r: r.address):
        if r.address in wanted or r.owner != ctx.stack:
            continue  # not uploaded by this stack (task outputs): never pruned
        changes.append(gone(r))
    names = container_names(ctx.desired)
    for b in ctx.desired.blobs:
        after = from_spec(b, names[b.container], ctx.stack)
        before = ctx.actual.get(b.address)
        if before is None:
            changes.append(
                Change(Action.CREATE, b.address, None, after, reasons=(reason("new", noun="file"),))
            )
        elif before.props.get("md5") != b.md5:
            changes.append(
                Change(
                    Action.UPDATE,
                    b.address,
                    before,
                    after,
                    fields=("md5",),
                    reasons=(reason("contentChanged"),),
                )
            )
        else:
            changes.append(Change(Action.NOOP, b.address, before, after))
    return changes


DEF = KindDef(
    kind=Kind.BLOB,
    heading="Blobs",
    noun="blob",
    nouns="blobs",
    fields={"md5": Rule.UPDATE, "container": Rule.IGNORE, "path": Rule.IGNORE, "size": Rule.IGNORE},
    plan=plan,
    summarized=True,
    words={"contentChanged": lambda v: "content changed"},
)
