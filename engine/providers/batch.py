"""Batch through `azure.batch.BatchClient`: read the actual state with list calls, and write.

Reads are paged list calls `$select`ed to what the planner diffs (planning.py's module
docstring lists the shapes), never a GET per resource. Every SDK exception leaves this
module as a bspec error through `errors.translate`.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from azure.batch import BatchClient, models
from azure.core.exceptions import AzureError
from azure.core.rest import HttpRequest
from bspec.common import durations
from bspec.errors import ConflictError, ServiceError
from bspec.model import (
    FINGERPRINT_ENV,
    STACK_METADATA,
    Address,
    JobSpec,
    OutputFileSpec,
    PoolSpec,
    Resource,
    ResourceFileSpec,
    StartTaskSpec,
    TaskSpec,
)
from bspec.planning import seconds
from bspec.providers.errors import BEING_DELETED, translate

PAGE = 1000
MAX_CHUNK_TASKS = 100
MAX_CHUNK_BYTES = 900_000  # Batch refuses bodies of 1 MB and more
POOL_SELECT = [
    "id",
    "state",
    "allocationState",
    "vmSize",
    "virtualMachineConfiguration",
    "taskSlotsPerNode",
    "targetDedicatedNodes",
    "targetLowPriorityNodes",
    "currentDedicatedNodes",
    "currentLowPriorityNodes",
    "startTask",
    "metadata",
]
JOB_SELECT = [
    "id",
    "state",
    "poolInfo",
    "priority",
    "constraints",
    "usesTaskDependencies",
    "metadata",
]
TASK_SELECT = ["id", "state", "environmentSettings", "constraints"]

# Makes a SAS URL for a resource file or an output container: (container key, blob or None,
# permission) -> URL. Supplied by the storage provider at apply time; never stored.
SasMaker = Callable[[str, "str | None", str], str]


def iso_duration(td: timedelta) -> str:
    """timedelta as an ISO 8601 duration Batch accepts (P1DT2H3M4.5S)."""
    return durations.format(td)


def parse_duration(text: str | None) -> timedelta | None:
    """An ISO 8601 duration as Batch writes it (P7D, PT5M, P10675199DT2H48M5.4775807S)."""
    if not text:
        return None
    try:
        return durations.parse(text)
    except ValueError:
        return None


def _meta(items: Iterable[Any] | None) -> dict[str, str]:
    return {m.name: m.value for m in (items or ())}


def _env(items: Iterable[Any] | None) -> dict[str, str]:
    return {e.name: e.value or "" for e in (items or ())}


@dataclass
class BatchProvider:
    """All of bspec's Batch calls. `blob_base` is the storage account URL, to read
    resource file URLs back as `<container>[/<blob>]` references."""

    client: BatchClient
    blob_base: str
    stack: str
    workers: int = 8
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ reads
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except AzureError as exc:
            raise translate(exc, "batch", what) from exc

    def _list(
        self, what: str, fn: Callable[..., Iterable[Any]], *args: Any, **kw: Any
    ) -> list[Any]:
        try:
            return list(fn(*args, max_results=PAGE, **kw))
        except AzureError as exc:
            raise translate(exc, "batch", what) from exc

    def read_pools(self) -> list[Resource]:
        pools = self._list("list pools", self.client.list_pools, select=POOL_SELECT)
        return [self._pool_resource(p) for p in pools]

    def _pool_resource(self, p: Any) -> Resource:
        meta = _meta(p.metadata)
        owner = meta.pop(STACK_METADATA, None)
        vmc = p.virtual_machine_configuration
        img = vmc.image_reference if vmc else None
        props = {
            "vmSize": (p.vm_size or "").lower(),
            "image": {
                "publisher": getattr(img, "publisher", None),
                "offer": getattr(img, "offer", None),
                "sku": getattr(img, "sku", None),
                "version": getattr(img, "version", None) or "latest",
                "nodeAgentSku": getattr(vmc, "node_agent_sku_id", None),
            },
            "taskSlotsPerNode": p.task_slots_per_node or 1,
            "targetDedicatedNodes": p.target_dedicated_nodes or 0,
            "targetLowPriorityNodes": p.target_low_priority_nodes or 0,
            "startTask": self._start_task_props(p.start_task),
            "metadata": meta,
        }
        return Resource(
            Address.pool(p.id),
            props,
            owner=owner,
            state=_state(p.state),
            info={
                "currentDedicatedNodes": p.current_dedicated_nodes or 0,
                "currentLowPriorityNodes": p.current_low_priority_nodes or 0,
                "allocationState": _state(p.allocation_state),
            },
        )

    def _start_task_props(self, st: Any) -> dict[str, Any] | None:
        if st is None:
            return None
        auto = getattr(getattr(st, "user_identity", None), "auto_user", None)
        elevated = _state(getattr(auto, "elevation_level", None)) == "admin"
        return {
            "commandLine": st.command_line,
            "resourceFiles": [self._rf_ref(rf) for rf in (st.resource_files or ())],
            "environment": _env(st.environment_settings),
            "elevated": elevated,
            "waitForSuccess": bool(st.wait_for_success),
            "maxTaskRetryCount": st.max_task_retry_count or 0,
        }

    def _rf_ref(self, rf: Any) -> dict[str, Any]:
        url = rf.storage_container_url or rf.http_url or ""
        return {
            "source": self.source_of(url),
            "prefix": rf.blob_prefix,
            "filePath": rf.file_path,
            "fileMode": rf.file_mode,
        }

    def source_of(self, url: str) -> str:
        """`<container>[/<blob>]` from a (SAS) URL under the storage account."""
        path = unquote(urlsplit(url).path)
        base = urlsplit(self.blob_base).path.rstrip("/")
        if base and path.startswith(base + "/"):
            path = path[len(base) :]
        return path.lstrip("/")

    def read_jobs(self) -> list[Resource]:
        jobs = self._list("list jobs", self.client.list_jobs, select=JOB_SELECT)
        out = []
        for j in jobs:
            meta = _meta(j.metadata)
            owner = meta.pop(STACK_METADATA, None)
            c = j.constraints
            props = {
                "poolId": getattr(j.pool_info, "pool_id", None),
                "priority": j.priority or 0,
                "maxWallClockTime": seconds(getattr(c, "max_wall_clock_time", None)),
                "maxTaskRetryCount": getattr(c, "max_task_retry_count", None) or 0,
                "usesTaskDependencies": bool(j.uses_task_dependencies),
                "metadata": meta,
            }
            out.append(Resource(Address.job(j.id), props, owner=owner, state=_state(j.state)))
        return out

    def read_tasks(self, job_id: str, job_owner: str | None) -> list[Resource]:
        """A job's tasks, read as raw JSON pages: building SDK models for 10,000 tasks
        costs more than the requests themselves."""
        tasks = self._raw_list(
            f"list tasks of job {job_id}",
            f"jobs/{quote(job_id, safe='')}/tasks",
            {"$select": ",".join(TASK_SELECT), "maxresults": str(PAGE)},
        )
        return [self._task_resource(job_id, t, job_owner) for t in tasks]

    def _raw_list(self, what: str, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """GET a Batch list through the client's own pipeline (auth, retries, counting),
        following odata.nextLink, yielding the items as JSON."""
        base = str(self.client._config.endpoint).rstrip("/")
        version = str(self.client._config.api_version)
        url, query = f"{base}/{path}", {**params, "api-version": version}
        while True:
            try:
                resp = self.client.send_request(HttpRequest("GET", url, params=query))
                resp.raise_for_status()
                body = resp.json()
            except AzureError as exc:
                raise translate(exc, "batch", what) from exc
            yield from body.get("value", ())
            nxt = body.get("odata.nextLink")
            if not nxt:
                return
            parts = urlsplit(nxt)
            url = f"{parts.scheme}://{parts.netloc}{parts.path}"
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            query["api-version"] = version

    def _task_resource(self, job_id: str, t: dict[str, Any], job_owner: str | None) -> Resource:
        env = {e.get("name"): e.get("value") for e in t.get("environmentSettings") or ()}
        fp = env.get(FINGERPRINT_ENV)
        c = t.get("constraints") or {}
        props = {
            "fingerprint": fp,
            "maxWallClockTime": seconds(parse_duration(c.get("maxWallClockTime"))),
            "retentionTime": seconds(parse_duration(c.get("retentionTime")), 7 * 24 * 3600.0),
            "maxTaskRetryCount": int(c.get("maxTaskRetryCount") or 0),
        }
        return Resource(
            Address.task(job_id, str(t["id"])),
            props,
            owner=job_owner if fp else None,
            state=_state(t.get("state")),
        )

    def task_counts(self, job_id: str) -> dict[str, int]:
        r = self._call(f"task counts of job {job_id}", self.client.get_job_task_counts, job_id)
        c = r.task_counts
        return {
            "active": c.active,
            "running": c.running,
            "completed": c.completed,
            "succeeded": c.succeeded,
            "failed": c.failed,
        }

    def list_tasks_raw(
        self, job_id: str, filter: str | None = None, select: Sequence[str] | None = None
    ) -> list[Any]:
        """Tasks of a job as SDK models (for watching); `filter` is Batch OData."""
        return self._list(
            f"list tasks of job {job_id}",
            self.client.list_tasks,
            job_id,
            filter=filter,
            select=list(select) if select else None,
        )

    # ------------------------------------------------------------------ writes
    def _retry_being_deleted(self, what: str, fn: Callable[[], Any], timeout: float = 300.0) -> Any:
        """Run `fn`, waiting out PoolBeingDeleted/JobBeingDeleted answers."""
        deadline = time.monotonic() + timeout
        delay = 0.2
        while True:
            try:
                return fn()
            except AzureError as exc:
                err = translate(exc, "batch", what)
                if err.service_code in BEING_DELETED and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 1.5, 5.0)
                    continue
                raise err from exc

    def pool_body(self, spec: PoolSpec, sas: SasMaker) -> dict[str, Any]:
        img = spec.image
        body: dict[str, Any] = {
            "id": spec.id,
            "vmSize": spec.vm_size,
            "virtualMachineConfiguration": {
                "imageReference": {
                    "publisher": img.publisher,
                    "offer": img.offer,
                    "sku": img.sku,
                    "version": img.version,
                },
                "nodeAgentSKUId": img.node_agent_sku,
            },
            "targetDedicatedNodes": spec.target_dedicated_nodes,
            "targetLowPriorityNodes": spec.target_low_priority_nodes,
            "taskSlotsPerNode": spec.task_slots_per_node,
            "metadata": self._metadata(spec.metadata),
        }
        if spec.start_task is not None:
            body["startTask"] = self._start_task_body(spec.start_task, sas)
        return body

    def _metadata(self, user: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
        return [
            {"name": STACK_METADATA, "value": self.stack},
            *({"name": k, "value": v} for k, v in user),
        ]

    def _start_task_body(self, st: StartTaskSpec, sas: SasMaker) -> dict[str, Any]:
        body: dict[str, Any] = {
            "commandLine": st.command_line,
            "resourceFiles": [_rf_body(rf, sas) for rf in st.resource_files],
            "environmentSettings": [{"name": k, "value": v} for k, v in st.environment],
            "waitForSuccess": st.wait_for_success,
            "maxTaskRetryCount": st.max_task_retry_count,
        }
        if st.elevated:
            body["userIdentity"] = {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
        return body

    def create_pool(self, spec: PoolSpec, sas: SasMaker) -> None:
        body = models.BatchPoolCreateOptions(self.pool_body(spec, sas))
        try:
            self._retry_being_deleted(
                f"create pool {spec.id}", lambda: self.client.create_pool(body)
            )
        except ConflictError as err:
            if err.service_code != "PoolExists" or not self._ours("pool", spec.id):
                raise

    def _ours(self, kind: str, rid: str) -> bool:
        """After an `...Exists` answer to a create (a retried POST that had already
        succeeded): whether what is there carries this stack's tag."""
        lister = self.client.list_pools if kind == "pool" else self.client.list_jobs
        found = self._list(
            f"list {kind}s", lister, filter=f"id eq '{rid}'", select=["id", "metadata"]
        )
        return bool(found) and _meta(found[0].metadata).get(STACK_METADATA) == self.stack

    def patch_pool(self, spec: PoolSpec, fields: Sequence[str], sas: SasMaker) -> None:
        full = self.pool_body(spec, sas)
        body: dict[str, Any] = {}
        if "vmSize" in fields:
            body["vmSize"] = full["vmSize"]
        if "image" in fields:
            body["virtualMachineConfiguration"] = full["virtualMachineConfiguration"]
        if "taskSlotsPerNode" in fields:
            body["taskSlotsPerNode"] = full["taskSlotsPerNode"]
        if "startTask" in fields and spec.start_task is None:
            # PATCH cannot remove a start task; replacing the properties without one does.
            self._call(
                f"update pool {spec.id}",
                self.client.replace_pool_properties,
                spec.id,
                models.BatchPoolReplaceOptions(
                    {
                        "certificateReferences": [],
                        "applicationPackageReferences": [],
                        "metadata": full["metadata"],
                    }
                ),
            )
            body.pop("metadata", None)
            fields = [f for f in fields if f not in ("startTask", "metadata", "owner")]
        elif "startTask" in fields:
            body["startTask"] = full["startTask"]
        if "metadata" in fields or "owner" in fields:
            body["metadata"] = full["metadata"]
        if body:
            self._call(
                f"update pool {spec.id}",
                self.client.update_pool,
                spec.id,
                models.BatchPoolUpdateOptions(body),
            )

    def resize_pool(self, pool_id: str, dedicated: int, low: int) -> None:
        """Resize, stopping a resize in progress first (Batch refuses to resize twice)."""
        body = models.BatchPoolResizeOptions(
            {"targetDedicatedNodes": dedicated, "targetLowPriorityNodes": low}
        )
        for attempt in range(60):
            try:
                self.client._resize_pool_internal(pool_id, body)
                return
            except AzureError as exc:
                err = translate(exc, "batch", f"resize pool {pool_id}")
                if err.service_code == "PoolBeingResized" or (
                    err.service_code is None and err.status == 409 and attempt == 0
                ):
                    self._call(
                        f"stop resize of pool {pool_id}",
                        self.client._stop_pool_resize_internal,
                        pool_id,
                    )
                    self.wait_pool_steady(pool_id)
                    continue
                raise err from exc

    def wait_pool_steady(self, pool_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pools = self._list(
                "list pools",
                self.client.list_pools,
                filter=f"id eq '{pool_id}'",
                select=["id", "allocationState"],
            )
            if not pools or _state(pools[0].allocation_state) == "steady":
                return
            time.sleep(0.5)

    def delete_pool(self, pool_id: str) -> None:
        self._ignore_missing(
            f"delete pool {pool_id}", lambda: self.client._delete_pool_internal(pool_id)
        )

    def wait_gone(self, kind: str, ids: Sequence[str], timeout: float = 600.0) -> None:
        """Wait until the pools or jobs `ids` are no longer listed (deletes are async)."""
        want = set(ids)
        if not want:
            return
        deadline = time.monotonic() + timeout
        delay = 0.2
        lister = self.client.list_pools if kind == "pool" else self.client.list_jobs
        while True:
            flt = " or ".join(f"id eq '{i}'" for i in sorted(want))
            present = {
                x.id
                for x in self._list(f"list {kind}s", lister, filter=flt, select=["id", "state"])
            }
            want &= present
            if not want:
                return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"batch: {kind}s still being deleted: {', '.join(want)}", service="batch"
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 3.0)

    def _ignore_missing(self, what: str, fn: Callable[[], Any]) -> None:
        try:
            fn()
        except AzureError as exc:
            err = translate(exc, "batch", what)
            if err.status == 404 or err.service_code in BEING_DELETED:
                return
            raise err from exc

    def job_body(self, spec: JobSpec) -> dict[str, Any]:
        constraints: dict[str, Any] = {"maxTaskRetryCount": spec.constraints.max_task_retry_count}
        if spec.constraints.max_wall_clock_time is not None:
            constraints["maxWallClockTime"] = iso_duration(spec.constraints.max_wall_clock_time)
        return {
            "id": spec.id,
            "poolInfo": {"poolId": spec.pool_id},
            "priority": spec.priority,
            "constraints": constraints,
            "usesTaskDependencies": spec.uses_task_dependencies,
            "onAllTasksComplete": "noaction",
            "metadata": self._metadata(spec.metadata),
        }

    def create_job(self, spec: JobSpec) -> None:
        body = models.BatchJobCreateOptions(self.job_body(spec))
        try:
            self._retry_being_deleted(f"create job {spec.id}", lambda: self.client.create_job(body))
        except ConflictError as err:
            if err.service_code != "JobExists" or not self._ours("job", spec.id):
                raise

    def update_job(self, spec: JobSpec) -> None:
        full = self.job_body(spec)
        body = {k: full[k] for k in ("priority", "constraints", "metadata")}
        if "maxWallClockTime" not in body["constraints"]:
            body["constraints"]["maxWallClockTime"] = "P10675199DT2H48M5.4775807S"
        self._call(
            f"update job {spec.id}",
            self.client.update_job,
            spec.id,
            models.BatchJobUpdateOptions(body),
        )

    def delete_job(self, job_id: str) -> None:
        self._ignore_missing(
            f"delete job {job_id}", lambda: self.client._delete_job_internal(job_id)
        )

    # ------------------------------------------------------------------ tasks
    def task_body(self, t: TaskSpec, sas: SasMaker, logs_key: str) -> dict[str, Any]:
        c = t.constraints
        constraints: dict[str, Any] = {"maxTaskRetryCount": c.max_task_retry_count}
        if c.max_wall_clock_time is not None:
            constraints["maxWallClockTime"] = iso_duration(c.max_wall_clock_time)
        if c.retention_time is not None:
            constraints["retentionTime"] = iso_duration(c.retention_time)
        logs_url = sas(logs_key, None, "cw")
        outputs = [_of_body(o, sas) for o in t.output_files] + [
            {
                "filePattern": f"../{name}",
                "destination": {
                    "container": {
                        "containerUrl": logs_url,
                        "path": f"logs/{t.job_id}/{t.id}/{name}",
                    }
                },
                "uploadOptions": {"uploadCondition": "taskcompletion"},
            }
            for name in ("stdout.txt", "stderr.txt")
        ]
        body: dict[str, Any] = {
            "id": t.id,
            "commandLine": t.command_line,
            "resourceFiles": [_rf_body(rf, sas) for rf in t.resource_files],
            "outputFiles": outputs,
            "environmentSettings": [{"name": k, "value": v} for k, v in t.environment]
            + [{"name": FINGERPRINT_ENV, "value": t.fingerprint}],
            "constraints": constraints,
            "requiredSlots": t.required_slots,
        }
        if t.display_name:
            body["displayName"] = t.display_name
        if t.elevated:
            body["userIdentity"] = {"autoUser": {"scope": "task", "elevationLevel": "admin"}}
        if t.depends_on or t.depends_on_ranges:
            body["dependsOn"] = {
                "taskIds": list(t.depends_on),
                "taskIdRanges": [{"start": a, "end": b} for a, b in t.depends_on_ranges],
            }
        return body

    def update_task_constraints(self, t: TaskSpec) -> None:
        c = t.constraints
        constraints: dict[str, Any] = {
            "maxTaskRetryCount": c.max_task_retry_count,
            "maxWallClockTime": iso_duration(c.max_wall_clock_time)
            if c.max_wall_clock_time is not None
            else "P10675199DT2H48M5.4775807S",
            "retentionTime": iso_duration(c.retention_time or timedelta(days=7)),
        }
        self._call(
            f"update task {t.job_id}/{t.id}",
            self.client.replace_task,
            t.job_id,
            t.id,
            models.BatchTask({"constraints": constraints}),
        )

    def delete_task(self, job_id: str, task_id: str) -> None:
        self._ignore_missing(
            f"delete task {job_id}/{task_id}", lambda: self.client.delete_task(job_id, task_id)
        )

    def add_tasks(
        self,
        job_id: str,
        bodies: Sequence[dict[str, Any]],
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Submit tasks in chunks of <= 100 and < 1 MB, several requests in flight.

        A TaskExists answer counts as success when the task there carries the same
        fingerprint, so a retried or interrupted submission never duplicates."""
        chunks = list(_chunks(bodies))
        errors: list[str] = []
        exists: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for failed, existing in pool.map(lambda ch: self._submit(job_id, ch), chunks):
                errors.extend(failed)
                exists.extend(existing)
                if progress:
                    progress(0)
        if exists:
            errors.extend(self._check_existing(job_id, exists))
        if errors:
            shown = "; ".join(errors[:5]) + (
                f"; and {len(errors) - 5} more" if len(errors) > 5 else ""
            )
            raise ServiceError(
                f"batch: adding tasks to job {job_id} failed: {shown}", service="batch"
            )

    def _post_collection(self, job_id: str, chunk: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One AddTaskCollection as raw JSON through the client's pipeline (auth, retries,
        counting): the SDK's model serialization costs more CPU than the request."""
        base = str(self.client._config.endpoint).rstrip("/")
        request = HttpRequest(
            "POST",
            f"{base}/jobs/{quote(job_id, safe='')}/addtaskcollection",
            params={"api-version": str(self.client._config.api_version)},
            headers={
                "Content-Type": "application/json; odata=minimalmetadata",
                "Accept": "application/json",
            },
            content=json.dumps({"value": chunk}),
        )
        resp = self.client.send_request(request)
        resp.raise_for_status()
        values: list[dict[str, Any]] = resp.json().get("value", [])
        return values

    def _submit(
        self,
        job_id: str,
        chunk: list[dict[str, Any]],
    ) -> tuple[list[str], list[dict[str, Any]]]:
        pending = chunk
        failed: list[str] = []
        existing: list[dict[str, Any]] = []
        for attempt in range(6):
            try:
                results = self._retry_being_deleted(
                    f"add tasks to job {job_id}",
                    functools.partial(self._post_collection, job_id, pending),
                )
            except ServiceError as err:
                if (
                    err.service_code in ("RequestBodyTooLarge", "RequestEntityTooLarge")
                    and len(pending) > 1
                ):
                    half = len(pending) // 2
                    f1, e1 = self._submit(job_id, pending[:half])
                    f2, e2 = self._submit(job_id, pending[half:])
                    return failed + f1 + f2, existing + e1 + e2
                raise
            by_id = {b["id"]: b for b in pending}
            retry: list[dict[str, Any]] = []
            for r in results:
                status = str(r.get("status", "")).lower()
                if status == "success":
                    continue
                error = r.get("error") or {}
                code = error.get("code")
                task_id = r.get("taskId")
                if code == "TaskExists" and task_id in by_id:
                    existing.append(by_id[task_id])
                elif status == "servererror" and task_id in by_id:
                    retry.append(by_id[task_id])
                else:
                    msg = (error.get("message") or {}).get("value") or ""
                    failed.append(f"{task_id}: {code}: {msg}".rstrip(": "))
            if not retry:
                return failed, existing
            pending = retry
            time.sleep(min(0.2 * 2**attempt, 5.0))
        failed.extend(f"{b['id']}: server error" for b in pending)
        return failed, existing

    def _check_existing(self, job_id: str, bodies: list[dict[str, Any]]) -> list[str]:
        """Tasks that answered TaskExists: fine when their fingerprint matches ours."""
        want = {b["id"]: _fingerprint_of(b) for b in bodies}
        have: dict[str, str | None] = {}
        ids = sorted(want)
        for i in range(0, len(ids), 50):
            flt = " or ".join(f"id eq '{x}'" for x in ids[i : i + 50])
            for t in self.list_tasks_raw(job_id, filter=flt, select=["id", "environmentSettings"]):
                have[t.id] = _env(t.environment_settings).get(FINGERPRINT_ENV)
        return [
            f"{i}: TaskExists with a different definition" for i in ids if have.get(i) != want[i]
        ]


def _fingerprint_of(body: dict[str, Any]) -> str | None:
    for e in body.get("environmentSettings", ()):
        if e["name"] == FINGERPRINT_ENV:
            return str(e["value"])
    return None


def _chunks(bodies: Sequence[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    size = 20
    for b in bodies:
        n = len(json.dumps(b)) + 1
        if chunk and (len(chunk) >= MAX_CHUNK_TASKS or size + n > MAX_CHUNK_BYTES):
            yield chunk
            chunk, size = [], 20
        chunk.append(b)
        size += n
    if chunk:
        yield chunk


def _rf_body(rf: ResourceFileSpec, sas: SasMaker) -> dict[str, Any]:
    body: dict[str, Any]
    if rf.blob is None:
        body = {"storageContainerUrl": sas(rf.container, None, "rl")}
        if rf.prefix:
            body["blobPrefix"] = rf.prefix
    else:
        body = {"httpUrl": sas(rf.container, rf.blob, "r"), "filePath": rf.file_path or rf.blob}
    if rf.blob is None and rf.file_path:
        body["filePath"] = rf.file_path
    if rf.file_mode:
        body["fileMode"] = rf.file_mode
    return body


def _of_body(o: OutputFileSpec, sas: SasMaker) -> dict[str, Any]:
    dest: dict[str, Any] = {"containerUrl": sas(o.container, None, "cw")}
    if o.path:
        dest["path"] = o.path
    return {
        "filePattern": o.pattern,
        "destination": {"container": dest},
        "uploadOptions": {"uploadCondition": f"task{o.when.value}"},
    }


def _state(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


__all__ = ["BatchProvider", "ConflictError", "SasMaker", "iso_duration"]
