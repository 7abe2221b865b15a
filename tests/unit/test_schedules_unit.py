"""Scheduled jobs without a service: how a job with `schedule:` renders, how the schedule
kind plans (create, no-op, in place, replace, SAS refresh, warnings), that a schedule's runs
are never stray jobs, and bspec's job manager against a small HTTP stand-in for Batch."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from bspec.kinds import schedule as schedule_kind
from bspec.kinds.job import SCHEDULE_METADATA
from bspec.model import STACK_METADATA, Action, ActualState, Address, DesiredState, Kind, Resource
from bspec.planning import plan
from bspec.reporting import reason_text
from bspec.schedules import jobmanager
from bspec.spec.schedules import RUN_JOB_ID
from spec_helpers import POOL, render

SCHEDULE = Kind("schedule")
FILES = {"data/a.txt": "one two", "data/b.txt": "three"}


def spec(schedule: str = "recurrenceInterval: PT1H", pool_extra: str = "") -> str:
    return f"""apiVersion: bspec/v1
name: st
storage:
  containers:
    input: {{files: ["data/*.txt"]}}
    output: {{}}
{POOL}{pool_extra}jobs:
  - id: nightly
    schedule: {{{schedule}}}
    tasks:
      - foreach: {{files: input}}
        id: "c-{{{{ item.stem }}}}"
        commands: ["wc -w {{{{ item.name }}}} > {{{{ item.stem }}}}.n; echo {{{{ run }}}}"]
        resourceFiles: [{{blob: "input/{{{{ item.name }}}}"}}]
        outputFiles: [{{pattern: "*.n", container: output}}]
      - id: total
        dependsOn: ["c-*"]
        commandLine: /bin/true
        outputFiles: [{{pattern: total.txt, container: output}}]
    outputs: [{{container: output, to: out}}]
