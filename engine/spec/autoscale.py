"""A pool's `autoscale:`: its formula (a template of the spec's own) or a built-in preset.

A `formula` is Batch's autoscale formula language written as a Jinja template that sees
`vars`, `stack` and `pool` (the pool's id, with `pool.id`, `pool.vmSize` and
`pool.taskSlotsPerNode`). A `preset` renders a built-in template
(`templates/autoscale/<name>.j2`, printed by `bspec render --autoscale-preset NAME`) with its
parameters as `preset`. Either way the result is plain formula text that Batch validates
and evaluates; bspec checks only what Batch would refuse about the settings around it
(the interval's range, the presets' parameters), each at its own line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from typing import Any

from bspec.errors import InputError
from bspec.model import AutoscaleSpec
from bspec.spec.environment import Failure, Tpl, describe, make_environment
from bspec.spec.loading import PathKey
from bspec.spec.tree import Renderer, parse_duration
from jinja2 import TemplateError

PRESETS = ("queue", "workday")
DEFAULT_INTERVAL = timedelta(minutes=15)  # Batch's default
MIN_INTERVAL = timedelta(minutes=5)  # Batch's limits for autoScaleEvaluationInterval
MAX_INTERVAL = timedelta(hours=168)
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # Batch's weekday numbers: index
WORKDAYS = ["mon", "tue", "wed", "thu", "fri"]
PRESET_KEYS = {
    "queue": ("min", "max", "spot"),
    "workday": ("nodes", "min", "hours", "days", "timezone"),
}
ZONE = re.compile(r"UTC|Z|[+-](?:0\d|1[0-4]):[0-5]\d")
PARAMETER_KEYS = ("min", "max", "spot", "nodes", "hours", "days", "timezone")


class PoolName(str):
    """What a formula template sees as `pool`: the pool's id as text (as task templates see
    it), with the pool's settings as attributes."""

    id: str
    vmSize: str
    taskSlotsPerNode: int

    def __new__(cls, pool_id: str, vm_size: str, slots: int) -> PoolName:
        self = super().__new__(cls, pool_id)
        self.id = pool_id
        self.vmSize = vm_size
        self.taskSlotsPerNode = slots
        return self


def raw_formula(body: Mapping[str, Any]) -> Any:
    """The pool's `autoscale.formula` as written (rendered later, when `pool` is known)."""
    auto = body.get("autoscale")
    return auto.get("formula") if isinstance(auto, Mapping) else None


def render_body(r: Renderer, body: Mapping[str, Any], path: PathKey, scope: dict[str, Any]) -> Any:
    """The pool's body rendered as every other part of the spec, but for
    `autoscale.formula`, kept as written: `build` renders it once `pool` is known."""
    auto = body.get("autoscale")
    if not isinstance(auto, Mapping) or "formula" not in auto:
        return r.render_tree(body, path, scope, str(path[-1]))
    rest = {**body, "autoscale": {k: v for k, v in auto.items() if k != "formula"}}
    out = r.render_tree(rest, path, scope, str(path[-1]))
    out["autoscale"]["formula"] = auto["formula"]
    return out


def preset_source(name: str) -> str:
    """The built-in template of preset `name`, as shipped."""
    if name not in PRESETS:
        raise InputError(
            f"unknown autoscale preset {name!r} (the presets: {', '.join(PRESETS)})",
            code="InvalidFlag",
        )
    folder = resources.files("bspec.templates").joinpath("autoscale")
    return folder.joinpath(f"{name}.j2").read_text("utf-8")


def _bits(bound: int) -> list[int]:
    """The powers of two, largest first, whose subtraction floors a value in [0, bound]."""
    out, b = [], 1
    while b <= max(bound, 1):
        out.append(b)
        b *= 2
    return out[::-1]


def _offset(zone: str) -> int:
    """Minutes east of UTC of `UTC`, `+HH:MM` or `-HH:MM`."""
    if zone.upper() in ("UTC", "Z"):
        return 0
    sign = -1 if zone.startswith("-") else 1
    hours, _, minutes = zone[1:].partition(":")
    return sign * (int(hours) * 60 + int(minutes or 0))


