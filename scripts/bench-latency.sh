#!/usr/bin/env bash
# Emission latency of kuniq count, Kafka to Kafka, on a local Apache Kafka
# broker (or tansu, BROKER_KIND=tansu or --storage):
# the time from producing the frame that pushes the watermark past a
# minute's end to that minute's record being readable on the output topic.
#
# The target (BRIEF.md): a minute's record is on the output topic within
# 100 ms (p99) of the watermark passing its end. This script measures it
# with examples/latency_bench.rs against a running kuniq and prints a report
# meant to be pasted into profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-latency.sh [--port N] [--storage memory|sqlite] [--strict] [-h|--help] [-- KUNIQ_ARGS...]

Starts a dedicated broker on 127.0.0.1:PORT with scripts/broker.sh:
Apache Kafka (single-node KRaft) by default, tansu with memory storage when
BROKER_KIND=tansu, tansu with the given storage when --storage is given.
Builds kuniq and
examples/latency_bench.rs (release, target-cpu=native). Then, RUNS times,
on fresh topics:

  1. creates a 4-partition input topic, a 1-partition output topic and a
     1-partition probe topic;
  2. starts, in the background,
       target/release/kuniq count -b 127.0.0.1:PORT -t INPUT -G GROUP -o OUTPUT
         --offset beginning --progress never --state-topic STATE [KUNIQ_ARGS...]
  3. runs target/release/examples/latency_bench against the topics: it
     produces small frames ({"uid":"u123","ts":...,"n":...}) live, in
     event-time order, round-robin over the 4 partitions, paced so that
     event time advances EVENT_RATE seconds per wall second (a minute
     closes every 60/EVENT_RATE s, plus a random pause of up to JITTER_MS
     after each closing frame, so closings do not lock in phase with
     kuniq's periodic work), with linger.ms=0; it knows which frame closes each
     minute (the first after which min over partitions of max ts - 5 s
     reaches the minute's end) and when that frame was handed to the
     producer; a reader thread (assign, partition 0 from the beginning,
     fetch.wait.max.ms=10) times when each minute's revision-0 record is
     first read. Latency = read instant - closing frame's send instant.
     Minutes closed before the first record was read (kuniq starting) and
     the next WARMUP minutes are not measured. Probes (one record every
     PROBE_MS through the same producer and reader) time a single broker
     hop;
  4. stops kuniq with SIGTERM.

Reported: per run, p50/p90/p99/max of the latency from the closing frame's
send and from its acknowledgement, the send->ack time, the probe hop; then
the medians over runs of p50 and p99, percentiles over all runs' minutes
pooled, and PASS/FAIL against p99 <= 100 ms (on the median of the runs'
p99). Every client uses fetch.wait.max.ms=10 (kuniq's default; tansu
holds every fetch for the client's full wait, see BRIEF.md; Apache Kafka
answers as soon as there is data); kuniq's producer uses its own default,
linger.ms=5.

Why few frames (the default load was chosen on tansu and is kept on Apache
Kafka so results compare): tansu 0.6's memory storage lists every stored batch of a
partition on each fetch (tansu-storage src/dynostore.rs, fetch), and a
producer with linger.ms=0 writes one batch per frame, so the broker's CPU
grows with the topic: at 400 frames/s it saturates a core within a minute
or two and every latency measured after that is the broker's. At the
default 48 frames/s (1 per event second) it stays under about 20 % of a
core for 300 minutes. For heavier loads use --storage sqlite (indexed
fetches, flat cost) and raise FRAMES_PER_SEC.

Arguments after `--` go to kuniq count, e.g. `-- -X linger.ms=0` or
`-- --commit-interval 1h`, to see where the time goes.

SCALE_OUT=1 measures the two scale-out stages instead of one kuniq count:
a worker (`kuniq count ... --partials-topic P`, no -o) and `kuniq merge
--partials-topic P -o OUTPUT`, both started in the background (the
arguments after `--` go to the worker); the latency is then from the
closing frame to the merge's record.

Options:
  --port N      the benchmark broker's port [default: 19292]; it must be
                free, the broker is started and stopped by this script
  --storage S   tansu's storage, and tansu as the broker: memory or
                sqlite (a file in target/broker/, removed afterwards)
  --strict      also exit 2 when the target FAILs (for CI; numbers on a
                shared or small machine are noisy)
  -h, --help    this text

Environment:
  RUNS            runs [default: 3]
  MINUTES         minutes closed per run [default: 200]
  WARMUP          measured minutes skipped after start-up [default: 5]
  EVENT_RATE      event seconds per wall second [default: 48: a minute
                  every 1.25 s plus the pause, 1.5 s on average; 200
                  minutes take about 5 minutes]
  JITTER_MS       longest random pause after a closing frame [default: 500]
  FRAMES_PER_SEC  frames per event second [default: 1, so 48 frames/s]
  PROBE_MS        time between broker-hop probes [default: 200]
  READER_FETCH_WAIT_MS  the reader's fetch.wait.max.ms [default: 10]
  WATCH_INPUT     1: the reader also reads the input topic and times when
                  each closing frame is readable there (splits the latency
                  into the input hop and the rest; adds fetch load)
  KEEP_CSV        a directory to copy each run's per-minute CSV into
  BROKER_KIND     kafka (default) or tansu
  TANSU           the tansu binary (see scripts/broker.sh)

Needs: cargo, python3 (the summary), and Apache Kafka (scripts/broker.sh
install --kind kafka: Java 17, mvn) or tansu (scripts/broker.sh install
--kind tansu).

Quick smoke run:  RUNS=1 MINUTES=30 scripts/bench-latency.sh
Heavier input:    FRAMES_PER_SEC=10 scripts/bench-latency.sh --storage sqlite
EOF
}

port=19292
storage=""
strict=0
kuniq_args=()
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
        --port=*) port="${1#--port=}"; shift ;;
        --storage) [[ $# -ge 2 ]] || die "--storage needs a value"; storage="$2"; shift 2 ;;
        --storage=*) storage="${1#--storage=}"; shift ;;
        --strict) strict=1; shift ;;
        --) shift; kuniq_args=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
    die "--port needs a number in 1..65535, not '$port'"
