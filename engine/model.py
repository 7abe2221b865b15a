"""The data bspec reasons about: desired state, actual state, and the plan between them.

Everything here is plain, frozen data with no I/O. The flow is:

    spec file --(spec.loading/validation/rendering)--> DesiredState
    services  --(providers.*.read_actual)-----------> ActualState
    planning.plan(desired, actual, options) --------> Plan   (pure)
    applying.apply(plan, ...) changes the world.

A `Change` follows Terraform's plans.Change; `before` and `after` are both `Resource`s whose
props are in the kind's one normal form (`bspec.kinds.<kind>`):

    action    before            after
    NOOP      actual resource   desired resource (equal in every diffed field)
    CREATE    None              desired resource
    UPDATE    actual resource   desired resource (in-place; `fields` says what differs)
    REPLACE   actual resource   desired resource (delete then create; `forced_by` says why)
    DELETE    actual resource   None

A desired resource's props hold everything its create needs, so a plan is self-sufficient.
`reasons` are data (a code and values, as Terraform's ResourceInstanceChangeActionReason),
put into words only by `reporting.reason_text`; applying never reads them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

_KNOWN: dict[str, Kind] = {}  # every registered kind by name, in registration order
_PARTS: dict[str, int] = {}  # how many parts its addresses have
_FORGOTTEN: dict[str, Kind] = {}  # unregistered (by a test), kept so that `is` still holds


class _KindMeta(type):
    """Iterating `Kind` gives the registered kinds in the order they were registered."""

    def __iter__(cls) -> Iterator[Kind]:
        return iter(tuple(_KNOWN.values()))

    def __len__(cls) -> int:
        return len(_KNOWN)


class Kind(str, metaclass=_KindMeta):
    """A resource kind's name ("pool"), one interned instance per kind, so `is` compares.

    Open, unlike an enum: the five built-in kinds register below, in the order apply
    creates them; a new kind registers itself in its own module (`Kind.register`), with
    the number of parts its address has, so `Address.parse` knows it without an edit here.
    """

    __slots__ = ()

    CONTAINER: ClassVar[Kind]
    BLOB: ClassVar[Kind]
    POOL: ClassVar[Kind]
    JOB: ClassVar[Kind]
    TASK: ClassVar[Kind]

    def __new__(cls, value: str) -> Kind:
        known = _KNOWN.get(value)
        if known is None:
            raise ValueError(f"{value!r} is not a valid Kind")
        return known

    @classmethod
    def register(cls, value: str, parts: int = 1) -> Kind:
        """The kind named `value` (created once); its addresses have `parts` parts, the last
        of which may hold slashes when there are two (a blob's name)."""
        if value not in _KNOWN:
            old = _FORGOTTEN.pop(value) if value in _FORGOTTEN else None
            _KNOWN[value] = old if old is not None else str.__new__(cls, value)
            _PARTS[value] = parts
        return _KNOWN[value]

    @classmethod
    def unregister(cls, kind: Kind) -> None:
        """Forget a kind registered for a test (registering it again gives the same one)."""
        if _KNOWN.pop(kind.value, None) is not None:
            _FORGOTTEN[kind.value] = kind
            _PARTS.pop(kind.value, None)

    @property
    def value(self) -> str:
        return str.__str__(self)

    @property
    def parts(self) -> int:
        return _PARTS[self.value]

    def __repr__(self) -> str:
        return f"<Kind {self.value}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Kind, (self.value,))


Kind.CONTAINER = Kind.register("container")
Kind.BLOB = Kind.register("blob", parts=2)
Kind.POOL = Kind.register("pool")
# Job schedules (`kinds.schedule`) sit between pools and jobs in the order: registered here,
# not in their own module, so that the registration order is the apply order.
Kind.register("schedule")
Kind.JOB = Kind.register("job")
Kind.TASK = Kind.register("task", parts=2)


KIND_ORDER: tuple[Kind, ...] = tuple(Kind)  # the built-in kinds (with "schedule")
LOGS_KEY = "_bspec"  # the key of the stack's own container (task logs, the lock blob)


@dataclass(frozen=True, order=True, slots=True)
class Address:
    """`container/<key>`, `blob/<key>/<blob name>`, `pool/<id>`, `job/<id>`, `task/<job>/<task>`.

    Blob names may contain slashes; the other parts may not.
    """

    kind: Kind
    parts: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.kind.value}/{'/'.join(self.parts)}"

    @classmethod
    def parse(cls, text: str) -> Address:
        kind_text, _, rest = text.partition("/")
        kind = Kind(kind_text)
        if kind.parts == 2:
            first, _, second = rest.partition("/")
            if not first or not second:
                raise ValueError(f"bad address {text!r}")
            return cls(kind, (first, second))
        if not rest or "/" in rest:
            raise ValueError(f"bad address {text!r}")
        return cls(kind, (rest,))

    @classmethod
    def container(cls, key: str) -> Address:
        return cls(Kind.CONTAINER, (key,))

    @classmethod
    def blob(cls, key: str, name: str) -> Address:
        return cls(Kind.BLOB, (key, name))

    @classmethod
    def pool(cls, pool_id: str) -> Address:
        return cls(Kind.POOL, (pool_id,))

    @classmethod
    def job(cls, job_id: str) -> Address:
        return cls(Kind.JOB, (job_id,))

    @classmethod
    def task(cls, job_id: str, task_id: str) -> Address:
        return cls(Kind.TASK, (job_id, task_id))


