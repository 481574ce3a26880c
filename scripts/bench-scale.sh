#!/usr/bin/env bash
# The cost of scaling out: one `kuniq count` over a topic against the two
# stages (`kuniq count --partials-topic` workers, then `kuniq merge`) over
# the same topic, on a local Apache Kafka, side by side. Prints CPU per
# million frames of each stage, the partials traffic (messages, bytes, bytes
# per window), and checks that the merged records equal the single run's.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: scripts/bench-scale.sh [--port N] [-h|--help]

Starts Apache Kafka on 127.0.0.1:PORT (scripts/broker.sh start --kind
kafka), loads the benchmark input into a 6-partition topic with `kuniq
produce`, then alternates RUNS runs of:

  single   kuniq count -b B -t TOPIC -G GROUP --offset beginning -e
  scale    WORKERS workers `kuniq count -b B -t TOPIC -G GROUP
           --partials-topic P -e` started together (each exits once its
           partitions are read to their end), then `kuniq merge -b B
           --partials-topic P -e`

each with --windows $WINDOWS, every process under GNU time (wall, user +
sys CPU, peak RSS). With WORKERS=1 the scale run measures the two stages'
overhead alone; with more workers on a small machine the workers compete
for its cores (and partitions may move while they join, read twice).

Environment:
  KUNIQ_BENCH_FRAMES  frames of the input [default: 200000; 1000000 is the
                      official file, bench-data/official.jsonl]
  RUNS                runs of each [default: 3]
  WORKERS             workers in a scale run [default: 1]
  WINDOWS             window kinds [default: minute,hour,day]
  ESTIMATOR           exact or hll [default: exact]
USAGE
}

PORT=19410
while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) PORT="$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
RUNS="${RUNS:-3}"
WORKERS="${WORKERS:-1}"
WINDOWS="${WINDOWS:-minute,hour,day}"
ESTIMATOR="${ESTIMATOR:-exact}"
KUNIQ_BENCH_FRAMES="${KUNIQ_BENCH_FRAMES:-200000}"
export KUNIQ_BENCH_FRAMES
command -v /usr/bin/time >/dev/null || die "GNU time (/usr/bin/time) is needed"

build_release scan
INPUT="$(bench_input)"
B="127.0.0.1:$PORT"
"$KUNIQ_ROOT/scripts/broker.sh" install --kind kafka >&2
"$KUNIQ_ROOT/scripts/broker.sh" start --kind kafka --port "$PORT" >&2
trap '"$KUNIQ_ROOT/scripts/broker.sh" stop --kind kafka --port "$PORT" >&2 || true' EXIT
TOPIC="scale-frames-$$"
"$KUNIQ_ROOT/scripts/broker.sh" topic "$TOPIC" 6 --kind kafka --port "$PORT" >&2
head -n "$KUNIQ_BENCH_FRAMES" "$INPUT" | "$KUNIQ_BIN" produce -b "$B" -t "$TOPIC" -i - --progress never >&2
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"; "$KUNIQ_ROOT/scripts/broker.sh" stop --kind kafka --port "$PORT" >&2 || true' EXIT
FLAGS=(--windows "$WINDOWS" --estimator "$ESTIMATOR")

timed() { # OUT_PREFIX CMD...: runs CMD under GNU time; OUT_PREFIX.{out,err,time}
    local prefix="$1"
    shift
    /usr/bin/time -o "$prefix.time" -f "%e %U %S %M" "$@" >"$prefix.out" 2>"$prefix.err"
}

