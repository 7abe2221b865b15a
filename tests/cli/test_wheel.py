"""The wheel is complete: built from the sources, installed in a fresh venv outside the repo,
`bspec validate` and `bspec schema` work there, schema/ and templates/ come from the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_and_validates_outside_the_repo(tmp_path: Path) -> None:
    # Build from a copy of the sources, so nothing is written into the working tree.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("engine", "schema", "templates"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist),
                    str(src)], check=True, cwd=tmp_path)
    wheel = next(dist.glob("bspec-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"bspec/schema/bspec.schema.json", "bspec/schema/output.schema.json",
            "bspec/templates/commandline.j2", "bspec/spec/rendering.py"} <= names
    # the dashboard's pages and assets (the vendored npm packages with their licences:
    # `make install` copies them in, so `pip install bspec` needs no CDN)
    assert {"bspec/ui/templates/job.html", "bspec/ui/static/ui.js", "bspec/ui/static/ui.css",
            "bspec/ui/static/vendor/htmx.min.js", "bspec/ui/static/vendor/htmx.LICENSE",
            "bspec/ui/static/vendor/uPlot.iife.min.js", "bspec/ui/static/vendor/uPlot.min.css",
            "bspec/ui/static/vendor/uPlot.LICENSE"} <= names

    # A fresh venv; the dependencies come from this venv's site-packages (appended after the
    # fresh one's, so only the wheel can provide `bspec`).
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    fresh_site = Path(subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    (fresh_site / "zz_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                    "--no-index", "-q", str(wheel)], check=True)

    work = tmp_path / "elsewhere"
    shutil.copytree(REPO / "specs" / "topwords", work / "topwords")
    shutil.copy(REPO / "specs" / "topwords.yaml", work / "topwords.yaml")
    bspec = env_dir / "bin" / "bspec"
    where = subprocess.run([str(py), "-c", "import bspec; print(bspec.__file__)"],
                           capture_output=True, text=True, check=True, cwd=work).stdout
    assert where.startswith(str(fresh_site))
    done = subprocess.run([str(bspec), "validate", "topwords.yaml"], capture_output=True,
                          text=True, cwd=work, check=False)
    assert done.returncode == 0, done.stderr
    assert "valid (stack topwords)" in done.stdout and "3 task(s)" in done.stdout
    schema = subprocess.run([str(bspec), "schema"], capture_output=True, text=True, cwd=work,
                            check=True)
    assert '"bspec/v1"' in schema.stdout
