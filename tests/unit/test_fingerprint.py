"""Fingerprints: what reruns a task and what must not."""

from __future__ import annotations

from pathlib import Path

from bspec.model import OutputFileSpec, ResourceFileSpec, UploadCondition
from bspec.spec.fingerprint import BlobIndex, task_fingerprint
from spec_helpers import POOL, render

SPEC = (
    "apiVersion: bspec/v1\nname: fp\n"
    "storage:\n  containers:\n    app:\n      files: [app/run.sh]\n"
    "    input:\n      files: [\"data/*.txt\"]\n    out: {}\n"
    + POOL
    + "jobs:\n  - id: j\n    tasks:\n"
    "      - foreach: {files: input}\n"
    "        id: \"map-{{ item.stem }}\"\n"
    "        commands: [\"wc -w {{ item.name }} > {{ item.stem }}.out\"]\n"
    "        resourceFiles: [{blob: \"input/{{ item.name }}\"}]\n"
    "        outputFiles: [{pattern: \"*.out\", container: out, path: \"{{ item.stem }}/\"}]\n"
    "        constraints: {maxWallClockTime: PT10M}\n"
    "      - id: reduce\n"
    "        commandLine: \"cat *.out\"\n"
    "        dependsOn: [\"map-*\"]\n"
    "        resourceFiles: [{container: out}]\n"
    "      - id: tool\n"
    "        commandLine: \"sh run.sh\"\n"
    "        resourceFiles: [{container: app}]\n"
    "      - id: final\n"
    "        commandLine: \"true\"\n"
    "        dependsOn: [reduce]\n"
)
FILES = {"app/run.sh": "echo hi\n", "data/a.txt": "one two\n", "data/b.txt": "three\n",
         "data/c.txt": "four five six\n"}


def fingerprints(tmp: Path, spec: str = SPEC, files: dict[str, str] | None = None) -> dict[str, str]:
    d = render(tmp, spec, files)
    return {t.id: t.fingerprint for t in d.tasks}


def test_fingerprints_are_stable_and_well_formed(tmp_path: Path) -> None:
    first = fingerprints(tmp_path, files=FILES)
    assert fingerprints(tmp_path) == first
    assert all(f.startswith("v1:") and len(f) == 3 + 64 for f in first.values())
    assert len(set(first.values())) == len(first)


def test_adding_a_file_changes_no_other_task(tmp_path: Path) -> None:
    before = fingerprints(tmp_path, files=FILES)
    after = fingerprints(tmp_path, files={"data/aa.txt": "new file\n"})
    assert set(after) == set(before) | {"map-aa"}
    changed = {k for k in before if before[k] != after[k]}
    # the reduce step depends on every map task (glob), so it and what follows it change
    assert changed == {"reduce", "final"}
    assert all(before[k] == after[k] for k in ("map-a", "map-b", "map-c", "tool"))


def test_editing_one_file_changes_its_readers_and_their_dependents(tmp_path: Path) -> None:
    before = fingerprints(tmp_path, files=FILES)
    after = fingerprints(tmp_path, files={"data/b.txt": "three changed\n"})
    assert {k for k in before if before[k] != after[k]} == {"map-b", "reduce", "final"}


def test_editing_a_whole_container_file_changes_its_readers(tmp_path: Path) -> None:
    before = fingerprints(tmp_path, files=FILES)
    after = fingerprints(tmp_path, files={"app/run.sh": "echo bye\n"})
    assert {k for k in before if before[k] != after[k]} == {"tool"}


def test_constraints_and_display_name_are_not_in_the_fingerprint(tmp_path: Path) -> None:
    before = fingerprints(tmp_path, files=FILES)
    spec = SPEC.replace("PT10M", "PT2H").replace("      - id: tool\n",
                                                  "      - id: tool\n        displayName: T\n")
    assert fingerprints(tmp_path, spec) == before


def test_command_change_reruns_the_task_and_its_dependents(tmp_path: Path) -> None:
    before = fingerprints(tmp_path, files=FILES)
    after = fingerprints(tmp_path, SPEC.replace("wc -w", "wc -l"))
    assert {k for k in before if before[k] != after[k]} == {"map-a", "map-b", "map-c", "reduce",
                                                            "final"}


def test_each_field_counts() -> None:
    blobs = BlobIndex([("in", "a.txt", "0" * 32), ("in", "b.txt", "1" * 32)])
    base = {
        "command_line": "x",
        "resource_files": [ResourceFileSpec(container="in", blob="a.txt")],
        "output_files": [OutputFileSpec(pattern="*.out", container="out")],
        "environment": [("A", "1")],
        "depends_on": ["p"],
        "depends_on_ranges": [(1, 2)],
        "parent_fingerprints": {"p": "v1:aa"},
    }
    ref = task_fingerprint(blobs=blobs, **base)  # type: ignore[arg-type]
    variants = {
        "command_line": "y",
        "resource_files": [ResourceFileSpec(container="in", blob="b.txt")],
        "output_files": [OutputFileSpec(pattern="*.out", container="out",
                                        when=UploadCondition.COMPLETION)],
        "environment": [("A", "2")],
        "depends_on": ["q"],
        "depends_on_ranges": [(1, 3)],
        "parent_fingerprints": {"p": "v1:bb"},
    }
    for key, value in variants.items():
        changed = dict(base, **{key: value})
        assert task_fingerprint(blobs=blobs, **changed) != ref, key  # type: ignore[arg-type]
    other = BlobIndex([("in", "a.txt", "2" * 32), ("in", "b.txt", "1" * 32)])
    assert task_fingerprint(blobs=other, **base) != ref  # type: ignore[arg-type]
    prefix = ResourceFileSpec(container="in", prefix="b")
    assert blobs.reads(prefix) == [["b.txt", "1" * 32]]


def test_fast_path_hashes_exactly_the_canonical_document() -> None:
    import hashlib

    from bspec.spec.fingerprint import canonical, fingerprint_document

    blobs = BlobIndex([("in", "ä.txt", "0" * 32)])
    cases = [
        {"command_line": "echo 'ü' \"q\" \\\\", "resource_files": [
            ResourceFileSpec(container="in", blob="ä.txt", file_path="x", file_mode="0755"),
            ResourceFileSpec(container="in", prefix="")],
         "output_files": [OutputFileSpec(pattern="*", container="o", path="p/")],
         "environment": [("B", "2"), ("A", "1")], "depends_on": ["z", "a"],
         "depends_on_ranges": [(5, 9), (1, 2)], "parent_fingerprints": {"z": "v1:1", "a": "v1:2"}},
        {"command_line": "", "resource_files": [], "output_files": [], "environment": [],
         "depends_on": [], "depends_on_ranges": [], "parent_fingerprints": {}},
    ]
    for case in cases:
        expected = "v1:" + hashlib.sha256(
            canonical(fingerprint_document(blobs=blobs, **case)).encode()).hexdigest()  # type: ignore[arg-type]
        assert task_fingerprint(blobs=blobs, **case) == expected  # type: ignore[arg-type]
        assert task_fingerprint(blobs=blobs, **case) == expected  # cached fragments too  # type: ignore[arg-type]
