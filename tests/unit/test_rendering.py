"""Rendering: sandboxed Jinja over files/range/list/matrix, scope, filters, blob names,
command lines, dependencies, and the problems only rendering can reveal."""

from __future__ import annotations

import json
import shlex
from datetime import timedelta
from pathlib import Path

import pytest
from bspec.errors import SpecError
from bspec.spec import load
from bspec.spec.environment import batchid, make_environment
from bspec.spec.tree import parse_duration
from spec_helpers import POOL, render, write

REPO = Path(__file__).resolve().parents[2]


def spec_with(tasks: str, *, containers: str = "    out: {}\n", extra: str = "") -> str:
    return (
        "apiVersion: bspec/v1\nname: St\nvars: {n: 3, word: hi}\n"
        f"storage:\n  containers:\n{containers}{POOL}{extra}"
        f"jobs:\n  - id: j\n    tasks:\n{tasks}"
    )


def test_topwords_renders_as_design_says() -> None:
    d = load(REPO / "specs" / "topwords.yaml")
    assert [t.id for t in d.tasks] == ["topN-taskdata1", "topN-taskdata2", "topN-taskdata3"]
    assert d.tasks[0].command_line == (
        "/bin/bash -c 'set -e; python3 $AZ_BATCH_NODE_SHARED_DIR/topwords.py "
        "--filepath taskdata1.txt --numwords 3'"
    )
    assert [c.name for c in d.containers] == ["topwords-application", "topwords-input",
                                              "topwords-output"]
    assert {(b.container, b.name) for b in d.blobs} == {
        ("application", "topwords.py"), ("input", "taskdata1.txt"), ("input", "taskdata2.txt"),
        ("input", "taskdata3.txt")}
    assert all(Path(b.path).is_absolute() and len(b.md5) == 32 for b in d.blobs)
    assert d.pool is not None and d.pool.start_task is not None
    assert d.pool.start_task.command_line.startswith("/bin/bash -c 'set -e; cp -r ")
    assert d.jobs[0].outputs[0].to == str((REPO / "out" / "topwords").resolve())
    assert not d.jobs[0].uses_task_dependencies


def test_commands_become_one_quoted_bash_line(tmp_path: Path) -> None:
    lines = ["echo 'it s'", 'grep -c "a b" x', "echo $HOME; true"]
    d = render(tmp_path, spec_with(f"      - id: t\n        commands: {json.dumps(lines)}\n"))
    expected = "/bin/bash -c " + shlex.quote("set -e; " + "; ".join(lines))
    assert d.tasks[0].command_line == expected
    assert shlex.split(d.tasks[0].command_line)[2] == "set -e; " + "; ".join(lines)


def test_command_line_passes_through(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with("      - id: t\n        commandLine: python3 -c 'print(1)'\n"))
    assert d.tasks[0].command_line == "python3 -c 'print(1)'"


def test_foreach_range_list_matrix_order_and_scope(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - foreach: {range: [1, 7, 2]}\n'
        '        id: "r{{ item }}-{{ index }}"\n'
        '        commandLine: "echo {{ stack }} {{ pool }} {{ job }} {{ vars.word }}"\n'
        '      - foreach: {list: [x, y]}\n'
        '        id: "l-{{ item }}"\n'
        '        commandLine: "true"\n'
        '      - foreach: {matrix: {a: [1, 2], b: [u, v]}}\n'
        '        id: "m-{{ item.a }}-{{ item.b }}"\n'
        '        commandLine: "true"\n'))
    assert [t.id for t in d.tasks] == ["r1-0", "r3-1", "r5-2", "l-x", "l-y",
                                       "m-1-u", "m-1-v", "m-2-u", "m-2-v"]
    assert d.tasks[0].command_line == "echo St p j hi"


def test_foreach_files_items_are_sorted_with_metadata(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - foreach: {files: in}\n'
        '        id: "f-{{ item.stem | batchid }}"\n'
        '        commandLine: "{{ item.name }} {{ item.size }} {{ item.md5 }} {{ item.path }}"\n',
        containers='    in:\n      files: ["data/**/*.txt"]\n'),
        files={"data/b.txt": "bb", "data/a.txt": "a", "data/sub/c.txt": "ccc"})
    assert [t.id for t in d.tasks] == ["f-a", "f-b", "f-sub-c"]
    name, size, md5, path = d.tasks[2].command_line.split()
    assert (name, size) == ("sub/c.txt", "3")
    assert md5 == "9df62e693988eb4e1e1444ece0578579"
    assert path == str(tmp_path / "data" / "sub" / "c.txt")


