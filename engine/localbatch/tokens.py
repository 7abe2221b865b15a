"""Authentication tokens of tasks with `authenticationTokenSettings` (access `job`).

A task given a token gets it in AZ_BATCH_AUTHENTICATION_TOKEN; the service then accepts it
as a bearer credential for the operations on that task's job and nothing else, as Batch's
AuthenticationTokenSettings grants. Tokens are random (256 bits), held only as SHA-256
digests in memory, tied to the job's key and forgotten when the job goes; a restart (which
requeues every running task) issues new ones. Nothing here logs a token.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from .resources import BatchError

FORBIDDEN = (
    403,
    "AuthorizationFailure",
    "This request is not authorized to perform this operation.",
)


def wants_token(task: dict[str, Any]) -> bool:
    settings = task.get("authenticationTokenSettings") or {}
    access = settings.get("access") if isinstance(settings, dict) else None
    return isinstance(access, list) and any(str(a).lower() == "job" for a in access)


class JobTokens:
    def __init__(self) -> None:
        self._jobs: dict[bytes, str] = {}  # digest of a token -> job key

    def issue(self, job_key: str) -> str:
        token = secrets.token_urlsafe(32)
        self._jobs[_digest(token)] = job_key
        return token

    def job_of(self, token: str) -> str | None:
        """The job key a token grants, or None for no token of ours."""
        return self._jobs.get(_digest(token))

    def forget_job(self, job_key: str) -> None:
        for digest in [d for d, j in self._jobs.items() if j == job_key]:
            del self._jobs[digest]

    @staticmethod
    def allow(job_key: str, params: dict[str, str] | None) -> None:
        """A token of JOB_KEY may call an operation on that job only (403 otherwise)."""
        job_id = (params or {}).get("jobId")
        if job_id is None or job_id.lower() != job_key.lower():
            raise BatchError(*FORBIDDEN)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
