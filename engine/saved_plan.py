"""Saved plans: `bspec plan -o plan.json` writes one, `bspec apply plan.json` applies it.

A saved plan is versioned and holds the desired state, the vars, the spec's hash and the
actual values the plan was based on (`planning.basis`), never a SAS. Applying it refuses
(StalePlanError, exit 3) when a diffed field changed since, or a local file changed.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import types
import typing
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bspec.errors import InputError, StalePlanError
from bspec.model import DesiredState, Kind, Plan, ScheduleSpec
from bspec.reporting import change_json

PLAN_FORMAT = "bspec-plan"
REDACTED = "(secret)"
PLAN_VERSION = 2  # 2: kinds' normal forms (blob props name their container)
# The spec objects of the kinds kept in `DesiredState.more`, by kind name, to read them back.
MORE_SPECS: dict[str, type] = {"schedule": ScheduleSpec}


def to_data(obj: Any) -> Any:
    """Plain JSON data from the model's frozen dataclasses."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_data(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, timedelta):
        return {"seconds": obj.total_seconds()}
    if isinstance(obj, datetime):
        return obj.isoformat()
    if isinstance(obj, (tuple, list)):
        return [to_data(x) for x in obj]
    if isinstance(obj, Mapping):
        return {str(k): to_data(v) for k, v in obj.items()}
    return obj


def from_data(tp: Any, data: Any) -> Any:
    """The inverse of `to_data`, guided by the type hints of the model."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        inner = [a for a in args if a is not type(None)]
        return from_data(inner[0], data)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_data(args[0], x) for x in data)
        return tuple(from_data(a, x) for a, x in zip(args, data, strict=True))
    if origin in (dict, Mapping) or tp is dict:
        return dict(data)
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            return tp(
                **{
                    f.name: from_data(hints[f.name], data[f.name])
                    for f in dataclasses.fields(tp)
                    if f.name in data
                }
            )
        if issubclass(tp, enum.Enum):
            return tp(data)
        if tp is timedelta:
            return timedelta(seconds=data["seconds"])
        if tp is datetime:
            return datetime.fromisoformat(data)
    return data


def save(
    path: str | Path, plan: Plan, desired: DesiredState, basis: dict[str, Any], *, adopt: bool
) -> None:
    data = {
        "format": PLAN_FORMAT,
        "version": PLAN_VERSION,
        "stack": plan.stack,
        "target": plan.target,
        "specFile": desired.spec_file,
        "specHash": desired.spec_hash,
        "vars": to_data(desired.vars),
        "adopt": adopt,
        "changes": [change_json(c) for c in plan.pending()],
        "desired": to_data(desired),
        "basis": scrub(basis, {name for name, _ in desired.secrets}),
    }
    Path(path).write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class SavedPlan:
    target: str
    adopt: bool
    desired: DesiredState
    basis: dict[str, Any]
    changes: list[dict[str, Any]]


def is_saved_plan(path: str | Path) -> bool:
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        with p.open("rb") as fh:
            head = fh.read(200)
    except OSError:
        return False
    return PLAN_FORMAT.encode() in head


def load(path: str | Path) -> SavedPlan:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read saved plan: {exc}", file=str(path)) from exc
    if data.get("format") != PLAN_FORMAT:
        raise InputError(f"{path}: not a bspec saved plan", file=str(path))
    if data.get("version") != PLAN_VERSION:
        raise InputError(
            f"{path}: saved plan version {data.get('version')} is not supported"
            f" (this bspec reads version {PLAN_VERSION}); plan again",
            file=str(path),
        )
    desired = from_data(DesiredState, data["desired"])
    more = {
        Kind(k): tuple(from_data(MORE_SPECS[k], x) if k in MORE_SPECS else x for x in v)
        for k, v in desired.more.items()
    }
    desired = dataclasses.replace(desired, more=more)
    return SavedPlan(
        data["target"], bool(data.get("adopt")), desired, data["basis"], data["changes"]
    )


def scrub(data: Any, names: set[str]) -> Any:
    """`data` with the value of every environment setting named in `names` replaced by
    REDACTED: a start task bspec did not tag (its secrets' digests lost from the pool's
    metadata) may read back with a secret's value, which a saved plan must not hold."""
    if not names:
        return data
    if isinstance(data, dict):
        return {
            k: (
                {n: REDACTED if n in names else v for n, v in val.items()}
                if k == "environment" and isinstance(val, dict)
                else scrub(val, names)
            )
            for k, val in data.items()
        }
    if isinstance(data, list):
        return [scrub(x, names) for x in data]
    return data


def check_fresh(saved: SavedPlan, basis_now: dict[str, Any]) -> None:
    """Refuse when what the plan was based on changed: a diffed field or a local file."""
    basis_now = scrub(basis_now, {name for name, _ in saved.desired.secrets})
    changed = sorted(
        a for a in set(saved.basis) | set(basis_now) if saved.basis.get(a) != basis_now.get(a)
    )
    for b in saved.desired.blobs:
        try:
            digest = hashlib.md5(Path(b.path).read_bytes()).hexdigest()
        except OSError:
            digest = None
        if digest != b.md5:
            changed.append(f"local file {b.path}")
    if changed:
        shown = ", ".join(changed[:5]) + (
            f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        )
        raise StalePlanError(
            f"the saved plan is stale: {shown} changed since it was made",
            hint="run `bspec plan -o PLAN` again and apply the new plan",
        )
