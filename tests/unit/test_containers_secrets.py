"""Containers and secrets in a spec, without a service: what rendering builds, what the
fingerprint holds (and that existing specs keep theirs), how the pool's container
configuration plans, the request bodies, and that no secret value reaches the desired
state, a saved plan or render's output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from bspec.errors import InputError, SpecError, StalePlanError
from bspec.kinds import pool as pool_kind
from bspec.kinds import task as task_kind
from bspec.model import Action, ActualState, Address, DesiredState, Resource
from bspec.planning import PlanOptions, plan
from bspec.reporting import reason_text
from bspec.saved_plan import to_data
from bspec.spec import load, secrets
from bspec.spec.fingerprint import canonical, fingerprint_document
from bspec.spec.fingerprint import task_fingerprint as fast_fingerprint
from spec_helpers import write

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-Value-42"
PASSWORD = "hunter2-registry"

SPEC = """apiVersion: bspec/v1
name: ctr
pool:
  id: ctr-pool
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: 0001-com-ubuntu-server-jammy, sku: 22_04-lts, nodeAgentSku: batch.node.ubuntu 22.04}
  nodes: NODES
  containers:
    images: [busybox]
    registries:
      - {server: myreg.azurecr.io, username: me, passwordEnv: REG_PW}
      - {server: other.azurecr.io, identity: /subscriptions/x/identities/pull}
  startTask:
    commandLine: /bin/true
    secretEnvironment: [START_SECRET]
    container: {image: busybox}
jobs:
  - id: j
    tasks:
      - id: t1
        commandLine: /bin/sh -c 'echo $TOKEN'
        container: {image: busybox, runOptions: --rm, workingDirectory: containerImageDefault}
        secretEnvironment: [TOKEN]
      - id: plain
        commandLine: /bin/true
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"REG_PW": PASSWORD, "START_SECRET": SECRET + "-start", "TOKEN": SECRET}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    return values


def _load(tmp: Path, nodes: int = 1, spec: str = SPEC) -> DesiredState:
    return load(write(tmp, spec.replace("NODES", str(nodes))))


def test_rendering_builds_containers_and_secret_names(tmp_path: Path, env: Any) -> None:
    d = _load(tmp_path)
    t1, plain = d.tasks
    assert t1.container is not None and t1.container.image == "busybox"
    assert t1.container.working_directory == "containerImageDefault"
    assert t1.secret_environment == ("TOKEN",)
    assert plain.container is None and plain.secret_environment == ()
    assert d.pool is not None and d.pool.containers is not None
    assert d.pool.containers.images == ("busybox",)
    reg, ident = d.pool.containers.registries
    assert (reg.server, reg.username, reg.password_env) == ("myreg.azurecr.io", "me", "REG_PW")
    assert ident.identity == "/subscriptions/x/identities/pull"
    assert d.pool.start_task is not None and d.pool.start_task.secret_environment == (
        "START_SECRET",
    )
    assert dict(d.secrets) == {n: secrets.digest(n, v) for n, v in env.items()}
    # No value anywhere in the desired state (as a saved plan writes it) or render's output.
    text = json.dumps(to_data(d))
    assert all(v not in text for v in env.values())
    from bspec.commands.spec import desired_to_json

    shown = json.dumps(desired_to_json(d))
    assert all(v not in shown for v in env.values())
    assert '"secretEnvironment": ["TOKEN"]' in shown


