#!/usr/bin/env bash
# kuniq against a bare rdkafka consume loop, a Python consumer and a Kafka
# Streams app, on the same local broker and topic, side by side. The broker
# is Apache Kafka (the one kuniq's users run) unless BROKER_KIND=tansu.
#
# The targets (BRIEF.md): reading Kafka, kuniq has at least 0.9x the
# throughput of a bare consume loop on the same broker and topic, spends at
# most a tenth of the Python consumer's CPU per frame, and counts at least
# 10x as many frames per CPU-second as Kafka Streams. This script measures
# all of them, checks every tool's per-minute counts against the Python
# consumer's (itself checked against kuniq's), and prints a report meant to
# be pasted into profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: scripts/bench-kafka.sh [--port N] [--strict] [-h|--help]

Starts a dedicated broker on 127.0.0.1:PORT with scripts/broker.sh (Apache
Kafka, single-node KRaft; or tansu with memory storage when
BROKER_KIND=tansu), generates the input, creates a 4-partition topic, loads
it with `kuniq produce` (round-robin over the partitions; the produce rate
is reported), then alternates RUNS runs of each of:

  bare      examples/consume_bench.rs: one rdkafka BaseConsumer polling one
            message at a time and touching each payload (length sum, xor of
            the first byte); no parsing, no counting. The ceiling.
  kuniq     kuniq count -b ... -t TOPIC -G GROUP --offset beginning -e
            (reads the topic to its end, counts, prints the records, saves
            its state, exits; it assigns itself every partition, no group
            join).
  python    scripts/python_consumer.py: confluent-kafka, batches of 1000,
            json.loads per message, dict of minute -> set(uid).
  ks-alos   the Kafka Streams peer (bench/peers/kstreams, built here with
  ks-eos    mvn when its sources are newer than its jar) with
            processing.guarantee at_least_once, then exactly_once_v2: frames
            keyed by uid, counted per (uid, minute), first frames counted per
            minute, one final record per minute (suppress, grace 65 s) to an
            output topic. Apache Kafka only (tansu 0.6 has no transactions).

Client settings: auto.offset.reset=earliest, a fresh consumer group (Kafka
Streams: a fresh application.id) per run, so every run reads the whole topic
from offset 0. fetch.wait.max.ms: kuniq keeps its default, 10 ms
(DEFAULT_FETCH_WAIT_MAX_MS in src/kafka/mod.rs); the bare loop sets 10 ms as
kuniq does; the Python consumer and Kafka Streams keep their clients'
defaults (librdkafka 500 ms, Java fetch.max.wait.ms 500 ms). Apache Kafka
answers a fetch as soon as there is data (fetch.min.bytes=1), so the wait
matters only at the end of the topic. tansu holds every fetch for the full
wait, so on tansu the Python consumer gets --fetch-wait-ms 10 too.
kuniq also keeps its prefetch defaults, fetch.queue.backoff.ms=10 and
queued.max.messages.kbytes=16384 per partition (src/kafka/mod.rs); the
others keep their clients' (librdkafka: 1000 ms and 64 MiB). A consumer that
keeps up with the fetches (the bare loop) never fills its queue, so the
backoff never applies to it.

How a Kafka Streams run ends: the app reads the topic's size when it starts
and exits once it has processed that many frames and everything they caused
downstream (bench/peers/kstreams/README.md). Minutes that were not closed by
then (the last ones: stream time never passes their end + grace) are not
emitted in the timed runs, so the timed runs' records are checked only for
the minutes they emitted. Before the timed runs, one check run per
guarantee reads a copy of the topic, appends a frame an hour ahead to every
partition once the input is processed (--sentinel) so every minute closes,
and must emit every minute with the oracle's count. Those runs are not
timed; nor is one warm-up run of the bare loop before them (the first
consumer group on a fresh Apache Kafka creates __consumer_offsets, about
3 s, and the first transactional producer __transaction_state: one-off
costs that would otherwise land on the first timed runs).

