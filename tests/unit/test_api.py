"""The library surface: `import bspec` exposes the commands' functions lazily, and `vars`
given as a mapping keep their Python types on the way through --var parsing."""

from __future__ import annotations

from pathlib import Path

import bspec
import pytest
from bspec import api
from bspec.spec import parse_var_flags

REPO = Path(__file__).resolve().parents[2]


def test_the_package_exports_the_commands() -> None:
    for name in ("load", "plan", "apply", "destroy", "status", "wait", "outputs", "logs"):
        assert getattr(bspec, name) is getattr(api, name)
    with pytest.raises(AttributeError):
        _ = bspec.nothing_here


@pytest.mark.parametrize("value", ["no", "3", 3, 2.5, True, None, [1, "a"], {"k": "v"}])
def test_mapping_vars_keep_their_types(value: object) -> None:
    assert parse_var_flags(api._var_flags({"x": value})) == {"x": value}


def test_load_renders_with_mapping_vars() -> None:
    desired = bspec.load(REPO / "specs" / "topwords.yaml", vars={"numwords": 5})
    assert len(desired.tasks) == 3
    assert all("--numwords 5" in t.command_line for t in desired.tasks)
