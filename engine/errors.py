"""bspec's error tree: every failure a user can meet, and the exit code it maps to.

    BspecError                      exit_code  meaning
    ├── InputError                  2          bad input; nothing was changed anywhere
    │   └── SpecError               2          a spec problem at FILE:LINE:COL and a JSON path
    ├── RefusedError                3          refused for safety
    │   ├── OwnershipError          3          a resource another stack (or nobody) owns
    │   ├── StalePlanError          3          a saved plan no longer matches the services
    │   ├── LockHeldError           3          the stack's lock is held past --lock-timeout
    │   └── ConfirmationError       3          a declined prompt, or no terminal and no --yes
    ├── ServiceError                1          a Batch or Storage request failed
    │   ├── NotFoundError           1          404
    │   ├── ConflictError           1          409/412, or a being-deleted code (exists,
    │   │                                      being deleted, condition not met)
    │   └── TransientServiceError   1          5xx, 429, dropped connection: still failing
    │                                          after the SDK's retries; polling loops poll
    │                                          again (after `retry_after` when given)
    ├── TaskFailedError             1          one of the spec's tasks failed
    ├── WaitTimeoutError            1          --timeout passed before the tasks completed
    └── LocalServiceError           1          the local services could not start or stop

SDK exceptions become this tree at one boundary, `providers.errors.sdk_errors(service,
what)`: a context manager around every SDK call that maps the SDK's exception to the most
specific ServiceError (most specific first), chained with `from`. Code above the providers
decides on these types and `service_code` only. The CLI maps `exit_code` to the process's
exit status and `to_json()` to the `--json` error shape of DESIGN.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, at the place a user has to look."""

    message: str
    file: str | None = None
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    path: str | None = None  # JSON path, e.g. $.jobs[0].tasks[0].id

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        at = f"{self.path}: " if self.path else ""
        return f"{where}{at}{self.message}"


class BspecError(Exception):
    """Base of every error bspec reports to a user. `code` is a stable machine name."""

    exit_code: int = 1
    code: str = "Error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.hint = hint

    def __str__(self) -> str:
        text = str(Problem(self.message, self.file, self.line, self.column, self.path))
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        """The `error` member of the `--json` error shape."""
        return {
            "code": self.code,
            "message": self.message,
            "file": self.file,
            "line": self.line,
            "path": self.path,
        }


class InputError(BspecError):
    """Bad input: a flag, a --var, a missing file. Nothing was changed anywhere."""

    exit_code = 2
    code = "InvalidInput"


class SpecError(InputError):
    """One or more problems in a spec, each with its own position; reported all at once."""

    code = "InvalidSpec"

    def __init__(self, problems: list[Problem] | Problem, *, hint: str | None = None) -> None:
        self.problems: list[Problem] = (
            [problems] if isinstance(problems, Problem) else list(problems)
        )
        if not self.problems:
            raise ValueError("SpecError needs at least one problem")
        first = self.problems[0]
        super().__init__(
            first.message,
            file=first.file,
            line=first.line,
            column=first.column,
            path=first.path,
            hint=hint,
        )

    def __str__(self) -> str:
        text = "\n".join(str(p) for p in self.problems)
        if len(self.problems) > 1:
            text += f"\n{len(self.problems)} problems found."
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["message"] = "\n".join(str(p) for p in self.problems)
        data["problems"] = [
            {
                "message": p.message,
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": p.path,
            }
            for p in self.problems
        ]
        return data


class RefusedError(BspecError):
    """Refused for safety; the user can decide otherwise with a flag."""

    exit_code = 3
    code = "Refused"


class OwnershipError(RefusedError):
    code = "NotOwned"


class StalePlanError(RefusedError):
    code = "StalePlan"


class LockHeldError(RefusedError):
    code = "LockHeld"


class ConfirmationError(RefusedError):
    code = "NotConfirmed"


@dataclass
class _ServiceDetail:
    service: str = ""  # "batch" | "storage"
    status: int | None = None
    service_code: str | None = None
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ServiceError(BspecError):
    """A request to Batch or Storage failed. `service_code` is the service's own error code."""

    exit_code = 1
    code = "ServiceError"

    def __init__(
        self,
        message: str,
        *,
        service: str = "",
        status: int | None = None,
        service_code: str | None = None,
        retry_after: float | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.service = service
        self.status = status
        self.service_code = service_code
        self.retry_after = retry_after

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        data["service"] = self.service
        data["serviceCode"] = self.service_code
        data["status"] = self.status
        return data


class NotFoundError(ServiceError):
    code = "NotFound"


class ConflictError(ServiceError):
    code = "Conflict"


class TransientServiceError(ServiceError):
    code = "ServiceUnavailable"


class TaskFailedError(BspecError):
    exit_code = 1
    code = "TaskFailed"


class WaitTimeoutError(BspecError):
    exit_code = 1
    code = "Timeout"


class LocalServiceError(BspecError):
    exit_code = 1
    code = "LocalServiceError"
