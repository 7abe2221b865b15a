#!/usr/bin/env python3
"""Count the top N words of a text file, as the Azure Batch Python tutorial's task does.

Splits on whitespace, strips punctuation from both ends of each word (case is kept) and writes
`<stem>_OUTPUT.txt` in the working directory: a header, `word:<TAB>count` for the N most common
words (collections.Counter.most_common order), then the node, task, job and pool ids Batch
sets in the environment. Standard library only: it runs on a bare node.
"""

from __future__ import annotations

import argparse
import collections
import os
import string


def top_words(text: str, n: int) -> list[tuple[str, int]]:
    words = (w.strip(string.punctuation) for w in text.split())
    return collections.Counter(w for w in words if w).most_common(n)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filepath", required=True, help="the text file to read")
    parser.add_argument("--numwords", type=int, default=3, help="how many words to report")
    parser.add_argument("--storageaccount", help="ignored; accepted for the tutorial's command line")
    parser.add_argument("--storagecontainer", help="ignored; accepted for the tutorial's command line")
    parser.add_argument("--sastoken", help="ignored; accepted for the tutorial's command line")
    args = parser.parse_args()

    with open(args.filepath, encoding="utf-8", errors="replace") as f:
        counts = top_words(f.read(), args.numwords)

    stem = os.path.splitext(os.path.basename(args.filepath))[0]
    output_file = f"{stem}_OUTPUT.txt"
    with open(output_file, "w", encoding="utf-8") as out:
        out.write("------------------------------\n")
        out.write(f"Top {args.numwords} words in {os.path.basename(args.filepath)}:\n")
        for word, count in counts:
            out.write(f"{word}:\t{count}\n")
        out.write(f"Node: {os.environ.get('AZ_BATCH_NODE_ID', '')}\n")
        out.write(f"Task: {os.environ.get('AZ_BATCH_TASK_ID', '')}\n")
        out.write(f"Job: {os.environ.get('AZ_BATCH_JOB_ID', '')}\n")
        out.write(f"Pool: {os.environ.get('AZ_BATCH_POOL_ID', '')}\n")
    print(f"wrote {output_file}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
