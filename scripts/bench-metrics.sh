#!/usr/bin/env bash
# kuniq count on the official file, with and without --metrics-addr,
# alternating, N runs each; prints each wall time and the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
K=${K:-${CARGO_TARGET_DIR:-target}/release/kuniq}
F=${F:-bench-data/official.jsonl}
N=${N:-5}
cat "$F" > /dev/null
off=(); on=()
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
for i in $(seq "$N"); do
  a=$(t "$K" count --input "$F" --progress never --summary none)
  b=$(t "$K" count --input "$F" --progress never --summary none --metrics-addr 127.0.0.1:0)
  off+=("$a"); on+=("$b")
  echo "run $i: without $a s, with $b s (load $(cut -d' ' -f1 /proc/loadavg))"
done
med() { printf '%s\n' "$@" | sort -n | sed -n "$(( ($# + 1) / 2 ))p"; }
echo "median without: $(med "${off[@]}") s; median with: $(med "${on[@]}") s"
