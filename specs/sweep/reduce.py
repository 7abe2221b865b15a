#!/usr/bin/env python3
"""The sweep's reduce step: average every point's seeds into one CSV row per (alpha, beta)."""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import statistics
from collections import defaultdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="folder of the points' JSON files")
    parser.add_argument("--out", default="summary.csv")
    args = parser.parse_args()
    groups: dict[tuple[float, float], list[dict[str, float]]] = defaultdict(list)
    for path in sorted(pathlib.Path(args.results).rglob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        groups[(r["alpha"], r["beta"])].append(r)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["alpha", "beta", "seeds", "mean", "expected", "error"])
        for (alpha, beta), rs in sorted(groups.items()):
            mean = statistics.fmean(r["mean"] for r in rs)
            expected = rs[0]["expected"]
            w.writerow([alpha, beta, len(rs), f"{mean:.5f}", f"{expected:.5f}",
                        f"{abs(mean - expected):.5f}"])
    print(f"{sum(len(v) for v in groups.values())} results in {len(groups)} groups -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
