#!/usr/bin/env python3
"""How far a minute's first emission (revision 0) is from its final revision.

Reads `kuniq count` records (JSON lines) on stdin and, for each minute window,
compares unique_users of revision 0 with that of its highest revision.
Prints the per-minute table and mean/max relative difference
(final - first) / final. Usage:

  target/release/kuniq gen -c 1000000 -d 40 -p 20 | target/release/kuniq count -i - | scripts/revision-error.py
"""
import json
import sys

first, last = {}, {}
for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    r = json.loads(line)
    if r.get("window") != "minute":
        continue
    s, rev = r["start"], r["revision"]
    if rev == 0:
        first[s] = r
    if s not in last or rev > last[s]["revision"]:
        last[s] = r

rows = []
for s in sorted(last):
    f, l = first[s], last[s]
    d = l["unique_users"] - f["unique_users"]
    rel = d / l["unique_users"] if l["unique_users"] else 0.0
    rows.append((s, f["unique_users"], l["unique_users"], l["revision"], d, rel))
    print(f"{s}  rev0 {f['unique_users']:>7}  final {l['unique_users']:>7} (rev {l['revision']:>2})  "
          f"missing at rev0 {d:>6}  {100 * rel:6.3f} %  frames rev0 {f['frames']} final {l['frames']}")

full = rows[1:-1] if len(rows) > 2 else rows  # first and last minute are partial
for name, sel in (("all minutes", rows), ("full minutes (first and last left out)", full)):
    rels = [r[5] for r in sel]
    revised = sum(1 for r in sel if r[3] > 0)
    print(f"{name}: {len(sel)} minutes, {revised} revised; relative difference rev0 vs final: "
          f"mean {100 * sum(rels) / len(rels):.3f} %, max {100 * max(rels):.3f} %, "
          f"mean absolute {sum(r[4] for r in sel) / len(sel):.1f} users")
