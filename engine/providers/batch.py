"""Batch through `azure.batch.BatchClient`: read the actual state with list calls, and write.

Reads are paged list calls `$select`ed to what the planner diffs (planning.py's module
docstring lists the shapes), never a GET per resource. Every SDK exception leaves this
module as a bspec error through the boundary `errors.sdk_errors`. Only the SDK's public API
is used: requests the SDK offers only as pollers (delete, resize) go through `send_request`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from azure.batch import BatchClient, models
from azure.core.rest import HttpRequest
from bspec.common import durations
from bspec.errors import ConflictError, NotFoundError, ServiceError, TransientServiceError
from bspec.kinds import job as job_kind
from bspec.kinds import pool as pool_kind
from bspec.kinds import task as task_kind
from bspec.kinds.base import DEFAULT_RETENTION_SECONDS
from bspec.model import FINGERPRINT_ENV, STACK_METADATA, Resource
from bspec.providers.errors import BEING_DELETED, sdk_errors
from bspec.spec import secrets

PAGE = 1000
UNLIMITED = durations.MAX_DURATION  # Batch's "no limit"
API_VERSION = "2025-06-01"  # the azure-batch SDK's own default, for the requests sent raw
MAX_CHUNK_TASKS = 100
MAX_CHUNK_BYTES = 900_000  # Batch refuses bodies of 1 MB and more
SUBMIT_STORM_RETRIES = 20  # a chunk still throttled after the pipeline's retries
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
    "enableAutoScale",
    "autoScaleFormula",
    "autoScaleEvaluationInterval",
]
JOB_SELECT = [
    "id",
    "state",
    "poolInfo",
    "priority",
    "constraints",
    "usesTaskDependencies",
    "metadata",
    "jobPreparationTask",
    "jobReleaseTask",
    "onAllTasksComplete",
    "onTaskFailure",
    "maxParallelTasks",
    "executionInfo",
]
TASK_SELECT = ["id", "state", "environmentSettings", "constraints"]

# Makes a SAS URL for a resource file or an output container: (container name, blob or None,
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
    workers: int = 16  # task collections in flight: enough to hide 50 ms of latency
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ------------------------------------------------------------------ reads
    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        with sdk_errors("batch", what):
            return fn(*args, **kw)

    def _list(
        self, what: str, fn: Callable[..., Iterable[Any]], *args: Any, **kw: Any
    ) -> list[Any]:
        with sdk_errors("batch", what):
            return list(fn(*args, max_results=PAGE, **kw))

    def _send(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        """One request through the client's public `send_request` (its pipeline: auth,
        retries, counting); raises the SDK's HttpResponseError on an error answer (call it
        inside `sdk_errors`). Returns the response."""
        headers = {"Accept": "application/json"}
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json; odata=minimalmetadata"
            content = json.dumps(body)
        request = HttpRequest(
            method,
            path if "://" in path else "/" + path.lstrip("/"),
            params={**(params or {}), "api-version": API_VERSION},
            headers=headers,
            content=content,
        )
        resp = self.client.send_request(request)
        resp.raise_for_status()
        return resp

    def send(
        self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        """One raw request outside the SDK's models, for the provider modules beside this
        one (job schedules, autoscale's operations): `_send`."""
        return self._send(method, path, params, body)

    def read_pools(self) -> list[Resource]:
        pools = self.list_raw(
            "list pools", "pools", {"$select": ",".join(POOL_SELECT), "maxresults": str(PAGE)}
        )
        return [pool_kind.from_rest(p, self.source_of) for p in pools]

    def source_of(self, url: str) -> str:
        """`<container>[/<blob>]` from a (SAS) URL under the storage account."""
        path = unquote(urlsplit(url).path)
        base = urlsplit(self.blob_base).path.rstrip("/")
        if base and path.startswith(base + "/"):
            path = path[len(base) :]
        return path.lstrip("/")

    def read_jobs(self) -> list[Resource]:
        jobs = self.list_raw(
            "list jobs", "jobs", {"$select": ",".join(JOB_SELECT), "maxresults": str(PAGE)}
        )
        return [job_kind.from_rest(j, self.source_of) for j in jobs]

    def read_tasks(self, job_id: str, job_owner: str | None) -> list[Resource]:
        """A job's tasks, read as raw JSON pages: building SDK models for 10,000 tasks
        costs more than the requests themselves."""
        tasks = self.list_raw(
            f"list tasks of job {job_id}",
            f"jobs/{quote(job_id, safe='')}/tasks",
            {"$select": ",".join(TASK_SELECT), "maxresults": str(PAGE)},
        )
        return [task_kind.from_rest(job_id, t, job_owner) for t in tasks]

    def list_raw(self, what: str, path: str, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """GET a Batch list (`path` relative to the account, e.g. `pools`) through the
        client's pipeline, following odata.nextLink, yielding the items as JSON.

        Pipelined: a thread asks for the next page as soon as a page's bytes arrive (its
        nextLink read from the page's tail), while this one decodes the page before it."""
        pages: queue.Queue[tuple[bytes | None, str | None, BaseException | None]] = queue.Queue(2)
        stop = threading.Event()

        def put(item: tuple[bytes | None, str | None, BaseException | None]) -> bool:
            while not stop.is_set():
                try:
                    pages.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def fetch() -> None:
            url, query = path, dict(params)
            try:
                while True:
                    with sdk_errors("batch", what):
                        raw = self._get_bytes(url, query)
                    nxt = _next_link(raw)
                    if nxt is None and b'"odata.nextLink"' in raw:
                        nxt = json.loads(raw).get("odata.nextLink")  # not at the tail
                    if not put((raw, nxt, None)) or not nxt:
                        return
                    parts = urlsplit(nxt)
                    url = f"{parts.scheme}://{parts.netloc}{parts.path}"
                    query = {
                        k: v[-1] for k, v in parse_qs(parts.query).items() if k != "api-version"
                    }
            except BaseException as exc:  # handed to the reader, raised there
                put((None, None, exc))

        worker = threading.Thread(target=fetch, name="bspec-pages", daemon=True)
        worker.start()
        try:
            while True:
                raw, nxt, exc = pages.get()
                if exc is not None:
                    raise exc
                assert raw is not None
                body = json.loads(raw)
                if body.get("odata.nextLink") != nxt:
                    raise ServiceError(
                        f"batch: {what}: the page's nextLink was misread", service="batch"
                    )
                yield from body.get("value", ())
                if not nxt:
                    return
        finally:
            stop.set()

    def list_page(
        self, what: str, path: str, params: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None, dict[str, str]]:
        """One page of a Batch list (no prefetch): its items, and the path and query of the
        next page (path None on the last), for readers that may stop early."""
        with sdk_errors("batch", what):
            body = json.loads(self._get_bytes(path, params))
        nxt = body.get("odata.nextLink")
        if not nxt:
            return list(body.get("value", ())), None, {}
        parts = urlsplit(nxt)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items() if k != "api-version"}
        return list(body.get("value", ())), f"{parts.scheme}://{parts.netloc}{parts.path}", query

    def _get_bytes(self, path: str, params: dict[str, str]) -> bytes:
        """One GET's body as bytes. Not streamed: the pipeline then reads the body inside
        its retry policy, so a connection dropped mid-body is retried (it decodes the JSON
        too, about 2 ms a page, on the fetching thread)."""
        request = HttpRequest(
            "GET",
            path if "://" in path else "/" + path.lstrip("/"),
            params={**params, "api-version": API_VERSION},
            headers={"Accept": "application/json"},
        )
        resp = self.client.send_request(request)
        resp.raise_for_status()
        data: bytes = resp.content
        return data

    def supported_images(self) -> list[dict[str, Any]]:
        """Batch's supported images (one paged list through the SDK): publisher, offer,
        sku, nodeAgentSku and endOfLife (a date, or None), for the plan's warnings."""
        out = []
        for i in self._list("list supported images", self.client.list_supported_images):
            ref = i.image_reference
            end = i.batch_support_end_of_life
            out.append(
                {
                    "publisher": ref.publisher or "",
                    "offer": ref.offer or "",
                    "sku": ref.sku or "",
                    "nodeAgentSku": i.node_agent_sku_id or "",
                    "endOfLife": end.date() if end is not None else None,
                    "capabilities": list(i.capabilities or ()),
                }
            )
        return out

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
                with sdk_errors("batch", what):
                    return fn()
            except ServiceError as err:
                if err.service_code in BEING_DELETED and time.monotonic() < deadline:
                    time.sleep(delay)
                    delay = min(delay * 1.5, 5.0)
                    continue
                raise

    def pool_body(self, pool: Resource, sas: SasMaker) -> dict[str, Any]:
        """The create body of a pool from its props (`kinds.pool`)."""
        p = pool.props
        img = p["image"]
        body: dict[str, Any] = {
            "id": pool.address.parts[0],
            "vmSize": p["vmSize"],
            "virtualMachineConfiguration": {
                "imageReference": {
                    "publisher": img["publisher"],
                    "offer": img["offer"],
                    "sku": img["sku"],
                    "version": img["version"],
                },
                "nodeAgentSKUId": img["nodeAgentSku"],
            },
            "targetDedicatedNodes": p["targetDedicatedNodes"],
            "targetLowPriorityNodes": p["targetLowPriorityNodes"],
            "taskSlotsPerNode": p["taskSlotsPerNode"],
            "metadata": self._metadata(p["metadata"], pool_kind.secrets_metadata(p)),
        }
        if p.get("containers") is not None:
            body["virtualMachineConfiguration"]["containerConfiguration"] = containers_body(
                p["containers"]
            )
        auto = p.get("autoScale")
        if auto is not None:  # the formula sizes it: Batch takes no node counts then
            del body["targetDedicatedNodes"], body["targetLowPriorityNodes"]
            body["enableAutoScale"] = True
            body["autoScaleFormula"] = auto["formula"]
            body["autoScaleEvaluationInterval"] = durations.format(float(auto["interval"]))
        if p["startTask"] is not None:
            body["startTask"] = self._start_task_body(p["startTask"], sas)
        return body

    def _metadata(self, user: Mapping[str, str], kept: str | None = None) -> list[dict[str, str]]:
        items = [
            {"name": STACK_METADATA, "value": self.stack},
            *({"name": k, "value": v} for k, v in user.items()),
        ]
        if kept is not None:
            items.append({"name": pool_kind.SECRETS_METADATA, "value": kept})
        return items

    def _start_task_body(self, st: Mapping[str, Any], sas: SasMaker) -> dict[str, Any]:
        body: dict[str, Any] = {
            "commandLine": st["commandLine"],
            "resourceFiles": [_rf_body(rf, sas) for rf in st["resourceFiles"]],
            "environmentSettings": [{"name": k, "value": v} for k, v in st["environment"].items()]
            + secret_settings(st.get("secretEnvironment") or ()),
            "waitForSuccess": st["waitForSuccess"],
            "maxTaskRetryCount": st["maxTaskRetryCount"],
        }
        if st.get("container") is not None:
            body["containerSettings"] = container_settings_body(st["container"])
        if st["elevated"]:
            body["userIdentity"] = {"autoUser": {"scope": "pool", "elevationLevel": "admin"}}
        return body

    def create_pool(self, pool: Resource, sas: SasMaker) -> None:
        pool_id = pool.address.parts[0]
        body = models.BatchPoolCreateOptions(self.pool_body(pool, sas))
        try:
            self._retry_being_deleted(
                f"create pool {pool_id}", lambda: self.client.create_pool(body)
            )
        except ConflictError as err:
            if err.service_code != "PoolExists" or not self._ours("pool", pool_id):
                raise

    def _ours(self, kind: str, rid: str) -> bool:
        """After an `...Exists` answer to a create (a retried POST that had already
        succeeded): whether what is there carries this stack's tag."""
        lister = self.client.list_pools if kind == "pool" else self.client.list_jobs
        found = self._list(
            f"list {kind}s", lister, filter=f"id eq '{rid}'", select=["id", "metadata"]
        )
        return bool(found) and _meta(found[0].metadata).get(STACK_METADATA) == self.stack

    def update_pool(self, pool: Resource, fields: Sequence[str], sas: SasMaker) -> None:
        """Change a live pool in place: PATCH what Batch patches, resize the node counts."""
        pool_id = pool.address.parts[0]
        self._patch_pool(pool, [f for f in fields if f not in pool_kind.RESIZE_FIELDS], sas)
        if any(f in fields for f in pool_kind.RESIZE_FIELDS):
            p = pool.props
            self.resize_pool(pool_id, p["targetDedicatedNodes"], p["targetLowPriorityNodes"])

    def _patch_pool(self, pool: Resource, fields: Sequence[str], sas: SasMaker) -> None:
        if not fields:
            return
        pool_id = pool.address.parts[0]
        full = self.pool_body(pool, sas)
        body: dict[str, Any] = {}
        if "vmSize" in fields:
            body["vmSize"] = full["vmSize"]
        if "image" in fields or "containers" in fields:
            body["virtualMachineConfiguration"] = full["virtualMachineConfiguration"]
        if "taskSlotsPerNode" in fields:
            body["taskSlotsPerNode"] = full["taskSlotsPerNode"]
        if "startTask" in fields and pool.props["startTask"] is None:
            # PATCH cannot remove a start task; replacing the properties without one does.
            self._call(
                f"update pool {pool_id}",
                self.client.replace_pool_properties,
                pool_id,
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
        elif pool_kind.secrets_metadata(pool.props) is not None and (
            "startTask" in fields or "containers" in fields
        ):
            body["metadata"] = full["metadata"]  # the digests of the secrets changed with them
        if body:
            self._call(
                f"update pool {pool_id}",
                self.client.update_pool,
                pool_id,
                models.BatchPoolUpdateOptions(body),
            )

    def resize_pool(self, pool_id: str, dedicated: int, low: int) -> None:
        """Resize, stopping a resize in progress first (Batch refuses to resize twice)."""
        body = {"targetDedicatedNodes": dedicated, "targetLowPriorityNodes": low}
        path = f"pools/{quote(pool_id, safe='')}"
        for attempt in range(60):
            try:
                with sdk_errors("batch", f"resize pool {pool_id}"):
                    self._send("POST", f"{path}/resize", body=body)
                return
            except ServiceError as err:
                if err.service_code == "PoolBeingResized" or (
                    err.service_code is None and err.status == 409 and attempt == 0
                ):
                    with sdk_errors("batch", f"stop resize of pool {pool_id}"):
                        self._send("POST", f"{path}/stopresize")
                    self.wait_pool_steady(pool_id)
                    continue
                raise

    def wait_pool_steady(self, pool_id: str, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                pools = self._list(
                    "list pools",
                    self.client.list_pools,
                    filter=f"id eq '{pool_id}'",
                    select=["id", "allocationState"],
                )
            except TransientServiceError as err:
                time.sleep(_pause(err, 0.5))  # a poll: the next one asks again
                continue
            if not pools or _state(pools[0].allocation_state) == "steady":
                return
            time.sleep(0.5)

    def delete_pool(self, pool_id: str) -> None:
        self._ignore_missing(
            f"delete pool {pool_id}",
            lambda: self._send("DELETE", f"pools/{quote(pool_id, safe='')}"),
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
            try:
                listed = self._list(f"list {kind}s", lister, filter=flt, select=["id", "state"])
            except TransientServiceError as err:
                if time.monotonic() > deadline:
                    raise
                time.sleep(_pause(err, delay))  # a poll: the next one asks again
                continue
            want &= {x.id for x in listed}
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
            with sdk_errors("batch", what):
                fn()
        except ServiceError as err:
            if isinstance(err, NotFoundError) or err.service_code in BEING_DELETED:
                return
            raise

    def job_body(self, job: Resource, sas: SasMaker | None = None) -> dict[str, Any]:
        """The create body of a job from its props (`kinds.job`): the one place a spec's job
        becomes Batch's (a job schedule's jobSpecification takes it less `id`). Always
        `onAllTasksComplete: noaction`: a job completes at once without tasks, so
        terminatejob is switched on after they are added (`switch_completion`). `sas`
        signs the preparation's and release's resource files (needed when they have any)."""
        p = job.props
        constraints: dict[str, Any] = {"maxTaskRetryCount": p["maxTaskRetryCount"]}
        if p["maxWallClockTime"] is not None:
            constraints["maxWallClockTime"] = durations.format(p["maxWallClockTime"])
        body: dict[str, Any] = {
            "id": job.address.parts[0],
            "poolInfo": {"poolId": p["poolId"]},
            "priority": p["priority"],
            "constraints": constraints,
            "usesTaskDependencies": p["usesTaskDependencies"],
            "onAllTasksComplete": "noaction",
            "metadata": self._metadata(p["metadata"]),
        }
        if p.get("preparation"):
            body["jobPreparationTask"] = _job_task_body(p["preparation"], sas)
        if p.get("release"):
            body["jobReleaseTask"] = _job_task_body(p["release"], sas, release=True)
        if p.get("onTaskFailure", "noaction") != "noaction":
            body["onTaskFailure"] = p["onTaskFailure"]
        if p.get("maxParallelTasks", -1) != -1:
            body["maxParallelTasks"] = p["maxParallelTasks"]
        return body

    def create_job(self, job: Resource, sas: SasMaker) -> None:
        job_id = job.address.parts[0]
        body = models.BatchJobCreateOptions(self.job_body(job, sas))
        try:
            with max_parallel_refused(job):
                self._retry_being_deleted(
                    f"create job {job_id}", lambda: self.client.create_job(body)
                )
        except ConflictError as err:
            if err.service_code != "JobExists" or not self._ours("job", job_id):
                raise

    def update_job(self, job: Resource, fields: Sequence[str] = ()) -> None:
        """PATCH what changed in place; onAllTasksComplete waits for `switch_completion`."""
        job_id = job.address.parts[0]
        p = job.props
        body: dict[str, Any] = {}
        if set(fields) - {"onAllTasksComplete", "maxParallelTasks"} or not fields:
            constraints: dict[str, Any] = {"maxTaskRetryCount": p["maxTaskRetryCount"]}
            constraints["maxWallClockTime"] = (
                durations.format(p["maxWallClockTime"])
                if p["maxWallClockTime"] is not None
                else UNLIMITED
            )
            body = {
                "priority": p["priority"],
                "constraints": constraints,
                "metadata": self._metadata(p["metadata"]),
            }
        if "maxParallelTasks" in fields:
            body["maxParallelTasks"] = p.get("maxParallelTasks", -1)
        if not body:
            return
        with max_parallel_refused(job):
            self._call(
                f"update job {job_id}",
                self.client.update_job,
                job_id,
                models.BatchJobUpdateOptions(body),
            )

    def switch_completion(self, job_id: str) -> None:
        """onAllTasksComplete noaction -> terminatejob, once the job's tasks are in (Batch
        cannot switch it back). A job already completed or gone needs nothing."""
        try:
            self._call(
                f"update job {job_id}",
                self.client.update_job,
                job_id,
                models.BatchJobUpdateOptions({"onAllTasksComplete": "terminatejob"}),
            )
        except ConflictError as err:
            if err.service_code not in ("JobCompleted", "JobBeingTerminated", *BEING_DELETED):
                raise

    def delete_job(self, job_id: str) -> None:
        self._ignore_missing(
            f"delete job {job_id}", lambda: self._send("DELETE", f"jobs/{quote(job_id, safe='')}")
        )

    # ------------------------------------------------------------------ tasks
    # ------------------------------------------------------------------ tasks
    def task_body(self, task: Resource, sas: SasMaker) -> dict[str, Any]:
        """The add body of a task from its props (`kinds.task`)."""
        job_id, task_id = task.address.parts
        p = task.props
        constraints: dict[str, Any] = {"maxTaskRetryCount": p["maxTaskRetryCount"]}
        if p["maxWallClockTime"] is not None:
            constraints["maxWallClockTime"] = durations.format(p["maxWallClockTime"])
        if p["retentionTime"] != DEFAULT_RETENTION_SECONDS:
            constraints["retentionTime"] = durations.format(p["retentionTime"])
        logs_url = sas(p["logsContainer"], None, "cw")
        outputs = [_of_body(o, sas) for o in p["outputFiles"]] + [
            {
                "filePattern": f"../{name}",
                "destination": {
                    "container": {
                        "containerUrl": logs_url,
                        "path": f"logs/{job_id}/{task_id}/{name}",
                    }
                },
                "uploadOptions": {"uploadCondition": "taskcompletion"},
            }
            for name in ("stdout.txt", "stderr.txt")
        ]
        body: dict[str, Any] = {
            "id": task_id,
            "commandLine": p["commandLine"],
            "resourceFiles": [_rf_body(rf, sas) for rf in p["resourceFiles"]],
            "outputFiles": outputs,
            "environmentSettings": [{"name": k, "value": v} for k, v in p["environment"].items()]
            + secret_settings(p.get("secretEnvironment") or ())
            + [{"name": FINGERPRINT_ENV, "value": p["fingerprint"]}],
            "constraints": constraints,
            "requiredSlots": p["requiredSlots"],
        }
        if p.get("container") is not None:
            body["containerSettings"] = container_settings_body(p["container"])
        if p["displayName"]:
            body["displayName"] = p["displayName"]
        if p["elevated"]:
            body["userIdentity"] = {"autoUser": {"scope": "task", "elevationLevel": "admin"}}
        if p.get("exitConditions"):
            body["exitConditions"] = p["exitConditions"]
        if p["dependsOn"]:
            dep = p["dependsOn"]
            body["dependsOn"] = {
                "taskIds": list(dep["taskIds"]),
                "taskIdRanges": [{"start": a, "end": b} for a, b in dep["taskIdRanges"]],
            }
        return body

    def update_task_constraints(self, task: Resource) -> None:
        job_id, task_id = task.address.parts
        p = task.props
        constraints: dict[str, Any] = {
            "maxTaskRetryCount": p["maxTaskRetryCount"],
            "maxWallClockTime": durations.format(p["maxWallClockTime"])
            if p["maxWallClockTime"] is not None
            else UNLIMITED,
            "retentionTime": durations.format(p["retentionTime"] or DEFAULT_RETENTION_SECONDS),
        }
        self._call(
            f"update task {job_id}/{task_id}",
            self.client.replace_task,
            job_id,
            task_id,
            models.BatchTask({"constraints": constraints}),
        )

    def reactivate_task(self, job_id: str, task_id: str) -> None:
        self._call(
            f"reactivate task {job_id}/{task_id}", self.client.reactivate_task, job_id, task_id
        )

    def terminate_task(self, job_id: str, task_id: str) -> None:
        self._call(
            f"terminate task {job_id}/{task_id}", self.client.terminate_task, job_id, task_id
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
        resp = self._send(
            "POST", f"jobs/{quote(job_id, safe='')}/addtaskcollection", body={"value": chunk}
        )
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
        throttled = attempt = 0
        while attempt < 6:
            try:
                results = self._retry_being_deleted(
                    f"add tasks to job {job_id}",
                    functools.partial(self._post_collection, job_id, pending),
                )
            except TransientServiceError as err:
                # Still throttled or busy after the pipeline's own retries (a 429 storm):
                # wait it out and send the chunk again; a task the lost answer had added
                # comes back as TaskExists, checked by fingerprint, so none is duplicated.
                throttled += 1
                if throttled > SUBMIT_STORM_RETRIES:
                    raise
                time.sleep(_pause(err, min(0.5 * 2**throttled, 10.0)))
                continue
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
            attempt += 1
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


def _job_task_body(
    t: Mapping[str, Any], sas: SasMaker | None, *, release: bool = False
) -> dict[str, Any]:
    """A jobPreparationTask (or jobReleaseTask) body from its props (`kinds.jobparts`)."""
    if t["resourceFiles"] and sas is None:
        raise ValueError("a preparation or release with resource files needs a SasMaker")
    body: dict[str, Any] = {
        "commandLine": t["commandLine"],
        "resourceFiles": [_rf_body(rf, sas) for rf in t["resourceFiles"]] if sas else [],
        "environmentSettings": [{"name": k, "value": v} for k, v in t["environment"].items()],
    }
    if t["elevated"]:
        body["userIdentity"] = {"autoUser": {"scope": "task", "elevationLevel": "admin"}}
    c = t.get("container")
    if c:
        settings: dict[str, Any] = {"imageName": c["image"]}
        if c.get("runOptions"):
            settings["containerRunOptions"] = c["runOptions"]
        if c.get("workingDirectory") == "containerimagedefault":
            settings["workingDirectory"] = "containerImageDefault"
        body["containerSettings"] = settings
    limits: dict[str, Any] = {}
    if t["maxWallClockTime"] is not None:
        limits["maxWallClockTime"] = durations.format(t["maxWallClockTime"])
    if t["retentionTime"] != DEFAULT_RETENTION_SECONDS:
        limits["retentionTime"] = durations.format(t["retentionTime"])
    if release:
        body.update(limits)
    else:
        body["waitForSuccess"] = t["waitForSuccess"]
        limits["maxTaskRetryCount"] = t["maxTaskRetryCount"]
        body["constraints"] = limits
    return body


@contextlib.contextmanager
def max_parallel_refused(job: Resource) -> Iterator[None]:
    """Azure enables maxParallelTasks per account: its refusal (403, "Property
    maxParallelTasks is not enabled for current account") said plainly, never ignored."""
    try:
        yield
    except ServiceError as err:
        limit = job.props.get("maxParallelTasks", -1)
        if limit == -1 or not (err.status == 403 or "maxParallelTasks" in str(err)):
            raise
        job_id = job.address.parts[0]
        raise ServiceError(
            f"batch: job {job_id}: the Batch account refused maxParallelTasks ({limit}):"
            " Azure enables it per account",
            service="batch",
            status=err.status,
            service_code=err.service_code,
            hint=f"remove maxParallelTasks from job {job_id} in the spec, or ask Azure"
            " support to enable it for the account (a support request on the Batch account)",
        ) from err


_NEXT_LINK = re.compile(rb'"odata\.nextLink"\s*:\s*("(?:[^"\\]|\\.)*")\s*}\s*$')


def _next_link(raw: bytes) -> str | None:
    """A list page's odata.nextLink read from its last bytes (where Batch writes it),
    without decoding the page; None when it is not there."""
    m = _NEXT_LINK.search(raw, max(0, len(raw) - 8192))
    return str(json.loads(m[1])) if m else None


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


def secret_settings(names: Iterable[str]) -> list[dict[str, str]]:
    """Environment settings for secrets: the values read now from bspec's environment."""
    return [{"name": n, "value": secrets.value(n)} for n in names]


def container_settings_body(c: Mapping[str, Any]) -> dict[str, Any]:
    """containerSettings from a container's normal form (`kinds.pool.container_props`)."""
    body: dict[str, Any] = {"imageName": c["image"], "workingDirectory": c["workingDirectory"]}
    if c.get("runOptions"):
        body["containerRunOptions"] = c["runOptions"]
    return body


def containers_body(c: Mapping[str, Any]) -> dict[str, Any]:
    """containerConfiguration; registry passwords read now from bspec's environment."""
    registries = []
    for r in c["registries"]:
        reg: dict[str, Any] = {"registryServer": r["server"]}
        if r.get("identity"):
            reg["identityReference"] = {"resourceId": r["identity"]}
        else:
            reg["username"] = r["username"]
            reg["password"] = secrets.value(r["passwordEnv"])
        registries.append(reg)
    body: dict[str, Any] = {"type": c["type"], "containerImageNames": list(c["images"])}
    if registries:
        body["containerRegistries"] = registries
    return body


def _rf_body(rf: Mapping[str, Any], sas: SasMaker) -> dict[str, Any]:
    """A resource file body from its ref (`<container>[/<blob>]`), with a fresh SAS."""
    container, _, blob = rf["source"].partition("/")
    body: dict[str, Any]
    if not blob:
        body = {"storageContainerUrl": sas(container, None, "rl")}
        if rf["prefix"]:
            body["blobPrefix"] = rf["prefix"]
        if rf["filePath"]:
            body["filePath"] = rf["filePath"]
    else:
        body = {"httpUrl": sas(container, blob, "r"), "filePath": rf["filePath"] or blob}
    if rf["fileMode"]:
        body["fileMode"] = rf["fileMode"]
    return body


def _of_body(o: Mapping[str, Any], sas: SasMaker) -> dict[str, Any]:
    dest: dict[str, Any] = {"containerUrl": sas(o["container"], None, "cw")}
    if o["path"]:
        dest["path"] = o["path"]
    return {
        "filePattern": o["pattern"],
        "destination": {"container": dest},
        "uploadOptions": {"uploadCondition": f"task{o['when']}"},
    }


def _pause(err: TransientServiceError, default: float) -> float:
    """How long to wait before polling again: the service's Retry-After when it gave one."""
    return min(err.retry_after, 30.0) if err.retry_after is not None else default


def _state(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


__all__ = [
    "BatchProvider",
    "ConflictError",
    "SasMaker",
    "container_settings_body",
    "containers_body",
    "iso_duration",
    "secret_settings",
]
