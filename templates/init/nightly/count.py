"""Count the words of one input file: python3 count.py <input> <output>.

Exits 3 on an empty file (the spec's exit rule lets the total run anyway)."""

import sys

text = open(sys.argv[1], encoding="utf-8").read()
words = len(text.split())
with open(sys.argv[2], "w", encoding="utf-8") as out:
    out.write(f"{words}\n")
sys.exit(3 if words == 0 else 0)
