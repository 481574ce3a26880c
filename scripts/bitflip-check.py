#!/usr/bin/env python3
"""Bit-flipped and late timestamps: what kuniq does with them, measured.

Takes a JSON-lines file, flips a high bit of `ts` in every K-th frame (far
ahead: +2^31 s) and sets ts of every M-th frame to a time far behind (ts 0
would be too easy; it uses ts - 2^27 s, about 4 years back), writes the
result to a temporary file, and runs `kuniq count` on it and on the same
file with those frames removed. Prints the summary counters and whether the
final per-minute counts agree.

Usage: scripts/bitflip-check.py [FILE] [K] [M]
  defaults: bench-data/frames-200000.jsonl, K=997, M=1999; KUNIQ=path to the binary.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "bench-data/frames-200000.jsonl")
k = int(sys.argv[2]) if len(sys.argv) > 2 else 997
m = int(sys.argv[3]) if len(sys.argv) > 3 else 1999
kuniq = os.environ.get("KUNIQ", os.path.join(root, "target/release/kuniq"))
TS = re.compile(rb'"ts":(\d+)')


def top_ts(line):
    # Generator frames: nested decoy `ts` keys hold small numbers, floats,
    # strings or literals, never 10 digits, so the first 10-digit `"ts":` is
    # the top-level one.
    for mt in TS.finditer(line):
        if len(mt.group(1)) == 10:
            return mt
    return None


def run(path):
    out = subprocess.run([kuniq, "count", "-i", path, "--progress", "never", "--summary", "json"],
                         capture_output=True, check=True)
    last = {}
    for line in out.stdout.splitlines():
        r = json.loads(line)
        if r["start"] not in last or r["revision"] > last[r["start"]]["revision"]:
            last[r["start"]] = r
    return json.loads(out.stderr.decode().strip().splitlines()[-1]), last


with tempfile.TemporaryDirectory() as tmp:
    flipped, kept = os.path.join(tmp, "flipped.jsonl"), os.path.join(tmp, "kept.jsonl")
    ahead = behind = 0
    with open(src, "rb") as f, open(flipped, "wb") as fo, open(kept, "wb") as fk:
        for i, line in enumerate(f, 1):
            mt = top_ts(line)
            if mt and i % k == 0:
                new = int(mt.group(1)) | (1 << 31)
                ahead += 1
            elif mt and i % m == 0:
                new = int(mt.group(1)) - (1 << 27)
                behind += 1
            else:
                fo.write(line)
                fk.write(line)
                continue
            fo.write(line[:mt.start(1)] + str(new).encode() + line[mt.end(1):])
    s_flip, flip = run(flipped)
    s_kept, good = run(kept)
    keys = ("frames", "counted", "late", "too_late", "quarantined", "records", "revisions")
    print(f"input: {src}; {ahead} frames with ts | 2^31 (about 68 years ahead), {behind} with ts - 2^27 (about 4 years behind)")
    print("with the bad frames:   ", {x: s_flip.get(x) for x in keys})
    print("without them (oracle): ", {x: s_kept.get(x) for x in keys})
    same = {s: r["unique_users"] for s, r in flip.items()} == {s: r["unique_users"] for s, r in good.items()}
    print(f"final unique_users per minute identical: {same} ({len(good)} minutes)")
    sys.exit(0 if same else 1)
