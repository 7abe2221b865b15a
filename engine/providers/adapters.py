"""The adapters: per kind, how a plan's changes become requests and how the services are
read into the kind's normal form. `ADAPTERS` is the one table, by kind, that the applier
(`applying.apply`) and `read_actual` loop over; a new kind adds its adapter here (or
registers it: `ADAPTERS[kind] = adapter`) and neither needs an edit.

An adapter's `apply` gets the kind's pending changes (no no-ops), in plan order, and an
`ApplyRun`; its `read` starts its list calls on the shared thread pool and returns what
collects them, so independent kinds read in parallel while one that depends on another
(blobs on containers, tasks on jobs) collects after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import bspec.providers.schedules as schedules
from bspec.errors import NotFoundError
from bspec.kinds import task as task_kind
from bspec.model import LOGS_KEY, Action, Change, DesiredState, Kind, Resource
from bspec.providers import autoscale
from bspec.providers.batch import BatchProvider, SasMaker
from bspec.providers.storage import StorageProvider

T = TypeVar("T")

Progress = Callable[[str, int, str], AbstractContextManager[Callable[[int], None]]]


@dataclass
class ApplyResult:
    bytes_uploaded: int = 0
    blobs_uploaded: int = 0
    tasks_submitted: int = 0
    tasks_deleted: int = 0

    def to_json(self) -> dict[str, int]:
        return {
            "bytesUploaded": self.bytes_uploaded,
            "blobsUploaded": self.blobs_uploaded,
            "tasksSubmitted": self.tasks_submitted,
            "tasksDeleted": self.tasks_deleted,
        }


@dataclass
class ApplyRun:
    """One apply's state, handed to each kind's adapter."""

    batch: BatchProvider
    storage: StorageProvider
    sas: SasMaker
    say: Callable[[str], None]
    progress: Progress
    parallel_uploads: bool = True
    result: ApplyResult = field(default_factory=ApplyResult)


@dataclass
class ReadRun:
    """One `read_actual`'s state: the clients, the shared pool, what was read so far."""

    desired: DesiredState
    batch: BatchProvider
    storage: StorageProvider
    pool: Executor
    read: dict[Kind, list[Resource]] = field(default_factory=dict)
    schedules: bool = False  # list job schedules even when the spec has none (destroy)
    evaluate: bool = False  # evaluate existing autoscale pools' formulas (plan shows it)


Collect = Callable[[], list[Resource]]


class Adapter(Protocol):
    def apply(self, changes: list[Change], run: ApplyRun) -> None: ...

    def read(self, run: ReadRun) -> Collect: ...


def parallel(fn: Callable[[T], Any], items: Sequence[T], workers: int = 8) -> None:
    if not items:
        return
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        list(pool.map(fn, items))


def afters(changes: Sequence[Change], *actions: Action) -> list[Resource]:
    return [c.after for c in changes if c.action in actions and c.after is not None]


def container_keys(desired: DesiredState) -> dict[str, str]:
    """Real container name -> key, the logs container included."""
    names = {c.name: c.key for c in desired.containers}
    names[desired.logs_container.name] = LOGS_KEY
    return names


class Containers:
    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        ensure = afters(changes, Action.CREATE, Action.UPDATE)
        parallel(lambda r: run.storage.ensure_container(str(r.props["name"])), ensure)

    def read(self, run: ReadRun) -> Collect:
        f = run.pool.submit(run.storage.read_containers, container_keys(run.desired))
        return f.result


