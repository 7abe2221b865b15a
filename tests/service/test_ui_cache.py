"""`bspec ui` against the local services, without a browser: the task cache's Batch requests
per warm refresh do not grow with the job's task count (counted by the target's counting
transport), changes since the last refresh are picked up, and applying a plan the page
showed goes through `apply` of a saved plan (refused once the plan is stale)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bspec.errors import BspecError
from bspec.ui.cache import Query
from bspec.ui.state import Dashboard, watching
from engine_support import Stack

pytestmark = pytest.mark.service


@pytest.fixture
def home(local_services: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSPEC_HOME", str(local_services.home))


@pytest.fixture
def stacks(home: None, tmp_path: Path) -> Iterator[tuple[Stack, Stack]]:
    small = Stack(tmp_path / "small", f"uis-{uuid.uuid4().hex[:8]}")
    small.range_tasks = 20
    big = Stack(tmp_path / "big", f"uib-{uuid.uuid4().hex[:8]}")
    big.range_tasks = 2500
    for s in (small, big):
        s.apply()
    try:
        yield small, big
    finally:
        for s in (small, big):
            s.destroy()


def _refresh_cost(dash: Dashboard, name: str) -> int:
    s = dash.stacks[name]
    before = s.tgt.counter.total()
    s.refresh()
    return s.tgt.counter.total() - before


def test_a_warm_refresh_costs_the_same_for_20_and_2500_tasks(
    stacks: tuple[Stack, Stack],
) -> None:
    small, big = stacks
    with watching([small.spec, big.spec]) as dash:
        cold = {s.name: _refresh_cost(dash, s.name) for s in stacks}
        warm = {s.name: _refresh_cost(dash, s.name) for s in stacks}
        assert warm[small.name] == warm[big.name], warm
        # counts + one page of changes for the job; pool + its nodes
        assert warm[big.name] <= 4, warm
        assert cold[big.name] > warm[big.name]  # the first read pages through 2,500 tasks
        job = dash.stacks[big.name].jobs[big.job_id]
        assert len(job.rows) == 2500 and job.counts and job.counts["active"] == 2500
        assert job.page(Query(prefix="r249"))[0] == 11


def test_a_shown_plan_applies_and_a_stale_one_is_refused(home: None, tmp_path: Path) -> None:
    s = Stack(tmp_path / "plan", f"uip-{uuid.uuid4().hex[:8]}")
    s.range_tasks = 2
    s.write()
    try:
        with watching([s.spec]) as dash:
            stack = dash.stacks[s.name]
            shown = stack.make_plan(dash.folder)
            assert shown.data["summary"]["create"] > 0 and shown.lines
            stack.apply_plan(shown.id)
            assert stack.make_plan(dash.folder).data["changes"] == []
            # the spec changes after a plan was shown: applying that plan is refused
            stale = stack.make_plan(dash.folder)
            s.range_tasks = 3
            s.apply()
            with pytest.raises(BspecError) as refused:
                stack.apply_plan(stale.id)
            assert refused.value.exit_code == 3, refused.value
            assert os.path.exists(stale.path) and json.loads(stale.path.read_text())
    finally:
        s.destroy()


def test_without_a_spec_the_stacks_are_found_by_their_tags(stacks: tuple[Stack, Stack]) -> None:
    small, big = stacks
    with watching([]) as dash:
        found = dash.stacks[small.name]
        assert found.spec is None and list(found.jobs) == [small.job_id]
        assert list(found.pools) == [small.pool_id] and big.name in dash.stacks
        found.refresh()
        assert len(found.jobs[small.job_id].rows) == 20
        with pytest.raises(BspecError, match="needs its spec"):
            found.make_plan(dash.folder)
