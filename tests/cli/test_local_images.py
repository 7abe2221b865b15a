"""`bspec local images`: list and import the local service's container images, in a state
folder of the test's own (the machine's podman storage is never used). Skipped with the
reason when podman or busybox-static is not installed; bad input is exit 2 either way."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from bspec.common import podman

BSPEC = str(Path(sys.executable).parent / "bspec")
BUSYBOX = Path("/bin/busybox")
SCHEMA = Path(__file__).resolve().parents[2] / "schema" / "output.schema.json"


def validate(data: object, definition: str) -> None:
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    one = {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    jsonschema.validators.validator_for(schema)(one).validate(data)
    jsonschema.validators.validator_for(schema)(schema).validate(data)


def bspec(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [BSPEC, *args],
        env={**os.environ, "BSPEC_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=180,
        cwd="/",
        stdin=subprocess.DEVNULL,
    )


def test_bad_input_is_exit_2(tmp_path: Path) -> None:
    proc = bspec(tmp_path, "local", "images", "import", "--json")
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["code"] == "InvalidInput"
    proc = bspec(tmp_path, "local", "images", "import", str(tmp_path / "missing.tar"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_import_and_list(tmp_path: Path) -> None:
    reason = podman.available()
    if reason is not None:
        pytest.skip(f"podman not installed: apt-get install podman runc ({reason})")
    if not BUSYBOX.exists() or b"/lib64/ld-linux" in BUSYBOX.read_bytes()[:4096]:
        pytest.skip("busybox-static not installed: apt-get install busybox-static")
    home = tmp_path / "home"
    home.mkdir()
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    tarball = tmp_path / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(rootfs, arcname=".")
    try:
        listed = bspec(home, "local", "images", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["images"] == []
        validate(json.loads(listed.stdout), "localImages")
        name = "localhost/cli-busybox:1"
        proc = bspec(home, "local", "images", "import", str(tarball), "--name", name, "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["image"] == name
        validate(json.loads(proc.stdout), "localImagesImport")
        images = json.loads(bspec(home, "local", "images", "list", "--json").stdout)["images"]
        assert [i["names"] for i in images] == [[name]]
        validate({"formatVersion": 1, "images": images}, "localImages")
        text = bspec(home, "local", "images", "list")
        assert text.returncode == 0 and name in text.stdout
    finally:
        store = podman.open_storage(home)
        podman.release(store)
        if not store.runroot.is_relative_to(store.base):
            shutil.rmtree(store.runroot, ignore_errors=True)
