#!/usr/bin/env python3
"""One point of the sweep: estimate the mean of a Beta(alpha, beta) sample, write JSON.

Standard library only. The result records its parameters, so the reduce step needs nothing
but the files.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpha", type=float, required=True)
    parser.add_argument("--beta", type=float, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--samples", type=int, default=10000)
    parser.add_argument("--out", default="result.json")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    xs = [rng.betavariate(args.alpha, args.beta) for _ in range(args.samples)]
    result = {
        "alpha": args.alpha,
        "beta": args.beta,
        "seed": args.seed,
        "samples": args.samples,
        "mean": statistics.fmean(xs),
        "expected": args.alpha / (args.alpha + args.beta),
        "stdev": statistics.stdev(xs),
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