"""


def rest(after: Resource, *, state: str = "active", expiry: str | None = None) -> Resource:
    """What Batch lists for the schedule bspec created from `after` (via from_rest)."""
    p = after.props
    s = p["schedule"]
    iso = {"recurrenceInterval": s["recurrenceInterval"], "startWindow": s["startWindow"]}
    body: dict[str, Any] = {
        "id": after.address.parts[0],
        "state": state,
        "schedule": {
            **{k: f"PT{int(v)}S" for k, v in iso.items() if v is not None},
            **{k: s[k] for k in ("doNotRunUntil", "doNotRunAfter") if s[k]},
        },
        "jobSpecification": {
            "poolInfo": {"poolId": p["job"]["poolId"]},
            "priority": p["job"]["priority"],
            "constraints": {"maxTaskRetryCount": p["job"]["maxTaskRetryCount"]},
            "usesTaskDependencies": p["job"]["usesTaskDependencies"],
            "metadata": [
                {"name": STACK_METADATA, "value": "st"},
                {"name": SCHEDULE_METADATA, "value": after.address.parts[0]},
            ],
            "jobManagerTask": {
                "environmentSettings": [{"name": schedule_kind.RUN_SPEC_ENV, "value": p["runSpec"]}]
            },
        },
        "metadata": [{"name": STACK_METADATA, "value": "st"}],
    }
    planned = dt.datetime.fromisoformat(str(after.info["plannedAt"]).replace("Z", "+00:00"))
    default = schedule_kind.utc_text(planned + dt.timedelta(days=6))
    return schedule_kind.from_rest(body, expiry or default)


def desired_schedule(d: DesiredState) -> Resource:
    (s,) = d.of_kind(SCHEDULE)
    return schedule_kind.from_spec(s, d)


def only(d: DesiredState, *resources: Resource) -> ActualState:
    return ActualState({r.address: r for r in resources})


def schedule_change(d: DesiredState, *actual: Resource) -> Any:
    p = plan(d, only(d, *actual))
    (c,) = [c for c in p.changes if c.address.kind is SCHEDULE]
    return c, p


# ------------------------------------------------------------------------- rendering


def test_a_scheduled_job_renders_as_a_schedule_with_run_folders(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    assert d.jobs == () and d.tasks == ()  # no job, no task of the stack's own
    assert d.pool is not None  # its runs use the spec's pool
    (s,) = d.of_kind(SCHEDULE)
    assert s.recurrence_interval == dt.timedelta(hours=1)
    assert [t.id for t in s.tasks] == ["c-a", "c-b", "total"]
    assert s.job.uses_task_dependencies and s.job.id == "nightly"
    assert RUN_JOB_ID in s.tasks[0].command_line  # {{ run }}
    assert [o.path for o in s.tasks[0].output_files] == [RUN_JOB_ID]  # a wildcard: a folder
    assert [o.path for o in s.tasks[2].output_files] == [f"{RUN_JOB_ID}/total.txt"]
    assert s.file_sets == ("input",)
    assert s.run_spec.startswith("v1:")


def test_a_pool_per_run_is_no_standing_pool(tmp_path: Path) -> None:
    d = render(tmp_path, spec("recurrenceInterval: PT1H, poolPerRun: true"), FILES)
    assert d.pool is None
    after = desired_schedule(d)
    assert after.props["job"]["poolId"] is None and after.props["autoPool"]["vmSize"]


def test_run_is_undefined_outside_scheduled_jobs(tmp_path: Path) -> None:
    from bspec.errors import SpecError

    text = spec().replace("    schedule: {recurrenceInterval: PT1H}\n", "")
    with pytest.raises(SpecError, match="run"):
        render(tmp_path, text, FILES)


# ------------------------------------------------------------------------- planning


def test_create_then_converged_then_times_change_in_place(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    c, p = schedule_change(d)
    assert c.action is Action.CREATE
    kinds = [c.address.kind.value for c in p.changes]
    assert kinds.index("schedule") > kinds.index("pool")  # after the pool, no job at all
    assert "job" not in kinds

    have = rest(desired_schedule(d))
    c, _ = schedule_change(d, have)
    assert c.action is Action.NOOP

    later = render(tmp_path, spec("recurrenceInterval: PT2H"), FILES)
    c, _ = schedule_change(later, have)
    assert (c.action, c.fields) == (Action.UPDATE, ("schedule",))
    assert "in place" in reason_text(c.reasons)


def test_a_new_input_file_changes_what_later_runs_get_in_place(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    have = rest(desired_schedule(d))
    more = render(tmp_path / "more", spec(), {**FILES, "data/c.txt": "four"})
    c, _ = schedule_change(more, have)
    assert (c.action, c.fields) == (Action.UPDATE, ("runSpec",))
    assert "runs that start after this apply" in reason_text(c.reasons)


def test_a_completed_schedule_that_changed_is_replaced(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    have = rest(desired_schedule(d), state="completed")
    assert schedule_change(d, have)[0].action is Action.NOOP  # done, and nothing to change
    later = render(tmp_path, spec("recurrenceInterval: PT2H"), FILES)
    c, _ = schedule_change(later, have)
    assert (c.action, c.forced_by) == (Action.REPLACE, ("state",))
    assert "Batch cannot change it" in reason_text(c.reasons)


def test_tokens_close_to_running_out_are_refreshed_in_place(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    after = desired_schedule(d)
    planned = dt.datetime.fromisoformat(str(after.info["plannedAt"]).replace("Z", "+00:00"))
    soon = schedule_kind.utc_text(planned + dt.timedelta(days=1))
    c, _ = schedule_change(d, rest(after, expiry=soon))
    assert (c.action, c.fields) == (Action.UPDATE, ("sas",))
    assert f"run out at {soon}: new ones in place" in reason_text(c.reasons)


def test_the_plan_warns_when_a_schedule_outlives_its_tokens(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    c, p = schedule_change(d)
    (warning,) = schedule_kind.warnings([c])
    assert warning[0] == "sasExpiry" and warning[2] == "schedule/nightly"
    assert "run out at" in warning[1] and warning[1] in p.warnings
    # A schedule that ends before its tokens do: no warning.
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    short = render(tmp_path, spec(f"recurrenceInterval: PT1H, doNotRunAfter: '{until}'"), FILES)
    assert schedule_kind.warnings([schedule_change(short)[0]]) == []


def test_a_schedules_runs_are_never_stray_jobs(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    run = Resource(
        Address.job("nightly:job-3"), {}, owner="st", state="active", info={"schedule": "nightly"}
    )
    stray = Resource(Address.job("old-job"), {}, owner="st", state="active")
    p = plan(d, only(d, rest(desired_schedule(d)), run, stray))
    deleted = [str(c.address) for c in p.changes if c.action is Action.DELETE]
    assert deleted == ["job/old-job"]


def test_a_schedule_gone_from_the_spec_is_deleted_with_its_runs(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    have = rest(desired_schedule(d))
    plain = render(
        tmp_path,
        spec()
        .replace("    schedule: {recurrenceInterval: PT1H}\n", "")
        .replace("; echo {{ run }}", ""),
        FILES,
    )
    c, _ = schedule_change(plain, have)
    assert c.action is Action.DELETE
    assert "deletes the jobs of its runs" in reason_text(c.reasons)


# ------------------------------------------------------------------------- the job manager


def test_the_manager_puts_the_run_in_every_string() -> None:
    body = {"a": ["$AZ_BATCH_JOB_ID/x", {"b": "${AZ_BATCH_JOB_ID}"}], "n": 3}
    assert jobmanager.substitute(body, "s:job-2") == {"a": ["s:job-2/x", {"b": "s:job-2"}], "n": 3}
    assert [len(c) for c in jobmanager.chunks([{"id": str(i)} for i in range(250)])] == [
        100,
        100,
        50,
    ]


class FakeBatch(http.server.BaseHTTPRequestHandler):
    """Answers AddTaskCollection (503 once, then TaskExists for `t0`) and the job PATCH."""

    calls: ClassVar[list[tuple[str, str, Any]]] = []
    failed_once: ClassVar[bool] = False

    def log_message(self, *args: Any) -> None:
        pass

    def _answer(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

    def do_POST(self) -> None:
        body = self._body()
        assert self.headers["Authorization"] == "Bearer tok"
        if not FakeBatch.failed_once:
            FakeBatch.failed_once = True
            self._answer(503, {"code": "ServerBusy"})
            return
        FakeBatch.calls.append(("POST", self.path, body))
        self._answer(
            200,
            {
                "value": [
                    {"taskId": t["id"], "status": "clientError", "error": {"code": "TaskExists"}}
                    if t["id"] == "t0"
                    else {"taskId": t["id"], "status": "clientError", "error": {"code": "Bad"}}
                    if t["id"] == "bad"
                    else {"taskId": t["id"], "status": "success"}
                    for t in body["value"]
                ]
            },
        )

    def do_PATCH(self) -> None:
        FakeBatch.calls.append(("PATCH", self.path, self._body()))
        self._answer(200, {})


@pytest.fixture
def fake_batch() -> Iterator[str]:
    FakeBatch.calls, FakeBatch.failed_once = [], False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeBatch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_manager_adds_its_tasks_then_ends_its_job_with_them(
    fake_batch: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waves: list[list[dict[str, Any]]] = [
        [{"id": f"t{i}", "commandLine": "echo $AZ_BATCH_JOB_ID"} for i in range(120)]
    ]
    waves.append([{"id": "total", "commandLine": "x", "dependsOn": {"taskIds": ["t0"]}}])
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"version": 1, "waves": waves}))
    monkeypatch.setenv("AZ_BATCH_AUTHENTICATION_TOKEN", "tok")
    monkeypatch.setenv("AZ_BATCH_ACCOUNT_URL", fake_batch)
    monkeypatch.setenv("AZ_BATCH_JOB_ID", "nightly:job-7")
    monkeypatch.setattr(jobmanager, "PAUSE", 0.01)
    assert jobmanager.main(["jobmanager.py", str(tasks)]) == 0
    posts = [c for c in FakeBatch.calls if c[0] == "POST"]
    assert [len(b["value"]) for _, _, b in posts] == [100, 20, 1]  # the waves in order
    assert all(
        p == "/jobs/nightly%3Ajob-7/addtaskcollection?api-version=2025-06-01.21.0"
        for _, p, _ in posts
    )
    assert posts[0][2]["value"][0]["commandLine"] == "echo nightly:job-7"
    assert FakeBatch.calls[-1] == (
        "PATCH",
        "/jobs/nightly%3Ajob-7?api-version=2025-06-01.21.0",
        {"onAllTasksComplete": "terminatejob"},
    )


def test_the_manager_needs_its_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AZ_BATCH_AUTHENTICATION_TOKEN", raising=False)
    assert jobmanager.main(["jobmanager.py", str(tmp_path / "tasks.json")]) == 2


def test_every_schedule_is_a_registered_kind_between_pools_and_jobs() -> None:
    from bspec.kinds import KINDS

    names = [k.kind.value for k in KINDS]
    assert names.index("pool") < names.index("schedule") < names.index("job")


def test_a_saved_plan_keeps_its_schedules(tmp_path: Path) -> None:
    from bspec import saved_plan

    d = render(
        tmp_path, spec("recurrenceInterval: PT1H, doNotRunUntil: '2030-01-02T02:00:00Z'"), FILES
    )
    p = plan(d, only(d))
    saved_plan.save(tmp_path / "plan.json", p, d, {}, adopt=False)
    back = saved_plan.load(tmp_path / "plan.json").desired
    assert back.of_kind(SCHEDULE) == d.of_kind(SCHEDULE)
    assert plan(back, only(back)).changes == p.changes


def test_what_each_runs_job_says_changes_in_place(tmp_path: Path) -> None:
    d = render(tmp_path, spec(), FILES)
    have = rest(desired_schedule(d))
    urgent = render(
        tmp_path, spec().replace("  - id: nightly\n", "  - id: nightly\n    priority: 5\n"), FILES
    )
    c, _ = schedule_change(urgent, have)
    assert (c.action, c.fields) == (Action.UPDATE, ("job",))
    assert "each run's job changed (priority;" in reason_text(c.reasons)


def test_a_schedule_gone_from_the_spec_is_found_through_its_runs(tmp_path: Path) -> None:
    """Specs without schedules do not list them (their request counts stay), so a schedule
    removed from the spec is found through the jobs of its runs."""
    plain = render(
        tmp_path,
        spec()
        .replace("    schedule: {recurrenceInterval: PT1H}\n", "")
        .replace("; echo {{ run }}", ""),
        FILES,
    )
    run = Resource(
        Address.job("nightly:job-3"),
        {},
        owner="st",
        state="completed",
        info={"schedule": "nightly"},
    )
    p = plan(plain, only(plain, run))
    deleted = [str(c.address) for c in p.changes if c.action is Action.DELETE]
    assert deleted == ["schedule/nightly"]


def test_a_task_batch_refuses_fails_the_manager_but_the_run_still_ends(
    fake_batch: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = tmp_path / "tasks.json"
    tasks.write_text(json.dumps({"version": 1, "waves": [[{"id": "ok"}, {"id": "bad"}]]}))
    monkeypatch.setenv("AZ_BATCH_AUTHENTICATION_TOKEN", "tok")
    monkeypatch.setenv("AZ_BATCH_ACCOUNT_URL", fake_batch)
    monkeypatch.setenv("AZ_BATCH_JOB_ID", "n:job-1")
    monkeypatch.setattr(jobmanager, "PAUSE", 0.01)
    assert jobmanager.main(["jobmanager.py", str(tasks)]) == 1
    assert FakeBatch.calls[-1][0] == "PATCH"  # a run left open would block the next ones
    err = capsys.readouterr().err
    assert "bad: Bad" in err and "tok" not in err


def test_the_manager_is_standard_library_python_3_8() -> None:
    import ast
    import sys

    source = Path(jobmanager.__file__).read_text("utf-8")
    tree = ast.parse(source, feature_version=(3, 8))
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert {m.split(".")[0] for m in imported} <= set(sys.stdlib_module_names) | {"__future__"}


# ------------------------------------------------------------------------- what bspec sends


class _Uploads:
    """Stands in for the storage provider: what would be uploaded, by blob name."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}

    def upload(self, container: str, name: str, path: str, md5: str) -> int:
        self.blobs[f"{container}/{name}"] = Path(path).read_bytes()
        return 0