def test_fingerprint_has_container_and_secret_digest_only_when_given(
    tmp_path: Path, env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _load(tmp_path)
    t1, plain = d.tasks
    doc = fingerprint_document(
        **_empty(t1.command_line),
        container={
            "image": "busybox",
            "runOptions": "--rm",
            "workingDirectory": "containerImageDefault",
        },
        secret_environment={"TOKEN": secrets.digest("TOKEN", SECRET)},
    )
    assert SECRET not in canonical(doc)
    assert t1.fingerprint == "v1:" + hashlib.sha256(canonical(doc).encode()).hexdigest()
    assert t1.fingerprint == fast_fingerprint(
        **_empty(t1.command_line),
        container=doc["container"],
        secret_environment=doc["secretEnvironment"],
    )
    bare = fingerprint_document(**_empty("/bin/true"))
    assert "container" not in bare and "secretEnvironment" not in bare
    assert plain.fingerprint == "v1:" + hashlib.sha256(canonical(bare).encode()).hexdigest()
    # A changed secret changes the fingerprint (a rerun), not the plain task's.
    monkeypatch.setenv("TOKEN", SECRET + "!")
    again = load(tmp_path / "spec.yaml")
    assert again.tasks[0].fingerprint != t1.fingerprint
    assert again.tasks[1].fingerprint == plain.fingerprint


def _empty(command_line: str) -> dict[str, Any]:
    """The fingerprint arguments of a task with only a command line."""
    from bspec.spec.fingerprint import BlobIndex

    return {
        "command_line": command_line,
        "resource_files": (),
        "output_files": (),
        "environment": (),
        "depends_on": (),
        "depends_on_ranges": (),
        "parent_fingerprints": {},
        "blobs": BlobIndex(()),
    }


# Recorded from main before containers and secrets existed: the existing specs' task
# fingerprints (sha256 of them all, newline-joined) must not move.
RECORDED = {
    "topwords": (3, "cdc81329e8011f62312c7669378c532a2a843ae1b7daa68427a7a99bd7c9d9a3"),
    "sweep": (19, "584c738687ab900bcc968b9c4620ccf20b5dbfe52e7e8c060306f08cfaa24e73"),
}


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_existing_specs_keep_their_fingerprints(name: str) -> None:
    d = load(ROOT / "specs" / f"{name}.yaml")
    digest = hashlib.sha256("\n".join(t.fingerprint for t in d.tasks).encode()).hexdigest()
    assert (len(d.tasks), digest) == RECORDED[name]
    assert d.secrets == ()


def test_an_unset_secret_is_a_spec_error_at_its_place(
    tmp_path: Path, env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEN")
    monkeypatch.delenv("REG_PW")
    with pytest.raises(SpecError) as err:
        _load(tmp_path)
    paths = {p.path for p in err.value.problems}
    assert paths == {
        "$.jobs[0].tasks[0].secretEnvironment[0]",
        "$.pool.containers.registries[0].passwordEnv",
    }
    assert all(p.line and p.column for p in err.value.problems)
    assert PASSWORD not in str(err.value) and SECRET not in str(err.value)


def _actual_from_bodies(d: DesiredState, nodes: int) -> ActualState:
    """The pool as Batch lists it after bspec created it (a local service echoes the
    password back: it must be ignored), with `nodes` current nodes."""
    from bspec.providers.batch import BatchProvider

    prov = BatchProvider(client=None, blob_base="http://x/acct", stack="ctr")  # type: ignore[arg-type]
    want = pool_kind.from_spec(d.pool, d)  # type: ignore[arg-type]
    body = prov.pool_body(want, lambda *_: "http://x/acct/c?sig=S")
    body.update(currentDedicatedNodes=nodes, state="active", allocationState="steady")
    got = pool_kind.from_rest(json.loads(json.dumps(body)), prov.source_of)
    return ActualState({got.address: got})


def test_the_pool_body_reads_secrets_and_reads_back_equal(tmp_path: Path, env: Any) -> None:
    d = _load(tmp_path)
    from bspec.providers.batch import BatchProvider

    prov = BatchProvider(client=None, blob_base="http://x/acct", stack="ctr")  # type: ignore[arg-type]
    want = pool_kind.from_spec(d.pool, d)  # type: ignore[arg-type]
    assert PASSWORD not in json.dumps(want.props)
    body = prov.pool_body(want, lambda *_: "http://x/acct/c?sig=S")
    cc = body["virtualMachineConfiguration"]["containerConfiguration"]
    assert cc["type"] == "dockerCompatible" and cc["containerImageNames"] == ["busybox"]
    assert cc["containerRegistries"] == [
        {"registryServer": "myreg.azurecr.io", "username": "me", "password": PASSWORD},
        {
            "registryServer": "other.azurecr.io",
            "identityReference": {"resourceId": "/subscriptions/x/identities/pull"},
        },
    ]
    st = body["startTask"]
    assert {"name": "START_SECRET", "value": env["START_SECRET"]} in st["environmentSettings"]
    assert st["containerSettings"]["imageName"] == "busybox"
    kept = {m["name"]: m["value"] for m in body["metadata"]}[pool_kind.SECRETS_METADATA]
    assert PASSWORD not in kept and SECRET not in kept
    got = _actual_from_bodies(d, 1).get(Address.pool("ctr-pool"))
    assert got is not None
    assert got.props == want.props  # converged: nothing to change, no secret in the props
    assert all(v not in json.dumps(got.props) for v in env.values())


@pytest.mark.parametrize(("nodes", "action"), [(0, Action.UPDATE), (2, Action.REPLACE)])
def test_a_container_change_is_in_place_on_an_empty_pool_else_a_replace(
    tmp_path: Path, env: Any, nodes: int, action: Action
) -> None:
    d = _load(tmp_path)
    actual = _actual_from_bodies(d, nodes)
    # converged first (tasks aside)
    p = plan(d, actual, PlanOptions("local"))
    assert next(c for c in p.changes if c.address.kind.value == "pool").action is Action.NOOP
    changed = _load(tmp_path, spec=SPEC.replace("images: [busybox]", "images: [busybox, alpine]"))
    p = plan(changed, actual, PlanOptions("local"))
    c = next(c for c in p.changes if c.address.kind.value == "pool")
    assert c.action is action and c.fields == ("containers",)
    words = reason_text(c.reasons)
    assert ("containers can only change on an empty pool" in words) == (nodes > 0)
    assert ("containers changed in place (the pool has no nodes)" in words) == (nodes == 0)


def test_a_changed_registry_password_or_start_secret_is_a_change_without_the_value(
    tmp_path: Path, env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _load(tmp_path)
    actual = _actual_from_bodies(d, 0)
    monkeypatch.setenv("START_SECRET", "another")
    c = next(
        c
        for c in plan(_load(tmp_path), actual, PlanOptions("local")).changes
        if c.address.kind.value == "pool"
    )
    assert c.action is Action.UPDATE and c.fields == ("startTask",)
    monkeypatch.setenv("REG_PW", "new-password")
    c = next(
        c
        for c in plan(_load(tmp_path), actual, PlanOptions("local")).changes
        if c.address.kind.value == "pool"
    )
    assert set(c.fields) == {"startTask", "containers"}
    assert "new-password" not in repr(c)


def test_the_task_body_sends_container_settings_and_secret_values(tmp_path: Path, env: Any) -> None:
    from bspec.providers.batch import BatchProvider

    d = _load(tmp_path)
    t1 = d.tasks[0]
    props = task_kind.props_of(t1, {}, "ctr-bspec")
    assert props["secretEnvironment"] == ["TOKEN"] and SECRET not in json.dumps(props)
    prov = BatchProvider(client=None, blob_base="http://x/acct", stack="ctr")  # type: ignore[arg-type]
    body = prov.task_body(Resource(t1.address, props), lambda *_: "http://x/c?sig=S")
    assert body["containerSettings"] == {
        "imageName": "busybox",
        "workingDirectory": "containerImageDefault",
        "containerRunOptions": "--rm",
    }
    assert {"name": "TOKEN", "value": SECRET} in body["environmentSettings"]
    plain = prov.task_body(
        Resource(d.tasks[1].address, task_kind.props_of(d.tasks[1], {}, "ctr-bspec")),
        lambda *_: "http://x/c?sig=S",
    )
    assert "containerSettings" not in plain
    assert [e["name"] for e in plain["environmentSettings"]] == ["BSPEC_FINGERPRINT"]


def test_saved_plan_secrets_are_checked_before_applying(env: Any) -> None:
    made = ((n, secrets.digest(n, v)) for n, v in env.items())
    expected = tuple(made)
    secrets.check(expected)
    with pytest.raises(StalePlanError) as stale:
        secrets.check(expected, {**env, "TOKEN": "zzNEWzz"})
    assert "TOKEN" in str(stale.value) and "zzNEWzz" not in str(stale.value)
    with pytest.raises(InputError) as missing:
        secrets.check(expected, {k: v for k, v in env.items() if k != "REG_PW"})
    assert missing.value.exit_code == 2 and "REG_PW" in str(missing.value)


def test_the_digest_is_salted_by_name_and_slow() -> None:
    a = secrets.digest("A", "same")
    assert a != secrets.digest("B", "same")
    assert a.startswith("pbkdf2:") and "same" not in a
    assert a != "pbkdf2:" + hashlib.sha256(b"same").hexdigest()
    assert secrets.ITERATIONS >= 100_000


def test_a_saved_plan_scrubs_a_secret_read_back_from_an_untagged_start_task() -> None:
    from bspec.saved_plan import scrub

    basis = {"pool/p": {"props": {"startTask": {"environment": {"TOKEN": SECRET, "A": "1"}}}}}
    clean = scrub(basis, {"TOKEN"})
    assert clean["pool/p"]["props"]["startTask"]["environment"] == {"TOKEN": "(secret)", "A": "1"}
    assert scrub(basis, set()) is basis
