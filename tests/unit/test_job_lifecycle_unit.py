"""Issue 14 without a service: how exit rules map to Batch's exitConditions, that they are
part of a task's fingerprint (and a task without them hashes as before), how a job's
preparation, release and completion render and plan."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from bspec.errors import ServiceError
from bspec.kinds import job as job_kind
from bspec.kinds.jobparts import exit_conditions
from bspec.model import ActualState, ExitRuleSpec, Resource
from bspec.planning import PlanOptions, plan
from bspec.providers.batch import BatchProvider, max_parallel_refused
from bspec.reporting import reason_text
from bspec.spec.fingerprint import BlobIndex, canonical, fingerprint_document, task_fingerprint
from spec_helpers import POOL, render

SPEC = (
    "apiVersion: bspec/v1\nname: life\n" + POOL + "jobs:\n  - id: j\n"
    "    preparation:\n"
    '      commands: ["echo {{ vars.mark }} > $AZ_BATCH_NODE_SHARED_DIR/prep"]\n'
    "      constraints: {maxTaskRetryCount: 2}\n"
    "    release: {commandLine: /bin/true}\n"
    "    onAllTasksComplete: terminateJob\n"
    "    maxParallelTasks: 2\n"
    "    tasks:\n"
    "      - id: a\n        commandLine: /bin/true\n"
    "        onExit:\n"
    "          - {exitCodes: [1, 2], jobAction: terminate}\n"
    "          - {exitCodeRanges: [[3, 10]], dependencyAction: satisfy}\n"
    "          - {preProcessingError: true, jobAction: disable}\n"
    "      - id: b\n        commandLine: /bin/true\n"
    "vars: {mark: one}\n"
)


def test_exit_rules_map_to_exit_conditions() -> None:
    rules = (
        ExitRuleSpec(codes=(1, 2), job_action="terminate"),
        ExitRuleSpec(ranges=((3, 10),), dependency_action="satisfy"),
        ExitRuleSpec(event="preProcessingError", job_action="disable"),
    )
    assert exit_conditions(rules, True) == {
        "exitCodes": [
            {"code": 1, "exitOptions": {"jobAction": "terminate"}},
            {"code": 2, "exitOptions": {"jobAction": "terminate"}},
        ],
        "exitCodeRanges": [
            {
                "start": 3,
                "end": 10,
                "exitOptions": {"jobAction": "none", "dependencyAction": "satisfy"},
            }
        ],
        "preProcessingError": {"jobAction": "disable"},
        # Batch's own default under performExitOptionsJobAction would terminate the job
        "default": {"jobAction": "none"},
    }
    # Without job actions Batch refuses any jobAction: none is sent.
    satisfy = (ExitRuleSpec(codes=(4,), dependency_action="satisfy"),)
    assert exit_conditions(satisfy, False) == {
        "exitCodes": [{"code": 4, "exitOptions": {"dependencyAction": "satisfy"}}]
    }
    assert exit_conditions((), False) is None
    assert exit_conditions((), True) == {"default": {"jobAction": "none"}}


def test_exit_rules_are_in_the_fingerprint_and_absent_ones_change_nothing() -> None:
    blobs = BlobIndex(())
    base = dict(
        command_line="/bin/true",
        resource_files=(),
        output_files=(),
        environment=(),
        depends_on=(),
        depends_on_ranges=(),
        parent_fingerprints={},
        blobs=blobs,
    )
    plain = task_fingerprint(**base)  # type: ignore[arg-type]
    old_doc = {k: v for k, v in fingerprint_document(**base).items()}  # type: ignore[arg-type]
    assert "onExit" not in old_doc
    assert plain == "v1:" + hashlib.sha256(canonical(old_doc).encode()).hexdigest()
    rules = (ExitRuleSpec(codes=(3,), job_action="terminate"),)
    ruled = task_fingerprint(**base, on_exit=rules)  # type: ignore[arg-type]
    doc = fingerprint_document(**base, on_exit=rules)  # type: ignore[arg-type]
    assert ruled == "v1:" + hashlib.sha256(canonical(doc).encode()).hexdigest()
    assert ruled != plain
    other = task_fingerprint(**base, on_exit=(ExitRuleSpec(codes=(3,), job_action="disable"),))  # type: ignore[arg-type]
    assert other != ruled


def test_render_builds_the_job_life(tmp_path: Path) -> None:
    d = render(tmp_path, SPEC)
    job = d.jobs[0]
    assert job.preparation is not None and "echo one" in job.preparation.command_line
    assert job.preparation.max_task_retry_count == 2
    assert job.release is not None and job.release.command_line == "/bin/true"
    assert job.on_all_tasks_complete == "terminatejob"
    assert job.max_parallel_tasks == 2
    assert job.on_task_failure == "performexitoptionsjobaction"
    a, b = d.tasks
    assert len(a.on_exit) == 3 and b.on_exit == ()
    props = job_kind.props_of(job)
    assert props["release"]["maxWallClockTime"] == 900.0  # Batch's default, on both sides
    assert props["onAllTasksComplete"] == "terminatejob"


def _actual(d: object, **changed: object) -> ActualState:
    """The stack's job as if Batch held it, with some props changed."""
    desired = job_kind.from_spec(d.jobs[0], d.stack)  # type: ignore[attr-defined]
    props = {**desired.props, **changed}
    r = Resource(desired.address, props, owner=d.stack, state="active")  # type: ignore[attr-defined]
    return ActualState({r.address: r})


