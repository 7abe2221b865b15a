"""The question `destroy` asks before it deletes: pure, so its wording is unit-tested."""

from __future__ import annotations

from bspec import kinds
from bspec.model import LOGS_KEY, Kind, Plan


def _names(kind: Kind, ids: list[str]) -> str:
    k = kinds.of(kind)
    if len(ids) == 1:
        return f"{k.noun} {ids[0]}"
    if len(ids) <= 3:
        return f"{k.nouns} {', '.join(ids)}"
    return f"{len(ids)} {k.nouns}"


def destroy_question(plan: Plan) -> str:
    """One question naming what will go, as the tutorial asked "Delete job? Delete pool?":
    e.g. "Delete job topwords-job, pool topwords-pool and 4 containers with their blobs?"."""
    parts: list[str] = []
    pending = plan.pending()
    for kind in (Kind("schedule"), Kind.JOB, Kind.POOL):
        ids = [c.address.parts[0] for c in pending if c.address.kind is kind]
        if ids:
            parts.append(_names(kind, ids))
    containers = [c for c in pending if c.address.kind is Kind.CONTAINER]
    if containers:
        names = [
            str(c.before.props.get("name")) if c.before is not None else c.address.parts[0]
            for c in containers
        ]
        logs = any(c.address.parts[0] == LOGS_KEY for c in containers)
        text = _names(Kind.CONTAINER, names) + " with their blobs"
        if logs:
            text += " (task logs included)"
        parts.append(text)
    if not parts:
        return "Delete nothing?"
    head = ", ".join(parts[:-1])
    return f"Delete {head + ' and ' if head else ''}{parts[-1]}?"
