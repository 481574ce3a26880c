#!/usr/bin/env python3
"""Checks that Apache DataSketches (PyPI `datasketches`) reads the sketches
`kuniq count --estimator hll --emit-sketch` puts in its records, and that
they union as the records say.

Usage: sketch_records.py RECORDS HOUR_UIDS EXACT

RECORDS    kuniq's records (JSON lines) of an hour's minutes and the hour
HOUR_UIDS  the uids of every frame of that hour, one per line (UTF-8)
EXACT      the hour's exact number of distinct uids

Checks:
  (a) every record's "sketch" is base64 of a sketch Python deserializes,
      HLL_4 with the lg_k the record's "estimator" names, whose estimate is
      the record's unique_users (to rounding);
  (b) Python's union of the 60 minutes' latest sketches estimates the
      hour's unique_users (to rounding), within 1 % of the exact count;
  (c) Python's own sketch of the hour's uids (update(str)), unioned with
      kuniq's hour sketch, estimates the hour's unique_users (the same uids:
      the union adds nothing).

Exit status: 0 when every check passed, 1 when one failed, 2 when the
`datasketches` module is missing (install: pip install datasketches==5.2.0).
"""

import base64
import json
import sys

from sketch_checks import check, failures, finish, import_datasketches

ds = import_datasketches()



def same_count(estimate, count):
    """A record says the estimate rounded to whole users."""
    return abs(estimate - count) <= 0.5 + 1e-9


def main():
    records_path, uids_path, exact = sys.argv[1], sys.argv[2], int(sys.argv[3])
    latest = {}
    for line in open(records_path, encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        key = (r["window"], r["start"])
        if key not in latest or r["revision"] > latest[key]["revision"]:
            latest[key] = r
        raw = base64.b64decode(r["sketch"], validate=True)
        s = ds.hll_sketch.deserialize(raw)
        lg_k = int(r["estimator"].removeprefix("hll-"))
        ok = s.lg_config_k == lg_k and s.tgt_type == ds.tgt_hll_type.HLL_4
        ok = ok and same_count(s.get_estimate(), r["unique_users"])
        if not ok:
            check(False, f"(a) {key} revision {r['revision']}: estimate {s.get_estimate()!r}, lg_k {s.lg_config_k}")
    check(not failures, f"(a) every record's sketch reads back with its unique_users ({len(latest)} windows)")

    minutes = [r for (w, _), r in sorted(latest.items()) if w == "minute"]
    hours = [r for (w, _), r in latest.items() if w == "hour"]
    check(len(minutes) == 60 and len(hours) == 1, f"60 minutes and an hour: {len(minutes)} and {len(hours)}")
    hour = hours[0]
    lg_k = int(hour["estimator"].removeprefix("hll-"))
    union = ds.hll_union(lg_k)
    for r in minutes:
        union.update(ds.hll_sketch.deserialize(base64.b64decode(r["sketch"])))
    est = union.get_estimate()
    check(same_count(est, hour["unique_users"]), f"(b) union of 60 minutes {est!r} ~ the hour's {hour['unique_users']}")
    check(abs(est - exact) / exact <= 0.01, f"(b) {est:.1f} within 1 % of the exact {exact}")

    own = ds.hll_sketch(lg_k, ds.tgt_hll_type.HLL_4)
    for uid in open(uids_path, encoding="utf-8").read().split("\n")[:-1]:
        own.update(uid)
    union = ds.hll_union(lg_k)
    union.update(ds.hll_sketch.deserialize(base64.b64decode(hour["sketch"])))
    union.update(own)
    est = union.get_estimate()
    check(
        same_count(est, hour["unique_users"]),
        f"(c) union of kuniq's hour and Python's own {est!r} ~ the hour's {hour['unique_users']}",
    )

    finish()


if __name__ == "__main__":
    main()
