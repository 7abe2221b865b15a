"""The one dependency expander: `dependsOn` ids, globs and ranges -> what Batch is sent."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from bspec.spec import rendering
from bspec.spec.dependencies import MAX_DEPENDS_CHARS, expand_dependencies, fold, merge
from bspec.spec.environment import Failure
from spec_helpers import POOL, render

JOB = ["1", "2", "3", "7", "map-a", "map-b", "Reduce"]
TASKS = {t.lower(): t for t in JOB}
NUMBERS = sorted(int(t) for t in JOB if t.isdigit())


def expand(task: str, *deps: Any) -> tuple[tuple[str, ...], tuple[tuple[int, int], ...]]:
    entries = [(("dependsOn", i), d) for i, d in enumerate(deps)]
    return expand_dependencies(task, entries, TASKS, NUMBERS, "j")


def test_ids_globs_and_ranges_in_job_order_without_repeats() -> None:
    assert expand("reduce", "MAP-*", "map-a", {"range": [2, 3]}, {"range": [1, 1]}) == (
        ("map-a", "map-b"),
        ((1, 3),),
    )


def test_a_glob_never_matches_the_task_itself() -> None:
    assert expand("map-a", "map-*") == (("map-b",), ())


@pytest.mark.parametrize(
    ("task", "dep", "words"),
    [
        ("reduce", "map-c", "; did you mean 'map-"),
        ("reduce", "x-*", "matches no other task"),
        ("reduce", {"range": [3, 7]}, "names 3 task id(s)"),
        ("reduce", {"range": [3, 1]}, "needs integers start <= end"),
        ("2", {"range": [1, 3]}, "depends on itself"),
        ("Reduce", "reduce", "depends on itself"),
    ],
)
def test_mistakes_name_the_entry(task: str, dep: Any, words: str) -> None:
    with pytest.raises(Failure) as err:
        expand(task, "map-a", dep)
    assert words in err.value.message
    assert err.value.path == ("dependsOn", 1)


def test_the_cap_is_batchs_and_numeric_ids_fold_into_ranges() -> None:
    assert MAX_DEPENDS_CHARS == 64_000
    ids = [str(n) for n in range(10_000, 30_000)]
    tasks = {i: i for i in [*ids, "reduce"]}
    numbers = [int(i) for i in ids]
    deps, ranges = expand_dependencies("reduce", [((), "1*"), ((), "2*")], tasks, numbers, "j")
    assert (deps, ranges) == ((), ((10_000, 29_999),))
    named = {f"task-{n:05}": f"task-{n:05}" for n in range(7_000)} | {"reduce": "reduce"}
    with pytest.raises(Failure, match="over Batch's limit of 64000"):
        expand_dependencies("reduce", [((), "task-*")], named, [], "j")


def test_fold_and_merge() -> None:
    assert fold([1, 2, 3, 5, 6, 9]) == [(1, 3), (5, 6), (9, 9)]
    assert merge([(5, 6), (1, 3), (4, 4), (8, 9)]) == [(1, 6), (8, 9)]


def test_rendering_leaves_the_garbage_collector_alone(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """render() is a library call: only a program (the CLI, the benchmark) may pause the gc."""
    spec = "apiVersion: bspec/v1\nname: g\n" + POOL
    spec += 'jobs:\n  - id: j\n    tasks:\n      - id: t\n        commandLine: "true"\n'

    def refuse() -> None:
        raise AssertionError("render() switched the process-wide garbage collector off")

    with monkeypatch.context() as m:
        m.setattr(gc, "disable", refuse)
        assert render(tmp_path, spec).tasks[0].id == "t"
    assert gc.isenabled()
    with rendering.gc_paused():
        assert not gc.isenabled()
        with rendering.gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