def preset_parameters(name: str, given: Mapping[str, Any], problem: Any = None) -> dict[str, Any]:
    """The preset's parameters with their defaults filled in, checked; `problem(key,
    message)` reports what is wrong (the spec's line), else an InputError is raised."""

    def bad(key: str, message: str) -> None:
        if problem is None:
            raise InputError(f"autoscale preset {name}: {key}: {message}", code="InvalidFlag")
        problem(key, message)

    if name not in PRESETS:
        preset_source(name)  # raises: an unknown preset
    given = dict(given)
    for key, value in list(given.items()):
        want_int = key in ("min", "max", "nodes")
        if want_int and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            bad(key, f"expected a whole number of nodes (0 or more), not {value!r}")
            given.pop(key)
        elif key == "spot" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            bad(key, f"the Spot share is a number from 0 to 1, not {value!r}")
            given.pop(key)
        elif key == "hours" and not (
            isinstance(value, list) and len(value) == 2 and all(type(h) is int for h in value)
        ):
            bad(key, f"hours are [start, end], two whole hours, not {value!r}")
            given.pop(key)
        elif key in ("days", "timezone") and not isinstance(value, (list, str)):
            bad(key, f"not a valid {key}: {value!r}")
            given.pop(key)
    for key in given:
        if key not in PRESET_KEYS.get(name, ()):
            allowed = ", ".join(PRESET_KEYS.get(name, ()))
            bad(key, f"not a parameter of the {name} preset (it takes: {allowed})")
    if name == "queue":
        low, high = int(given.get("min", 0)), given.get("max")
        if high is None:
            bad("max", "the queue preset needs `max`: the most nodes it may ask for")
            high = low
        high = int(high)
        if high < low:
            bad("max", f"max ({high}) is below min ({low})")
        spot = float(given.get("spot", 0) or 0)
        if not 0 <= spot <= 1:
            bad("spot", f"the Spot share is a number from 0 to 1, not {spot:g}")
        return {"min": low, "max": high, "spot": spot, "bits": _bits(high)}
    nodes = given.get("nodes")
    if nodes is None:
        bad("nodes", "the workday preset needs `nodes`: how many during working hours")
        nodes = 0
    hours = list(given.get("hours") or [8, 18])
    start, end = (int(hours[0]), int(hours[1])) if len(hours) == 2 else (8, 18)
    if not 0 <= start < end <= 24:
        bad("hours", f"hours are [start, end] with 0 <= start < end <= 24, not {hours}")
    days = given.get("days") or WORKDAYS
    days = [str(d).lower() for d in ([days] if isinstance(days, str) else days)]
    for d in days:
        if d not in DAYS:
            bad("days", f"{d!r} is not a day (one of: {', '.join(DAYS)})")
    zone = str(given.get("timezone", "UTC"))
    if not ZONE.fullmatch(zone):
        bad("timezone", f"{zone!r} is not UTC or an offset like +01:00 or -05:30")
        zone = "UTC"
    return {
        "nodes": int(nodes),
        "min": int(given.get("min", 0)),
        "start": start,
        "end": end,
        "days": days,
        "weekdays": sorted({DAYS.index(d) for d in days if d in DAYS}),
        "timezone": zone,
        "offset": _offset(zone),
    }


def render_preset(name: str, parameters: Mapping[str, Any], scope: Mapping[str, Any]) -> str:
    """Preset `name` as formula text, its parameters (`preset_parameters`) as `preset`."""
    env = make_environment()
    template = Tpl(env.from_string(preset_source(name)), ("autoscale",), f"preset {name}")
    return tidy(template.render({**env.globals, **scope, "preset": parameters}))


def tidy(text: str) -> str:
    """Formula text as bspec sends and compares it: no trailing spaces, no blank ends."""
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def build(
    r: Renderer,
    body: Mapping[str, Any],
    formula: Any,
    path: PathKey,
    scope: Mapping[str, Any],
) -> AutoscaleSpec | None:
    """The pool's autoscale from its rendered body and its raw `formula`; problems go to
    `r` at the key's or value's line."""
    auto = body.get("autoscale")
    if not isinstance(auto, Mapping):
        return None
    where: PathKey = (*path, "autoscale")
    interval = DEFAULT_INTERVAL
    if auto.get("interval") is not None:
        interval = parse_duration(str(auto["interval"]))
        if not MIN_INTERVAL <= interval <= MAX_INTERVAL:
            r.problem(
                (*where, "interval"),
                f"{auto['interval']!r}: Batch evaluates autoscale formulas every 5 minutes"
                " to 168 hours (PT5M to PT168H)",
            )
    pool = PoolName(str(body["id"]), str(body["vmSize"]), int(body.get("taskSlotsPerNode", 1)))
    names = {**r.scope(), **scope, "pool": pool}
    preset = auto.get("preset")
    if preset is None:
        text = str(formula or "")
        try:
            text = Tpl(r.env.from_string(text), (*where, "formula"), text).render(names)
        except TemplateError as exc:
            r.problem((*where, "formula"), f"template syntax error in the formula: {describe(exc)}")
            return None
        except Failure as failure:
            r.problem(failure.path, failure.message)
            return None
        text = tidy(text)
        if not text:
            r.problem((*where, "formula"), "the formula is empty")
        return AutoscaleSpec(formula=text, interval=interval)
    given = {k: auto[k] for k in PARAMETER_KEYS if k in auto}

    def problem(key: str, message: str) -> None:
        if key not in given:  # a parameter the preset needs: at the mapping
            r.problem(where, message)
        else:  # a parameter it does not take: the key's line; a bad value: the value's
            r.problem((*where, key), message, key=message.startswith("not a parameter"))

    params = preset_parameters(str(preset), given, problem)
    return AutoscaleSpec(
        formula=render_preset(str(preset), params, names),
        interval=interval,
        preset=str(preset),
        spot=float(params.get("spot", 0.0)),
    )


__all__ = [
    "DEFAULT_INTERVAL",
    "PRESETS",
    "PoolName",
    "build",
    "preset_parameters",
    "preset_source",
    "raw_formula",
    "render_body",
    "render_preset",
    "tidy",
]
