"""Adding a resource kind, for real (docs/architecture.md walks through this file).

A "note" kind (a named text the stack keeps in some service) is defined here: its kind
module part (spec object, normal form, field rules, words, plan) and its provider adapter
(an in-memory service of notes: no Azure SDK is mocked, the built-in adapters are not
touched). It is registered in one place, `registered`, as a real kind is by one line in
`kinds.KINDS` and one in `providers.adapters.ADAPTERS`; planning, applying, `read_actual`,
the plan text, destroy and the --json object then pick it up with no other edit.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import pytest
from bspec import applying, kinds, planning
from bspec.kinds import container as container_kind
from bspec.kinds.base import KindDef, PlanContext, Rule, absent, gone, stale
from bspec.model import (
    LOGS_KEY,
    Action,
    ActualState,
    Address,
    Change,
    DesiredState,
    Kind,
    Resource,
    reason,
)
from bspec.providers import adapters, read_actual
from bspec.reporting.plan import plan_json, render_plan
from bspec.targets import Target

# --------------------------------------------------------------- the kind module (pure)

NOTE = Kind.register("note")  # what `kinds/note.py` would hold
Kind.unregister(NOTE)  # listed only while a test of this file runs (`service`)


@dataclass(frozen=True)
class NoteSpec:
    """The spec side: what `from_spec` reads (a real kind's schema fragment feeds it)."""

    id: str
    text: str


def from_spec(n: NoteSpec, stack: str) -> Resource:
    return Resource(Address(NOTE, (n.id,)), {"text": n.text}, owner=stack)


def plan_notes(ctx: PlanContext) -> list[Change]:
    wanted = {Address(NOTE, (n.id,)): n for n in ctx.desired.of_kind(NOTE)}
    changes = [gone(r) for r in stale(ctx, NOTE, wanted)]
    for addr, n in wanted.items():
        after, before = from_spec(n, ctx.stack), ctx.actual.get(addr)
        if before is None or absent(before):
            changes.append(
                Change(Action.CREATE, addr, None, after, reasons=(reason("new", noun="note"),))
            )
        elif not ctx.check_owner(before, "note"):
            continue
        elif fields := DEF.diff(after.props, before.props):
            why = (reason("textChanged", chars=len(n.text)),)
            changes.append(
                Change(Action.UPDATE, addr, before, after, fields=tuple(fields), reasons=why)
            )
        else:
            changes.append(Change(Action.NOOP, addr, before, after))
    return changes


DEF = KindDef(
    kind=NOTE,
    heading="Notes",
    noun="note",
    nouns="notes",
    fields={"text": Rule.UPDATE},
    plan=plan_notes,
    destroyed=True,
    words={"textChanged": lambda v: f"text changed ({v['chars']} characters now)"},
)

# --------------------------------------------------------------- the provider adapter


class NoteService:
    """The adapter of the note kind: its service is a dict held in memory."""

    def __init__(self) -> None:
        self.notes: dict[str, tuple[str, str]] = {}  # id -> (text, owner)
        self.requests = 0

    def apply(self, changes: list[Change], run: adapters.ApplyRun) -> None:
        for c in changes:
            self.requests += 1
            note_id = c.address.parts[0]
            if c.action is Action.DELETE:
                self.notes.pop(note_id, None)
            elif c.after is not None:
                self.notes[note_id] = (str(c.after.props["text"]), str(c.after.owner))
        if changes:
            run.say(f"Wrote {len(changes)} note(s)")

    def read(self, run: adapters.ReadRun) -> adapters.Collect:
        def collect() -> list[Resource]:
            self.requests += 1
            return [
                Resource(Address(NOTE, (i,)), {"text": text}, owner=owner)
                for i, (text, owner) in sorted(self.notes.items())
            ]

        return collect


# --------------------------------------------------------------- the one place it is listed


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[NoteService]:
    """Register the kind: the test's stand-in for the line in `kinds.KINDS` and the line in
    `providers.adapters.ADAPTERS`."""
    svc = NoteService()
    Kind.register("note")
    monkeypatch.setattr(kinds, "KINDS", (*kinds.KINDS, DEF))
    monkeypatch.setitem(adapters.ADAPTERS, NOTE, svc)
    yield svc
    Kind.unregister(NOTE)


def desired(*notes: NoteSpec) -> DesiredState:
    return DesiredState(
        stack="demo",
        spec_file="/x/spec.yaml",
        spec_hash="0" * 64,
        vars={},
        target=None,
        containers=(),
        blobs=(),
        pool=None,
        jobs=(),
        tasks=(),
        more={NOTE: notes},
    )


class _Unused:
    """A provider no call may reach: the built-in adapters have nothing to do in a plan of
    notes (they may name a method, as `parallel(batch.create_job, [])` does)."""

    def __getattr__(self, name: str) -> Any:
        def called(*_args: Any, **_kwargs: Any) -> Any:
            pytest.fail(f"{name} was called")

        return called


class _NoTarget:
    batch: Any = _Unused()
    storage: Any = _Unused()


def actual(svc: NoteService) -> ActualState:
    """The notes, beside the stack's logs container (there already: the lock made it)."""
    logs = container_kind.from_listing(LOGS_KEY, "demo-bspec", "demo", deleting=False)
    rs = [logs, *svc.read(cast(adapters.ReadRun, None))()]
    return ActualState({r.address: r for r in rs})


def test_the_address_of_a_new_kind_parses(service: NoteService) -> None:
    assert Address.parse("note/hello") == Address(NOTE, ("hello",))
    assert Kind("note") is NOTE


def test_a_new_kind_is_planned_applied_reported_and_destroyed(service: NoteService) -> None:
    target = cast(Target, _NoTarget())
    want = desired(NoteSpec("hello", "hi"), NoteSpec("bye", "so long"))

    p = planning.plan(want, actual(service))
    assert [(c.action, str(c.address)) for c in p.pending()] == [
        (Action.CREATE, "note/hello"),
        (Action.CREATE, "note/bye"),
    ]
    assert render_plan(p) == [
        "Notes:",
        "  + note/hello",
        "  + note/bye",
        "",
        "Plan: 2 to create, 0 to update, 0 to replace, 0 to delete.",
    ]
    applying.apply(p, target, applying.ApplyOptions(quiet=True))
    assert service.notes == {"hello": ("hi", "demo"), "bye": ("so long", "demo")}

    # converged: nothing to do
    assert planning.plan(want, actual(service)).empty()

    # an edit and a removal, in words and in the --json object
    p2 = planning.plan(desired(NoteSpec("hello", "hello there")), actual(service))
    data = plan_json(p2, {"notes": {"read": 1, "write": 2}})
    assert data["changes"] == [
        {
            "action": "delete",
            "address": "note/bye",
            "fields": [],
            "forcedBy": [],
            "reason": "no longer in the spec",
        },
        {
            "action": "update",
            "address": "note/hello",
            "fields": ["text"],
            "forcedBy": [],
            "reason": "text changed (11 characters now)",
        },
    ]
    applying.apply(p2, target, applying.ApplyOptions(quiet=True))
    assert service.notes == {"hello": ("hello there", "demo")}

    # destroy deletes what the stack owns of the kind (it says `destroyed=True`)
    d = planning.plan_destroy(want, actual(service))
    assert [str(c.address) for c in d.pending()] == ["note/hello", "container/_bspec"]
    assert render_plan(d, destroy=True)[:2] == ["Notes:", "  - note/hello"]


def test_read_actual_loops_over_the_adapters(
    service: NoteService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stack of notes only (the built-in kinds would need the services)."""
    monkeypatch.setattr(kinds, "KINDS", (DEF,))
    service.notes["hello"] = ("hi", "demo")
    got = read_actual(desired(), cast(Any, None), cast(Any, None))
    assert list(got.resources) == [Address(NOTE, ("hello",))]
    assert service.requests == 1


def test_the_output_schema_lists_exactly_the_registered_kinds() -> None:
    """A new kind's fragment of schema/output.schema.json: its name in the change
    address pattern (the --json of plan, apply and destroy is validated against it)."""
    import json
    import re
    from pathlib import Path

    schema = json.loads(
        (Path(__file__).parents[2] / "schema" / "output.schema.json").read_text(encoding="utf-8")
    )
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            pattern = node.get("pattern")
            if isinstance(pattern, str) and pattern.startswith("^(container|"):
                found.append(pattern)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    assert found, "the change address pattern is gone from output.schema.json"
    for pattern in found:
        listed = re.fullmatch(r"\^\(([a-z|]+)\)/\.\+\$", pattern)
        assert listed is not None, pattern
        assert listed.group(1).split("|") == [k.kind.value for k in kinds.KINDS]
