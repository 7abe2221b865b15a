"""Bad input: hypothesis drives the loader, the validator and the renderer with generated
specs and `--var` values, in process. Never a traceback: every failure is bspec's InputError
(exit 2) with a message, through the CLI too, and nothing is written anywhere (the state
folder is never even created, so no service was started).

Examples per test are fixed (derandomized, so CI sees the same ones); the totals are
>= 10,000 generated specs and --var values. They are small specs: the YAML parser is pure
Python, and the point is breadth of shapes, not size.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec.cli import main
from bspec.errors import BspecError, InputError
from bspec.spec import load, load_document, parse_var_flags, render, validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import record

BASE: dict[str, Any] = {
    "apiVersion": "bspec/v1",
    "name": "fz",
    "vars": {"n": 2, "word": "hi"},
    "storage": {"containers": {"input": {"files": ["data/*.txt"]}, "output": {}}},
    "pool": {"id": "fz-pool", "vmSize": "standard_d2s_v3",
             "image": {"publisher": "canonical", "offer": "0001-com-ubuntu-server-jammy",
                       "sku": "22_04-lts", "nodeAgentSku": "batch.node.ubuntu 22.04"},
             "nodes": 1, "startTask": {"commands": ["echo {{ vars.word }}"]}},
    "jobs": [{"id": "fz-job", "tasks": [
        {"foreach": {"files": "input"}, "id": "f-{{ item.stem | batchid }}",
         "commands": ["cat {{ item.name | shquote }}"],
         "resourceFiles": [{"blob": "input/{{ item.name }}"}],
         "outputFiles": [{"pattern": "*.out", "container": "output"}]},
        {"foreach": {"range": [0, "{{ vars.n }}"]}, "id": "r{{ item }}",
         "commandLine": "/bin/true", "dependsOn": ["f-a"]},
        {"foreach": {"matrix": {"a": [1, 2], "b": ["x"]}}, "id": "m{{ item.a }}{{ item.b }}",
         "commandLine": "echo {{ index }}", "constraints": {"maxTaskRetryCount": 1}},
    ]}],
}
TEMPLATES = [
    "{{ vars.n }}", "{{ vars.word }}", "{{ item }}", "{{ index }}", "{{ stack }}", "{{ nope }}",
    "{{ 1/0 }}", "{{ vars.n | batchid }}", "{{ item.stem | shquote }}", "{{", "}}", "{% if %}",
    "{% for x in y %}", "{{ vars.n + 'a' }}", "{{ ''.__class__.__mro__ }}",
    "{{ lipsum.__globals__ }}", "{{ cycler.__init__.__globals__.os }}", "{{ self }}",
    "{{ range(3) | list }}", "{{ item.name }}", "{{ vars }}", "{{ job }}", "{{ pool }}",
    "{# c #}", "{{ '%s' % vars }}", "{{ vars.n * 1000 }}", "{{ x.y.z }}",
]
KEYS = ["id", "name", "nodes", "vmSize", "tasks", "foreach", "files", "range", "list", "matrix",
        "commands", "commandLine", "dependsOn", "container", "blob", "pattern", "when",
        "outputs", "to", "vars", "pool", "jobs", "storage", "containers", "nodez", "Id",
        "apiversion", "startTask", "constraints", "maxWallClockTime", "environment", "priority"]
scalars = st.one_of(
    st.text(max_size=12), st.integers(-2**40, 2**40), st.floats(allow_nan=True),
    st.booleans(), st.none(), st.sampled_from(TEMPLATES),
    st.sampled_from(["", " ", "-", "a" * 70, "ÄÖ", "../x", "/etc/passwd", "P1D", "PT1S",
                     "01:00", "1e3", "0x1F", "yes", "no", "~", "null", "*", "**/", "a/b"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=5)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*path, i))


PATHS = list(_paths(BASE))[1:]


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    """The base spec with 1-3 mutations: a value replaced, a key deleted, a key added."""
    spec = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(PATHS))
        parent: Any = spec
        try:
            for p in path[:-1]:
                parent = parent[p]
            op = draw(st.sampled_from(["replace", "delete", "add"]))
            last = path[-1]
            if op == "replace":
                parent[last] = draw(values)
            elif op == "delete" and isinstance(parent, dict):
                del parent[last]
            elif op == "delete" and isinstance(parent, list):
                parent.pop(last)
            elif isinstance(parent, dict):
                parent[draw(st.sampled_from(KEYS))] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced this path
    return spec


def dump_yaml(spec: Any) -> str:
    """JSON is YAML; flow style keeps the parser's work small."""
    return json.dumps(spec, ensure_ascii=False)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fuzz")
    (d / "data").mkdir()
    (d / "data" / "a.txt").write_text("a\n")
    (d / "data" / "b.txt").write_text("b b\n")
    return d