fi
[[ -z "$storage" || "$storage" == memory || "$storage" == sqlite ]] || die "--storage must be memory or sqlite, not '$storage'"
kind="${BROKER_KIND:-kafka}"
[[ "$kind" == kafka || "$kind" == tansu ]] || die "BROKER_KIND must be kafka or tansu, not '$kind'"
# --storage is tansu's; asking for it means tansu.
[[ -n "$storage" ]] && kind=tansu
[[ "$kind" == tansu && -z "$storage" ]] && storage=memory
positive() {
    [[ "$2" =~ ^[1-9][0-9]*$ ]] || die "$1 must be a positive integer, not '$2'"
    printf '%s\n' "$2"
}
runs="$(positive RUNS "${RUNS:-3}")"
minutes="$(positive MINUTES "${MINUTES:-200}")"
warmup="${WARMUP:-5}"
[[ "$warmup" =~ ^[0-9]+$ ]] || die "WARMUP must be a number, not '$warmup'"
event_rate="$(positive EVENT_RATE "${EVENT_RATE:-48}")"
jitter_ms="${JITTER_MS:-500}"
[[ "$jitter_ms" =~ ^[0-9]+$ ]] || die "JITTER_MS must be a number, not '$jitter_ms'"
frames_per_sec="$(positive FRAMES_PER_SEC "${FRAMES_PER_SEC:-1}")"
probe_ms="$(positive PROBE_MS "${PROBE_MS:-200}")"
watch_args=()
case "${WATCH_INPUT:-0}" in
    0 | "") ;;
    1) watch_args=(--watch-input) ;;
    *) die "WATCH_INPUT must be 0 or 1, not '$WATCH_INPUT'" ;;
esac
reader_wait="$(positive READER_FETCH_WAIT_MS "${READER_FETCH_WAIT_MS:-10}")"
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the summary"
if [[ -n "${KEEP_CSV:-}" ]]; then
    mkdir -p "$KEEP_CSV"
fi

