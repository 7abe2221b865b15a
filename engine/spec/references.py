"""Checks that what tasks, start tasks and job outputs name exists in the spec.

A resource file must name a declared container (and, for one blob, a file it uploads); an
output file or job output a declared container. Kept apart so the rules for references live
in one place and each check builds the spec object it validated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bspec.model import BlobSpec, OutputFileSpec, ResourceFileSpec, UploadCondition
from bspec.spec.environment import Failure
from bspec.spec.loading import PathKey
from bspec.spec.tree import Renderer

FILE_MODE = re.compile(r"^0?[0-7]{3}$")


class References:
    """Checks that resource and output files name declared containers and files."""

    def __init__(self, r: Renderer, declared: set[str], files_of: Mapping[str, list[BlobSpec]]):
        self.r = r
        self.declared = declared
        self.files_of = files_of
        self.names = {k: {b.name for b in v} for k, v in files_of.items()}

    def unknown(self, key: str) -> str:
        """The message for a container key the spec does not declare."""
        known = ", ".join(sorted(self.declared)) or "none declared"
        return f"unknown container {key!r} (declared: {known})"

    def resource_file(self, rf: Mapping[str, Any], path: PathKey) -> ResourceFileSpec:
        mode = rf.get("fileMode")
        if mode is not None and not FILE_MODE.match(str(mode)):
            raise Failure((*path, "fileMode"), f"file mode {mode!r} is not octal like 0755")
        if "blob" in rf:
            ref = str(rf["blob"])
            key, _, name = ref.partition("/")
            if not name:
                raise Failure(
                    (*path, "blob"), f"blob {ref!r} must be `<container key>/<blob name>`"
                )
            if key not in self.declared:
                raise Failure((*path, "blob"), self.unknown(key))
            names = self.names.get(key)
            if names and name not in names:
                raise Failure((*path, "blob"), f"{name!r} is not one of container {key!r}'s files")
            return ResourceFileSpec(
                container=key, blob=name, file_path=rf.get("filePath"), file_mode=mode
            )
        key = str(rf["container"])
        if key not in self.declared:
            raise Failure((*path, "container"), self.unknown(key))
        return ResourceFileSpec(
            container=key, prefix=rf.get("prefix"), file_path=rf.get("filePath"), file_mode=mode
        )

    def output_file(self, of: Mapping[str, Any], path: PathKey) -> OutputFileSpec:
        key = str(of["container"])
        if key not in self.declared:
            raise Failure((*path, "container"), self.unknown(key))
        when = of.get("when", "success")
        try:
            condition = UploadCondition(when)
        except ValueError:
            raise Failure(
                (*path, "when"), f"{when!r} is not one of: success, failure, completion"
            ) from None
        return OutputFileSpec(
            pattern=str(of["pattern"]), container=key, path=of.get("path"), when=condition
        )

    def container(self, key: str, path: PathKey) -> None:
        if key not in self.declared:
            self.r.problem(path, self.unknown(key))
