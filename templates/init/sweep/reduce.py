#!/usr/bin/env python3
"""The sweep's reduce step: combine every walk-*.json into summary.csv.

The reduce task depends on every map task and downloads the whole results container into its
working directory, so it sees every map task's output. One CSV row per (steps, dims): how many
seeds ran, the mean RMS distance over them, and sqrt(steps) to compare with. With `--expect N`
it fails unless it found exactly N results, so a missing map output cannot go unnoticed.
"""

import argparse
import csv
import json
import math
import pathlib
import sys
from collections import defaultdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--expect", type=int, help="the number of map results there must be")
    parser.add_argument("--output", default="summary.csv")
    args = parser.parse_args()

    files = sorted(pathlib.Path(".").rglob("walk-*.json"))
    if args.expect is not None and len(files) != args.expect:
        sys.exit(f"expected {args.expect} results, found {len(files)}")
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    for path in files:
        result = json.loads(path.read_text(encoding="utf-8"))
        groups[(result["steps"], result["dims"])].append(result["rms"])
    with open(args.output, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["steps", "dims", "seeds", "rms", "sqrt_steps"])
        for (steps, dims), values in sorted(groups.items()):
            rms = sum(values) / len(values)
            writer.writerow([steps, dims, len(values), f"{rms:.3f}", f"{math.sqrt(steps):.3f}"])
    print(f"{args.output}: {len(files)} results in {len(groups)} groups")


if __name__ == "__main__":
    main()
