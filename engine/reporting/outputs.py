"""What `apply`, `wait` and `outputs` say about downloaded outputs: where they went, and
the content of small text files (the topwords counts)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bspec.downloads import OutputsResult

PREVIEW_BYTES = 4096
PREVIEW_LINES = 12


def preview(path: Path) -> list[str] | None:
    """The lines of a small text file, for printing the outcome (the topwords counts);
    None for large or binary files."""
    try:
        if path.stat().st_size > PREVIEW_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data:
        return None
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return None
    lines = [line.expandtabs(8) for line in lines]
    return lines[:PREVIEW_LINES] + (["..."] if len(lines) > PREVIEW_LINES else [])


def render_outputs(
    result: OutputsResult,
    *,
    base: Path | None = None,
    show_content: bool = True,
    limit: int = 10,
) -> list[str]:
    """Lines for people: what was downloaded where, and the content of small text files
    (the first `limit` downloaded files; the rest are counted)."""

    def rel(p: Path) -> str:
        if base is not None:
            try:
                return str(p.relative_to(base.resolve()))
            except ValueError:
                pass
        return str(p)

    if not result.files:
        return ["Outputs: none yet."]
    down = result.downloaded
    folders = sorted({rel(f.path.parent) for f in result.files})
    where = ", ".join(folders[:3]) + (
        f" and {len(folders) - 3} more folders" if len(folders) > 3 else ""
    )
    lines = [
        f"Outputs: {len(down)} downloaded, {len(result.files) - len(down)} unchanged in {where}"
    ]
    for f in down[:limit]:
        lines.append(f"  {rel(f.path)}")
        body = preview(f.path) if show_content else None
        if body:
            lines.extend(f"    {line}" for line in body)
    if len(down) > limit:
        lines.append(f"  ... and {len(down) - limit:,} more files")
    for name in result.skipped:
        lines.append(f"  skipped {name}: its name leaves the output folder")
    return lines
