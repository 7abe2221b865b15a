"""Every limit a spec is checked against, in one place: the template budget and Batch's own.

The template limits are bspec's (a spec is code, and one mistyped loop should fail fast with a
message, not fill the memory). The Batch limits are Batch's published numbers, checked when the
spec is validated so a spec Batch would refuse never gets as far as `apply`.
"""

from __future__ import annotations

# ---- templates (per rendering of one template string)

MAX_RESULT = 1_000_000  # characters/items a single `*` or `**` in a template may produce
MAX_VALUE_CHARS = 1_000_000  # characters one template may produce (its value, a `~`, a filter)
MAX_TEMPLATE_STEPS = 100_000  # loop iterations plus macro calls in one rendering
MACRO_STEPS = 10  # steps one macro call counts for (a call costs about ten iterations)
MAX_TEMPLATE_DEPTH = 50  # macros and recursive loops calling themselves, nested

# ---- Azure Batch (REST API 2025-06-01.21.0, ../shared/reference/)

MAX_ID_CHARS = 64  # pool, job and task ids (the spec's schema checks the written ones)
MAX_DISPLAY_NAME_CHARS = 1024  # displayName of pools, jobs and tasks
MAX_DEPENDS_CHARS = 64_000  # dependsOn.taskIds, the ids' lengths added (TaskDependencyListTooLong)
MAX_REQUEST_BYTES = 1_000_000  # one addtaskcollection body, "less than 1MB" (RequestBodyTooLarge)
MAX_ARG_BYTES = 131_072  # one argument or NAME=value on a Linux node (MAX_ARG_STRLEN, 32 pages)
SAS_URL_CHARS = 400  # what one resource file's blob URL with its SAS adds to a task's body

__all__ = [
    "MACRO_STEPS",
    "MAX_ARG_BYTES",
    "MAX_DEPENDS_CHARS",
    "MAX_DISPLAY_NAME_CHARS",
    "MAX_ID_CHARS",
    "MAX_REQUEST_BYTES",
    "MAX_RESULT",
    "MAX_TEMPLATE_DEPTH",
    "MAX_TEMPLATE_STEPS",
    "MAX_VALUE_CHARS",
    "SAS_URL_CHARS",
]