def test_var_overrides_win_and_are_typed(tmp_path: Path) -> None:
    spec = spec_with('      - foreach: {range: [0, "{{ vars.n }}"]}\n'
                     '        id: "t{{ item }}"\n        commandLine: "echo {{ vars.word }}"\n')
    d = render(tmp_path, spec, n=5, word="no")
    assert len(d.tasks) == 5 and d.tasks[0].command_line == "echo no"
    assert d.vars["n"] == 5


def test_undefined_variable_names_file_line_and_path(tmp_path: Path) -> None:
    path = write(tmp_path, spec_with('      - id: t\n        commandLine: "echo {{ vars.nope }}"\n'))
    with pytest.raises(SpecError) as err:
        load(path)
    p = err.value.problems[0]
    assert (p.file, p.path) == (str(path), "$.jobs[0].tasks[0].commandLine")
    assert p.line == path.read_text().splitlines().index(
        '        commandLine: "echo {{ vars.nope }}"') + 1
    assert "nope" in p.message


def test_sandbox_refuses_unsafe_attributes(tmp_path: Path) -> None:
    path = write(tmp_path, spec_with(
        "      - id: t\n        commandLine: \"{{ ''.__class__.__mro__ }}\"\n"))
    with pytest.raises(SpecError) as err:
        load(path)
    assert "template error" in err.value.problems[0].message


def test_templates_folder_beside_the_spec_comes_first(tmp_path: Path) -> None:
    d = render(
        tmp_path,
        spec_with('      - id: t\n        commands: [a, b]\n'
                  '      - id: u\n'
                  '        commandLine: "{% from \'macros.j2\' import py %}{{ py(\'x.py\', \'-v\') }}"\n'),
        files={"templates/commandline.j2": "sh -c {{ commands | join(' && ') | shquote }}"})
    assert d.tasks[0].command_line == "sh -c 'a && b'"
    assert d.tasks[1].command_line == "python3 $AZ_BATCH_NODE_SHARED_DIR/x.py -v"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("abc", "abc"), ("a b.c", "a-b-c"), ("ü", "-"), ("x" * 64, "x" * 64)],
)
def test_batchid_filter(value: str, expected: str) -> None:
    assert batchid(value) == expected


def test_batchid_shortens_long_ids_with_a_hash() -> None:
    a, b = batchid("y" * 100), batchid("y" * 101)
    assert len(a) == len(b) == 64 and a != b
    assert batchid("").startswith("id-")


def test_shquote_filter() -> None:
    env = make_environment()
    assert env.from_string("{{ x | shquote }}").render(x="it's") == "'it'\"'\"'s'"


def test_dependencies_globs_ids_ranges_and_reduce(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - foreach: {range: [1, 4]}\n        id: "{{ item }}"\n        commandLine: "true"\n'
        '      - id: after\n        commandLine: "true"\n        dependsOn: [{range: [1, 3]}]\n'
        '      - id: reduce\n        commandLine: "true"\n        dependsOn: ["*", AFTER]\n'))
    after, reduce = d.tasks[3], d.tasks[4]
    assert after.depends_on_ranges == ((1, 3),) and after.depends_on == ()
    assert set(reduce.depends_on) == {"1", "2", "3", "after"}
    assert d.jobs[0].uses_task_dependencies


def test_numeric_dependencies_over_batch_limit_fold_into_ranges(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - foreach: {range: [10000, 25000]}\n        id: "{{ item }}"\n        commandLine: "true"\n'
        '      - id: reduce\n        commandLine: "true"\n        dependsOn: ["1*", "2*"]\n'))
    reduce = d.tasks[-1]
    assert reduce.depends_on == () and reduce.depends_on_ranges == ((10000, 24999),)


def test_non_numeric_dependencies_over_batch_limit_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, spec_with(
        '      - foreach: {range: [0, 9000]}\n        id: "map-task-{{ item }}"\n'
        '        commandLine: "true"\n'
        '      - id: reduce\n        commandLine: "true"\n        dependsOn: ["map-*"]\n'))
    with pytest.raises(SpecError) as err:
        load(path)
    assert "64000" in err.value.problems[0].message
    assert err.value.problems[0].path == "$.jobs[0].tasks[1].dependsOn[0]"