broker_sh="$KUNIQ_ROOT/scripts/broker.sh"
brokers="127.0.0.1:$port"
partitions=4
stamp="$(date +%s)-$$"

build_release scan
log "Building examples/latency_bench.rs (release)..."
(cd "$KUNIQ_ROOT" && cargo build --release --quiet --example latency_bench) \
    || die "cargo build --release --example latency_bench failed"
bench_bin="$KUNIQ_ROOT/target/release/examples/latency_bench"

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench-latency.XXXXXX")"
broker_started=0
kuniq_pid=""
worker_pid=""
sqlite_db=""
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if [[ -n "$worker_pid" ]] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    if [[ -n "$kuniq_pid" ]] && kill -0 "$kuniq_pid" 2>/dev/null; then
        kill -TERM "$kuniq_pid" 2>/dev/null || true
        wait "$kuniq_pid" 2>/dev/null || true
    fi
    if ((broker_started)); then
        "$broker_sh" stop --kind "$kind" --port "$port" || true
    fi
    if [[ -n "$sqlite_db" ]]; then
        rm -f "$sqlite_db" "$sqlite_db-wal" "$sqlite_db-shm" "$sqlite_db-journal"
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ "$storage" == sqlite ]]; then
    sqlite_db="$KUNIQ_ROOT/target/broker/latency-$port-$$.db"
    "$broker_sh" start --kind tansu --port "$port" --storage "sqlite:$sqlite_db"
else
    "$broker_sh" start --kind "$kind" --port "$port"
fi
broker_started=1

# stop_kuniq: SIGTERM, then up to 30 s for kuniq to save its state and exit.
stop_kuniq() {
    local i status=0
    kill -TERM "$kuniq_pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$kuniq_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$kuniq_pid" 2>/dev/null; then
        log "kuniq (pid $kuniq_pid) did not exit 30 s after SIGTERM; killing it."
        kill -KILL "$kuniq_pid" 2>/dev/null || true
    fi
    wait "$kuniq_pid" 2>/dev/null || status=$?
    kuniq_pid=""
    return "$status"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
clk_tck="$(getconf CLK_TCK)"
# cpu_secs PID: user + system CPU seconds of a live process, 0 when gone.
cpu_secs() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || { echo 0; return; }
    # Fields after the command name, which is in parentheses.
    awk -v t="$clk_tck" '{ printf "%.2f", ($12 + $13) / t }' <<<"${stat##*) }"
}
if [[ "$kind" == kafka ]]; then
    broker_pid="$(cat "$KUNIQ_ROOT/target/broker/kafka-$port/kafka.pid")"
    title="Apache Kafka"
else
    broker_pid="$(cat "$KUNIQ_ROOT/target/broker/tansu-$port.pid")"
    title="tansu"
fi

echo "# kuniq emission latency: Kafka to Kafka on a local $title"
echo
machine_info
if [[ "$kind" == kafka ]]; then
    echo "broker:  Apache Kafka ${KAFKA_VERSION:-4.1.1}, single-node KRaft (scripts/broker.sh --kind kafka, heap ${KAFKA_HEAP:-512m}), 127.0.0.1:$port, started by this script"
else
    tansu_bin="${TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
    echo "broker:  $("$tansu_bin" --version), $storage storage, 127.0.0.1:$port, started by this script"
fi
echo "rdkafka: crate $(sed -n '/^name = "rdkafka-sys"$/{n;s/^version = "\(.*\)"$/\1/p}' "$KUNIQ_ROOT/Cargo.lock") bundled librdkafka (kuniq and the benchmark)"
echo "load:    $(loadavg) (1, 5, 15 min load average before the first run)"
echo
echo "command: RUNS=$runs MINUTES=$minutes WARMUP=$warmup EVENT_RATE=$event_rate JITTER_MS=$jitter_ms" \
    "FRAMES_PER_SEC=$frames_per_sec PROBE_MS=$probe_ms READER_FETCH_WAIT_MS=$reader_wait WATCH_INPUT=${WATCH_INPUT:-0}" \
    "BROKER_KIND=$kind scripts/bench-latency.sh --port $port${storage:+ --storage $storage}${kuniq_args[*]:+ -- ${kuniq_args[*]}}"