What is timed, for every run: the whole process under GNU time: wall
seconds (%e), CPU seconds, user + sys (%U + %S), and peak RSS (%M). The
JVM's start, Kafka Streams' group join and internal topic creation are in
its wall and CPU time, as kuniq's start is in kuniq's. The programs' own
elapsed time is shown too (bare and python: start to last message; kuniq:
its summary; Kafka Streams: start of main to the input processed, before
closing).

Reported: every run, the medians, frames/s, CPU seconds per million frames,
frames per CPU-second, peak RSS, and the targets side by side with
PASS/FAIL: kuniq / bare loop throughput (>= 0.9), kuniq / python CPU per
frame (<= 0.1), kuniq / Kafka Streams frames per CPU-second (>= 10, each
guarantee).

Exits 1 if kuniq's per-minute counts (the last revision of every minute)
differ from the Python consumer's, if a Kafka Streams record differs from
them, if a run read a different number of messages than the topic holds,
or if two runs of the same tool disagree.

Options:
  --port N      the benchmark broker's port [default: 19192]; it must be
                free, the broker is started and stopped by this script
  --strict      also exit 2 when a target FAILs (for CI; numbers on a
                shared or small machine are noisy)
  -h, --help    this text

Environment:
  BROKER_KIND         kafka (default) or tansu
  RUNS                runs of each client [default: 5]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 200000, the
                      size BRIEF.md's Kafka anchors were measured with]
  KUNIQ_BENCH_FILE    input path [default: bench-data/frames-N.jsonl];
                      an existing file not generated here is used as given
  CONFLUENT_KAFKA_SPEC  pip requirement for the Python client
                      [default: confluent-kafka]
  KSTREAMS            0 skips the Kafka Streams runs [default: 1 on Apache
                      Kafka, 0 on tansu]
  KSTREAMS_JAVA_OPTS  JVM options for the Kafka Streams peer [default:
                      none, the JVM's defaults]
  KSTREAMS_THREADS    its stream threads [default: 1, Kafka Streams' default;
                      see bench/peers/kstreams/README.md for why]
  JAVA                the java binary [default: java on PATH]
  TANSU               the tansu binary (see scripts/broker.sh)

Needs: cargo, python3 with venv (confluent-kafka goes into
target/bench-venv), GNU time at /usr/bin/time (Debian: apt-get install
time); for Apache Kafka and Kafka Streams: Java 17 and mvn (scripts/broker.sh
install --kind kafka); for tansu: scripts/broker.sh install --kind tansu.

Quick smoke run:  KUNIQ_BENCH_FRAMES=20000 RUNS=1 scripts/bench-kafka.sh
USAGE
}

port=19192
strict=0
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
        --port=*) port="${1#--port=}"; shift ;;
        --strict) strict=1; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
    die "--port needs a number in 1..65535, not '$port'"
fi
runs="${RUNS:-5}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
export KUNIQ_BENCH_FRAMES="${KUNIQ_BENCH_FRAMES:-200000}"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time for CPU seconds (Debian: apt-get install time)"
kind="${BROKER_KIND:-kafka}"
[[ "$kind" == kafka || "$kind" == tansu ]] || die "BROKER_KIND must be kafka or tansu, not '$kind'"
if [[ "$kind" == kafka ]]; then
    kstreams="${KSTREAMS:-1}"
else
    kstreams="${KSTREAMS:-0}"
fi
[[ "$kstreams" == 0 || "$kstreams" == 1 ]] || die "KSTREAMS must be 0 or 1, not '$kstreams'"
if [[ "$kind" == tansu && "$kstreams" == 1 ]]; then
    die "the Kafka Streams runs need Apache Kafka (exactly_once_v2 needs transactions, which tansu 0.6 lacks); use KSTREAMS=0 with BROKER_KIND=tansu"
fi
ks_threads="${KSTREAMS_THREADS:-1}"
[[ "$ks_threads" =~ ^[1-9][0-9]*$ ]] || die "KSTREAMS_THREADS must be a positive integer, not '$ks_threads'"
java="${JAVA:-java}"

