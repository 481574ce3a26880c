#!/usr/bin/env bash
# kuniq against a bare rdkafka consume loop and a Python consumer, on the same
# local tansu broker and topic, side by side.
#
# The targets (BRIEF.md): reading Kafka, kuniq has at least 0.9x the
# throughput of a bare consume loop on the same broker and topic, and spends
# at most a tenth of the Python consumer's CPU per frame. This script
# measures all three, checks that kuniq and the Python consumer give the same
# count for every minute, and prints a report meant to be pasted into
# profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-kafka.sh [--port N] [--strict] [-h|--help]

Starts a dedicated tansu broker (memory storage) on 127.0.0.1:PORT with
scripts/broker.sh, generates the input, creates a 4-partition topic, loads
it with `kuniq produce` (round-robin over the partitions; the produce rate
is reported), then alternates RUNS runs of each of:

  bare    examples/consume_bench.rs: one rdkafka BaseConsumer polling one
          message at a time and touching each payload (length sum, xor of
          the first byte); no parsing, no counting. The ceiling.
  kuniq   kuniq count -b ... -t TOPIC -G GROUP --offset beginning -e
          (reads the topic to its end, counts, prints the records, saves
          its state, exits; it assigns itself every partition, no group
          join).
  python  scripts/python_consumer.py: confluent-kafka, batches of 1000,
          json.loads per message, dict of minute -> set(uid).

Every client sets fetch.wait.max.ms=10 (tansu holds each fetch for the full
wait, so librdkafka's default of 500 ms caps everyone at a few thousand
frames/s), auto.offset.reset=earliest and enable.partition.eof=true, and
each run uses a fresh consumer group, so every run reads the whole topic
from offset 0 (the bare loop and the Python consumer subscribe and join the
group; kuniq assigns itself the partitions).

What is timed, for every run: the whole process under GNU time: wall
seconds (%e) and CPU seconds, user + sys (%U + %S). The bare loop's and the
Python consumer's own elapsed time (start of the program to the last
message) is shown too.

Reported: every run, the medians, frames/s, the throughput ratio
kuniq / bare loop (target >= 0.9), CPU seconds per million frames and the
ratio kuniq / python (target <= 0.1), and PASS/FAIL lines for both.

Exits 1 if kuniq's per-minute counts (the last revision of every minute)
differ from the Python consumer's, if a run read a different number of
messages than the topic holds, or if two runs of the same tool disagree.

Options:
  --port N      the benchmark broker's port [default: 19192]; it must be
                free, the broker is started and stopped by this script
  --strict      also exit 2 when a target FAILs (for CI; numbers on a
                shared or small machine are noisy)
  -h, --help    this text

Environment:
  RUNS                runs of each client [default: 5]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 200000, the
                      size BRIEF.md's Kafka anchors were measured with]
  KUNIQ_BENCH_FILE    input path [default: bench-data/frames-N.jsonl];
                      an existing file not generated here is used as given
  CONFLUENT_KAFKA_SPEC  pip requirement for the Python client
                      [default: confluent-kafka]
  TANSU               the tansu binary (see scripts/broker.sh)

Needs: cargo, tansu (scripts/broker.sh install), python3 with venv
(confluent-kafka goes into target/bench-venv), GNU time at /usr/bin/time
(Debian: apt-get install time).

Quick smoke run:  KUNIQ_BENCH_FRAMES=20000 RUNS=2 scripts/bench-kafka.sh
EOF
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

broker_sh="$KUNIQ_ROOT/scripts/broker.sh"
brokers="127.0.0.1:$port"
partitions=4
topic="bench-frames-$(date +%s)-$$"

build_release scan
log "Building examples/consume_bench.rs (release)..."
(cd "$KUNIQ_ROOT" && cargo build --release --quiet --example consume_bench) \
    || die "cargo build --release --example consume_bench failed"
bare_bin="$KUNIQ_ROOT/target/release/examples/consume_bench"
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

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench-kafka.XXXXXX")"
broker_started=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    if ((broker_started)); then
        "$broker_sh" stop --port "$port" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$broker_sh" start --port "$port"
broker_started=1
"$broker_sh" topic "$topic" "$partitions" --port "$port"

bytes="$(file_bytes "$file")"
frames_in_file="$(wc -l <"$file")"
warm_page_cache "$file"
log "Producing $frames_in_file frames into $topic..."
t0="$(now_ns)"
"$KUNIQ_BIN" produce -b "$brokers" -t "$topic" -i "$file" --progress never \
    >"$work/produce.out" 2>"$work/produce.err" || { cat "$work/produce.err" >&2; die "kuniq produce failed"; }
