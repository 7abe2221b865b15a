"""Rewrite docs/local-target.md's coverage table from the reference definition and the route
table: `python -m bspec.localbatch.rest.coverage_doc [doc] [definition]`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .app import routed_operations
from .coverage import coverage_table, with_table


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repo = Path(__file__).resolve().parents[3]
    doc = Path(args[0]) if args else repo / "docs" / "local-target.md"
    reference = (
        Path(args[1])
        if len(args) > 1
        else repo.parent / "shared" / "reference" / "azure-batch-2025-06-01.21.0.json"
    )
    definition = json.loads(reference.read_text("utf-8"))
    text = doc.read_text("utf-8")
    doc.write_text(with_table(text, coverage_table(definition, routed_operations())), "utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