broker_sh="$KUNIQ_ROOT/scripts/broker.sh"
brokers="127.0.0.1:$port"
partitions=4
topic="bench-frames-$(date +%s)-$$"
ks_output="$topic-uniques"
ks_dir="$KUNIQ_ROOT/bench/peers/kstreams"
ks_jar="$ks_dir/target/kuniq-kstreams-peer.jar"

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench-kafka.XXXXXX")"
broker_started=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if ((broker_started)); then
        "$broker_sh" stop --kind "$kind" --port "$port" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

build_release scan
log "Building examples/consume_bench.rs (release)..."
(cd "$KUNIQ_ROOT" && cargo build --release --quiet --example consume_bench) \
    || die "cargo build --release --example consume_bench failed"
bare_bin="$KUNIQ_ROOT/target/release/examples/consume_bench"

# The Kafka Streams peer's jar, built with mvn unless it is newer than the
# pom and every source file.
if ((kstreams)); then
    command -v "$java" >/dev/null 2>&1 || die "java is needed for the Kafka Streams peer (Java 17; or KSTREAMS=0)"
    if [[ -f "$ks_jar" && -d "$ks_dir/target/lib" ]] \
        && [[ -z "$(find "$ks_dir/pom.xml" "$ks_dir/src" -newer "$ks_jar" -print -quit)" ]]; then
        log "The Kafka Streams peer's jar is up to date ($ks_jar)."
    else
        command -v mvn >/dev/null 2>&1 || die "mvn is needed to build the Kafka Streams peer (Debian: apt-get install maven; or KSTREAMS=0)"
        log "Building the Kafka Streams peer (mvn package in bench/peers/kstreams)..."
        if ! mvn -B -q -Dstyle.color=never -f "$ks_dir/pom.xml" package >"$work/mvn.log" 2>&1; then
            tail -n 25 "$work/mvn.log" >&2
            die "mvn package of bench/peers/kstreams failed (see above)"
        fi
        # The jar plugin leaves an unchanged jar untouched; the stamp is the build.
        touch "$ks_jar"
    fi
fi

file="$(bench_input)"

venv="$KUNIQ_ROOT/target/bench-venv"
if ! "$venv/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
    log "Installing ${CONFLUENT_KAFKA_SPEC:-confluent-kafka} into $venv..."
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" \
        || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet "${CONFLUENT_KAFKA_SPEC:-confluent-kafka}" \
        || die "pip install ${CONFLUENT_KAFKA_SPEC:-confluent-kafka} failed"
fi
py="$venv/bin/python"

"$broker_sh" start --kind "$kind" --port "$port"
broker_started=1
"$broker_sh" topic "$topic" "$partitions" --kind "$kind" --port "$port"
if ((kstreams)); then
    "$broker_sh" topic "$ks_output" 1 --kind "$kind" --port "$port"
fi

bytes="$(file_bytes "$file")"
frames_in_file="$(wc -l <"$file")"
warm_page_cache "$file"

# produce TOPIC: loads the input into TOPIC with kuniq produce.
produce() {
    "$KUNIQ_BIN" produce -b "$brokers" -t "$1" -i "$file" --progress never \
        >"$work/produce.out" 2>"$work/produce.err" || { cat "$work/produce.err" >&2; die "kuniq produce failed"; }
}
log "Producing $frames_in_file frames into $topic..."
t0="$(now_ns)"
produce "$topic"
t1="$(now_ns)"
produce_secs="$(secs_between "$t0" "$t1")"

py_fetch=()
[[ "$kind" == tansu ]] && py_fetch=(--fetch-wait-ms 10)
bare_cmd=("$bare_bin")
kuniq_cmd=("$KUNIQ_BIN" count --offset beginning -e --summary json --progress never)
py_cmd=("$py" "$KUNIQ_ROOT/scripts/python_consumer.py" ${py_fetch[@]+"${py_fetch[@]}"})
# shellcheck disable=SC2206  # KSTREAMS_JAVA_OPTS is a list of JVM options, split on spaces on purpose
ks_cmd=("$java" ${KSTREAMS_JAVA_OPTS:-} -jar "$ks_jar" --threads "$ks_threads" --state-dir "$work/ks-state")

