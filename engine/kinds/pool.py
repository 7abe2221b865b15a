"""The stack's pools (one, or several by key). Props (both sides):

    {"vmSize" (lower case), "image": {"publisher", "offer", "sku", "version", "nodeAgentSku"},
     "taskSlotsPerNode", "targetDedicatedNodes", "targetLowPriorityNodes",
     "startTask": {"commandLine", "resourceFiles": [resource file refs], "environment",
                   "elevated", "waitForSuccess", "maxTaskRetryCount"} | None,
     "metadata": {user metadata; the stack tag is the resource's owner},
     only for a container pool: "containers": {"type", "images", "registries": [{"server",
         "username", "passwordEnv", "password" (the secret's digest), "identity"}]},
     "autoScale": {"formula", "interval" (seconds)} (only on an autoscale pool),
     and in "startTask", only when given: "container": {"image", "runOptions",
         "workingDirectory"}, "secretEnvironment": {name: digest}}

Secrets never enter the props: the digests of the registry passwords and start task secrets
bspec set are kept in the pool's metadata SECRETS_METADATA (Batch does not return
passwords), so that a changed secret is a change, without its value anywhere.

info: currentDedicatedNodes, currentLowPriorityNodes, allocationState; on an autoscale pool
that plan read with evaluate-autoscale, autoScaleEvaluation (`evaluation_json`'s shape).

An autoscale pool's node counts belong to its formula: they are never drift. Turning
autoscale on or off and changing the formula or its interval are in place (enable or
disable autoscale, then resize), never a replace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bspec.common import durations
from bspec.kinds.base import (
    KindDef,
    PlanContext,
    Rule,
    absent,
    container_names,
    count,
    desired,
    gone,
    resource_file_ref,
    stale,
)
from bspec.model import (
    STACK_METADATA,
    Action,
    Address,
    Change,
    ContainerSettingsSpec,
    DesiredState,
    Kind,
    PoolContainersSpec,
    PoolSpec,
    Reason,
    Resource,
    StartTaskSpec,
    WhenIdle,
    reason,
)

FIELDS = {
    "vmSize": Rule.REPLACE_IF_NODES,
    "image": Rule.REPLACE_IF_NODES,
    "taskSlotsPerNode": Rule.REPLACE_IF_NODES,
    "startTask": Rule.UPDATE,
    "metadata": Rule.UPDATE,
    "targetDedicatedNodes": Rule.UPDATE,  # a resize
    "targetLowPriorityNodes": Rule.UPDATE,
    "containers": Rule.REPLACE_IF_NODES,  # containerConfiguration: only on an empty pool
    "autoScale": Rule.UPDATE,  # enable, change or disable autoscale
}
RESIZE_FIELDS = ("targetDedicatedNodes", "targetLowPriorityNodes")
SECRETS_METADATA = "bspec-secrets"  # digests of the secrets bspec set on the pool
CONTAINER_TYPE = "dockerCompatible"
TASK_WORKING_DIRECTORY = "taskWorkingDirectory"


def container_props(c: ContainerSettingsSpec | None) -> dict[str, Any] | None:
    """A task's or start task's container settings in the normal form (defaults filled)."""
    if c is None:
        return None
    return {
        "image": c.image,
        "runOptions": c.run_options or None,
        "workingDirectory": c.working_directory or TASK_WORKING_DIRECTORY,
    }


def container_from_rest(cs: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not cs:
        return None
    return {
        "image": cs.get("imageName"),
        "runOptions": cs.get("containerRunOptions") or None,
        "workingDirectory": cs.get("workingDirectory") or TASK_WORKING_DIRECTORY,
    }


def containers_props(
    c: PoolContainersSpec | None, secrets: Mapping[str, str]
) -> dict[str, Any] | None:
    if c is None:
        return None
    return {
        "type": CONTAINER_TYPE,
        "images": list(c.images),
        "registries": [
            {
                "server": r.server,
                "username": r.username,
                "passwordEnv": r.password_env,
                "password": secrets.get(r.password_env) if r.password_env else None,
                "identity": r.identity,
            }
            for r in c.registries
        ],
    }


def secrets_metadata(props: Mapping[str, Any]) -> str | None:
    """The SECRETS_METADATA value for a pool's props (None when it uses no secret):
    `registry <server> <env name> <digest>` and `env <name> <digest>` entries, "; "-joined."""
    entries = [
        f"registry {str(r['server']).lower()} {r['passwordEnv']} {r['password']}"
        for r in (props.get("containers") or {}).get("registries", ())
        if r.get("passwordEnv")
    ]
    env = (props.get("startTask") or {}).get("secretEnvironment") or {}
    entries.extend(f"env {name} {digest}" for name, digest in sorted(env.items()))
    return "; ".join(entries) if entries else None


def start_task_props(
    st: StartTaskSpec | None, names: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> dict[str, Any] | None:
    if st is None:
        return None
    props = {
        "commandLine": st.command_line,
        "resourceFiles": [resource_file_ref(rf, names) for rf in st.resource_files],
        "environment": dict(st.environment),
        "elevated": st.elevated,
        "waitForSuccess": st.wait_for_success,
        "maxTaskRetryCount": st.max_task_retry_count,
    }
    if st.container is not None:
        props["container"] = container_props(st.container)
    if st.secret_environment:
        props["secretEnvironment"] = {n: (secrets or {}).get(n) for n in st.secret_environment}
    return props


def autoscale_props(pool: PoolSpec) -> dict[str, Any] | None:
    a = pool.autoscale
    if a is None:
        return None
    return {"formula": a.formula, "interval": a.interval.total_seconds()}


def props_of(
    pool: PoolSpec, names: Mapping[str, str], secrets: Mapping[str, str] | None = None
) -> dict[str, Any]:
    img = pool.image
    props = {
        "vmSize": pool.vm_size.lower(),
        "image": {
            "publisher": img.publisher,
            "offer": img.offer,
            "sku": img.sku,
            "version": img.version,
            "nodeAgentSku": img.node_agent_sku,
        },
        "taskSlotsPerNode": pool.task_slots_per_node,
        "targetDedicatedNodes": pool.target_dedicated_nodes,
        "targetLowPriorityNodes": pool.target_low_priority_nodes,
        "startTask": start_task_props(pool.start_task, names, secrets),
        "metadata": dict(pool.metadata),
    }
    if pool.containers is not None:
        props["containers"] = containers_props(pool.containers, secrets or {})
    if pool.autoscale is not None:  # absent on a fixed pool, as from_rest reads one
        props["autoScale"] = autoscale_props(pool)
    return props


def from_spec(pool: PoolSpec, d: DesiredState) -> Resource:
    props = props_of(pool, container_names(d), dict(d.secrets))
    return desired(Address.pool(pool.id), props, d.stack)


def _meta(items: Any) -> dict[str, str]:
    return {m.get("name"): m.get("value") for m in items or ()}


def _state(value: Any) -> str | None:
    return None if value is None else str(value).lower()


def from_rest(p: Mapping[str, Any], source_of: Callable[[str], str]) -> Resource:
    """A pool as Batch's REST JSON lists it; `source_of` reads a resource file URL back as
    `<container>[/<blob>]`."""
    meta = _meta(p.get("metadata"))
    owner = meta.pop(STACK_METADATA, None)
    kept = _secrets_of(meta.pop(SECRETS_METADATA, None))
    vmc = p.get("virtualMachineConfiguration") or {}
    img = vmc.get("imageReference") or {}
    props = {
        "vmSize": (p.get("vmSize") or "").lower(),
        "image": {
            "publisher": img.get("publisher"),
            "offer": img.get("offer"),
            "sku": img.get("sku"),
            "version": img.get("version") or "latest",
            "nodeAgentSku": vmc.get("nodeAgentSKUId"),
        },
        "taskSlotsPerNode": p.get("taskSlotsPerNode") or 1,
        "targetDedicatedNodes": p.get("targetDedicatedNodes") or 0,
        "targetLowPriorityNodes": p.get("targetLowPriorityNodes") or 0,
        "startTask": _start_task(p.get("startTask"), source_of, kept.get("startTask") or {}),
        "metadata": meta,
    }
    containers = _containers(vmc.get("containerConfiguration"), kept.get("registries") or {})
    if containers is not None:
        props["containers"] = containers
    if p.get("enableAutoScale"):
        interval = durations.parse(p.get("autoScaleEvaluationInterval") or "PT15M")
        props["autoScale"] = {
            "formula": str(p.get("autoScaleFormula") or "").strip(),
            "interval": interval.total_seconds(),
        }
    return Resource(
        Address.pool(str(p["id"])),
        props,
        owner=owner,
        state=_state(p.get("state")),
        info={
            "currentDedicatedNodes": p.get("currentDedicatedNodes") or 0,
            "currentLowPriorityNodes": p.get("currentLowPriorityNodes") or 0,
            "allocationState": _state(p.get("allocationState")),
        },
    )


def _secrets_of(text: str | None) -> dict[str, Any]:
    """SECRETS_METADATA read back: {"registries": {server: [env, digest]},
    "startTask": {name: digest}}; what does not parse is left out."""
    registries: dict[str, list[str]] = {}
    env: dict[str, str] = {}
    for entry in (text or "").split(";"):
        words = entry.split()
        if len(words) == 4 and words[0] == "registry":
            registries[words[1]] = [words[2], words[3]]
        elif len(words) == 3 and words[0] == "env":
            env[words[1]] = words[2]
    return {"registries": registries, "startTask": env}


def _containers(cc: Mapping[str, Any] | None, kept: Mapping[str, Any]) -> dict[str, Any] | None:
    """A pool's containerConfiguration in the normal form; a password Batch may return is
    never read: its digest comes from what bspec kept in the metadata."""
    if not cc:
        return None
    registries = []
    for r in cc.get("containerRegistries") or ():
        server = r.get("registryServer") or "docker.io"
        env, digest = (kept.get(server.lower()) or [None, None])[:2]
        registries.append(
            {
                "server": server,
                "username": r.get("username"),
                "passwordEnv": env if r.get("username") else None,
                "password": digest if r.get("username") else None,
                "identity": (r.get("identityReference") or {}).get("resourceId"),
            }
        )
    kind = str(cc.get("type") or CONTAINER_TYPE)
    return {
        "type": CONTAINER_TYPE if kind.lower() == CONTAINER_TYPE.lower() else kind,
        "images": list(cc.get("containerImageNames") or ()),
        "registries": registries,
    }


def _start_task(
    st: Mapping[str, Any] | None,
    source_of: Callable[[str], str],
    secret: Mapping[str, str] | None = None,
) -> Any:
    if st is None:
        return None
    auto = (st.get("userIdentity") or {}).get("autoUser") or {}
    secret = secret or {}
    props = {
        "commandLine": st.get("commandLine"),
        "resourceFiles": [
            {
                "source": source_of(rf.get("storageContainerUrl") or rf.get("httpUrl") or ""),
                "prefix": rf.get("blobPrefix"),
                "filePath": rf.get("filePath"),
                "fileMode": rf.get("fileMode"),
            }
            for rf in st.get("resourceFiles") or ()
        ],
        "environment": {
            e.get("name"): e.get("value") or ""
            for e in st.get("environmentSettings") or ()
            if e.get("name") not in secret  # a secret's value never enters the props
        },
        "elevated": _state(auto.get("elevationLevel")) == "admin",
        "waitForSuccess": bool(st.get("waitForSuccess")),
        "maxTaskRetryCount": st.get("maxTaskRetryCount") or 0,
    }
    container = container_from_rest(st.get("containerSettings"))
    if container is not None:
        props["container"] = container
    if secret:
        props["secretEnvironment"] = dict(secret)
    return props


def node_count(r: Resource) -> int:
    return int(r.info.get("currentDedicatedNodes", 0) or 0) + int(
        r.info.get("currentLowPriorityNodes", 0) or 0
    )


def destroys(r: Resource) -> tuple[Reason, ...]:
    n = node_count(r)
    return (reason("destroysNodes", nodes=n),) if n else ()


def _work_to_run(task_changes: list[Change], ended: frozenset[str] = frozenset()) -> bool:
    """Whether any of the spec's tasks has to run (again): the pool is needed. `ended`: jobs
    kept completed (an exit rule ended them), whose tasks left active never run."""
    for c in task_changes:
        if c.action in (Action.CREATE, Action.REPLACE):
            return True
        if (
            c.action in (Action.NOOP, Action.UPDATE)
            and c.before is not None
            and c.before.state != "completed"
            and c.address.parts[0] not in ended
        ):
            return True
    return False


def plan(ctx: PlanContext) -> list[Change]:
    pools = ctx.desired.pools
    wanted = {Address.pool(p.id) for p in pools}
    changes = [gone(r, *destroys(r)) for r in stale(ctx, Kind.POOL, wanted)]
    task_changes = ctx.changes.get(Kind.TASK, [])
    ended = frozenset(
        c.address.parts[0]
        for c in ctx.changes.get(Kind.JOB, [])
        if c.action is Action.NOOP and c.before is not None and c.before.state == "completed"
    )
    for spec in pools:
        jobs = {j.id for j in ctx.desired.jobs_on(spec.id)}
        if len(pools) > 1:  # whenIdle is per pool: only its jobs' tasks need it
            mine = [c for c in task_changes if c.address.parts[0] in jobs]
        else:
            mine = task_changes
        changes.append(_plan_one(ctx, spec, _work_to_run(mine, ended)))
    return changes


def _plan_one(ctx: PlanContext, spec: PoolSpec, work_to_run: bool) -> Change:
    after = from_spec(spec, ctx.desired)
    addr, want = after.address, after.props
    before = ctx.actual.get(addr)
    if absent(before):
        if spec.when_idle is WhenIdle.DELETE and not work_to_run:
            return Change(Action.NOOP, addr, None, after, reasons=(reason("idle"),))
        return Change(Action.CREATE, addr, before, after, reasons=(reason("new", noun="pool"),))
    assert before is not None
    ctx.check_owner(before, "pool")
    have = before.props
    evaluation = before.info.get("autoScaleEvaluation")
    if evaluation is not None:
        ctx.autoscale.append({"address": str(addr), **evaluation})
    if want.get("autoScale") is not None:
        # The formula owns the node counts: what they are now is not drift.
        want = {**want, **{f: have.get(f, 0) for f in RESIZE_FIELDS}}
    if (
        spec.when_idle is not WhenIdle.KEEP
        and not work_to_run
        and have.get("targetDedicatedNodes") == 0
        and have.get("targetLowPriorityNodes") == 0
    ):
        # Scaled to zero by whenIdle: not drift until there is work again.
        want = {**want, "targetDedicatedNodes": 0, "targetLowPriorityNodes": 0}
    fields = DEF.diff(want, have)
    if before.owner != ctx.stack:
        fields.append("owner")
    if not fields:
        return Change(Action.NOOP, addr, before, after)
    fixed = DEF.with_rule(fields, Rule.REPLACE_IF_NODES)
    nodes = node_count(before)
    if fixed and nodes > 0:
        why = reason("emptyOnly", fields=list(fixed), nodes=nodes)
        return Change(Action.REPLACE, addr, before, after, tuple(fields), fixed, reasons=(why,))
    reasons: list[Reason] = []
    if fixed:
        reasons.append(reason("changedOnEmptyPool", fields=list(fixed)))
    reasons.extend(autoscale_reasons(have.get("autoScale"), want.get("autoScale")))
    if "startTask" in fields:
        reasons.append(reason("startTaskChanged"))
    if "metadata" in fields:
        reasons.append(reason("metadataChanged"))
    if any(f in fields for f in RESIZE_FIELDS):
        old = [have.get("targetDedicatedNodes", 0), have.get("targetLowPriorityNodes", 0)]
        reasons.append(reason("resize", old=old, new=[want[f] for f in RESIZE_FIELDS]))
    if "owner" in fields:
        reasons.append(reason("adopted", stack=ctx.stack))
    return Change(Action.UPDATE, addr, before, after, tuple(fields), reasons=tuple(reasons))


def autoscale_reasons(old: Any, new: Any) -> list[Reason]:
    """Why an autoscale change is planned (all in place)."""
    if old == new:
        return []
    if new is None:
        return [reason("autoscaleOff")]
    interval = durations.format(float(new["interval"]))
    if old is None:
        return [reason("autoscaleOn", interval=interval)]
    out = []
    if old.get("formula") != new["formula"]:
        out.append(reason("formulaChanged"))
    if old.get("interval") != new["interval"]:
        was = durations.format(float(old.get("interval") or 0))
        out.append(reason("intervalChanged", old=was, new=interval))
    return out


def evaluation_json(run: Mapping[str, Any], which: str) -> dict[str, Any]:
    """An evaluate-autoscale answer (an AutoScaleRun, or the error of a refused formula) as
    plans carry it: `formula` ("new": the spec's, not yet on the pool; "current"), the
    targets it gives, every `$name=value` it printed, and the service's error."""
    values: dict[str, str] = {}
    for item in str(run.get("results") or "").split(";"):
        name, sep, value = item.partition("=")
        if sep and name.strip():
            values[name.strip()] = value.strip()
    error = run.get("error")
    out: dict[str, Any] = {
        "formula": which,
        "timestamp": run.get("timestamp"),
        "targetDedicatedNodes": _whole(values.get("$TargetDedicatedNodes")),
        "targetLowPriorityNodes": _whole(values.get("$TargetLowPriorityNodes")),
        "results": values,
        "error": None,
    }
    if error:
        details = [
            str(v.get("value")) for v in error.get("values") or () if v.get("value") is not None
        ]
        message = error.get("message")
        if isinstance(message, Mapping):
            message = message.get("value")
        message = str(message or "").splitlines()[0] if message else None  # not RequestId:
        out["error"] = {"code": error.get("code"), "message": message, "details": details}
    return out


def steady_props(props: Mapping[str, Any]) -> dict[str, Any]:
    """The props a saved plan is checked against: an autoscale pool's node counts move with
    its formula, so they are left out (as the planner does not count them as drift)."""
    if props.get("autoScale") is None:
        return dict(props)
    return {k: v for k, v in props.items() if k not in RESIZE_FIELDS}


def may_have_spot(spec: PoolSpec | None) -> bool:
    """Whether the spec's pool may hold Spot nodes (so status and wait count preemptions):
    fixed Spot nodes, or autoscale (whose formula may ask for them)."""
    return spec is not None and (spec.target_low_priority_nodes > 0 or spec.autoscale is not None)


def spot_handling(spec: PoolSpec | None) -> str:
    """What the pool does about preempted Spot nodes (reporting.autoscale.HANDLING's codes):
    the queue preset's fallback, an autoscale formula of the spec's own, or Batch itself
    re-allocating them for a fixed pool."""
    a = spec.autoscale if spec is not None else None
    if a is None:
        return "batchRestores"
    return "queueFallback" if a.preset == "queue" and a.spot > 0 else "formula"


def _whole(value: str | None) -> int | None:
    """A target as Batch applies it: truncated to whole nodes."""
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


DEF = KindDef(
    kind=Kind.POOL,
    heading="Pool",
    noun="pool",
    nouns="pools",
    fields=FIELDS,
    plan=plan,
    reads=(Kind.TASK, Kind.JOB),
    destroyed=True,
    destroy_reasons=destroys,
    words={
        "destroysNodes": lambda v: f"destroys {count(v['nodes'], 'node')}",
        "idle": lambda v: "deleted when idle; no work to run",
        "emptyOnly": lambda v: (
            f"replaces pool: {', '.join(v['fields'])} can only change on an"
            f" empty pool; destroys {count(v['nodes'], 'node')}, requeues running tasks"
        ),
        "changedOnEmptyPool": lambda v: (
            f"{', '.join(v['fields'])} changed in place (the pool has no nodes)"
        ),
        "startTaskChanged": lambda v: (
            "start task changed; it reaches existing nodes when they restart"
        ),
        "resize": lambda v: f"resize from {_nodes(v['old'])} to {_nodes(v['new'])}",
        "autoscaleOn": lambda v: (
            f"enable autoscale (in place): the formula sizes the pool, evaluated every"
            f" {v['interval']}"
        ),
        "autoscaleOff": lambda v: (
            "disable autoscale (in place): the spec sets the node counts again"
        ),
        "formulaChanged": lambda v: "autoscale formula changed (in place)",
        "intervalChanged": lambda v: f"autoscale interval from {v['old']} to {v['new']} (in place)",
    },
)


def _nodes(pair: Sequence[int]) -> str:
    dedicated, low = pair
    text = count(dedicated, "node")
    if low:
        text += f" + {low} low-priority"
    return text
