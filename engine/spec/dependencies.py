"""A task's `dependsOn` (ids, globs, integer ranges) -> the ids and ranges Batch is sent.

The one place dependencies are expanded, as a pure function over the job's task ids: the
applier and the planner read the result from the desired state (and the plan), never expand
again. Batch caps the depended-on ids of one task at 64,000 characters; numeric ids over the
cap fold into ranges, other ids over it are an error.
"""

from __future__ import annotations

import fnmatch
import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bspec.spec.environment import Failure
from bspec.spec.files import GLOB_CHARS
from bspec.spec.limits import MAX_DEPENDS_CHARS as MAX_DEPENDS_CHARS
from bspec.spec.loading import PathKey

Ranges = tuple[tuple[int, int], ...]


def expand_dependencies(
    task_id: str,
    depends_on: Sequence[tuple[PathKey, Any]],
    tasks: Mapping[str, str],
    numbers: Sequence[int],
    job_id: str,
) -> tuple[tuple[str, ...], Ranges]:
    """One task's `dependsOn` entries (each with its path) -> (ids, merged ranges).

    `tasks` maps every task id of the job, lowercased, to the id as written, in the job's
    order (globs match in that order); `numbers` are the job's numeric ids as sorted ints.
    Raises `Failure` at the entry's path: an unknown id, a glob matching no other task, a
    range naming missing ids, a task depending on itself, or ids over Batch's cap.
    """
    ids: dict[str, None] = {}
    ranges: list[tuple[int, int]] = []
    me = task_id.lower()
    numeric_me = task_id.isascii() and task_id.isdigit()
    for dpath, dep in depends_on:
        if isinstance(dep, dict):
            start, end = dep["range"]
            if not isinstance(start, int) or not isinstance(end, int) or start > end:
                raise Failure(dpath, f"range {dep['range']!r} needs integers start <= end")
            lo, hi = bisect_left(numbers, start), bisect_right(numbers, end)
            present = len(set(numbers[lo:hi]))
            if present != end - start + 1:
                raise Failure(
                    dpath,
                    f"range [{start}, {end}] names {end - start + 1 - present} "
                    f"task id(s) that job {job_id!r} does not have",
                )
            if numeric_me and start <= int(task_id) <= end:
                raise Failure(dpath, f"task {task_id!r} depends on itself")
            ranges.append((start, end))
            continue
        text = str(dep)
        if GLOB_CHARS & set(text):
            rx = re.compile(fnmatch.translate(text.lower()))
            matched = [tid for low, tid in tasks.items() if low != me and rx.match(low)]
            if not matched:
                raise Failure(dpath, f"{text!r} matches no other task of job {job_id!r}")
            ids.update(dict.fromkeys(matched))
            continue
        lower = text.lower()
        target = tasks.get(lower)
        if target is None:
            raise Failure(
                dpath,
                f"depends on {text!r}, which is not a task of job "
                f"{job_id!r}" + _did_you_mean(text, tasks),
            )
        if lower == me:
            raise Failure(dpath, f"task {task_id!r} depends on itself")
        ids[target] = None
    chars = sum(len(i) for i in ids)
    if chars > MAX_DEPENDS_CHARS:
        if all(i.isascii() and i.isdigit() for i in ids):
            ranges.extend(fold(sorted(int(i) for i in ids)))
            ids = {}
        else:
            raise Failure(
                depends_on[0][0],
                f"task {task_id!r} depends on {len(ids)} tasks "
                f"({chars} characters of ids), over Batch's limit of "
                f"{MAX_DEPENDS_CHARS}; numeric task ids fold into ranges",
            )
    return tuple(ids), tuple(merge(ranges))


def _did_you_mean(text: str, known: Mapping[str, str]) -> str:
    import difflib  # only when a spec has a mistake

    close = difflib.get_close_matches(text.lower(), list(known), n=1)
    return f"; did you mean {known[close[0]]!r}?" if close else ""


def fold(numbers: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted integers -> the fewest inclusive ranges that hold them."""
    ranges: list[tuple[int, int]] = []
    for n in numbers:
        if ranges and n <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], n))
        else:
            ranges.append((n, n))
    return ranges


def merge(ranges: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive ranges, sorted, with overlapping and adjacent ones joined."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
