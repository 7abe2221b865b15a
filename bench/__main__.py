"""Run every `bench/bench_*.py` and assemble their sections into docs/benchmarks.md.

Each module exposes `run(quick: bool) -> str`, returning a Markdown section (starting with a
`## ` heading) whose figures compare against a baseline measured in the same run. Benchmarks
never run inside `make test`.

    python -m bench                 # all, full size
    python -m bench --quick         # all, small sizes (a smoke run)
    python -m bench render plan     # only bench_render.py and bench_plan.py
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("names", nargs="*", help="benchmark names (bench_<name>.py); default all")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    args = parser.parse_args()
    available = sorted(p.stem[len("bench_"):] for p in (ROOT / "bench").glob("bench_*.py"))
    names = args.names or available
    unknown = sorted(set(names) - set(available))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(available)}")

    sections: dict[str, str] = _existing_sections()
    for name in names:
        print(f"== bench_{name}", file=sys.stderr, flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.bench_{name}")
        sections[name] = module.run(quick=args.quick).rstrip() + "\n"
        print(f"   done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    header = (
        "# Benchmarks\n\n"
        "Written by `make bench` (`python -m bench`); each section compares against a baseline "
        "measured in the same run, on the machine named below. Sections not re-run keep their "
        "last figures.\n\n"
        f"Last run: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}"
        f"{' (quick sizes)' if args.quick else ''}.\n\n"
    )
    body = "\n".join(f"<!-- bench:{n} -->\n{sections[n]}" for n in sorted(sections))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(header + body)
    print(f"wrote {OUT.relative_to(ROOT)}", file=sys.stderr)
    return 0


def _existing_sections() -> dict[str, str]:
    """Keep the sections of benchmarks not re-run this time."""
    if not OUT.exists():
        return {}
    sections: dict[str, str] = {}
    current: str | None = None
    for line in OUT.read_text().splitlines(keepends=True):
        if line.startswith("<!-- bench:") and line.rstrip().endswith("-->"):
            current = line.strip()[len("<!-- bench:"):-len("-->")].strip()
            sections[current] = ""
        elif current is not None:
            sections[current] += line
    return {k: v.rstrip() + "\n" for k, v in sections.items()}


if __name__ == "__main__":
    raise SystemExit(main())
