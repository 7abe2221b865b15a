"""Everything bspec says to people, in one place: plans (`plan`), task and node outcomes
(`tasks`), outputs (`outputs`), status (`status`), the destroy question (`destroy`), the
one progress display for terminals and plain logs (`progress`), the consoles (`console`)
and the reporters that operations talk through (`reporter`).

Nothing here does I/O beyond writing to the terminal (and reading small output files for
their preview); importing it loads neither Azure nor aiohttp.
"""

from __future__ import annotations

from bspec.reporting.console import confirm, note
from bspec.reporting.plan import change_json, plan_json, reason_text, render_plan, summary_line
from bspec.reporting.progress import Display, progress

__all__ = [
    "Display",
    "change_json",
    "confirm",
    "note",
    "plan_json",
    "progress",
    "reason_text",
    "render_plan",
    "summary_line",
]
