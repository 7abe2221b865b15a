"""Storage containers: the spec's, and the stack's logs container. Props: {"name"}."""

from __future__ import annotations

from bspec.kinds.base import KindDef, PlanContext, Rule, absent, container_names, desired
from bspec.model import Action, Address, Change, ContainerSpec, Kind, Resource, reason


def from_spec(spec: ContainerSpec, stack: str) -> Resource:
    return desired(Address.container(spec.key), {"name": spec.name}, stack)


def from_listing(key: str, name: str, owner: str | None, deleting: bool) -> Resource:
    """A container as the service lists it (name, stack metadata, deleted flag)."""
    return Resource(
        Address.container(key), {"name": name}, owner=owner, state="deleting" if deleting else None
    )


def plan(ctx: PlanContext) -> list[Change]:
    changes: list[Change] = []
    for spec in (*ctx.desired.containers, ctx.desired.logs_container):
        after = from_spec(spec, ctx.stack)
        before = ctx.actual.get(after.address)
        if absent(before):
            changes.append(
                Change(
                    Action.CREATE,
                    after.address,
                    before,
                    after,
                    reasons=(reason("new", noun="container"),),
                )
            )
            continue
        assert before is not None
        ctx.check_owner(before, "container")
        if before.owner != ctx.stack:
            changes.append(
                Change(
                    Action.UPDATE,
                    after.address,
                    before,
                    after,
                    fields=("owner",),
                    reasons=(reason("adopted", stack=ctx.stack),),
                )
            )
        else:
            changes.append(Change(Action.NOOP, after.address, before, after))
    return changes


DEF = KindDef(
    kind=Kind.CONTAINER,
    heading="Containers",
    noun="container",
    nouns="containers",
    fields={"name": Rule.IGNORE},
    plan=plan,
    destroyed=True,
    destroy_reasons=lambda _r: (reason("blobsGo"),),
    words={"blobsGo": lambda v: "deletes every blob in it"},
)

__all__ = ["DEF", "container_names", "from_listing", "from_spec"]
