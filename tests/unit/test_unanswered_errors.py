"""A service that does not answer (down, restarting) is said plainly, with the command that
resumes: never urllib3's repr of the connection."""

from __future__ import annotations

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from bspec.cli import main
from bspec.errors import TransientServiceError
from bspec.providers.errors import translate

REFUSED = (
    "<urllib3.connection.HTTPConnection object at 0x7f>: Failed to establish a new "
    "connection: [Errno 111] Connection refused"
)


def test_refused_says_where_and_why() -> None:
    exc = ServiceRequestError(
        f"HTTPConnectionPool(host='127.0.0.1', port=39755): Max retries exceeded ({REFUSED})"
    )
    err = translate(exc, "batch", "task counts of job j")
    assert isinstance(err, TransientServiceError) and err.status is None
    assert str(err) == (
        "batch: task counts of job j: the service at 127.0.0.1:39755 did not answer"
        " (connection refused)"
    )


@pytest.mark.parametrize(
    ("exc", "why"),
    [
        (
            ServiceResponseError("('Connection aborted.', RemoteDisconnected('closed'))"),
            "the connection closed before the answer came",
        ),
        (
            ServiceResponseError(
                "HTTPConnectionPool(host='h', port=1): Read timed out. (read timeout=5)"
            ),
            "timed out",
        ),
        (ServiceRequestError("something else"), "no connection"),
    ],
)
def test_other_unanswered_requests(exc: Exception, why: str) -> None:
    assert str(translate(exc, "storage")).endswith(f"did not answer ({why})")


def test_the_cli_names_the_command_that_resumes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def down(*_: object, **__: object) -> None:
        raise translate(ServiceRequestError(REFUSED), "batch", "list pools")

    monkeypatch.setattr("bspec.cli.app", down)
    with pytest.raises(SystemExit) as exit_:
        main(["wait", "my spec.yaml"])
    assert exit_.value.code == 1
    said = capsys.readouterr().err
    assert "did not answer (connection refused)" in said
    assert "run `bspec wait 'my spec.yaml'` again: it resumes where this one stopped" in said
