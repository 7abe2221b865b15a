"""Batch autoscale and Spot node counts: enable, disable, evaluate, list node counts.

Writes (enable, disable) are called by `BatchProvider.update_pool` on the applier's behalf;
`evaluate` is a read (Batch evaluates a formula against the pool and changes nothing), made
by `read_actual` for `plan`, never by the planner. A formula the service refuses leaves as a
`ServiceError` that names the pool and quotes the service's message with its details
("Line 1, Col 24: ..."), which the SDK's own message leaves out.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError
from bspec.common import durations
from bspec.errors import ServiceError
from bspec.kinds import pool as pool_kind
from bspec.model import DesiredState, Resource
from bspec.providers.batch import BatchProvider, SasMaker
from bspec.providers.errors import sdk_errors, translate

ENABLE_TRIES = 12  # Batch takes one enableautoscale per pool per 30 s


def _path(pool_id: str, op: str) -> str:
    return f"pools/{quote(pool_id, safe='')}/{op}"


def _error_body(exc: HttpResponseError) -> dict[str, Any]:
    response: Any = exc.response
    try:
        data = response.json() if response is not None else None
    except Exception:  # not JSON: no details to add
        return {}
    return data if isinstance(data, dict) else {}


def _details(body: Mapping[str, Any]) -> list[str]:
    return [str(v.get("value")) for v in body.get("values") or () if v.get("value") is not None]


def _refused(exc: HttpResponseError, what: str) -> ServiceError:
    """The SDK error as bspec's, its message extended by the service's details."""
    err = translate(exc, "batch", what)
    details = _details(_error_body(exc))
    if details:
        err.message = f"{err.message} ({'; '.join(details)})"
        err.args = (err.message,)
    if err.status == 400:
        err.hint = "fix the pool's autoscale formula (Batch's message above says where)"
    return err


def explained(err: ServiceError) -> ServiceError:
    """A translated SDK error (`err.__cause__`) with the service's details added, for
    refusals of a formula that the SDK's own message leaves out (pool create)."""
    cause = err.__cause__
    if isinstance(cause, HttpResponseError) and err.status == 400:
        return _refused(cause, err.message.split(": ", 2)[1] if ": " in err.message else "")
    return err


def create_pool(batch: BatchProvider, pool: Resource, sas: SasMaker) -> None:
    """Create a pool; a formula Batch refuses is reported with the service's details."""
    try:
        batch.create_pool(pool, sas)
    except ServiceError as err:
        if pool.props.get("autoScale") is not None and err.status == 400:
            raise explained(err) from err.__cause__
        raise


def update_pool(batch: BatchProvider, pool: Resource, fields: Sequence[str], sas: SasMaker) -> None:
    """Change a live pool in place. Turning autoscale on (or changing its formula or
    interval) enables it after the other changes; turning it off disables it, then resizes
    to the spec's node counts."""
    if "autoScale" not in fields:
        batch.update_pool(pool, fields, sas)
        return
    pool_id = pool.address.parts[0]
    rest = [f for f in fields if f != "autoScale"]
    batch.update_pool(pool, [f for f in rest if f not in pool_kind.RESIZE_FIELDS], sas)
    auto = pool.props.get("autoScale")
    if auto is not None:
        enable(batch, pool_id, auto["formula"], float(auto["interval"]))
        return
    disable(batch, pool_id)
    if any(f in rest for f in pool_kind.RESIZE_FIELDS):
        p = pool.props
        batch.resize_pool(pool_id, p["targetDedicatedNodes"], p["targetLowPriorityNodes"])


