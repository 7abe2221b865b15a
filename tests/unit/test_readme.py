"""The README stays true to the code: its links resolve, every command is documented, and its
exit-code table covers every exit code the error tree uses."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main
from bspec import errors
from bspec.cli import app

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text("utf-8")


def test_the_two_commands_are_stated_literally() -> None:
    assert "make demo" in README
    assert "make test" in README


def test_relative_links_resolve() -> None:
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the spec reference and other docs"
    missing = [t for t in local if not (REPO / t).exists()]
    assert not missing


def test_every_cli_command_is_in_the_command_table() -> None:
    group = typer.main.get_command(app)
    table = [line for line in README.splitlines() if line.startswith("| `bspec ")]
    documented = " ".join(table)
    commands = getattr(group, "commands", {})
    for name, command in commands.items():
        if name == "local":
            for sub in getattr(command, "commands", {}):
                assert sub in documented, f"bspec local {sub}"
            continue
        assert f"`bspec {name}" in documented, f"bspec {name} is not in the README's table"


def _exit_codes(cls: type[errors.BspecError]) -> set[int]:
    codes = {cls.exit_code}
    for sub in cls.__subclasses__():
        codes |= _exit_codes(sub)
    return codes


def test_exit_code_table_covers_the_error_tree() -> None:
    table = re.findall(r"(?m)^\| (\d+) \|", README)
    assert {int(c) for c in table} >= _exit_codes(errors.BspecError) | {0, 4, 130}
