#!/usr/bin/env bash
# kuniq count's --batch-size swept around the 1000-message starting point, on
# a local tansu broker.
#
# The product asks for batched polling with the batch size as a tunable and
# a recorded sweep around the 1000 sweet spot (BRIEF.md, "Shape"). This
# script times kuniq count reading the same topic with each batch size,
# checks that every size reads every frame and gives the same per-minute
# counts, and prints a report meant to be pasted into profiles/.
set -euo pipefail
# Measured and documented on tansu: its broker.sh calls use tansu unless
# BROKER_KIND says otherwise (scripts/bench-kafka.sh is the Apache Kafka one).
export BROKER_KIND="${BROKER_KIND:-tansu}"

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-batch-sweep.sh [--port N] [-h|--help]

Starts a dedicated tansu broker (memory storage) on 127.0.0.1:PORT with
scripts/broker.sh, generates the input, creates a 4-partition topic, loads
it once with `kuniq produce` (round-robin over the partitions; the produce
rate is reported), then runs RUNS rounds; each round runs, once per batch
size B in BATCH_SIZES,

  target/release/kuniq count -b 127.0.0.1:PORT -t TOPIC -G GROUP
      --offset beginning -e --summary json --progress never --batch-size B

(reads the topic to its end, counts, prints the records, saves its state,
exits). The order of the sizes is rotated by one every round, so no size
always runs first (with as many rounds as sizes, each size is first once).
Each run uses a fresh consumer group, so every run reads the whole topic
from offset 0 (kuniq assigns itself every partition: no group join); each
run also writes its small state record to the topic kuniq-state.

kuniq's consumer uses fetch.wait.max.ms=10, its default (tansu holds every
fetch for the client's full wait, so librdkafka's default of 500 ms caps
everyone at a few thousand frames/s).

What is timed, for every run: the whole kuniq process under GNU time: wall
seconds (%e) and CPU seconds, user + sys (%U + %S). kuniq's own elapsed
time (its summary's elapsed_secs) is shown too.

Reported: every run; per batch size the median wall s, frames/s, median
CPU s and CPU s per million frames, each also as a ratio to batch size 1000
(to the first size in BATCH_SIZES when 1000 is not in it), and the range
of wall times.

Exits 1 if a run fails, if a run read a different number of frames than
the topic holds, or if a run's final per-minute counts (the last revision
of every minute) differ from the first run's.

Options:
  --port N      the benchmark broker's port [default: 19193]; it must be
                free, the broker is started and stopped by this script
  -h, --help    this text

Environment:
  BATCH_SIZES         batch sizes, separated by spaces
                      [default: "100 300 1000 3000 10000"]
  RUNS                rounds (runs of each batch size) [default: 5]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 200000, the
                      size BRIEF.md's Kafka anchors were measured with]
  KUNIQ_BENCH_FILE    input path [default: bench-data/frames-N.jsonl];
                      an existing file not generated here is used as given
  TANSU               the tansu binary (see scripts/broker.sh)

Needs: cargo, tansu (scripts/broker.sh install), python3 (the summary;
target/bench-venv/bin/python when it exists), GNU time at /usr/bin/time
(Debian: apt-get install time).

Quick smoke run:  KUNIQ_BENCH_FRAMES=20000 RUNS=1 BATCH_SIZES="100 1000" scripts/bench-batch-sweep.sh
EOF
}

port=19193
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
        --port=*) port="${1#--port=}"; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
if ! [[ "$port" =~ ^[1-9][0-9]{0,4}$ ]] || ((port > 65535)); then
    die "--port needs a number in 1..65535, not '$port'"
