"""Fidelity checks against the official Batch REST definition (../shared/reference).

`Reference` maps each request to its operation in the OpenAPI file and validates the JSON
bodies, responses as the service produced them and requests as it accepted them, against
the definitions with jsonschema's Draft4Validator (Swagger 2.0 schemas are draft 4). The
`checked_client` fixture wires it into a real BatchClient as a raw response hook, so every
SDK call in a test is checked as it goes; `raw_call` does the same for hand-made requests.

Conformance is never silently off: without the definition these tests skip with a reason
(`pytest -ra` lists it), and under CI (`CI=true`), which always has it, they fail.
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator

REFERENCE_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference"
SPEC_FILE = REFERENCE_DIR / "azure-batch-2025-06-01.21.0.json"

# Request bodies azure-batch 15.x sends that the reference calls invalid; the service accepts
# them as Batch does.
KNOWN_SDK_DIVERGENCES = frozenset(
    {
        "<root>: 'certificateReferences' is a required property",  # ReplacePoolProperties
    }
)


@dataclass
class Operation:
    op_id: str
    method: str
    pattern: re.Pattern[str]
    responses: dict[str, str | None]  # status (or "default") -> definition name
    body: str | None  # the request body's definition name


@dataclass
class Reference:
    spec: dict[str, Any]
    operations: list[Operation] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)

    def validator(self, name: str) -> Draft4Validator:
        return _validator(name)

    def operation(self, method: str, path: str) -> Operation | None:
        for op in self.operations:
            if op.method == method and op.pattern.match(path):
                return op
        return None

    def errors(self, name: str, body: Any) -> list[str]:
        return [
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in self.validator(name).iter_errors(body)
        ]

    def check_response(
        self, method: str, url: str, status: int, content_type: str, body: bytes
    ) -> str:
        """Validate one response; returns the operationId. Raises AssertionError on drift."""
        path = urlsplit(url).path
        op = self.operation(method, path)
        assert op is not None, f"{method} {path} is not an operation of the reference"
        self.seen[op.op_id] = self.seen.get(op.op_id, 0) + 1
        key = str(status) if str(status) in op.responses else "default"
        if 200 <= status < 300:
            assert str(status) in op.responses, (
                f"{op.op_id} answered {status}; the reference allows {sorted(op.responses)}"
            )
        name = op.responses.get(key)
        if not body or method == "HEAD" or "json" not in content_type or name is None:
            return op.op_id
        data = json.loads(body)
        problems = self.errors(name, data)
        if "%24select=" in url or "$select=" in url:  # a trimmed body may lack required fields
            problems = [p for p in problems if not p.endswith("is a required property")]
        assert not problems, f"{op.op_id} {status} body is not a valid {name}: {problems[:5]}"
        return op.op_id

    def check_request(self, method: str, url: str, body: bytes | None) -> None:
        op = self.operation(method, urlsplit(url).path)
        if op is None or op.body is None or not body:
            return
        problems = [
            p for p in self.errors(op.body, json.loads(body)) if p not in KNOWN_SDK_DIVERGENCES
        ]
        assert not problems, f"{op.op_id} request is not a valid {op.body}: {problems[:5]}"


def under_ci(environ: Mapping[str, str]) -> bool:
    """CI services set CI (GitHub Actions, GitLab and most others: `CI=true`)."""
    return environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_definition(spec_file: Path, environ: Mapping[str, str]) -> None:
    """Skip the calling test when the definition is missing, or fail it under CI."""
    if spec_file.is_file():
        return
    where = f"the official Batch REST definition is not at {spec_file}"
    if under_ci(environ):
        pytest.fail(
            f"{where}; under CI (CI={environ.get('CI')}) the conformance checks must run: "
            "check out shared/ beside the repository",
            pytrace=False,
        )
    pytest.skip(f"{where}: conformance checks skipped (put shared/ beside the repository)")


@cache
def _spec() -> dict[str, Any]:
    require_definition(SPEC_FILE, os.environ)
    data: dict[str, Any] = json.loads(SPEC_FILE.read_text())
    return data


@cache
def _validator(name: str) -> Draft4Validator:
    spec = _spec()
    return Draft4Validator({"$ref": f"#/definitions/{name}", "definitions": spec["definitions"]})


def _ref_name(schema: dict[str, Any] | None) -> str | None:
    if not schema:
        return None
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


@cache
def load_reference() -> Reference:
    spec = _spec()
    ops: list[Operation] = []
    for path, methods in spec["paths"].items():
        regex = re.escape(path)
        regex = re.sub(r"\\\{filePath\\\}", r".+", regex)
        regex = re.sub(r"\\\{\w+\\\}", r"[^/]+", regex)
        pattern = re.compile(f"^{regex}$")
        for method, op in methods.items():
            if method == "parameters":
                continue
            responses = {k: _ref_name(v.get("schema")) for k, v in op["responses"].items()}
            body = next(
                (
                    _ref_name(p.get("schema"))
                    for p in op.get("parameters", [])
                    if p.get("in") == "body"
                ),
                None,
            )
            ops.append(Operation(op["operationId"], method.upper(), pattern, responses, body))
    # Literal segments must win over parameters (e.g. /pools/{id}/nodes vs a file path).
    ops.sort(key=lambda o: -o.pattern.pattern.count("[^/]"))
    ops.sort(key=lambda o: o.pattern.pattern.count(".+"))
    return Reference(spec, ops)


def response_hook(reference: Reference) -> Any:
    """An azure-core raw_response_hook that validates every request and response body."""

    def hook(pipeline_response: Any) -> None:
        request = pipeline_response.http_request
        response = pipeline_response.http_response
        content = request.content if isinstance(request.content, (bytes, str)) else None
        if isinstance(content, str):
            content = content.encode()
        reference.check_request(request.method, request.url, content)
        body = b""
        content_type = response.headers.get("Content-Type", "")
        if "json" in content_type:
            body = response.body() if hasattr(response, "body") else response.read()
        reference.check_response(
            request.method, request.url, response.status_code, content_type, body
        )
        assert response.headers.get("request-id"), "every answer carries a request-id"

    return hook


def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    """GET a JSON document, closing the connection (warnings are errors in this suite)."""
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture
def reference() -> Reference:
    return load_reference()


@pytest.fixture
def checked_client(local_services: Any, reference: Reference) -> Iterator[Any]:
    """A real BatchClient whose every call is checked against the reference as it goes."""
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential

    client = BatchClient(
        local_services.batch_url,
        AzureNamedKeyCredential(local_services.account, local_services.key),
        raw_response_hook=response_hook(reference),
    )
    try:
        yield client
    finally:
        client.close()
