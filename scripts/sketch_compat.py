#!/usr/bin/env python3
"""Checks that Apache DataSketches (PyPI `datasketches`) reads kuniq's HLL
sketches and unions them with its own, as if it had built them itself.

Usage: sketch_compat.py DIR

DIR is written by tests/sketch_compat.rs through kuniq's library API:
  meta.json            lg_k, the windows and kuniq's estimates
  <window>.uids        a window's uids, one per line (UTF-8), in update order
  <window>.bin         kuniq's sketch of those uids (UidSketch::to_bytes)
  minute-NN.uids/.bin  the 60 minutes of an hour, the same way
  hour.bin             kuniq's union of the 60 minute sketches, minute order

Checks, for every window:
  (a) Python deserializes kuniq's sketch, with kuniq's lg_k, type and estimate;
  (b) Python's own sketch of the same uids, updated with update(str) in the
      same order, has kuniq's bytes (same hashes, same HIP state) but for
      one header field (below), and where that field differs, Python writes
      the sketch it read from kuniq with exactly its own sketch's bytes;
      the union of kuniq's sketch with Python's own estimates exactly what the
      union of Python's sketch with itself estimates (same uids: the union
      adds nothing), within the union's 3-sigma error of Python's own
      sketch's estimate, and within 1 % of the exact count;
and for the hour:
  (c) Python's union of kuniq's 60 minute sketches, in minute order, has
      the bytes of kuniq's merged hour (but for the same header field),
      estimates exactly what Python reads from kuniq's hour (and what the
      union of Python's own minute sketches estimates), what kuniq estimated
      to 1e-12 (see same_number), and within 1 % of the hour's exact count.

The one byte that may differ: byte 4 (lg_arr) of an HLL_4 sketch in HLL
mode. C++ writes there the log size of its auxiliary hash table; the Rust
crate (datasketches 0.6.0) writes 0. It describes no data: a compact image
lists its auxiliary entries, and readers size the table from their count
(Java: HeapAuxHashMap.heapify computes it "for compact" images; C++ and
Python read kuniq's images here). The check allows exactly that difference.

Exit status: 0 when every check passed, 1 when one failed, 2 when the
`datasketches` module is missing (install: pip install datasketches==5.2.0).
"""

import json
from importlib import metadata
import math
import sys
from pathlib import Path

from sketch_checks import check, finish, import_datasketches

ds = import_datasketches()

TYPES = {"HLL_4": ds.tgt_hll_type.HLL_4, "HLL_6": ds.tgt_hll_type.HLL_6, "HLL_8": ds.tgt_hll_type.HLL_8}


def uids(path):
    return path.read_text(encoding="utf-8").split("\n")[:-1]


def own_sketch(lg_k, hll_type, stream):
    s = ds.hll_sketch(lg_k, hll_type)
    for uid in stream:
        s.update(uid)
    return s


def union_estimate(lg_k, sketches):
    u = ds.hll_union(lg_k)
    for s in sketches:
        u.update(s)
    return u.get_estimate()


def same_bytes(what, kuniq, python):
    """Checks kuniq's image is Python's but for HLL_4's lg_arr byte (see above)."""
    differ = [i for i in range(max(len(kuniq), len(python))) if kuniq[i : i + 1] != python[i : i + 1]]
    # Byte 7 is the mode: the low 2 bits the current mode (2: HLL), then the type (0: HLL_4).
    lg_arr_only = differ == [4] and kuniq[4] == 0 and kuniq[7] & 3 == 2 and kuniq[7] >> 2 == 0
    check(
        differ == [] or lg_arr_only,
        f"{what} has kuniq's bytes"
        + (f" but for byte 4, lg_arr ({kuniq[4]} vs {python[4]})" if differ else "")
        + f" ({len(python)} bytes)",
    )
    return bool(differ)