def test_planning_the_job_life(tmp_path: Path) -> None:
    d = render(tmp_path, SPEC)
    addr = "job/j"

    def job_change(actual: ActualState) -> object:
        p = plan(d, actual, PlanOptions("local"))
        return next(c for c in p.changes if str(c.address) == addr)

    # Created with noaction, switched after the tasks: the next plan finishes the switch.
    c = job_change(_actual(d, onAllTasksComplete="noaction"))
    assert c.action.value == "update" and c.fields == ("onAllTasksComplete",)  # type: ignore[attr-defined]
    # Back to noAction is a replace; so is a changed preparation, naming the tasks rerun.
    d2 = render(
        tmp_path, SPEC.replace("onAllTasksComplete: terminateJob", "onAllTasksComplete: noAction")
    )
    p = plan(d2, _actual(d, onAllTasksComplete="terminatejob"), PlanOptions("local"))
    c = next(c for c in p.changes if str(c.address) == addr)
    assert c.action.value == "replace"
    assert "back to noAction" in reason_text(c.reasons)
    c = job_change(_actual(d, preparation={"commandLine": "old"}))
    assert c.action.value == "replace"  # type: ignore[attr-defined]
    assert "preparation task changed" in reason_text(c.reasons)  # type: ignore[attr-defined]
    assert "2 tasks rerun" in reason_text(c.reasons)  # type: ignore[attr-defined]
    # The first jobAction rule: onTaskFailure is fixed when Batch creates the job.
    c = job_change(_actual(d, onTaskFailure="noaction"))
    assert c.action.value == "replace"  # type: ignore[attr-defined]
    assert "performExitOptionsJobAction" in reason_text(c.reasons)  # type: ignore[attr-defined]


def test_refused_max_parallel_tasks_is_said_plainly(tmp_path: Path) -> None:
    d = render(tmp_path, SPEC)
    job = job_kind.from_spec(d.jobs[0], d.stack)
    refused = ServiceError(
        "batch: create job j: Forbidden: Access is Forbidden", service="batch", status=403
    )
    with pytest.raises(ServiceError) as err, max_parallel_refused(job):
        raise refused
    assert "job j" in str(err.value) and "maxParallelTasks (2)" in str(err.value)
    assert err.value.hint is not None and "support" in err.value.hint
    # Other errors, and jobs without the limit, pass through unchanged.
    plain = job_kind.from_spec(
        render(tmp_path, SPEC.replace("    maxParallelTasks: 2\n", "")).jobs[0], d.stack
    )
    with pytest.raises(ServiceError) as err, max_parallel_refused(plain):
        raise refused
    assert err.value is refused


def test_a_job_an_exit_rule_ended_is_converged_and_needs_no_pool(tmp_path: Path) -> None:
    """Its tasks left active never run: no replace, and `whenIdle: delete` keeps the pool
    deleted instead of creating it for them."""
    spec = SPEC.replace("pool:\n", "pool:\n  whenIdle: delete\n", 1)
    d = render(tmp_path, spec)
    job = job_kind.from_spec(d.jobs[0], d.stack)
    ended = Resource(
        job.address,
        job.props,
        owner=d.stack,
        state="completed",
        info={"terminateReason": "TaskFailed"},
    )
    tasks = {
        t.address: Resource(
            t.address,
            {
                "fingerprint": t.fingerprint,
                "maxWallClockTime": None,
                "retentionTime": 7 * 24 * 3600.0,
                "maxTaskRetryCount": 0,
            },
            owner=d.stack,
            state="completed" if t.id == "a" else "active",
        )
        for t in d.tasks
    }
    p = plan(d, ActualState({ended.address: ended, **tasks}), PlanOptions("local"))
    by = {str(c.address): c for c in p.changes}
    assert by["job/j"].action.value == "noop"
    assert by["pool/p"].action.value == "noop" and by["pool/p"].before is None
    # --rerun-failed replaces it: Batch reactivates no task of a completed job.
    p = plan(
        d, ActualState({ended.address: ended, **tasks}), PlanOptions("local", rerun_failed=True)
    )
    c = next(c for c in p.changes if str(c.address) == "job/j")
    assert c.action.value == "replace" and "--rerun-failed" in reason_text(c.reasons)


