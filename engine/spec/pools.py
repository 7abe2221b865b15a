"""Several pools: `pools:` by key beside the one-pool shorthand `pool:`, and each job's pool.

A spec gives `pool:` (one pool) or `pools:` (a mapping of keys to pools, each what `pool:`
holds), never both. A job names its pool by key (`pool: gpu`); it may leave it out when the
spec has one pool. Pool ids are unique across keys, ignoring case as Batch does. Task
templates see the job's pool as `pool`: a string, the pool id as always, which also has
`key`, `id`, `vmSize`, `nodes`, `lowPriorityNodes` and `taskSlotsPerNode` for templates
that want more (`{{ pool.vmSize }}`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from bspec.model import ImageSpec, PoolSpec, ResourceFileSpec, StartTaskSpec, WhenIdle
from bspec.spec import autoscale
from bspec.spec.containers import SecretBook, container_settings, pool_containers
from bspec.spec.environment import Failure
from bspec.spec.loading import PathKey
from bspec.spec.references import References
from bspec.spec.tasks import check_batch_limits
from bspec.spec.tree import Renderer

BOTH = "give either `pool` (one pool) or `pools` (several pools by key), not both"


class PoolName(str):
    """The job's pool as task templates see it: its id (so `{{ pool }}` renders as it
    always did), with the pool's key and sizes as attributes."""

    __slots__ = ("id", "key", "lowPriorityNodes", "nodes", "taskSlotsPerNode", "vmSize")
    key: str | None
    id: str
    vmSize: str
    nodes: int
    lowPriorityNodes: int
    taskSlotsPerNode: int

    def __new__(cls, pool: PoolSpec) -> PoolName:
        self = super().__new__(cls, pool.id)
        self.key = pool.key
        self.id = pool.id
        self.vmSize = pool.vm_size
        self.nodes = pool.target_dedicated_nodes
        self.lowPriorityNodes = pool.target_low_priority_nodes
        self.taskSlotsPerNode = pool.task_slots_per_node
        return self


def declared_pools(
    r: Renderer,
    rendered: Mapping[str, Any],
    refs: References,
    book: SecretBook,
    raw: Mapping[str, Any] | None = None,
    scope: dict[str, Any] | None = None,
) -> list[PoolSpec]:
    """The spec's pools in spec order: the `pool:` shorthand's one, or every `pools:` entry.
    `raw`: the spec before rendering, whose autoscale formulas render with their pool in scope."""
    raw = raw or {}
    shorthand = rendered.get("pool")
    by_key = rendered.get("pools")
    if shorthand is not None and by_key is not None:
        r.problem(("pools",), BOTH, key=True)
    if shorthand is not None:
        return [pool_spec(r, shorthand, ("pool",), refs, None, book, raw.get("pool"), scope)]
    out: list[PoolSpec] = []
    first_key: dict[str, str] = {}  # lower-case id -> the key that declared it first
    for key, body in (by_key or {}).items():
        spec = pool_spec(
            r, body, ("pools", key), refs, key, book, (raw.get("pools") or {}).get(key), scope
        )
        lower = spec.id.lower()
        if lower in first_key:
            r.problem(
                ("pools", key, "id"),
                f"pool id {spec.id!r} is used twice (ids ignore case; first by"
                f" pools.{first_key[lower]})",
            )
            continue
        first_key[lower] = key
        out.append(spec)
    return out


def job_pool(
    r: Renderer, job: Mapping[str, Any], path: PathKey, pools: list[PoolSpec]
) -> PoolSpec | None:
    """The pool `job` runs on, or None after recording why there is none."""
    key = job.get("pool")
    if not pools:
        r.problem(path, "jobs need a pool: add `pool:` to the spec")
        return None
    if pools[0].key is None:  # the shorthand: a job may name the pool by its id
        if key is None or str(key).lower() == pools[0].id.lower():
            return pools[0]
        r.problem(
            (*path, "pool"),
            f"the spec has one pool (`pool:`, id {pools[0].id!r}) and no `pools:`;"
            f" leave out the job's `pool` or name that pool's id, not {key!r}",
        )
        return None
    keys = [p.key for p in pools if p.key is not None]
    if key is None:
        if len(pools) == 1:
            return pools[0]
        r.problem(
            path,
            f"missing required key 'pool': the spec has {len(pools)} pools; name the"
            f" job's pool by its key (one of: {', '.join(keys)})",
            key=True,
        )
        return None
    for p in pools:
        if p.key == key:
            return p
    message = f"unknown pool {key!r}"
    close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6) or [
        k for k in keys if k.lower() == str(key).lower()
    ]
    message += f"; did you mean {close[0]!r}?" if close else f" (pools: {', '.join(keys)})"
    r.problem((*path, "pool"), message)
    return None


def pool_spec(
    r: Renderer,
    body: Mapping[str, Any],
    path: PathKey,
    refs: References,
    key: str | None,
    book: SecretBook,
    raw: Any = None,
    scope: dict[str, Any] | None = None,
) -> PoolSpec:
    """One rendered pool's spec object; a start task's problems are recorded in `r`."""
    formula = autoscale.raw_formula(raw) if isinstance(raw, Mapping) else None
    scaled = autoscale.build(r, body, formula, path, scope or {})
    start: StartTaskSpec | None = None
    containers = None
    try:
        containers = pool_containers(body.get("containers"), (*path, "containers"), book)
    except Failure as f:
        r.problem(f.path, f.message)
    st = body.get("startTask")
    if st:
        at: PathKey = (*path, "startTask")
        files: list[ResourceFileSpec] = []
        try:
            command_line = r.command_line(st, at, r.wrapper())
            for i, rf in enumerate(st.get("resourceFiles") or []):
                files.append(refs.resource_file(rf, (*at, "resourceFiles", i)))
            environment = tuple((k, str(v)) for k, v in (st.get("environment") or {}).items())
            check_batch_limits(st, at, command_line, environment, None, len(files))
        except Failure as f:
            r.problem(f.path, f.message)
            command_line = ""
        container = None
        secret_names: tuple[str, ...] = ()
        try:
            container = container_settings(st.get("container"), (*at, "container"))
            secret_names = book.names(
                st.get("secretEnvironment"), (*at, "secretEnvironment"), st.get("environment")
            )
        except Failure as f:
            r.problem(f.path, f.message)
        start = StartTaskSpec(
            command_line=command_line,
            resource_files=tuple(files),
            environment=tuple((st.get("environment") or {}).items()),
            elevated=bool(st.get("elevated", False)),
            wait_for_success=bool(st.get("waitForSuccess", True)),
            max_task_retry_count=int(st.get("maxTaskRetryCount", 0)),
            container=container,
            secret_environment=secret_names,
        )
    image = body["image"]
    return PoolSpec(
        id=body["id"],
        vm_size=body["vmSize"],
        image=ImageSpec(
            publisher=image["publisher"],
            offer=image["offer"],
            sku=image["sku"],
            node_agent_sku=image["nodeAgentSku"],
            version=image.get("version", "latest"),
        ),
        target_dedicated_nodes=int(body.get("nodes", 0)),
        target_low_priority_nodes=int(body.get("lowPriorityNodes", 0)),
        task_slots_per_node=int(body.get("taskSlotsPerNode", 1)),
        start_task=start,
        metadata=tuple((body.get("metadata") or {}).items()),
        when_idle=WhenIdle(body.get("whenIdle", "keep")),
        key=key,
        containers=containers,
        autoscale=scaled,
    )