tools=(bare kuniq python)
((kstreams)) && tools+=(ks-alos ks-eos)

if [[ "$kind" == kafka ]]; then
    title="Apache Kafka"
else
    title="tansu"
fi
echo "# kuniq vs a bare rdkafka consume loop vs a Python consumer$( ((kstreams)) && echo " vs Kafka Streams"): Kafka on a local $title"
echo
machine_info
if [[ "$kind" == kafka ]]; then
    echo "broker:  Apache Kafka ${KAFKA_VERSION:-4.1.1}, single-node KRaft (scripts/broker.sh --kind kafka, heap ${KAFKA_HEAP:-512m}), 127.0.0.1:$port, started by this script"
else
    tansu_bin="${TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
    echo "broker:  $("$tansu_bin" --version), memory storage, 127.0.0.1:$port, started by this script"
fi
echo "python:  $("$py" -c 'import platform, confluent_kafka as c; v = c.version(); v = v[0] if isinstance(v, tuple) else v; print(platform.python_version(), "confluent-kafka", v, "(bundled librdkafka", c.libversion()[0] + ")")')"
echo "rdkafka: crate $(sed -n '/^name = "rdkafka-sys"$/{n;s/^version = "\(.*\)"$/\1/p}' "$KUNIQ_ROOT/Cargo.lock") bundled librdkafka (bare loop and kuniq)"
if ((kstreams)); then
    echo "java:    $("$java" -version 2>&1 | head -n1)${KSTREAMS_JAVA_OPTS:+, options $KSTREAMS_JAVA_OPTS}"
fi
echo
echo "input:   $file"
echo "         $frames_in_file frames (KUNIQ_BENCH_FRAMES=$KUNIQ_BENCH_FRAMES), $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }'))"
echo "topic:   $topic, $partitions partitions, loaded with kuniq produce (round-robin)"
awk -v f="$frames_in_file" -v b="$bytes" -v s="$produce_secs" \
    'BEGIN { printf "produce: %.3f s, %.0fk frames/s, %.1f MB/s (whole kuniq produce process, acks included)\n", s, f / s / 1e3, b / s / 1e6 }'
if [[ "$kind" == kafka ]]; then
    echo "clients: fetch.wait.max.ms: kuniq its default 10 (src/kafka/mod.rs), bare loop 10 (set, as kuniq),"
    echo "         python librdkafka's default 500, Kafka Streams the Java default 500 (the broker answers once data is there);"
else
    echo "clients: fetch.wait.max.ms=10 for kuniq (its default), the bare loop and python (tansu holds every fetch for the full wait);"
fi
echo "         kuniq's prefetch defaults fetch.queue.backoff.ms=10, queued.max.messages.kbytes=16384 (per partition);"
echo "         auto.offset.reset=earliest, a fresh consumer group per run (bare and python join it, kuniq assigns)"
echo "bare:    target/release/examples/consume_bench -b $brokers -t TOPIC -G GROUP"
echo "kuniq:   ${kuniq_cmd[*]#"$KUNIQ_ROOT/"} -b $brokers -t TOPIC -G GROUP"
echo "python:  scripts/python_consumer.py${py_fetch[*]:+ ${py_fetch[*]}} -b $brokers -t TOPIC -G GROUP (batches of 1000, json.loads, dict of sets)"
if ((kstreams)); then
    echo "ks-*:    java -jar bench/peers/kstreams/target/kuniq-kstreams-peer.jar --threads $ks_threads -b $brokers -t TOPIC -o $ks_output"
    echo "         --application-id GROUP --guarantee at_least_once (ks-alos) | exactly_once_v2 (ks-eos); grace 65 s, RocksDB stores"
    echo "         and changelogs at their defaults; the run ends once the topic's frames are processed (they are all timed)"