class Blobs:
    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        storage = run.storage
        deletes: dict[str, list[str]] = defaultdict(list)
        for c in changes:
            if c.action is Action.DELETE and c.before is not None:
                key, name = c.address.parts
                deletes[_container_of(c.before, key)].append(name)
        for container, blob_names in deletes.items():
            storage.delete_blobs(container, blob_names)
        uploads = afters(changes, Action.CREATE, Action.UPDATE)
        if not uploads:
            return
        items = [
            (b.props["container"], b.address.parts[1], b.props["path"], b.props["md5"])
            for b in uploads
        ]
        total = sum(int(b.props["size"]) for b in uploads)
        noun = "file" if len(items) == 1 else "files"
        with run.progress(f"Uploading {len(items):,} {noun}", total, "bytes") as advance:
            run.result.bytes_uploaded += storage.upload_many(
                items, progress=advance, parallel=run.parallel_uploads
            )
        run.result.blobs_uploaded += len(items)

    def read(self, run: ReadRun) -> Collect:
        """One listing per spec container; a container that does not exist (yet) or is
        being deleted has no blobs."""
        futures = [
            run.pool.submit(run.storage.read_blobs, c.name, c.key) for c in run.desired.containers
        ]

        def collect() -> list[Resource]:
            keys = container_keys(run.desired)
            present = {
                keys.get(r.props["name"])
                for r in run.read.get(Kind.CONTAINER, ())
                if r.state != "deleting"
            }
            out: list[Resource] = []
            for f in futures:
                try:
                    rs = f.result()
                except NotFoundError:
                    rs = []  # the container does not exist (yet)
                out.extend(r for r in rs if r.address.parts[0] in present)
            return out

        return collect


def _container_of(blob: Resource, key: str) -> str:
    """The real container name of a listed blob (its props), else its key."""
    return str(blob.props.get("container") or key)


def _delete_and_wait(
    what: str, delete: Callable[[str], None], changes: list[Change], run: ApplyRun
) -> None:
    """Delete the deleted and replaced pools or jobs in parallel, then wait until they are
    gone (a replace creates under the same id)."""
    gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
    if gone:
        parallel(delete, gone)
        run.say(f"Waiting for {what}{'s' if len(gone) > 1 else ''} {', '.join(gone)} to be deleted")
        run.batch.wait_gone(what, gone)


class Pools:
    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        batch = run.batch
        _delete_and_wait("pool", batch.delete_pool, changes, run)
        for c in changes:
            if c.after is None:
                continue
            if c.action in (Action.CREATE, Action.REPLACE):
                autoscale.create_pool(batch, c.after, run.sas)
            elif c.action is Action.UPDATE:
                autoscale.update_pool(batch, c.after, c.fields, run.sas)

    def read(self, run: ReadRun) -> Collect:
        if run.evaluate:
            return run.pool.submit(
                lambda: autoscale.with_evaluations(run.batch, run.desired, run.batch.read_pools())
            ).result
        return run.pool.submit(run.batch.read_pools).result


class Jobs:
    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        batch = run.batch
        _delete_and_wait("job", batch.delete_job, changes, run)
        parallel(
            lambda j: batch.create_job(j, run.sas), afters(changes, Action.CREATE, Action.REPLACE)
        )
        updates = [(c.after, c.fields) for c in changes if c.action is Action.UPDATE and c.after]
        parallel(lambda u: batch.update_job(*u), updates)

    def finish(self, changes: list[Change], run: ApplyRun) -> None:
        """After the tasks are in: switch onAllTasksComplete to terminatejob where the spec
        asks for it (created with noaction, as a job without tasks would complete at once)."""
        switch = [
            c.address.parts[0]
            for c in changes
            if c.after is not None
            and c.after.props.get("onAllTasksComplete") == "terminatejob"
            and (
                c.action in (Action.CREATE, Action.REPLACE)
                or (c.action is Action.UPDATE and "onAllTasksComplete" in c.fields)
            )
        ]
        parallel(run.batch.switch_completion, switch)

    def read(self, run: ReadRun) -> Collect:
        return run.pool.submit(run.batch.read_jobs).result