def listing(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def expect_bad_input_or_ok(fn: Any) -> str:
    """Run `fn`; only bspec's InputError (exit 2, with a message) may come out of it."""
    try:
        fn()
    except InputError as exc:
        assert exc.exit_code == 2 and str(exc).strip()
        return "error"
    except BspecError as exc:  # pragma: no cover - shows which error escaped
        raise AssertionError(f"{type(exc).__name__} (exit {exc.exit_code}): {exc}") from exc
    return "ok"


FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
COUNTS: dict[str, dict[str, int]] = {}


def count(test: str, outcome: str) -> None:
    COUNTS.setdefault(test, {"ok": 0, "error": 0})[outcome] += 1


def test_generated_specs_load_or_fail_cleanly(folder: Path) -> None:
    before = listing(folder)
    spec_file = folder / "spec.yaml"

    @settings(FUZZ, max_examples=1500)
    @given(specs())
    def check(spec: dict[str, Any]) -> None:
        spec_file.write_text(dump_yaml(spec))
        count("specs", expect_bad_input_or_ok(lambda: load(spec_file)))

    check()
    spec_file.unlink()
    assert listing(folder) == before
    assert COUNTS["specs"]["ok"] > 0 and COUNTS["specs"]["error"] > 0, COUNTS
    record("fuzz-specs", COUNTS["specs"])


PUNCT = ":-{}[]'\"#&*!|>%@`,?\n\t \\"


@st.composite
def texts(draw: st.DrawFn) -> str:
    """A valid spec's text with characters inserted, spans deleted, or lines repeated."""
    text = MIN_YAML
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "delete", "repeat"]))
        if op == "insert":
            text = text[:i] + draw(st.text(alphabet=PUNCT + "az09ä\x00\ufeff", min_size=1,
                                           max_size=3)) + text[i:]
        elif op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)):]
        else:
            lines = text.splitlines(keepends=True)
            j = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[:j + 1] + lines[j:])
    return text


MIN_YAML = """apiVersion: bspec/v1
name: fz
pool:
  id: p
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: o, sku: s, nodeAgentSku: batch.node.ubuntu 22.04}
jobs:
  - id: j
    tasks:
      - id: "t{{ vars.v }}"
        commandLine: echo {{ vars.v }}
vars: {v: 1}
"""


def test_mangled_yaml_text_loads_or_fails_cleanly(folder: Path) -> None:
    spec_file = folder / "text.yaml"

    @settings(FUZZ, max_examples=3000)
    @given(texts(), st.sampled_from(["utf-8", "latin-1", "utf-16"]))
    def check(text: str, encoding: str) -> None:
        spec_file.write_bytes(text.encode(encoding, "replace"))
        count("texts", expect_bad_input_or_ok(lambda: load(spec_file)))

    check()
    spec_file.unlink()
    assert COUNTS["texts"]["ok"] > 0 and COUNTS["texts"]["error"] > 0, COUNTS
    record("fuzz-texts", COUNTS["texts"])


VAR_SPEC = """apiVersion: bspec/v1
name: fz
vars: {v: 1, w: a}
pool:
  id: p
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: o, sku: s, nodeAgentSku: batch.node.ubuntu 22.04}
  nodes: 0
jobs:
  - id: j
    tasks:
      - id: "t-{{ vars.v | batchid }}"
        commandLine: "echo {{ vars.v | shquote }} {{ vars.w }}"
"""
var_values = st.one_of(st.text(max_size=20), st.sampled_from(TEMPLATES),
                       st.sampled_from(["[1, 2]", "{a: 1}", "no", "~", "0o17", "1e400", "&a",
                                        "*a", "!!python/object:os.system", "'", "\"", "[",
                                        "a: b: c", "- x", "|", "%YAML 1.1", "\x00"]))
var_flags = st.lists(st.one_of(
    st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["v", "w", "x", "", "v.w", "1"]),
              var_values),
    st.text(max_size=10)), min_size=1, max_size=3)


def test_var_values_render_or_fail_cleanly(folder: Path) -> None:
    spec_file = folder / "vars.yaml"
    spec_file.write_text(VAR_SPEC)
    doc = load_document(spec_file)
    assert not validate(doc)

    @settings(FUZZ, max_examples=5300)
    @given(var_flags)
    def check(flags: list[str]) -> None:
        count("vars", expect_bad_input_or_ok(lambda: render(doc, parse_var_flags(flags))))

    check()
    spec_file.unlink()
    assert COUNTS["vars"]["ok"] > 0 and COUNTS["vars"]["error"] > 0, COUNTS
    record("fuzz-vars", COUNTS["vars"])


def run_main(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_cli_exits_2_with_a_message_and_changes_nothing(
        folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the CLI's main(): `validate` with any --var exits 0 or 2; `plan`, `apply` and
    `destroy` of a spec that can never be valid exit 2 before touching any service (the
    state folder is never created)."""
    home = tmp_path / "never-created"
    monkeypatch.setenv("BSPEC_HOME", str(home))
    monkeypatch.delenv("BSPEC_TARGET", raising=False)
    good = folder / "cli.yaml"
    good.write_text(VAR_SPEC)
    bad = folder / "cli-bad.yaml"
    bad.write_text(VAR_SPEC.replace('id: "t-{{', 'id: "bad id {{'))
    before = listing(folder)

    @settings(FUZZ, max_examples=300)
    @given(var_flags, st.sampled_from(["validate", "plan", "apply", "destroy"]),
           st.booleans())
    def check(flags: list[str], command: str, as_json: bool) -> None:
        spec = good if command == "validate" else bad
        argv = [command, str(spec)] + [a for f in flags for a in ("--var", f)]
        argv += ["--yes"] if command in ("apply", "destroy") else []
        argv += ["--json"] if as_json else []
        code, out, err = run_main(argv)
        assert "Traceback" not in out + err
        if code == 0:
            assert command == "validate"
            count("cli", "ok")
            return
        assert code == 2, (argv, code, out, err)
        if as_json:
            assert json.loads(out)["error"]["message"]
        else:
            assert "Error" in err, err
        count("cli", "error")

    check()
    assert not home.exists()
    assert listing(folder) == before
    record("fuzz-cli", COUNTS["cli"])
    total = sum(sum(c.values()) for c in COUNTS.values())
    if {"specs", "texts", "vars", "cli"} <= set(COUNTS):
        assert total >= 10_000, COUNTS
    record("fuzz-total", {"examples": total, "pid": os.getpid()})