echo "# One kuniq count against workers + kuniq merge, on a local Apache Kafka"
echo
machine_info
echo "broker:  Apache Kafka (scripts/broker.sh --kind kafka), 127.0.0.1:$PORT, on the same cores"
echo "input:   $KUNIQ_BENCH_FRAMES frames of $INPUT, topic $TOPIC (6 partitions)"
echo "windows: $WINDOWS, estimator $ESTIMATOR; $WORKERS worker(s) per scale run; $RUNS runs each, alternating"
echo
printf '%-4s %-8s %8s %8s %8s  %s\n' run stage wall_s cpu_s rss_MB notes
for run in $(seq 1 "$RUNS"); do
    dir="$WORK/$run"
    mkdir -p "$dir"
    timed "$dir/single" "$KUNIQ_BIN" count -b "$B" -t "$TOPIC" -G "single-$run-$$" --offset beginning -e \
        --progress never --summary json "${FLAGS[@]}"
    read -r wall user sys rss <"$dir/single.time"
    printf '%-4s %-8s %8.2f %8.2f %8.0f\n' "$run" single "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))"
    partials="scale-partials-$run-$$"
    pids=()
    for w in $(seq 1 "$WORKERS"); do
        timed "$dir/worker-$w" "$KUNIQ_BIN" count -b "$B" -t "$TOPIC" -G "scale-$run-$$" --partials-topic "$partials" \
            -e --summary json "${FLAGS[@]}" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do wait "$pid" || die "a worker failed: $(cat "$dir"/worker-*.err)"; done
    timed "$dir/merge" "$KUNIQ_BIN" merge -b "$B" --partials-topic "$partials" -e --summary json "${FLAGS[@]}" \
        || die "the merge failed: $(cat "$dir/merge.err")"
    for w in $(seq 1 "$WORKERS"); do
        read -r wall user sys rss <"$dir/worker-$w.time"
        summary="$(tail -n1 "$dir/worker-$w.err")"
        printf '%-4s %-8s %8.2f %8.2f %8.0f  %s\n' "$run" "worker-$w" "$wall" "$(echo "$user + $sys" | bc)" \
            "$((rss / 1024))" "$summary"
    done
    read -r wall user sys rss <"$dir/merge.time"
    printf '%-4s %-8s %8.2f %8.2f %8.0f  %s\n' "$run" merge "$wall" "$(echo "$user + $sys" | bc)" "$((rss / 1024))" \
        "$(tail -n1 "$dir/merge.err")"
    if cmp -s <(sort "$dir/single.out") <(sort "$dir/merge.out"); then
        echo "     records: the merge's $(wc -l <"$dir/merge.out") records equal the single run's"
    else
        echo "     records: DIFFER from the single run's ($(wc -l <"$dir/merge.out") against $(wc -l <"$dir/single.out"))"
    fi
done
echo
python3 - "$WORK" "$RUNS" "$WORKERS" "$KUNIQ_BENCH_FRAMES" <<'PY'
import json, statistics, sys, pathlib
work, runs, workers, frames = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def cpu(p):
    wall, user, sys_, rss = p.read_text().split()
    return float(user) + float(sys_), float(wall)
single, scale, merge, walls_s, walls_m, msgs, byts, windows = [], [], [], [], [], [], [], []
for r in range(1, runs + 1):
    d = work / str(r)
    c, w = cpu(d / "single.time"); single.append(c); walls_s.append(w)
    wc = sum(cpu(d / f"worker-{i}.time")[0] for i in range(1, workers + 1))
    mc, mw = cpu(d / "merge.time")
    scale.append(wc + mc); merge.append(mc)
    walls_m.append(max(cpu(d / f"worker-{i}.time")[1] for i in range(1, workers + 1)) + mw)
    ws = [json.loads(open(d / f"worker-{i}.err").read().splitlines()[-1]) for i in range(1, workers + 1)]
    msgs.append(sum(x["partials_messages"] for x in ws)); byts.append(sum(x["partials_bytes"] for x in ws))
    windows.append(len({(json.loads(l)["window"], json.loads(l)["start"]) for l in open(d / "merge.out")}))
m = statistics.median
print(f"median CPU s per million frames: single {m(single) / frames * 1e6:.2f}, "
      f"workers + merge {m(scale) / frames * 1e6:.2f} (merge alone {m(merge) / frames * 1e6:.2f}); "
      f"two stages / one: {m(scale) / m(single):.2f}x")
print(f"median wall s: single {m(walls_s):.2f}, workers then merge {m(walls_m):.2f}")
print(f"partials: {m(msgs):.0f} messages, {m(byts) / 1e6:.2f} MB for {m(windows):.0f} windows "
      f"({m(byts) / max(m(windows), 1) / 1e3:.1f} KB a window, {m(byts) / frames:.1f} bytes a frame)")
PY
