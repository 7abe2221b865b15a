#!/usr/bin/env python3
"""One point of the sweep: simulate random walks and record how far they got.

Runs `--walks` random walks of `--steps` unit steps on a `--dims`-dimensional lattice, seeded
with `--seed` so a rerun gives the same numbers, and writes walk-<steps>-<dims>-<seed>.json
with the mean and root-mean-square distance from the origin. Theory: the RMS distance is
sqrt(steps), whatever the dimension. Standard library only.
"""

import argparse
import json
import math
import pathlib
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--dims", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--walks", type=int, default=200)
    args = parser.parse_args()

    rng = random.Random(args.seed * 1_000_003 + args.steps * 31 + args.dims)
    distances = []
    for _ in range(args.walks):
        position = [0] * args.dims
        for _ in range(args.steps):
            position[rng.randrange(args.dims)] += rng.choice((-1, 1))
        distances.append(math.sqrt(sum(x * x for x in position)))
    result = {
        "steps": args.steps,
        "dims": args.dims,
        "seed": args.seed,
        "walks": args.walks,
        "mean": sum(distances) / len(distances),
        "rms": math.sqrt(sum(d * d for d in distances) / len(distances)),
    }
    out = pathlib.Path(f"walk-{args.steps}-{args.dims}-{args.seed}.json")
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{out}: rms {result['rms']:.2f} (theory {math.sqrt(args.steps):.2f})")


if __name__ == "__main__":
    main()