echo "kuniq:   target/release/kuniq count -b $brokers -t INPUT -G GROUP -o OUTPUT --offset beginning" \
    "--progress never --state-topic STATE --summary json${kuniq_args[*]:+ ${kuniq_args[*]}}"
echo "bench:   target/release/examples/latency_bench -b $brokers -t INPUT -o OUTPUT --probe-topic PROBE" \
    "--probe-ms $probe_ms -m $minutes --warmup $warmup -E $event_rate --jitter-ms $jitter_ms -F $frames_per_sec" \
    "--fetch-wait-ms $reader_wait${watch_args[*]:+ ${watch_args[*]}}"
echo "topics:  fresh per run: INPUT $partitions partitions, OUTPUT 1, PROBE 1; frames produced with linger.ms=0"
echo "clients: fetch.wait.max.ms=10 in kuniq's consumer; $reader_wait in the benchmark's reader"
echo "runs:    $runs"
echo

for ((run = 1; run <= runs; run++)); do
    input="lat-in-$stamp-$run"
    output="lat-out-$stamp-$run"
    probe="lat-probe-$stamp-$run"
    state="lat-state-$stamp-$run"
    "$broker_sh" topic "$input" "$partitions" --kind "$kind" --port "$port"
    "$broker_sh" topic "$output" 1 --kind "$kind" --port "$port"
    "$broker_sh" topic "$probe" 1 --kind "$kind" --port "$port"

    if [[ -n "${SCALE_OUT:-}" ]]; then
        log "Run $run of $runs: starting a worker and kuniq merge, then $minutes minutes at $event_rate event s per wall s..."
        "$KUNIQ_BIN" count -b "$brokers" -t "$input" -G "latency-$stamp-$run" --partials-topic "lat-partials-$stamp-$run" \
            --progress never --summary json ${kuniq_args[@]+"${kuniq_args[@]}"} \
            >"$work/worker-$run.out" 2>"$work/worker-$run.err" &
        worker_pid=$!
        "$KUNIQ_BIN" merge -b "$brokers" --partials-topic "lat-partials-$stamp-$run" -o "$output" \
            -G "latency-merge-$stamp-$run" --summary json >"$work/kuniq-$run.out" 2>"$work/kuniq-$run.err" &
        kuniq_pid=$!
    else
        log "Run $run of $runs: starting kuniq count, then $minutes minutes at $event_rate event s per wall s..."
        "$KUNIQ_BIN" count -b "$brokers" -t "$input" -G "latency-$stamp-$run" -o "$output" --offset beginning \
            --progress never --state-topic "$state" --summary json ${kuniq_args[@]+"${kuniq_args[@]}"} \
            >"$work/kuniq-$run.out" 2>"$work/kuniq-$run.err" &
        kuniq_pid=$!
    fi
    load_before="$(loadavg)"
    broker_cpu_before="$(cpu_secs "$broker_pid")"
    bench_status=0
    "$bench_bin" -b "$brokers" -t "$input" -o "$output" --probe-topic "$probe" --probe-ms "$probe_ms" \
        -m "$minutes" --warmup "$warmup" -E "$event_rate" --jitter-ms "$jitter_ms" -F "$frames_per_sec" \
        --fetch-wait-ms "$reader_wait" ${watch_args[@]+"${watch_args[@]}"} --csv "$work/run-$run.csv" \
        >"$work/bench-$run.out" 2>"$work/bench-$run.err" || bench_status=$?
    load_after="$(loadavg)"
    broker_cpu="$(awk -v a="$broker_cpu_before" -v b="$(cpu_secs "$broker_pid")" 'BEGIN { printf "%.1f", b - a }')"
    kuniq_cpu="$(cpu_secs "$kuniq_pid")"
    if [[ -n "$worker_pid" ]]; then
        kuniq_cpu="$(awk -v a="$kuniq_cpu" -v b="$(cpu_secs "$worker_pid")" 'BEGIN { printf "%.2f", a + b }')"
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
        worker_pid=""
    fi
    if ! kill -0 "$kuniq_pid" 2>/dev/null; then
        log "kuniq exited during the run:"
        cat "$work/kuniq-$run.err" >&2
        die "kuniq count stopped early (run $run)"
    fi
    kuniq_status=0
    stop_kuniq || kuniq_status=$?

    echo "## run $run (load average $load_before before, $load_after after)"
    echo
    grep -v '^{' "$work/bench-$run.out" || true
    sed 's/^/bench:     /' "$work/bench-$run.err"
    echo "cpu:       $kind $broker_cpu s, kuniq $kuniq_cpu s (user + system, during the run)"
    echo "kuniq:     exit $kuniq_status; summary $(tail -n 1 "$work/kuniq-$run.err")"
    echo
    if [[ -n "${KEEP_CSV:-}" ]]; then
        cp "$work/run-$run.csv" "$KEEP_CSV/latency-run-$run.csv"
    fi
    if ((bench_status != 0)); then
        die "latency_bench failed in run $run (exit $bench_status; see above)"
    fi
    ((kuniq_status == 0)) || die "kuniq count exited $kuniq_status after SIGTERM in run $run"
    grep -q '^{' "$work/bench-$run.out" || die "latency_bench printed no JSON summary in run $run"