fi
echo "timed:   whole process under GNU time: wall (%e), CPU = user + sys (%U + %S), peak RSS (%M)"
echo "runs:    $runs of each, alternating ${tools[*]}"
echo "untimed: first one warm-up run of the bare loop$( ((kstreams)) && echo ", then one --sentinel check run per guarantee on a copy of the topic")"
echo

# run_timed LABEL CMD...: runs CMD under GNU time, stdout to $work/LABEL.out,
# stderr to $work/LABEL.err, "wall user sys maxrss_kb" to $work/LABEL.time.
run_timed() {
    local label="$1"
    shift
    if ! /usr/bin/time -f "%e %U %S %M" -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err"; then
        log "$label failed:"
        tail -n 40 "$work/$label.err" >&2
        exit 1
    fi
}

# Warm-up, untimed: the first consumer group on a fresh Apache Kafka
# creates __consumer_offsets (about 3 s here), which would otherwise land on
# the first timed run; this also brings the topic into the page cache.
log "Warm-up: one untimed run of the bare loop..."
run_timed warmup "${bare_cmd[@]}" -b "$brokers" -t "$topic" -G "bench-warmup-$(date +%s%N)"

# Kafka Streams' check runs, untimed and before the timed ones: a copy of
# the topic each (the sentinels change it), every minute closed. They also
# take the broker's one-off costs that would otherwise land on the first
# timed runs (__transaction_state created by the first transactional
# producer).
if ((kstreams)); then
    for tool in ks-alos ks-eos; do
        guarantee=at_least_once
        [[ "$tool" == ks-eos ]] && guarantee=exactly_once_v2
        check_topic="$topic-check-${tool#ks-}"
        "$broker_sh" topic "$check_topic" "$partitions" --kind "$kind" --port "$port"
        log "Producing the input into $check_topic for the $tool check run..."
        produce "$check_topic"
        log "Check run: $tool with --sentinel on $check_topic..."
        run_timed "$tool-check" "${ks_cmd[@]}" -b "$brokers" -t "$check_topic" -o "$ks_output" \
            --application-id "bench-$tool-check-$(date +%s%N)" --guarantee "$guarantee" --sentinel
    done
fi

: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    for tool in "${tools[@]}"; do
        group="bench-$tool-$i-$(date +%s%N)"
        log "Run $i of $runs: $tool..."
        case "$tool" in
            bare) run_timed "$tool-$i" "${bare_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
            kuniq) run_timed "$tool-$i" "${kuniq_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
            python) run_timed "$tool-$i" "${py_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
            ks-alos | ks-eos)
                guarantee=at_least_once
                [[ "$tool" == ks-eos ]] && guarantee=exactly_once_v2
                run_timed "$tool-$i" "${ks_cmd[@]}" -b "$brokers" -t "$topic" -o "$ks_output" \
                    --application-id "$group" --guarantee "$guarantee"
                ;;
        esac
        printf '%s\t%s\t%s\n' "$tool" "$i" "$(tail -n1 "$work/$tool-$i.time")" >>"$work/runs.tsv"
    done
done


set +e
PYTHONPATH="$KUNIQ_ROOT/scripts" "$py" - "$work" "$runs" "$frames_in_file" "$strict" "${tools[*]}" <<'PY'
import json
import statistics
import sys
from kuniq_records import last_minutes, tsv_minutes

work, runs, frames, strict = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
tools = sys.argv[5].split()
ks_tools = [t for t in tools if t.startswith("ks-")]
guarantee = {"ks-alos": "at_least_once", "ks-eos": "exactly_once_v2"}
rows = {t: [] for t in tools}
with open(f"{work}/runs.tsv") as f:
    for line in f:
        tool, run, times = line.rstrip("\n").split("\t")
        wall, user, sys_, rss_kb = times.split()
        rows[tool].append((int(run), float(wall), float(user) + float(sys_), int(rss_kb) / 1024))

failures = []


def last_json(path):
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1])