t1="$(now_ns)"
produce_secs="$(secs_between "$t0" "$t1")"

bare_cmd=("$bare_bin")
kuniq_cmd=("$KUNIQ_BIN" count --offset beginning -e --summary json --progress never)
py_cmd=("$py" "$KUNIQ_ROOT/scripts/python_consumer.py")

echo "# kuniq vs a bare rdkafka consume loop vs a Python consumer: Kafka on a local tansu"
echo
machine_info
tansu_bin="${TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
echo "tansu:   $("$tansu_bin" --version), memory storage, 127.0.0.1:$port, started by this script"
echo "python:  $("$py" -c 'import platform, confluent_kafka as c; v = c.version(); v = v[0] if isinstance(v, tuple) else v; print(platform.python_version(), "confluent-kafka", v, "(bundled librdkafka", c.libversion()[0] + ")")')"
echo "rdkafka: crate $(sed -n '/^name = "rdkafka-sys"$/{n;s/^version = "\(.*\)"$/\1/p}' "$KUNIQ_ROOT/Cargo.lock") bundled librdkafka (bare loop and kuniq)"
echo
echo "input:   $file"
echo "         $frames_in_file frames (KUNIQ_BENCH_FRAMES=$KUNIQ_BENCH_FRAMES), $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }'))"
echo "topic:   $topic, $partitions partitions, loaded with kuniq produce (round-robin)"
awk -v f="$frames_in_file" -v b="$bytes" -v s="$produce_secs" \
    'BEGIN { printf "produce: %.3f s, %.0fk frames/s, %.1f MB/s (whole kuniq produce process, acks included)\n", s, f / s / 1e3, b / s / 1e6 }'
echo "clients: fetch.wait.max.ms=10 for all three (tansu holds every fetch for the full wait);"
echo "         auto.offset.reset=earliest, a fresh consumer group per run (bare and python join it, kuniq assigns)"
echo "bare:    target/release/examples/consume_bench -b $brokers -t TOPIC -G GROUP"
echo "kuniq:   ${kuniq_cmd[*]#"$KUNIQ_ROOT/"} -b $brokers -t TOPIC -G GROUP"
echo "python:  scripts/python_consumer.py -b $brokers -t TOPIC -G GROUP (batches of 1000, json.loads, dict of sets)"
echo "timed:   whole process under GNU time: wall (%e) and CPU = user + sys (%U + %S)"
echo "runs:    $runs of each, alternating bare, kuniq, python"
echo

# run_timed LABEL CMD...: runs CMD under GNU time, stdout to $work/LABEL.out,
# stderr to $work/LABEL.err, "wall user sys" to $work/LABEL.time.
run_timed() {
    local label="$1"
    shift
    if ! /usr/bin/time -f "%e %U %S" -o "$work/$label.time" "$@" >"$work/$label.out" 2>"$work/$label.err"; then
        log "$label failed:"
        cat "$work/$label.err" >&2
        exit 1
    fi
}

: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    for tool in bare kuniq python; do
        group="bench-$tool-$i-$(date +%s%N)"
        log "Run $i of $runs: $tool..."
        case "$tool" in
            bare) run_timed "$tool-$i" "${bare_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
            kuniq) run_timed "$tool-$i" "${kuniq_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
            python) run_timed "$tool-$i" "${py_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" ;;
        esac
        printf '%s\t%s\t%s\n' "$tool" "$i" "$(tail -n1 "$work/$tool-$i.time")" >>"$work/runs.tsv"
    done
done

set +e
"$py" - "$work" "$runs" "$frames_in_file" "$strict" <<'PY'
import json
import statistics
import sys

work, runs, frames, strict = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
tools = ("bare", "kuniq", "python")
rows = {t: [] for t in tools}
with open(f"{work}/runs.tsv") as f:
    for line in f:
        tool, run, times = line.rstrip("\n").split("\t")
        wall, user, sys_ = (float(x) for x in times.split())
        rows[tool].append((int(run), wall, user + sys_))

failures = []


def last_json(path):
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1])


# Own elapsed times and message counts.
own = {t: [] for t in tools}
for run in range(1, runs + 1):
    b = last_json(f"{work}/bare-{run}.out")
    own["bare"].append(b["elapsed_secs"])
    if b["messages"] != frames:
        failures.append(f"bare run {run} read {b['messages']} messages, the topic holds {frames}")
    k = last_json(f"{work}/kuniq-{run}.err")
    own["kuniq"].append(k["elapsed_secs"])
    if k["frames"] != frames:
        failures.append(f"kuniq run {run} read {k['frames']} frames, the topic holds {frames}")
    p = last_json(f"{work}/python-{run}.err")
    own["python"].append(p["elapsed_secs"])
    if p["messages"] != frames:
        failures.append(f"python run {run} read {p['messages']} messages, the topic holds {frames}")

