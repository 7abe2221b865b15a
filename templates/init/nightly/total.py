"""Sum the *.count files under a folder (one run's counts): python3 total.py <folder>."""

import pathlib
import sys

counts = sorted(pathlib.Path(sys.argv[1]).rglob("*.count"))
total = sum(int(p.read_text(encoding="utf-8").split()[0]) for p in counts)
print(f"{len(counts)} files, {total} words")
