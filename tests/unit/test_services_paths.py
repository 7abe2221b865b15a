"""Where the local services keep their state, and the Azurite connection string; no services."""

from __future__ import annotations

from pathlib import Path

import pytest
from bspec import local as services


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"BSPEC_HOME": "custom"}, "custom"),
        ({"XDG_STATE_HOME": "xdg"}, "xdg/bspec"),
        ({}, "home/.local/state/bspec"),
    ],
)
def test_state_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    monkeypatch.delenv("BSPEC_HOME", raising=False)
    monkeypatch.delenv("XDG_STATE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name, value in env.items():
        monkeypatch.setenv(name, str(tmp_path / value))
    home = services.state_home()
    assert home == tmp_path / expected
    assert home.stat().st_mode & 0o777 == 0o700
    assert (home / "logs").is_dir()


def test_explicit_folder_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BSPEC_HOME", str(tmp_path / "env"))
    assert services.state_home(tmp_path / "given") == tmp_path / "given"


def test_status_of_a_fresh_folder_starts_nothing(tmp_path: Path) -> None:
    state = services.status(tmp_path / "fresh")
    assert state["batch"]["running"] is False and state["storage"]["running"] is False
    assert not (tmp_path / "fresh" / "endpoints.json").exists()


def test_connection_string_names_azurite_account_and_endpoint() -> None:
    conn = services.connection_string("http://127.0.0.1:10000/devstoreaccount1")
    parts = dict(p.split("=", 1) for p in conn.rstrip(";").split(";"))
    assert parts["AccountName"] == "devstoreaccount1"
    assert parts["BlobEndpoint"] == "http://127.0.0.1:10000/devstoreaccount1"
    assert parts["AccountKey"] == services.AZURITE_KEY