class Schedules:
    """Job schedules (`kinds.schedule`): deletes and replaces first (Batch deletes the jobs
    of their runs), then creates and in-place updates, each uploading its job manager's
    task collection with fresh SAS URLs."""

    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        batch = run.batch
        gone = [c.address.parts[0] for c in changes if c.action in (Action.DELETE, Action.REPLACE)]
        if gone:
            parallel(lambda i: schedules.delete_schedule(batch, i), gone)
            run.say(
                f"Waiting for job schedule{'s' if len(gone) > 1 else ''} {', '.join(gone)}"
                " to be deleted"
            )
            schedules.wait_schedules_gone(batch, gone)
        for c in changes:
            if c.after is None:
                continue
            create = c.action in (Action.CREATE, Action.REPLACE)
            schedules.write_schedule(batch, c.after, run.sas, run.storage, waves, create=create)

    def read(self, run: ReadRun) -> Collect:
        """One list, only when the spec has scheduled jobs or for destroy: specs without
        schedules read what they always did (a schedule gone from the spec is still found
        through the jobs of its runs: `kinds.schedule.plan`)."""
        if not (run.schedules or run.desired.of_kind(Kind("schedule"))):
            return lambda: []
        return run.pool.submit(schedules.read_schedules, run.batch).result


class Tasks:
    def apply(self, changes: list[Change], run: ApplyRun) -> None:
        batch = run.batch
        # Deletes first: tasks gone from the spec, and the old runs of replaced tasks (a
        # replaced job already took its tasks with it).
        deletes = [
            c.address.parts
            for c in changes
            if c.action is Action.DELETE
            or (c.action is Action.REPLACE and not task_kind.deleted_with_job(c))
        ]
        parallel(lambda p: batch.delete_task(p[0], p[1]), deletes)
        run.result.tasks_deleted += len(deletes)
        parallel(batch.update_task_constraints, afters(changes, Action.UPDATE))
        adds: dict[str, list[Resource]] = defaultdict(list)
        for t in afters(changes, Action.CREATE, Action.REPLACE):
            adds[t.address.parts[0]].append(t)
        total = sum(len(v) for v in adds.values())
        if not total:
            return
        noun = "task" if total == 1 else "tasks"
        with run.progress(f"Submitting {total:,} {noun}", total, "") as advance:
            for job_id, tasks in adds.items():
                for wave in waves(tasks):
                    batch.add_tasks(job_id, [batch.task_body(t, run.sas) for t in wave])
                    advance(len(wave))
        run.result.tasks_submitted += total

    def read(self, run: ReadRun) -> Collect:
        """One page of 1,000 per spec job that exists, once the jobs are read."""

        def collect() -> list[Resource]:
            wanted = {j.id for j in run.desired.jobs}
            futures = [
                run.pool.submit(run.batch.read_tasks, r.address.parts[0], r.owner)
                for r in run.read.get(Kind.JOB, ())
                if r.address.parts[0] in wanted and r.state != "deleting"
            ]
            return [r for f in futures for r in f.result()]

        return collect


def waves(tasks: list[Resource]) -> list[list[Resource]]:
    """Tasks in submission waves: a task goes after the tasks it depends on that are being
    submitted too, so Batch never sees a dependency on a task it has not been given."""
    by_id = {t.address.parts[1]: t for t in tasks}
    level: dict[str, int] = {}

    def depth(tid: str, seen: frozenset[str] = frozenset()) -> int:
        if tid in level:
            return level[tid]
        deps = [
            d for d in task_kind.dependencies(by_id[tid].props, by_id) if d not in seen and d != tid
        ]
        lv = 0 if not deps else 1 + max(depth(d, seen | {tid}) for d in deps)
        level[tid] = lv
        return lv

    out: dict[int, list[Resource]] = defaultdict(list)
    for t in tasks:
        out[depth(t.address.parts[1])].append(t)
    return [out[k] for k in sorted(out)]


# The one table of adapters, by kind.
ADAPTERS: dict[Kind, Adapter] = {
    Kind.CONTAINER: Containers(),
    Kind.BLOB: Blobs(),
    Kind.POOL: Pools(),
    Kind("schedule"): Schedules(),
    Kind.JOB: Jobs(),
    Kind.TASK: Tasks(),
}
