"""Task fingerprints: what makes a Batch task the same task, so unchanged tasks never rerun.

`v1:` + sha256 of canonical JSON (sorted keys, no whitespace) of the command line, the
resource files (by container key and blob or prefix, with the MD5 of every uploaded blob each
one reads), the output files, the user environment, the dependencies and the fingerprints of
the tasks depended on, and its exit rules (`onExit`) when it has any (a task without them hashes
as before exit rules existed). Constraints, SAS URLs and display names are deliberately left out:
they can change without the task having to run again.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bspec.model import ExitRuleSpec, OutputFileSpec, ResourceFileSpec

PREFIX = "v1:"


class BlobIndex:
    """The MD5s of the blobs bspec uploads, by container key, for what resource files read."""

    def __init__(self, blobs: Iterable[tuple[str, str, str]]) -> None:
        """`blobs`: (container key, blob name, hex md5)."""
        self._by_container: dict[str, dict[str, str]] = {}
        for container, name, md5 in blobs:
            self._by_container.setdefault(container, {})[name] = md5
        self._prefix_cache: dict[tuple[str, str], list[list[str]]] = {}
        # canonical JSON of resource/output file specs, which repeat across tasks
        self.fragments: dict[object, str] = {}

    def declares(self, container: str) -> bool:
        """Whether the container has declared (uploaded) files."""
        return bool(self._by_container.get(container))

    def md5(self, container: str, name: str) -> str | None:
        return self._by_container.get(container, {}).get(name)

    def reads(self, rf: ResourceFileSpec) -> list[list[str]]:
        """[[blob name, md5], ...] of the declared blobs one resource file reads."""
        if rf.blob is not None:
            md5 = self.md5(rf.container, rf.blob)
            return [[rf.blob, md5]] if md5 is not None else []
        key = (rf.container, rf.prefix or "")
        cached = self._prefix_cache.get(key)
        if cached is None:
            files = self._by_container.get(rf.container, {})
            cached = [[n, m] for n, m in sorted(files.items()) if n.startswith(key[1])]
            self._prefix_cache[key] = cached
        return cached


def canonical(document: object) -> str:
    """Canonical JSON: sorted keys, no whitespace."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_string: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    lambda text: json.dumps(text, ensure_ascii=False)
)


def _of_text(o: OutputFileSpec) -> str:
    """canonical(_of_document(o)), written out: output paths are often per task."""
    path = "null" if o.path is None else _string(o.path)
    return ('{"container":' + _string(o.container) + ',"path":' + path
            + ',"pattern":' + _string(o.pattern) + ',"when":' + _string(o.when.value) + "}")


def fingerprint_document(
    *,
    command_line: str,
    resource_files: Sequence[ResourceFileSpec],
    output_files: Sequence[OutputFileSpec],
    environment: Sequence[tuple[str, str]] | Mapping[str, str],
    depends_on: Sequence[str],
    depends_on_ranges: Sequence[tuple[int, int]],
    parent_fingerprints: Mapping[str, str],
    blobs: BlobIndex,
    on_exit: Sequence[ExitRuleSpec] = (),
    container: Mapping[str, str] | None = None,
    secret_environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The document a fingerprint hashes: the definition; `task_fingerprint` is the fast path.

    `container` (the task's container settings, defaults filled in) and `secret_environment`
    (name -> salted digest of the value, never the value) are in it only when the task has
    them, so tasks without them keep the fingerprints they had before these existed."""
    doc: dict[str, Any] = {
        "commandLine": command_line,
        "resourceFiles": [_rf_document(rf, blobs) for rf in resource_files],
        "outputFiles": [_of_document(o) for o in output_files],
        "environment": dict(environment),
        "dependsOn": {
            "ids": sorted(depends_on),
            "ranges": [list(r) for r in sorted(depends_on_ranges)],
        },
        "parents": [parent_fingerprints[k] for k in sorted(parent_fingerprints)],
    }
    if on_exit:
        doc["onExit"] = exit_rules_document(on_exit)
    if container:
        doc["container"] = dict(container)
    if secret_environment:
        doc["secretEnvironment"] = dict(secret_environment)
    return doc


def exit_rules_document(rules: Sequence[ExitRuleSpec]) -> list[dict[str, Any]]:
    """Exit rules as the fingerprint hashes them, in the spec's order."""
    return [
        {
            "codes": list(r.codes),
            "ranges": [list(x) for x in r.ranges],
            "event": r.event,
            "jobAction": r.job_action,
            "dependencyAction": r.dependency_action,
        }
        for r in rules
    ]


def _rf_document(rf: ResourceFileSpec, blobs: BlobIndex) -> dict[str, Any]:
    return {
        "container": rf.container,
        "blob": rf.blob,
        "prefix": rf.prefix,
        "filePath": rf.file_path,
        "fileMode": rf.file_mode,
        "md5": blobs.reads(rf),
    }


def _of_document(o: OutputFileSpec) -> dict[str, Any]:
    return {"pattern": o.pattern, "container": o.container, "path": o.path, "when": o.when.value}


_EMPTY_DEPENDS = canonical({"ids": [], "ranges": []})


def task_fingerprint(
    *,
    command_line: str,
    resource_files: Sequence[ResourceFileSpec],
    output_files: Sequence[OutputFileSpec],
    environment: Sequence[tuple[str, str]] | Mapping[str, str],
    depends_on: Sequence[str],
    depends_on_ranges: Sequence[tuple[int, int]],
    parent_fingerprints: Mapping[str, str],
    blobs: BlobIndex,
    on_exit: Sequence[ExitRuleSpec] = (),
    container: Mapping[str, str] | None = None,
    secret_environment: Mapping[str, str] | None = None,
) -> str:
    """The fingerprint of one task. `parent_fingerprints`: depended-on task id -> fingerprint.

    Builds exactly `canonical(fingerprint_document(...))`, with the parts that repeat from
    task to task (resource and output files) serialised once and reused.
    """
    cache = blobs.fragments
    rfs = []
    for rf in resource_files:
        text = cache.get(rf)
        if text is None:
            text = cache[rf] = canonical(_rf_document(rf, blobs))
        rfs.append(text)
    ofs = []
    for o in output_files:
        ofs.append(_of_text(o))
    if depends_on or depends_on_ranges:
        deps = canonical({"ids": sorted(depends_on),
                          "ranges": [list(r) for r in sorted(depends_on_ranges)]})
    else:
        deps = _EMPTY_DEPENDS
    env = canonical(dict(environment)) if environment else "{}"
    parents = (canonical([parent_fingerprints[k] for k in sorted(parent_fingerprints)])
               if parent_fingerprints else "[]")
    ctext = stext = ""
    if container:
        ckey = ("container", *container.items())
        ctext = cache.get(ckey) or cache.setdefault(ckey, ',"container":' + canonical(container))
    if secret_environment:
        skey = ("secrets", *secret_environment.items())
        stext = cache.get(skey) or cache.setdefault(
            skey, ',"secretEnvironment":' + canonical(secret_environment)
        )
    text = (
        '{"commandLine":' + _string(command_line)
        + ctext
        + ',"dependsOn":' + deps
        + ',"environment":' + env
        + (',"onExit":' + canonical(exit_rules_document(on_exit)) if on_exit else "")
        + ',"outputFiles":[' + ",".join(ofs) + "]"
        + ',"parents":' + parents
        + ',"resourceFiles":[' + ",".join(rfs) + "]"
        + stext
        + "}"
    )
    return PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()
