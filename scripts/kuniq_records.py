"""Reading what the benchmark scripts compare: kuniq's records and the
peers' per-minute rows. Imported by the Python inside scripts/bench-*.sh
(they run it with PYTHONPATH=scripts)."""

import json


def last_minutes(path):
    """The last revision's unique_users of every minute window in a file of
    kuniq records (one JSON object a line): {start: users}."""
    last = {}
    with open(path) as f:
        for line in f:
            rec = json.loads(line)
            if rec["window"] != "minute":
                continue
            start = rec["start"]
            if start not in last or rec["revision"] > last[start][0]:
                last[start] = (rec["revision"], rec["unique_users"])
    return {start: users for start, (_, users) in last.items()}


def tsv_minutes(path):
    """A peer's rows, `minute<TAB>users` a line: {minute: users}."""
    with open(path) as f:
        return {int(m): int(n) for m, n in (line.split("\t") for line in f)}