fi
runs="${RUNS:-5}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
read -r -a sizes <<<"${BATCH_SIZES:-100 300 1000 3000 10000}"
((${#sizes[@]} > 0)) || die "BATCH_SIZES is empty"
declare -A seen=()
for b in "${sizes[@]}"; do
    [[ "$b" =~ ^[1-9][0-9]*$ ]] || die "BATCH_SIZES must hold positive integers, not '$b'"
    [[ -z "${seen[$b]:-}" ]] || die "BATCH_SIZES lists $b twice"
    seen[$b]=1
done
reference="${sizes[0]}"
[[ -n "${seen[1000]:-}" ]] && reference=1000
export KUNIQ_BENCH_FRAMES="${KUNIQ_BENCH_FRAMES:-200000}"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time for CPU seconds (Debian: apt-get install time)"
if [[ -x "$KUNIQ_ROOT/target/bench-venv/bin/python" ]]; then
    py="$KUNIQ_ROOT/target/bench-venv/bin/python"
else
    py="$(command -v python3)" || die "python3 is needed for the summary"
fi

broker_sh="$KUNIQ_ROOT/scripts/broker.sh"
brokers="127.0.0.1:$port"
partitions=4
stamp="$(date +%s)-$$"
topic="bench-sweep-$stamp"

build_release scan
file="$(bench_input)"

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench-batch-sweep.XXXXXX")"
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

kuniq_cmd=("$KUNIQ_BIN" count --offset beginning -e --summary json --progress never)

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

echo "# kuniq count --batch-size sweep: Kafka on a local tansu"
echo
machine_info
tansu_bin="${TANSU:-$(command -v tansu || echo "${CARGO_HOME:-$HOME/.cargo}/bin/tansu")}"
echo "tansu:   $("$tansu_bin" --version), memory storage, 127.0.0.1:$port, started by this script"
echo "rdkafka: crate $(sed -n '/^name = "rdkafka-sys"$/{n;s/^version = "\(.*\)"$/\1/p}' "$KUNIQ_ROOT/Cargo.lock") bundled librdkafka"
echo "load:    $(loadavg) (1, 5, 15 min load average before the first run)"
echo
echo "command: RUNS=$runs BATCH_SIZES=\"${sizes[*]}\" KUNIQ_BENCH_FRAMES=$KUNIQ_BENCH_FRAMES scripts/bench-batch-sweep.sh --port $port"
echo "input:   $file"
echo "         $frames_in_file frames (KUNIQ_BENCH_FRAMES=$KUNIQ_BENCH_FRAMES), $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }'))"
echo "topic:   $topic, $partitions partitions, loaded once with kuniq produce (round-robin)"
awk -v f="$frames_in_file" -v b="$bytes" -v s="$produce_secs" \
    'BEGIN { printf "produce: %.3f s, %.0fk frames/s, %.1f MB/s (whole kuniq produce process, acks included)\n", s, f / s / 1e3, b / s / 1e6 }'
echo "client:  fetch.wait.max.ms=10 (kuniq's default; tansu holds every fetch for the full wait);"
echo "         a fresh consumer group per run (kuniq assigns every partition), state record to kuniq-state"
echo "kuniq:   ${kuniq_cmd[*]#"$KUNIQ_ROOT/"} -b $brokers -t TOPIC -G GROUP --batch-size B"
echo "sizes:   ${sizes[*]} (ratios relative to $reference)"
echo "timed:   whole process under GNU time: wall (%e) and CPU = user + sys (%U + %S)"
echo "runs:    $runs round(s), one run per size in each, the order rotated by one per round"
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

n="${#sizes[@]}"
: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    for ((j = 0; j < n; j++)); do
        b="${sizes[$(((i - 1 + j) % n))]}"
        group="bench-sweep-$b-$i-$(date +%s%N)"
        log "Round $i of $runs, run $((j + 1)) of $n: --batch-size $b..."
        run_timed "b$b-r$i" "${kuniq_cmd[@]}" -b "$brokers" -t "$topic" -G "$group" --batch-size "$b"
        printf '%s\t%s\t%s\t%s\n' "$b" "$i" "$((j + 1))" "$(tail -n1 "$work/b$b-r$i.time")" >>"$work/runs.tsv"
    done
done

set +e
PYTHONPATH="$KUNIQ_ROOT/scripts" "$py" - "$work" "$frames_in_file" "$reference" "${sizes[@]}" <<'PY'
import json
import statistics
import sys
from kuniq_records import last_minutes

work, frames, reference = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4:]]
runs = []  # (size, round, position, wall, user, sys, own elapsed), in run order
failures = []


def last_json(path):
    lines = [l for l in open(path).read().splitlines() if l.strip().startswith("{")]
    return json.loads(lines[-1])


with open(f"{work}/runs.tsv") as f:
    for line in f:
        size, rnd, pos, times = line.rstrip("\n").split("\t")
        wall, user, sys_ = (float(x) for x in times.split())
        summary = last_json(f"{work}/b{size}-r{rnd}.err")
        if summary["frames"] != frames:
            failures.append(f"--batch-size {size} round {rnd} read {summary['frames']} frames, the topic holds {frames}")
        runs.append((int(size), int(rnd), int(pos), wall, user, sys_, summary["elapsed_secs"]))

first = runs[0]
want = last_minutes(f"{work}/b{first[0]}-r{first[1]}.out")
streams = set()
for size, rnd, *_ in runs:
    path = f"{work}/b{size}-r{rnd}.out"
    streams.add(open(path, "rb").read())
    got = last_minutes(path)
    if got != want:
        diff = sorted(m for m in want.keys() | got.keys() if want.get(m) != got.get(m))
        failures.append(
            f"--batch-size {size} round {rnd}: {len(diff)} minutes differ from the first run "
            f"(--batch-size {first[0]} round {first[1]}), e.g. minute {diff[0]}: "
            f"{got.get(diff[0], 'missing')} vs {want.get(diff[0], 'missing')}"
        )

print("round pos  batch | wall s  cpu s  user s  sys s  own s | frames/s")
for size, rnd, pos, wall, user, sys_, own in runs:
    print(f"{rnd:5d} {pos:3d} {size:6d} | {wall:6.2f} {user + sys_:6.2f} {user:7.2f} {sys_:6.2f} {own:6.2f} | "
          f"{frames / wall / 1e3:7.1f}k")
print("(wall and cpu: the whole process under GNU time, cpu = user + sys, resolution 10 ms;")
print(" own: kuniq's summary elapsed_secs; pos: the run's position in its round)")
print()

med = {}
for size in sizes:
    mine = [r for r in runs if r[0] == size]
    walls = [r[3] for r in mine]
    med[size] = (statistics.median(walls), statistics.median(r[4] + r[5] for r in mine), min(walls), max(walls))
ref_wall, ref_cpu = med[reference][0], med[reference][1]


def ratio(a, b):
    return f"{a / b:5.2f}x" if b > 0 else "    -"


print(f"medians of {len(runs) // len(sizes)} run(s) per size; (x): ratio to --batch-size {reference}")
print(f"{'batch':>6s} | {'wall s':>6s} {'(x)':>6s} {'min-max':>11s} | {'frames/s':>9s} {'(x)':>6s} | "
      f"{'cpu s':>6s} {'(x)':>6s} | {'cpu s/M frames':>14s} {'(x)':>6s}")
for size in sizes:
    wall, cpu, lo, hi = med[size]
    fps, ref_fps = frames / wall, frames / ref_wall
    per_m, ref_per_m = cpu / frames * 1e6, ref_cpu / frames * 1e6
    print(f"{size:6d} | {wall:6.2f} {ratio(wall, ref_wall)} {lo:5.2f}-{hi:5.2f} | {fps / 1e3:8.1f}k {ratio(fps, ref_fps)} | "
          f"{cpu:6.2f} {ratio(cpu, ref_cpu)} | {per_m:14.2f} {ratio(per_m, ref_per_m)}")
print("(wall (x) > 1 and frames/s (x) < 1: slower than the reference; cpu (x) > 1: more CPU per frame)")

s1 = last_json(f"{work}/b{first[0]}-r{first[1]}.err")
print()
print(
    f"kuniq summary (first run, --batch-size {first[0]}): {s1['frames']} frames, counted {s1['counted']}, "
    f"rejected {s1['rejected']}, late {s1['late']}, too late {s1['too_late']}, quarantined {s1['quarantined']}, "
    f"records {s1['records']}"
)
print()
if failures:
    print("MISMATCH:")
    for line in failures:
        print(f"  {line}")
    sys.exit(1)
same = ("byte-identical in every run" if len(streams) == 1 else
        f"{len(streams)} different record streams (revisions may differ with how partitions interleave)")
print(f"counts:  final counts identical for all {len(want)} minutes in all {len(runs)} runs (last revision per minute), "
      f"every run read all {frames} frames; records {same}")
PY
status=$?
set -e
exit "$status"
