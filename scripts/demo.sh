#!/usr/bin/env bash
# The main job end to end on a fresh machine, on a local broker:
#   install and start Apache Kafka (single-node KRaft, jars from Maven
#   Central; tansu when java or mvn is missing, or BROKER_KIND=tansu),
#   generate challenge-style frames, produce them to a 4-partition topic,
#   count unique users per minute Kafka to Kafka, and show the output
#   topic's records. The broker is stopped (and its data removed) at the end.
#
# Usage: scripts/demo.sh [FRAMES]       (default 200000)
#        scripts/demo.sh --file [FRAMES] (no broker: count a file, default 1000000)
# Data goes to bench-data/ (ignored by git). Port: KUNIQ_DEMO_PORT (19392).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=kafka
if [[ "${1:-}" == "--file" ]]; then
    mode=file
    shift
fi
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
fi
default_frames=200000
[[ "$mode" == file ]] && default_frames=1000000
frames="${1:-$default_frames}"
case "$frames" in '' | *[!0-9]*) echo "usage: scripts/demo.sh [--file] [FRAMES]" >&2; exit 2 ;; esac

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

if [[ "$mode" == file ]]; then
    echo "== counting unique users per minute"
    "$kuniq" count -i "$input" > bench-data/demo-records.jsonl
    echo "== first and last records (all in bench-data/demo-records.jsonl)"
    head -n 3 bench-data/demo-records.jsonl
    echo "..."
    tail -n 3 bench-data/demo-records.jsonl
    exit 0
fi

port="${KUNIQ_DEMO_PORT:-19392}"
brokers="127.0.0.1:$port"
kind="${BROKER_KIND:-}"
if [[ -z "$kind" ]]; then
    if command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
        kind=kafka
    else
        kind=tansu
        echo "== java or mvn is missing: running on tansu, a Kafka-protocol broker built with cargo, instead of Apache Kafka"
    fi
fi
echo "== broker: installing $kind if needed, starting it on $brokers"
scripts/broker.sh install --kind "$kind"
scripts/broker.sh start --kind "$kind" --port "$port"
trap 'scripts/broker.sh stop --kind "$kind" --port "$port" >/dev/null 2>&1 || true' EXIT
scripts/broker.sh topic frames 4 --kind "$kind" --port "$port"
scripts/broker.sh topic uniques 1 --kind "$kind" --port "$port"

echo "== producing $frames frames to topic 'frames' (4 partitions)"
"$kuniq" produce -b "$brokers" -t frames -i "$input" --progress never

echo "== counting Kafka to Kafka: frames -> uniques (reads to the end, then exits)"
"$kuniq" count -b "$brokers" -t frames -G demo --offset beginning -e -o uniques --progress never

echo "== the output topic 'uniques' (key, record)"
"$kuniq" consume -b "$brokers" -t uniques -e -K > bench-data/demo-uniques.txt
head -n 5 bench-data/demo-uniques.txt
echo "... $(wc -l < bench-data/demo-uniques.txt) records in all (bench-data/demo-uniques.txt)"
