"""The one place SDK exceptions become bspec errors (DESIGN.md: one boundary, one translation).

Providers wrap every SDK call in `sdk_errors(service, what)`, a context manager in the manner
of httpx's `map_httpcore_exceptions`: any azure-core exception raised inside leaves as the most
specific bspec `ServiceError`, chained with `from`. Code above the providers decides on bspec
types only (`NotFoundError`, `ConflictError` and its `service_code`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from bspec.errors import (
    ConflictError,
    NotFoundError,
    ServiceError,
    TransientServiceError,
)

# Service codes that mean "this is on its way out; wait and try again".
BEING_DELETED = frozenset(
    {"PoolBeingDeleted", "JobBeingDeleted", "ContainerBeingDeleted", "TaskBeingDeleted"}
)
_SIG = re.compile(r"(sig=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove SAS signatures from anything that may be shown to a user."""
    return _SIG.sub(r"\1REDACTED", text)


def service_code(exc: BaseException) -> str | None:
    """The service's own error code (Batch `code`, Storage `x-ms-error-code`), if any."""
    code = getattr(exc, "error_code", None)
    if code:
        return str(code)
    err = getattr(exc, "error", None)
    if err is not None and getattr(err, "code", None):
        return str(err.code)
    model = getattr(exc, "model", None)
    if model is not None and getattr(model, "code", None):
        return str(model.code)
    response = getattr(exc, "response", None)
    if response is not None:
        header = response.headers.get("x-ms-error-code") if response.headers else None
        if header:
            return str(header)
    code = _body(exc).get("code")
    return str(code) if code else None


def _body(exc: BaseException) -> dict[str, Any]:
    """The Batch error body of a request sent raw (`send_request`): the SDK parsed none."""
    response = getattr(exc, "response", None)
    try:
        data = response.json() if response is not None else None
    except Exception:  # not JSON, or not read: no body to use
        return {}
    return data if isinstance(data, dict) else {}


def _message(exc: BaseException) -> str:
    model = getattr(exc, "model", None)
    msg = getattr(model, "message", None) if model is not None else None
    value = getattr(msg, "value", None) if msg is not None else None
    if not value and model is None:
        raw = _body(exc).get("message")
        value = raw.get("value") if isinstance(raw, dict) else raw
    text = str(value) if value else str(getattr(exc, "message", None) or exc)
    return redact(text.splitlines()[0] if text else type(exc).__name__)


_ENDPOINT = re.compile(r"host='([^']+)', port=(\d+)")
_REASON = re.compile(r"\[Errno -?\d+\] ([^'\")]+)")


def _unanswered(exc: BaseException) -> str:
    """A request that got no answer, said plainly: where to, and why (never the URL's
    query, which may hold a SAS)."""
    text = str(exc)
    where = _ENDPOINT.search(text)
    reason = _REASON.search(text)
    at = f" at {where.group(1)}:{where.group(2)}" if where else ""
    if "timed out" in text.lower():
        why = "timed out"
    elif isinstance(exc, ServiceResponseError):
        why = "the connection closed before the answer came"
    else:
        why = reason.group(1).strip().lower() if reason else "no connection"
    return f"the service{at} did not answer ({why})"


def translate(exc: BaseException, service: str, what: str = "") -> ServiceError:
    """An SDK exception as the most specific bspec ServiceError (chain it with `from`)."""
    code = service_code(exc)
    status = getattr(getattr(exc, "response", None), "status_code", None) or getattr(
        exc, "status_code", None
    )
    prefix = f"{service}: {what}: " if what else f"{service}: "
    text = prefix + (f"{code}: " if code else "") + _message(exc)
    if status is None and isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        text = prefix + _unanswered(exc)
    kw: dict[str, Any] = {
        "service": service,
        "status": status,
        "service_code": code,
        "retry_after": _retry_after(exc),
    }
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        return NotFoundError(text, **kw)
    if isinstance(exc, ResourceExistsError) or status in (409, 412) or code in BEING_DELETED:
        return ConflictError(text, **kw)
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)) or (
        status is not None and (status >= 500 or status == 429)
    ):
        return TransientServiceError(text, **kw)
    return ServiceError(text, **kw)


@contextlib.contextmanager
def sdk_errors(service: str, what: str = "") -> Iterator[None]:
    """The SDK-error boundary: SDK exceptions raised inside leave as bspec errors."""
    try:
        yield
    except AzureError as exc:
        raise translate(exc, service, what) from exc


def _retry_after(exc: BaseException) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    value = headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


__all__ = ["BEING_DELETED", "redact", "sdk_errors", "service_code", "translate"]