def same_number(python, kuniq):
    """An estimate both implementations compute from the same registers.

    C++ and Rust sum the registers' terms in different orders, so such
    estimates agree to a few units in the last place, not bit for bit (seen:
    1000507.2964030775 against ...0777); estimates within one implementation
    are compared with ==.
    """
    return math.isclose(python, kuniq, rel_tol=1e-12, abs_tol=0.0)


def rel(a, b):
    return abs(a - b) / b if b else abs(a - b)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(1)
    root = Path(sys.argv[1])
    meta = json.loads((root / "meta.json").read_text())
    lg_k, hll_type = meta["lg_k"], TYPES[meta["hll_type"]]
    print(f"datasketches {metadata.version('datasketches')}, lg_k {lg_k}, {meta['hll_type']}")

    for w in meta["windows"]:
        name, exact = w["name"], w["exact"]
        data = (root / f"{name}.bin").read_bytes()
        # (a)
        theirs = ds.hll_sketch.deserialize(data)
        check(theirs.lg_config_k == lg_k, f"{name}: deserialized lg_k {theirs.lg_config_k} == {lg_k}")
        check(theirs.tgt_type == hll_type, f"{name}: deserialized type {theirs.tgt_type}")
        check(
            same_number(theirs.get_estimate(), w["estimate"]),
            f"{name}: Python reads kuniq's estimate {theirs.get_estimate()!r} ~= kuniq's {w['estimate']!r}",
        )
        # (b)
        mine = own_sketch(lg_k, hll_type, uids(root / f"{name}.uids"))
        own = mine.serialize_compact()
        differ = same_bytes(f"{name}: Python's sketch of the same uids", data, own)
        if differ:
            check(
                theirs.serialize_compact() == own,
                f"{name}: kuniq's sketch, read and written by Python, has exactly the bytes of Python's own",
            )
        both = union_estimate(lg_k, [theirs, mine])
        alone = union_estimate(lg_k, [mine, mine])
        check(both == alone, f"{name}: union(kuniq, Python) {both!r} == union(Python, Python) {alone!r}")
        bound = abs(ds.hll_sketch.get_rel_err(True, True, lg_k, 3))
        check(
            rel(both, mine.get_estimate()) <= bound,
            f"{name}: union {both:.1f} within {100 * bound:.3f} % (3 sigma) of Python's own {mine.get_estimate():.1f}",
        )
        check(rel(both, exact) <= 0.01, f"{name}: union {both:.1f} within 1 % of the exact {exact}")

    # (c)
    hour = meta["hour"]
    minutes = [ds.hll_sketch.deserialize((root / f"minute-{m:02}.bin").read_bytes()) for m in range(60)]
    py_hour = union_estimate(lg_k, minutes)
    hour_bytes = (root / "hour.bin").read_bytes()
    kuniq_hour = ds.hll_sketch.deserialize(hour_bytes).get_estimate()
    union = ds.hll_union(lg_k)
    for s in minutes:
        union.update(s)
    same_bytes("hour: Python's union of kuniq's 60 minutes", hour_bytes, union.get_result(hll_type).serialize_compact())
    check(
        py_hour == kuniq_hour,
        f"hour: Python's union of kuniq's 60 minutes {py_hour!r} == Python's reading of kuniq's merged hour {kuniq_hour!r}",
    )
    check(
        same_number(kuniq_hour, hour["estimate"]),
        f"hour: Python reads kuniq's merged hour as {kuniq_hour!r} ~= kuniq's {hour['estimate']!r}",
    )
    own_minutes = [own_sketch(lg_k, hll_type, uids(root / f"minute-{m:02}.uids")) for m in range(60)]
    own_hour = union_estimate(lg_k, own_minutes)
    check(own_hour == py_hour, f"hour: union of Python's own minute sketches {own_hour!r} == of kuniq's")
    check(rel(py_hour, hour["exact"]) <= 0.01, f"hour: {py_hour:.1f} within 1 % of the exact {hour['exact']}")

    finish()


if __name__ == "__main__":
    main()