def test_constraints_durations_and_options(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - id: t\n        commandLine: "true"\n        displayName: T\n'
        '        elevated: true\n        requiredSlots: 2\n        maxTaskRetryCount: 2\n'
        '        environment: {A: "1"}\n'
        '        constraints: {maxWallClockTime: PT1H30M, retentionTime: P1D}\n'
    ).replace("pool:\n  id: p\n", "pool:\n  id: p\n  taskSlotsPerNode: 2\n"))
    t = d.tasks[0]
    assert t.constraints.max_wall_clock_time == timedelta(hours=1, minutes=30)
    assert t.constraints.retention_time == timedelta(days=1)
    assert t.constraints.max_task_retry_count == 2
    assert (t.display_name, t.elevated, t.required_slots, t.environment) == ("T", True, 2,
                                                                            (("A", "1"),))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("PT30M", timedelta(minutes=30)), ("P1D", timedelta(days=1)),
     ("PT1H30M", timedelta(hours=1, minutes=30)), ("P1W", timedelta(weeks=1)),
     ("PT0.5S", timedelta(seconds=0.5))],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_templated_pool_values_are_typed_and_revalidated(tmp_path: Path) -> None:
    spec = spec_with('      - id: t\n        commandLine: "true"\n').replace(
        "pool:\n  id: p\n", 'pool:\n  id: "{{ vars.word }}-pool"\n  nodes: "{{ vars.n }}"\n')
    d = render(tmp_path, spec)
    assert d.pool is not None and (d.pool.id, d.pool.target_dedicated_nodes) == ("hi-pool", 3)
    with pytest.raises(SpecError) as err:
        render(tmp_path, spec, word="bad id")
    assert err.value.problems[0].path == "$.pool.id"


def test_container_names_default_and_explicit(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with('      - id: t\n        commandLine: "true"\n',
                                   containers="    out: {}\n    logs2: {name: my-logs}\n"))
    assert [(c.key, c.name) for c in d.containers] == [("out", "st-out"), ("logs2", "my-logs")]


def test_output_blob_into_undeclared_files_is_allowed(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - id: t\n        commandLine: "true"\n'
        '        resourceFiles: [{blob: out/produced.txt, filePath: x, fileMode: "0755"}]\n'))
    rf = d.tasks[0].resource_files[0]
    assert (rf.container, rf.blob, rf.file_path, rf.file_mode) == ("out", "produced.txt", "x",
                                                                   "0755")


def test_sweep_example_renders() -> None:
    d = load(REPO / "specs" / "sweep.yaml")
    assert len(d.tasks) == 3 * 2 * 3 + 1
    reduce = d.tasks[-1]
    assert reduce.id == "reduce" and len(reduce.depends_on) == 18


def test_integer_dependencies_name_numeric_task_ids(tmp_path: Path) -> None:
    d = render(tmp_path, spec_with(
        '      - foreach: {range: [0, 3]}\n        id: "{{ item }}"\n        commandLine: "true"\n'
        '      - id: r\n        commandLine: "true"\n        dependsOn: [0, 2]\n'))
    assert d.tasks[-1].depends_on == ("0", "2")


def test_foreach_lists_can_come_from_vars(tmp_path: Path) -> None:
    spec = spec_with(
        '      - foreach: {list: "{{ vars.names }}"}\n        id: "l-{{ item }}"\n'
        '        commandLine: "true"\n'
        '      - foreach: {matrix: {a: "{{ vars.names[:1] }}", b: [1, 2]}}\n'
        '        id: "m-{{ item.a }}-{{ item.b }}"\n        commandLine: "true"\n'
    ).replace("vars: {n: 3, word: hi}", "vars: {n: 3, word: hi, names: [x, y]}")
    d = render(tmp_path, spec)
    assert [t.id for t in d.tasks] == ["l-x", "l-y", "m-x-1", "m-x-2"]
    d = render(tmp_path, spec, names=["z"])
    assert [t.id for t in d.tasks] == ["l-z", "m-z-1", "m-z-2"]
    with pytest.raises(SpecError) as err:
        render(tmp_path, spec, names="notalist")
    assert err.value.problems[0].path == "$.jobs[0].tasks[0].foreach.list"


def test_sandbox_caps_huge_repetition(tmp_path: Path) -> None:
    path = write(tmp_path, spec_with(
        "      - id: t\n        commandLine: \"{{ 'x' * 10**9 }}\"\n"))
    with pytest.raises(SpecError) as err:
        load(path)
    assert "too large" in err.value.problems[0].message