def enable(batch: BatchProvider, pool_id: str, formula: str, interval: float) -> None:
    """Turn autoscale on (or change its formula and interval): Batch evaluates it at once.
    Refused while the pool resizes, so a resize in progress is stopped first; and at most
    once per 30 s per pool, so that answer is waited out."""
    body = {
        "autoScaleFormula": formula,
        "autoScaleEvaluationInterval": durations.format(interval),
    }
    what = f"enable autoscale on pool {pool_id}"
    for attempt in range(ENABLE_TRIES):
        try:
            with sdk_errors("batch", what):
                try:
                    batch.send("POST", _path(pool_id, "enableautoscale"), body=body)
                    return
                except HttpResponseError as exc:
                    raise _refused(exc, what) from exc
        except ServiceError as err:
            if err.service_code == "PoolBeingResized" and attempt < ENABLE_TRIES - 1:
                with sdk_errors("batch", f"stop resize of pool {pool_id}"):
                    batch.send("POST", _path(pool_id, "stopresize"))
                batch.wait_pool_steady(pool_id)
                continue
            if err.service_code == "TooManyEnableAutoScaleRequests" and attempt < ENABLE_TRIES - 1:
                time.sleep(err.retry_after or 5.0)
                continue
            raise


def disable(batch: BatchProvider, pool_id: str) -> None:
    """Turn autoscale off: the pool keeps its current targets until resized."""
    with sdk_errors("batch", f"disable autoscale on pool {pool_id}"):
        batch.send("POST", _path(pool_id, "disableautoscale"))


def evaluate(batch: BatchProvider, pool_id: str, formula: str) -> dict[str, Any]:
    """What `formula` gives on the pool now (an AutoScaleRun: timestamp, results, error);
    a formula the service refuses (or a pool whose autoscale was switched off meanwhile)
    answers as a run with that error, so plan shows it rather than failing."""
    what = f"evaluate autoscale on pool {pool_id}"
    with sdk_errors("batch", what):
        try:
            resp = batch.send(
                "POST", _path(pool_id, "evaluateautoscale"), body={"autoScaleFormula": formula}
            )
        except HttpResponseError as exc:
            body = _error_body(exc)
            if exc.status_code in (400, 409) and body.get("code"):  # refused: say why
                return {"timestamp": None, "results": None, "error": body}
            raise _refused(exc, what) from exc
    run: dict[str, Any] = resp.json()
    return run


def with_evaluations(
    batch: BatchProvider, desired: DesiredState, pools: list[Resource]
) -> list[Resource]:
    """The listed pools, with what the spec's formula evaluates to now on each existing
    autoscale pool of the spec (in `info`, for the plan): one request per such pool."""
    scaled = {p.id.lower(): p for p in desired.pools if p.autoscale is not None}
    if not scaled:
        return pools
    out = []
    for r in pools:
        have = r.props.get("autoScale")
        spec = scaled.get(r.address.parts[0].lower())
        if spec is None or spec.autoscale is None or have is None or r.state == "deleting":
            out.append(r)
            continue
        formula = spec.autoscale.formula
        which = "current" if have.get("formula") == formula else "new"
        run = evaluate(batch, r.address.parts[0], formula)
        info = {**r.info, "autoScaleEvaluation": pool_kind.evaluation_json(run, which)}
        out.append(Resource(r.address, r.props, r.owner, r.state, info))
    return out


def node_counts(batch: BatchProvider, pool_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Each pool's node counts by state, dedicated and Spot (`GET /nodecounts`, one
    request filtered to `pool_ids`), by pool id; a pool without nodes may be absent."""
    if not pool_ids:
        return {}
    flt = " or ".join(f"poolId eq '{p.replace(chr(39), chr(39) * 2)}'" for p in pool_ids)
    items: Iterable[dict[str, Any]] = batch.list_raw(
        "list pool node counts", "nodecounts", {"$filter": flt, "maxresults": "10"}
    )
    return {str(i.get("poolId")): i for i in items}


def preempted(counts: Mapping[str, Any] | None) -> int:
    """Preempted nodes in one pool's node counts (Spot nodes only can be preempted)."""
    if not counts:
        return 0
    return sum(
        int((counts.get(k) or {}).get("preempted") or 0) for k in ("dedicated", "lowPriority")
    )


__all__ = [
    "create_pool",
    "disable",
    "enable",
    "evaluate",
    "node_counts",
    "preempted",
    "update_pool",
    "with_evaluations",
]