# Own elapsed times and message counts: (file with the summary, key of the
# elapsed time, key of the count read).
summaries = {
    "bare": ("out", "elapsed_secs", "messages"),
    "kuniq": ("err", "elapsed_secs", "frames"),
    "python": ("err", "elapsed_secs", "messages"),
    "ks-alos": ("err", "processed_secs", "frames"),
    "ks-eos": ("err", "processed_secs", "frames"),
}
own = {t: [] for t in tools}
ks_dropped = {t: [] for t in ks_tools}
for run in range(1, runs + 1):
    for t in tools:
        stream, elapsed_key, count_key = summaries[t]
        s = last_json(f"{work}/{t}-{run}.{stream}")
        own[t].append(s[elapsed_key])
        if s[count_key] != frames:
            failures.append(f"{t} run {run} read {s[count_key]} messages, the topic holds {frames}")
        if t in ks_dropped:
            ks_dropped[t].append(s["dropped_records"])

print(f"{'run':>3s} {'tool':8s} {'wall s':>8s} {'cpu s':>8s} {'own s':>8s} {'peak RSS MB':>12s}")
for i in range(runs):
    for t in tools:
        _, wall, cpu, rss = rows[t][i]
        print(f"{i + 1:3d} {t:8s} {wall:8.2f} {cpu:8.2f} {own[t][i]:8.2f} {rss:12.0f}")
med = {t: (statistics.median(r[1] for r in rows[t]), statistics.median(r[2] for r in rows[t]),
           statistics.median(own[t]), statistics.median(r[3] for r in rows[t])) for t in tools}
print("(wall, cpu and peak RSS: the whole process under GNU time, cpu = user + sys; own: the program's own elapsed")
print(" time: start to last message for bare and python, kuniq's summary elapsed_secs, Kafka Streams' start of main")
print(" to the input processed; resolution of GNU time is 10 ms)")
print()
print(f"{'median':8s} {'wall s':>8s} {'frames/s':>10s} {'cpu s':>8s} {'cpu s per M frames':>19s} "
      f"{'frames per cpu s':>17s} {'peak RSS MB':>12s}")
for t in tools:
    wall, cpu, _, rss = med[t]
    print(f"{t:8s} {wall:8.2f} {frames / wall / 1e3:9.1f}k {cpu:8.2f} {cpu / frames * 1e6:19.2f} "
          f"{frames / cpu / 1e3:16.1f}k {rss:12.0f}")

k1 = last_json(f"{work}/kuniq-1.err")
print()
print(
    f"kuniq summary (run 1): {k1['frames']} frames, counted {k1['counted']}, rejected {k1['rejected']}, "
    f"late {k1['late']}, too late {k1['too_late']}, quarantined {k1['quarantined']}, records {k1['records']}; "
    f"its own elapsed {k1['elapsed_secs']:.3f} s"
)
for t in ks_tools:
    s = last_json(f"{work}/{t}-1.err")
    print(
        f"{t} summary (run 1): {s['frames']} frames, skipped {s['skipped']}, first frames of a user in a minute "
        f"{s['user_minutes']}, dropped by Kafka Streams {s['dropped_records']:.0f}, minutes emitted "
        f"{s['minutes_emitted']}; input processed after {s['processed_secs']:.3f} s, exit after "
        f"{s['elapsed_secs']:.3f} s"
    )


def ks_minutes(path, label):
    got = {}
    with open(path) as f:
        for line in f:
            if not line.startswith("{"):
                continue
            rec = json.loads(line)
            if rec["start"] in got:
                failures.append(f"{label} emitted minute {rec['start']} twice")
            got[rec["start"]] = rec["unique_users"]
    return got


def compare(label, got, want, every_minute):
    """Failures for the minutes in got (and, if every_minute, the ones missing) that differ from want."""
    keys = sorted(want.keys() | got.keys()) if every_minute else sorted(got)
    diff = [m for m in keys if want.get(m) != got.get(m)]
    for m in diff[:10]:
        failures.append(f"{label}: minute {m}: {got.get(m, 'missing')}, python {want.get(m, 'missing')}")
    if len(diff) > 10:
        failures.append(f"{label}: ... and {len(diff) - 10} more minutes differ")
    return len(diff)