done

set +e
python3 - "$work" "$runs" "$strict" <<'PY'
import csv
import json
import math
import statistics
import sys

work, runs, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"


def pct(values, p):
    """Nearest rank, as the benchmark computes it."""
    if not values:
        return float("nan")
    values = sorted(values)
    return values[max(1, math.ceil(p / 100 * len(values))) - 1]


results = []
pooled, pooled_ack = [], []
for run in range(1, runs + 1):
    with open(f"{work}/bench-{run}.out") as f:
        results.append(json.loads([line for line in f if line.startswith("{")][-1]))
    with open(f"{work}/run-{run}.csv") as f:
        for row in csv.DictReader(f):
            if row["measured"] == "1" and row["read_ms"]:
                pooled.append(float(row["read_ms"]) - float(row["sent_ms"]))
                if row["ack_ms"]:
                    pooled_ack.append(float(row["read_ms"]) - float(row["ack_ms"]))

print("## summary")
print()
print("run |  minutes |  p50 ms  p90 ms  p99 ms  max ms | from ack: p50 ms  p99 ms | probe hop: p50 ms  p99 ms")
for i, r in enumerate(results, 1):
    print(f"{i:3d} | {r['count']:8d} | {r['p50_ms']:7.1f} {r['p90_ms']:7.1f} {r['p99_ms']:7.1f} {r['max_ms']:7.1f} |"
          f" {r['ack_p50_ms']:16.1f} {r['ack_p99_ms']:7.1f} | {r['probe_p50_ms']:17.1f} {r['probe_p99_ms']:7.1f}")
med = {k: statistics.median(r[k] for r in results) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")}
print(f"med | {'':8s} | {med['p50_ms']:7.1f} {med['p90_ms']:7.1f} {med['p99_ms']:7.1f} {med['max_ms']:7.1f} |")
print()
print(f"pooled over {len(pooled)} measured minutes of {runs} runs: p50 {pct(pooled, 50):.1f} ms, "
      f"p90 {pct(pooled, 90):.1f} ms, p99 {pct(pooled, 99):.1f} ms, max {pct(pooled, 100):.1f} ms; "
      f"from the closing frame's ack: p50 {pct(pooled_ack, 50):.1f} ms, p99 {pct(pooled_ack, 99):.1f} ms")
over = sum(1 for v in pooled if v > 100)
print(f"minutes over 100 ms: {over} of {len(pooled)}")
ok = med["p99_ms"] <= 100 and all(r["missing"] == 0 for r in results)
print()
print(f"{'PASS' if ok else 'FAIL'}: p99 emission latency <= 100 ms "
      f"(median over runs of p99 {med['p99_ms']:.1f} ms, median p50 {med['p50_ms']:.1f} ms; pooled p99 {pct(pooled, 99):.1f} ms)")
if strict and not ok:
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