print("run | bare wall s  cpu s  own s | kuniq wall s  cpu s  own s | python wall s  cpu s  own s")
for i in range(runs):
    cells = []
    for t in tools:
        _, wall, cpu = rows[t][i]
        cells.append(f"{wall:12.2f} {cpu:6.2f} {own[t][i]:6.2f}")
    print(f"{i + 1:3d} |" + " |".join(cells))
med = {t: (statistics.median(r[1] for r in rows[t]), statistics.median(r[2] for r in rows[t]),
           statistics.median(own[t])) for t in tools}
print("med |" + " |".join(f"{med[t][0]:12.2f} {med[t][1]:6.2f} {med[t][2]:6.2f}" for t in tools))
print("(wall and cpu: the whole process under GNU time, cpu = user + sys; own: the program's own elapsed time,")
print(" start to last message for bare and python, kuniq's summary elapsed_secs; resolution of GNU time is 10 ms)")
print()
print(f"{'median':8s} {'wall s':>8s} {'frames/s':>10s} {'cpu s':>8s} {'cpu s per M frames':>19s}")
for t in tools:
    wall, cpu, _ = med[t]
    print(f"{t:8s} {wall:8.2f} {frames / wall / 1e3:9.1f}k {cpu:8.2f} {cpu / frames * 1e6:19.2f}")

k1 = last_json(f"{work}/kuniq-1.err")
print()
print(
    f"kuniq summary (run 1): {k1['frames']} frames, counted {k1['counted']}, rejected {k1['rejected']}, "
    f"late {k1['late']}, too late {k1['too_late']}, quarantined {k1['quarantined']}, records {k1['records']}; "
    f"its own elapsed {k1['elapsed_secs']:.3f} s"
)


def kuniq_minutes(path):
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


def python_minutes(path):
    with open(path) as f:
        return {int(m): int(n) for m, n in (line.split("\t") for line in f)}


want = python_minutes(f"{work}/python-1.out")
for run in range(2, runs + 1):
    if python_minutes(f"{work}/python-{run}.out") != want:
        failures.append(f"python run {run} gave different counts from run 1")
got = kuniq_minutes(f"{work}/kuniq-1.out")
for run in range(2, runs + 1):
    if kuniq_minutes(f"{work}/kuniq-{run}.out") != got:
        failures.append(f"kuniq run {run} gave different final counts from run 1")
diff = sorted(m for m in want.keys() | got.keys() if want.get(m) != got.get(m))
for m in diff[:10]:
    failures.append(f"minute {m}: kuniq {got.get(m, 'missing')}, python {want.get(m, 'missing')}")
if len(diff) > 10:
    failures.append(f"... and {len(diff) - 10} more minutes differ")
print()
if failures:
    print(f"MISMATCH: {len(diff)} of {len(want.keys() | got.keys())} minutes differ")
    for line in failures:
        print(f"  {line}")
else:
    print(f"counts:  identical for all {len(want)} minutes (kuniq's last revision per minute vs the Python consumer), "
          f"every run read all {frames} frames")

speed = med["bare"][0] / med["kuniq"][0]
cpu_ratio = med["kuniq"][1] / med["python"][1] if med["python"][1] > 0 else float("inf")
speed_ok = speed >= 0.9 and not failures
cpu_ok = cpu_ratio <= 0.1 and not failures
print(f"speed:   kuniq / bare loop throughput = {speed:.2f}x (median wall {med['kuniq'][0]:.2f} s vs {med['bare'][0]:.2f} s); "
      f"kuniq / python = {med['python'][0] / med['kuniq'][0]:.2f}x")
print(f"cpu:     kuniq / python CPU per frame = {cpu_ratio:.3f} "
      f"({med['kuniq'][1] / frames * 1e6:.2f} vs {med['python'][1] / frames * 1e6:.2f} CPU s per million frames)")
wrong = ", but the counts differ" if failures else ""
print(f"{'PASS' if speed_ok else 'FAIL'}: kuniq at least 0.9x the bare consume loop's throughput ({speed:.2f}x{wrong})")
print(f"{'PASS' if cpu_ok else 'FAIL'}: kuniq at most 0.1x the Python consumer's CPU per frame ({cpu_ratio:.3f}x{wrong})")
if failures:
    sys.exit(1)
if strict and not (speed_ok and cpu_ok):
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