# --------------------------------------------------------------------------- desired state


class UploadCondition(str, enum.Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    COMPLETION = "completion"


class WhenIdle(str, enum.Enum):
    KEEP = "keep"
    SCALE_TO_ZERO = "scaleToZero"
    DELETE = "delete"


@dataclass(frozen=True)
class ContainerSpec:
    """A storage container the spec declares; `key` is how the spec refers to it."""

    key: str
    name: str  # the real container name: <stack>-<key> unless given


@dataclass(frozen=True)
class BlobSpec:
    """A local file bspec uploads. `md5` is the hex MD5 of the local file."""

    container: str  # container key
    name: str  # blob name
    path: str  # absolute local path
    size: int
    md5: str

    @property
    def address(self) -> Address:
        return Address.blob(self.container, self.name)


@dataclass(frozen=True)
class ResourceFileSpec:
    """A resource file: a whole container (`blob` None) or one blob, by container key.

    `prefix` restricts a whole-container file to blobs under it. SAS URLs are made at
    apply time from these, never stored.
    """

    container: str
    blob: str | None = None
    prefix: str | None = None
    file_path: str | None = None
    file_mode: str | None = None


@dataclass(frozen=True)
class OutputFileSpec:
    """Upload files matching `pattern` (relative to the task's working dir) to a container."""

    pattern: str
    container: str  # container key
    path: str | None = None  # destination blob path or prefix
    when: UploadCondition = UploadCondition.SUCCESS


@dataclass(frozen=True)
class ContainerSettingsSpec:
    """A task's (or start task's) container: Batch's containerSettings."""

    image: str
    run_options: str | None = None
    working_directory: str | None = None  # taskWorkingDirectory | containerImageDefault


@dataclass(frozen=True)
class RegistrySpec:
    """A private registry of a container pool: a password read from the environment
    variable `password_env` at apply time (never stored), or a managed identity."""

    server: str
    username: str | None = None
    password_env: str | None = None
    identity: str | None = None  # the resource id of a user-assigned managed identity


@dataclass(frozen=True)
class PoolContainersSpec:
    """A container pool's images to prefetch and its registries (containerConfiguration)."""

    images: tuple[str, ...] = ()
    registries: tuple[RegistrySpec, ...] = ()


@dataclass(frozen=True)
class StartTaskSpec:
    command_line: str
    resource_files: tuple[ResourceFileSpec, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    elevated: bool = False
    wait_for_success: bool = True
    max_task_retry_count: int = 0
    container: ContainerSettingsSpec | None = None
    secret_environment: tuple[str, ...] = ()  # names; values read at apply, never stored


@dataclass(frozen=True)
class ImageSpec:
    publisher: str
    offer: str
    sku: str
    node_agent_sku: str
    version: str = "latest"


@dataclass(frozen=True)
class AutoscaleSpec:
    """A pool sized by a Batch autoscale formula (`pool.autoscale`), already rendered:
    from the spec's `formula`, or from a built-in `preset` (templates/autoscale/)."""

    formula: str
    interval: timedelta = timedelta(minutes=15)  # Batch's default evaluation interval
    preset: str | None = None  # "queue", "workday"; None for a formula of the spec's own
    spot: float = 0.0  # the queue preset's Spot share (its fallback runs them as dedicated)


@dataclass(frozen=True)
class PoolSpec:
    id: str
    vm_size: str
    image: ImageSpec
    target_dedicated_nodes: int = 0
    target_low_priority_nodes: int = 0
    task_slots_per_node: int = 1
    start_task: StartTaskSpec | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # user metadata; bspec adds bspec-stack
    when_idle: WhenIdle = WhenIdle.KEEP
    key: str | None = None  # its key in the spec's `pools`; None for the `pool:` shorthand
    containers: PoolContainersSpec | None = None
    autoscale: AutoscaleSpec | None = None  # then the formula owns the node counts


@dataclass(frozen=True)
class JobConstraintsSpec:
    max_wall_clock_time: timedelta | None = None
    max_task_retry_count: int = 0


@dataclass(frozen=True)
class JobOutputSpec:
    """Download blobs of `container` (optionally under `prefix`) to local folder `to`."""

    container: str  # container key
    to: str  # absolute local path
    prefix: str | None = None


# A preparation or release task's container: the same settings as a task's.
TaskContainerSpec = ContainerSettingsSpec


@dataclass(frozen=True)
class JobTaskSpec:
    """A job's preparation task (before its first task on each node) or release task (on
    each such node when the job ends). Batch cannot change either on a live job."""

    command_line: str
    resource_files: tuple[ResourceFileSpec, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()
    elevated: bool = False
    container: TaskContainerSpec | None = None
    wait_for_success: bool = True  # preparation only
    max_wall_clock_time: timedelta | None = None
    retention_time: timedelta | None = None
    max_task_retry_count: int = 0  # preparation only


@dataclass(frozen=True)
class ExitRuleSpec:
    """One `onExit` rule of a task: what it matches (exit codes, inclusive ranges, or one of
    the events preProcessingError, fileUploadError, default) and what Batch then does."""

    codes: tuple[int, ...] = ()
    ranges: tuple[tuple[int, int], ...] = ()
    event: str | None = None
    job_action: str | None = None  # none | disable | terminate
    dependency_action: str | None = None  # satisfy | block


ON_TASK_FAILURE_PERFORM = "performexitoptionsjobaction"


@dataclass(frozen=True)
class JobSpec:
    id: str
    pool_id: str
    priority: int = 0
    constraints: JobConstraintsSpec = JobConstraintsSpec()
    uses_task_dependencies: bool = False
    metadata: tuple[tuple[str, str], ...] = ()
    outputs: tuple[JobOutputSpec, ...] = ()
    preparation: JobTaskSpec | None = None
    release: JobTaskSpec | None = None
    on_all_tasks_complete: str = "noaction"  # noaction | terminatejob
    max_parallel_tasks: int = -1  # -1: no limit
    # performexitoptionsjobaction when a task of the job has an exit rule with a job action
    on_task_failure: str = "noaction"


@dataclass(frozen=True)
class TaskConstraintsSpec:
    """Not part of the fingerprint: Batch lets these change on a live task."""

    max_wall_clock_time: timedelta | None = None
    retention_time: timedelta | None = None
    max_task_retry_count: int = 0


@dataclass(frozen=True)
class TaskSpec:
    job_id: str
    id: str
    command_line: str
    fingerprint: str  # "v1:<sha256 hex>"
    resource_files: tuple[ResourceFileSpec, ...] = ()
    output_files: tuple[OutputFileSpec, ...] = ()
    environment: tuple[tuple[str, str], ...] = ()  # user settings; bspec adds BSPEC_FINGERPRINT
    depends_on: tuple[str, ...] = ()  # task ids
    depends_on_ranges: tuple[tuple[int, int], ...] = ()  # inclusive (start, end)
    constraints: TaskConstraintsSpec = TaskConstraintsSpec()
    display_name: str | None = None
    elevated: bool = False
    required_slots: int = 1
    container: ContainerSettingsSpec | None = None
    secret_environment: tuple[str, ...] = ()  # names; values read at apply, never stored
    on_exit: tuple[ExitRuleSpec, ...] = ()  # part of the fingerprint when given

    @property
    def address(self) -> Address:
        return Address.task(self.job_id, self.id)


@dataclass(frozen=True)
class ScheduleSpec:
    """A job with `schedule:`: a Batch job schedule whose runs (jobs `<id>:job-<n>`) get
    `tasks` from bspec's job manager. Read with `desired.of_kind(Kind("schedule"))`.

    `job` is the job each run is, as a plain job of the spec would be (its id is the
    schedule's): whatever a job can say, each run's job says too. Times are aware UTC
    datetimes; `planned_at` is when the spec was rendered (the plan measures SAS lifetimes
    from it). `auto_pool` runs each job on a pool of its own (`poolLifetimeOption: job`)
    built from `pool`; otherwise runs use the pool `job.pool_id`. `file_sets` are the
    container keys whose files a `foreach: files` expanded over (fixed at apply time)."""

    id: str
    job: JobSpec
    recurrence_interval: timedelta | None = None
    do_not_run_until: datetime | None = None
    do_not_run_after: datetime | None = None
    start_window: timedelta | None = None
    auto_pool: bool = False
    pool: PoolSpec | None = None
    tasks: tuple[TaskSpec, ...] = ()
    file_sets: tuple[str, ...] = ()
    planned_at: datetime | None = None
    run_spec: str = ""  # a hash of what each run gets (tasks, pool per run, job manager)

    @property
    def pool_id(self) -> str:
        return self.job.pool_id

    @property
    def outputs(self) -> tuple[JobOutputSpec, ...]:
        return self.job.outputs


@dataclass(frozen=True)
class DesiredState:
    """What a rendered spec asks for. Built by `spec.rendering.render`, read by the planner."""

    stack: str
    spec_file: str  # absolute path of the spec
    spec_hash: str  # sha256 hex of the spec file's bytes
    vars: Mapping[str, Any]
    target: str | None  # "local" | "azure" | None (the spec did not say)
    containers: tuple[ContainerSpec, ...]
    blobs: tuple[BlobSpec, ...]
    pool: PoolSpec | None  # the one pool when there is exactly one, else None (see `pools`)
    jobs: tuple[JobSpec, ...]
    tasks: tuple[TaskSpec, ...]  # every job's tasks, in spec order
    # The spec objects of the kinds without a field above, by kind (a kind added later
    # reads its own here: `of_kind`), so a new kind needs no edit of this class.
    more: Mapping[Kind, tuple[Any, ...]] = field(default_factory=dict)
    # Every secret the state uses (secretEnvironment names, registry passwordEnv names) with
    # the salted digest of the value it was rendered with (`spec.secrets`), never the value:
    # a saved plan carries these, and applying it re-reads the values and compares.
    secrets: tuple[tuple[str, str], ...] = ()
    # Every pool, in spec order (`pools:`, or the `pool:` shorthand's one). With one pool,
    # `pool` is the one that counts (`dataclasses.replace(d, pool=...)` keeps working).
    pools: tuple[PoolSpec, ...] = ()

    def __post_init__(self) -> None:
        if self.pool is not None and len(self.pools) <= 1:
            object.__setattr__(self, "pools", (self.pool,))

    def pool_of(self, job_id: str) -> PoolSpec | None:
        """The pool job `job_id` runs on."""
        for j in self.jobs:
            if j.id == job_id:
                return next((p for p in self.pools if p.id == j.pool_id), None)
        return None

    def jobs_on(self, pool_id: str) -> tuple[JobSpec, ...]:
        """The jobs that run on pool `pool_id`."""
        return tuple(j for j in self.jobs if j.pool_id == pool_id)

    def of_kind(self, kind: Kind) -> tuple[Any, ...]:
        return tuple(self.more.get(kind, ()))

    def container(self, key: str) -> ContainerSpec:
        for c in self.containers:
            if c.key == key:
                return c
        raise KeyError(key)

    def tasks_of(self, job_id: str) -> Iterator[TaskSpec]:
        return (t for t in self.tasks if t.job_id == job_id)

    @property
    def logs_container(self) -> ContainerSpec:
        """The stack's own container for task logs and the lock blob."""
        return ContainerSpec(key=LOGS_KEY, name=f"{self.stack.lower()}-bspec")


# --------------------------------------------------------------------------- actual state


@dataclass(frozen=True, slots=True)
class Resource:
    """A resource as the services report it, reduced to what the planner diffs.

    `props` holds the diffed fields as JSON values (camelCase, like the REST API), with the
    service's defaults filled in. `owner` is the stack tag it carries (None: untagged).
    `state` is the service's state ("active", "deleting", "completed", ...). `info` is
    reported but never diffed (node counts, task counts, exit codes).
    """

    address: Address
    props: Mapping[str, Any] = field(default_factory=dict)
    owner: str | None = None
    state: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActualState:
    """Everything relevant the services hold, keyed by address."""

    resources: Mapping[Address, Resource]

    def get(self, address: Address) -> Resource | None:
        return self.resources.get(address)

    def of_kind(self, kind: Kind) -> Iterator[Resource]:
        return (r for a, r in self.resources.items() if a.kind is kind)


# --------------------------------------------------------------------------- plan


class Action(str, enum.Enum):
    NOOP = "noop"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DELETE = "delete"


@dataclass(frozen=True)
class Reason:
    """Why a change is planned: a stable code and the values its words need (JSON values).
    `reporting.reason_text` turns a change's reasons into the words users read."""

    code: str
    values: Mapping[str, Any] = field(default_factory=dict)


def reason(code: str, **values: Any) -> Reason:
    return Reason(code, values)


@dataclass(frozen=True, slots=True)
class Change:
    """One resource's change. See the module docstring for what before/after hold."""

    action: Action
    address: Address
    before: Resource | None
    after: Resource | None
    fields: tuple[str, ...] = ()  # fields that differ
    forced_by: tuple[str, ...] = ()  # fields that made an update a replace
    reasons: tuple[Reason, ...] = ()  # for people; apply never reads them


@dataclass(frozen=True)
class Plan:
    stack: str
    target: str
    changes: tuple[Change, ...]  # every change, no-ops included, in apply order
    warnings: tuple[str, ...] = ()  # e.g. foreign tasks in an owned job, left alone
    # What the autoscale formulas of existing autoscale pools evaluate to now (read by the
    # providers with evaluate-autoscale; kinds.pool.evaluation_json gives the shape).
    autoscale: tuple[Mapping[str, Any], ...] = ()

    def empty(self) -> bool:
        return all(c.action is Action.NOOP for c in self.changes)

    def summary(self) -> dict[str, int]:
        counts = {a.value: 0 for a in Action}
        for c in self.changes:
            counts[c.action.value] += 1
        return counts

    def pending(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)


STACK_METADATA = "bspec-stack"  # Batch metadata name on pools and jobs
STACK_CONTAINER_METADATA = "bspec_stack"  # container metadata (names must be identifiers)
UPLOADED_BLOB_METADATA = "bspec_stack"  # on blobs bspec uploaded
FINGERPRINT_ENV = "BSPEC_FINGERPRINT"  # environment setting on owned tasks