ACCOUNT = "http://127.0.0.1:10000/devstoreaccount1"


def _sas(container: str, blob: str | None, perm: str) -> str:
    return f"{ACCOUNT}/{container}/{blob}?sig=S" if blob else f"{ACCOUNT}/{container}?sig=S"


def _provider() -> BatchProvider:
    return BatchProvider(client=None, blob_base=ACCOUNT, stack="life")  # type: ignore[arg-type]


LIFE = (
    "apiVersion: bspec/v1\nname: life\n"
    "storage:\n  containers:\n    models: {files: [m.bin]}\n" + POOL + "jobs:\n  - id: j\n"
    "    preparation:\n"
    "      commandLine: /bin/true\n"
    "      resourceFiles: [{container: models}]\n"
    "      environment: {A: '1'}\n"
    "      elevated: true\n"
    "      container: {image: 'python:3.12-slim', runOptions: '--rm'}\n"
    "      waitForSuccess: false\n"
    "      constraints: {maxWallClockTime: PT10M, retentionTime: P1D, maxTaskRetryCount: 1}\n"
    "    release:\n"
    "      commandLine: /bin/true\n"
    "      container: {image: 'python:3.12-slim', workingDirectory: containerImageDefault}\n"
    "      constraints: {maxWallClockTime: PT5M}\n"
    "    tasks:\n      - {id: a, commandLine: /bin/true}\n"
)


def test_job_body_and_reading_it_back(tmp_path: Path) -> None:
    d = render(tmp_path, LIFE, {"m.bin": "weights"})
    names = {c.key: c.name for c in d.containers}
    job = job_kind.from_spec(d.jobs[0], d.stack, names)
    body = _provider().job_body(job, _sas)
    assert body["onAllTasksComplete"] == "noaction"  # switched after the tasks
    prep, rel = body["jobPreparationTask"], body["jobReleaseTask"]
    assert prep["containerSettings"] == {
        "imageName": "python:3.12-slim",
        "containerRunOptions": "--rm",
    }
    assert prep["resourceFiles"] == [{"storageContainerUrl": f"{ACCOUNT}/life-models?sig=S"}]
    assert prep["userIdentity"]["autoUser"]["elevationLevel"] == "admin"
    assert prep["waitForSuccess"] is False
    assert prep["constraints"] == {
        "maxWallClockTime": "PT10M",
        "retentionTime": "P1D",
        "maxTaskRetryCount": 1,
    }
    assert rel["maxWallClockTime"] == "PT5M" and "constraints" not in rel
    assert rel["containerSettings"]["workingDirectory"] == "containerImageDefault"
    # Batch lists what it was given: read back, it is the same normal form (no drift).
    listed = {**body, "state": "active", "metadata": body["metadata"]}
    back = job_kind.from_rest(listed, _provider().source_of)
    assert back.props == job.props
    assert back.owner == "life"


def test_a_plain_job_body_is_unchanged(tmp_path: Path) -> None:
    d = render(
        tmp_path,
        SPEC.split("    preparation:")[0] + "    tasks:\n      - {id: a, commandLine: x}\n",
    )
    job = job_kind.from_spec(d.jobs[0], d.stack)
    assert set(_provider().job_body(job, _sas)) == {
        "id",
        "poolInfo",
        "priority",
        "constraints",
        "usesTaskDependencies",
        "onAllTasksComplete",
        "metadata",
    }


def test_render_shows_the_job_life(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bspec.cli import main
    from spec_helpers import write

    spec = write(tmp_path, SPEC)
    try:
        main(["render", str(spec)])
    except SystemExit as done:
        assert done.code in (0, None)
    text = capsys.readouterr().out
    assert "  preparation: /bin/bash -c" in text and "  release: /bin/true" in text
    assert "  onAllTasksComplete: terminateJob" in text and "  maxParallelTasks: 2" in text
    assert '  onExit: {"exitCodes": [1, 2], "jobAction": "terminate"}' in text
