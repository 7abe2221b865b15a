"""From a spec file to the desired state: load (positions kept), validate, render, re-validate.

    desired = bspec.spec.load("specs/topwords.yaml", parse_var_flags(["numwords=5"]))
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bspec.errors import SpecError
from bspec.model import DesiredState
from bspec.spec.loading import Document, load_document, parse_var_flags
from bspec.spec.rendering import render
from bspec.spec.validation import schema, validate


def load(path: str | Path, var_overrides: Mapping[str, Any] | None = None) -> DesiredState:
    """The whole pipeline; SpecError/InputError (exit 2) with every problem found."""
    doc = load_document(path)
    problems = validate(doc)
    if problems:
        raise SpecError(problems)
    return render(doc, dict(var_overrides or {}))


__all__ = ["Document", "load", "load_document", "parse_var_flags", "render", "schema", "validate"]
