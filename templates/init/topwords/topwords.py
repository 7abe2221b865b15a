#!/usr/bin/env python3
"""Count the most common words of one text file, as the Azure Batch Python tutorial's task does.

Writes <stem>_OUTPUT.txt in the working directory: a header, one `word:<TAB>count` line per word
(the top N, most common first), then the node, task, job and pool that ran it. Words are split
on whitespace and stripped of punctuation at both ends; case is kept. Standard library only.
"""

import argparse
import collections
import os
import pathlib
import string


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--filepath", required=True, help="the text file to count")
    parser.add_argument("--numwords", type=int, default=3, help="how many words to report")
    args = parser.parse_args()

    path = pathlib.Path(args.filepath)
    words = (w.strip(string.punctuation) for w in path.read_text(encoding="utf-8").split())
    counts = collections.Counter(w for w in words if w)
    output = pathlib.Path(f"{path.stem}_OUTPUT.txt")
    with output.open("w", encoding="utf-8") as f:
        f.write(f"Top {args.numwords} words of {path.name}\n")
        f.write("------------------------------\n")
        for word, count in counts.most_common(args.numwords):
            f.write(f"{word}:\t{count}\n")
        for label, var in (("Node", "NODE_ID"), ("Task", "TASK_ID"), ("Job", "JOB_ID"), ("Pool", "POOL_ID")):
            f.write(f"{label}: {os.environ.get('AZ_BATCH_' + var, '-')}\n")
    print(f"{output}: {sum(counts.values())} words, {len(counts)} distinct")


if __name__ == "__main__":
    main()
