#!/usr/bin/env bash
# A CPU profile of `kuniq count` reading a Kafka topic on a local tansu, for
# scripts/time-shares.py: where kuniq's time goes with Kafka input.
#
# Starts tansu (scripts/broker.sh) on PORT, creates a 4-partition topic,
# loads FILE with `kuniq produce`, then records
#   perf record -e cpu-clock -F 999 -g --call-graph dwarf -- kuniq count -b ... -e
# (only kuniq is sampled, not the broker), stops the broker, and writes the
# folded stacks to target/flamegraph/kuniq-kafka.folded and an SVG next to it.
# This VM has no hardware counters: cpu-clock is on-CPU time.
#
# Usage: scripts/profile-kafka.sh [FILE]   (default bench-data/official.jsonl)
# Environment: PORT [19494], PERF_FREQ [999].
set -euo pipefail
# Measured and documented on tansu: its broker.sh calls use tansu unless
# BROKER_KIND says otherwise (scripts/bench-kafka.sh is the Apache Kafka one).
export BROKER_KIND="${BROKER_KIND:-tansu}"
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

port="${PORT:-19494}"
freq="${PERF_FREQ:-999}"
file="${1:-$KUNIQ_ROOT/bench-data/official.jsonl}"
[[ -r "$file" ]] || die "cannot read $file"
command -v perf >/dev/null || die "perf is missing (Debian: apt-get install linux-perf)"
build_release scan
out="$KUNIQ_ROOT/target/flamegraph"
mkdir -p "$out"
topic="profile-frames-$$"

"$KUNIQ_ROOT/scripts/broker.sh" start --port "$port"
trap '"$KUNIQ_ROOT/scripts/broker.sh" stop --port "$port" || true' EXIT
"$KUNIQ_ROOT/scripts/broker.sh" topic "$topic" 4 --port "$port"
"$KUNIQ_BIN" produce -b "127.0.0.1:$port" -t "$topic" -i "$file"

log "Recording kuniq count -b 127.0.0.1:$port -t $topic -e (cpu-clock, $freq Hz, dwarf call graphs)..."
perf record -e cpu-clock -F "$freq" -g --call-graph dwarf -o "$out/perf-kafka.data" --quiet -- \
    "$KUNIQ_BIN" count -b "127.0.0.1:$port" -t "$topic" -G "profile-$$" --offset beginning -e \
    --progress never --summary text --state-topic "profile-state-$$" >/dev/null

perf script -i "$out/perf-kafka.data" 2>/dev/null | inline_order | inferno-collapse-perf >"$out/kuniq-kafka.folded"
inferno-flamegraph --title "kuniq count, Kafka input (local tansu, 4 partitions), $(basename "$file")" \
    --subtitle "$(date -u +%Y-%m-%d), $(nproc) cores; perf cpu-clock at $freq Hz, dwarf call graphs" \
    --countname ns <"$out/kuniq-kafka.folded" >"$out/kuniq-kafka.svg"
echo "folded: ${out#"$KUNIQ_ROOT/"}/kuniq-kafka.folded, svg: ${out#"$KUNIQ_ROOT/"}/kuniq-kafka.svg"
"$KUNIQ_ROOT/scripts/time-shares.py" "$out/kuniq-kafka.folded"