want = tsv_minutes(f"{work}/python-1.out")
for run in range(2, runs + 1):
    if tsv_minutes(f"{work}/python-{run}.out") != want:
        failures.append(f"python run {run} gave different counts from run 1")
got = last_minutes(f"{work}/kuniq-1.out")
for run in range(2, runs + 1):
    if last_minutes(f"{work}/kuniq-{run}.out") != got:
        failures.append(f"kuniq run {run} gave different final counts from run 1")
kuniq_diff = compare("kuniq", got, want, every_minute=True)
print()
if kuniq_diff:
    print(f"MISMATCH: {kuniq_diff} of {len(want.keys() | got.keys())} minutes differ between kuniq and python")
else:
    print(f"counts:  kuniq's last revision per minute equals the Python consumer's for all {len(want)} minutes")
for t in ks_tools:
    emitted = []
    before = len(failures)
    for run in range(1, runs + 1):
        timed = ks_minutes(f"{work}/{t}-{run}.out", f"{t} run {run}")
        emitted.append(len(timed))
        compare(f"{t} run {run}", timed, want, every_minute=False)
    check = ks_minutes(f"{work}/{t}-check.out", f"{t} check run")
    check_summary = last_json(f"{work}/{t}-check.err")
    compare(f"{t} check run", check, want, every_minute=True)
    verdict = "equal" if len(failures) == before else "DIFFER"
    print(f"         {t}: {verdict}: timed runs emitted {min(emitted)}-{max(emitted)} of {len(want)} minutes "
          f"(the rest never closed), each compared; the check run (--sentinel) emitted {len(check)} of {len(want)}, "
          f"dropped {check_summary['dropped_records']:.0f} records as too late")
if failures:
    print("MISMATCH:")
    for line in failures:
        print(f"  {line}")
else:
    print(f"         every run read all {frames} frames")

speed = med["bare"][0] / med["kuniq"][0]
cpu_ratio = med["kuniq"][1] / med["python"][1] if med["python"][1] > 0 else float("inf")
wrong = ", but the counts differ" if failures else ""
targets = [
    ("kuniq throughput / bare loop's", ">= 0.9x", speed, speed >= 0.9),
    ("kuniq CPU per frame / Python consumer's", "<= 0.1x", cpu_ratio, cpu_ratio <= 0.1),
]
for t in ks_tools:
    # Frames per CPU-second, kuniq over Kafka Streams: the same frames, so the CPU ratio turned round.
    ratio = med[t][1] / med["kuniq"][1]
    targets.append((f"kuniq frames per CPU-s / Kafka Streams {guarantee[t]}", ">= 10x", ratio, ratio >= 10))
print()
print(f"speed:   kuniq / bare loop throughput = {speed:.2f}x (median wall {med['kuniq'][0]:.2f} s vs {med['bare'][0]:.2f} s); "
      f"kuniq / python = {med['python'][0] / med['kuniq'][0]:.2f}x"
      + "".join(f"; kuniq / {t} = {med[t][0] / med['kuniq'][0]:.2f}x" for t in ks_tools))
print(f"cpu:     kuniq / python CPU per frame = {cpu_ratio:.3f} "
      f"({med['kuniq'][1] / frames * 1e6:.2f} vs {med['python'][1] / frames * 1e6:.2f} CPU s per million frames)")
for t in ks_tools:
    print(f"         kuniq / {t} frames per CPU-second = {med[t][1] / med['kuniq'][1]:.1f}x "
          f"({frames / med['kuniq'][1] / 1e3:.0f}k vs {frames / med[t][1] / 1e3:.1f}k)")
print()
width = max(len(name) for name, *_ in targets)
all_ok = True
for name, goal, value, ok in targets:
    ok = ok and not failures
    all_ok = all_ok and ok
    print(f"{'PASS' if ok else 'FAIL'}: {name:{width}s} {goal:>8s}: {value:.3f}x{wrong}")
if failures:
    sys.exit(1)
if strict and not all_ok:
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
