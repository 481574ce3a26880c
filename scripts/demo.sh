#!/usr/bin/env bash
# The main job end to end on a fresh machine: build kuniq, generate a
# challenge-style input (deterministic), count unique users per minute, and
# show the records and the run summary.
#
# Usage: scripts/demo.sh [FRAMES]      (default 1000000, the official size)
# Output goes to bench-data/ (ignored by git).
set -euo pipefail
cd "$(dirname "$0")/.."

frames="${1:-1000000}"
case "$frames" in '' | *[!0-9]*) echo "usage: scripts/demo.sh [FRAMES]" >&2; exit 2 ;; esac

echo "== building kuniq (release)"
cargo build --release --quiet
kuniq=target/release/kuniq

mkdir -p bench-data
input="bench-data/demo-${frames}.jsonl"
if [[ ! -s "$input" ]]; then
    echo "== generating $frames frames into $input"
    "$kuniq" gen -c "$frames" -r 1000 -n 100000 -d 30 -p 2 -s 1 -o "$input.tmp"
    mv "$input.tmp" "$input"
fi

echo "== counting unique users per minute"
"$kuniq" count -i "$input" > bench-data/demo-records.jsonl
echo "== first and last records (all in bench-data/demo-records.jsonl)"
head -n 3 bench-data/demo-records.jsonl
echo "..."
tail -n 3 bench-data/demo-records.jsonl