def test_the_job_specification_keeps_runs_from_blocking_each_other(tmp_path: Path) -> None:
    from bspec.providers import schedules as provider
    from bspec.providers.adapters import waves
    from bspec.providers.batch import BatchProvider

    d = render(tmp_path, spec(), FILES)
    after = desired_schedule(d)
    batch = BatchProvider(client=None, blob_base="http://h/acct", stack="st")  # type: ignore[arg-type]
    uploads = _Uploads()

    def sas(container: str, blob: str | None, perm: str) -> str:
        return f"http://h/acct/{container}/{blob or ''}?se=2030-01-01T00%3A00%3A00Z&sp={perm}&sig=S"

    body = provider.job_specification(batch, after, sas, uploads, waves)  # type: ignore[arg-type]
    manager = body["jobManagerTask"]
    assert manager["killJobOnCompletion"] is False  # the job outlives its manager
    assert manager["authenticationTokenSettings"] == {"access": ["job"]}
    assert body["onAllTasksComplete"] == "noaction"  # the manager switches it once tasks are in
    assert body["usesTaskDependencies"] is True
    assert {"name": "bspec-schedule", "value": "nightly"} in body["metadata"]
    assert provider.sas_expiry({"jobSpecification": body}) == "2030-01-01T00:00:00Z"
    collection = json.loads(uploads.blobs["st-bspec/schedules/nightly/tasks.json"])
    assert [[t["id"] for t in w] for w in collection["waves"]] == [["c-a", "c-b"], ["total"]]
    logs = collection["waves"][0][0]["outputFiles"][-1]["destination"]["container"]["path"]
    assert logs == "logs/$AZ_BATCH_JOB_ID/c-a/stderr.txt"
    assert uploads.blobs["st-bspec/schedules/nightly/jobmanager.py"].startswith(b'"""bspec')
    # Read back, it plans nothing.
    have = schedule_kind.from_rest(
        {
            "id": "nightly",
            "state": "active",
            "schedule": provider.schedule_config(after.props),
            "jobSpecification": body,
            "metadata": [{"name": STACK_METADATA, "value": "st"}],
        },
        provider.sas_expiry({"jobSpecification": body}),
    )
    assert schedule_change(d, have)[0].action is Action.NOOP
