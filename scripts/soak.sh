#!/usr/bin/env bash
# Soak run: millions of frames through Kafka to Kafka while they are being
# produced; RSS and throughput sampled over time; the output topic checked
# against an independent oracle at the end. Prints a report for profiles/.
set -euo pipefail
# Measured and documented on tansu: its broker.sh calls use tansu unless
# BROKER_KIND says otherwise (scripts/bench-kafka.sh is the Apache Kafka one).
export BROKER_KIND="${BROKER_KIND:-tansu}"

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/soak.sh [--port N] [-h|--help]

1. Generates FRAMES out-of-order frames of at most FRAME_BYTES bytes
   (kuniq gen -d 40 -p 20 -l FRAME_BYTES) into target/soak/ (reused when
   the same), and computes each minute's exact count with an independent
   Python oracle (json.loads + a set per minute).
2. Starts tansu (memory storage) on 127.0.0.1:PORT with scripts/broker.sh,
   creates a 4-partition input topic and a 1-partition output topic.
3. Starts `kuniq count` Kafka to Kafka (no -e, --idle-timeout 2s), then
   `kuniq produce --rate RATE` of the whole file alongside: a live stream
   of FRAMES / RATE seconds.
4. Every SAMPLE_SECS samples kuniq's RSS (/proc/PID/status VmRSS), and takes
   frames read and open windows from kuniq's status line (printed every
   10 s when stderr is not a terminal).
5. Once the producer is done and the last minute's record is on the output
   topic (the topic went quiet: idle timeout + lateness), stops kuniq with
   SIGTERM and checks the output topic: every minute of the input has a
   record, each minute's last revision equals the oracle's count, and no
   (window, revision) has two different values.

Reported: the samples (time, frames, frames/s in the interval, RSS, open
windows); RSS of the first and last third of the run (flat: the last third's
peak within 25 % of the first's); the spread of the interval rates while
input was flowing; the correctness verdict. Exit 1 when a check fails.

Options:
  --port N     the broker's port [default: 19393]; it must be free
  -h, --help   this text

Environment:
  FRAMES       frames [default: 5000000]
  FRAME_BYTES  generator size limit per frame [default: 120: small frames
               keep 5 million of them in tansu's memory]
  RATE         frames per second produced [default: 20000: 5 million
               frames take about 4 minutes]
  SAMPLE_SECS  sampling interval [default: 10, the status line's interval]
EOF
}

port=19393
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
frames="${FRAMES:-5000000}"
frame_bytes="${FRAME_BYTES:-120}"
sample_secs="${SAMPLE_SECS:-10}"
rate="${RATE:-20000}"
for v in "$frames" "$frame_bytes" "$sample_secs" "$rate"; do
    [[ "$v" =~ ^[1-9][0-9]*$ ]] || die "FRAMES, FRAME_BYTES, SAMPLE_SECS and RATE must be positive numbers, not '$v'"
done
command -v python3 >/dev/null 2>&1 || die "python3 is needed for the oracle"

build_release scan
dir="$KUNIQ_ROOT/target/soak"
mkdir -p "$dir"
input="$dir/frames-$frames-$frame_bytes.jsonl"
truth="$input.truth.json"
if [[ ! -s "$input" || ! -s "$truth" ]]; then
    log "Generating $frames frames into $input..."
    "$KUNIQ_BIN" gen -c "$frames" -r 1000 -n 100000 -d 40 -p 20 -l "$frame_bytes" -s 1 -o "$input" --progress never
    log "Computing the oracle's counts (Python json.loads + sets)..."
    python3 - "$input" "$truth" <<'PY'
import json
import sys

users, frames = {}, {}
with open(sys.argv[1], "rb") as f:
    for line in f:
        v = json.loads(line)
        m = int(v["ts"]) // 60 * 60
        users.setdefault(m, set()).add(v["uid"])
        frames[m] = frames.get(m, 0) + 1
with open(sys.argv[2], "w") as out:
    json.dump({str(m): [len(u), frames[m]] for m, u in users.items()}, out)
PY
fi

brokers="127.0.0.1:$port"
work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-soak.XXXXXX")"
kuniq_pid=""
producer_pid=""
broker_started=0
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for pid in "$producer_pid" "$kuniq_pid"; do
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
        fi
    done
    if ((broker_started)); then
        "$KUNIQ_ROOT/scripts/broker.sh" stop --port "$port" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$KUNIQ_ROOT/scripts/broker.sh" start --port "$port"
broker_started=1
"$KUNIQ_ROOT/scripts/broker.sh" topic frames 4 --port "$port"
"$KUNIQ_ROOT/scripts/broker.sh" topic uniques 1 --port "$port"

echo "# kuniq soak: Kafka to Kafka while producing"
echo
machine_info
echo
echo "command: FRAMES=$frames FRAME_BYTES=$frame_bytes RATE=$rate SAMPLE_SECS=$sample_secs scripts/soak.sh --port $port"
echo "input:   $(file_bytes "$input") bytes, $frames frames (kuniq gen -c $frames -r 1000 -n 100000 -d 40 -p 20 -l $frame_bytes -s 1)"
echo "kuniq:   kuniq count -b $brokers -t frames -G soak -o uniques --offset beginning --idle-timeout 2s"
echo "produce: kuniq produce -b $brokers -t frames -i INPUT --rate $rate, started with kuniq count"
echo

"$KUNIQ_BIN" count -b "$brokers" -t frames -G soak -o uniques --offset beginning --idle-timeout 2s \
    --summary json >"$work/count.out" 2>"$work/count.err" &
kuniq_pid=$!
started="$(now_ns)"
"$KUNIQ_BIN" produce -b "$brokers" -t frames -i "$input" --rate "$rate" --progress never 2>"$work/produce.err" &
producer_pid=$!

last_minute="$(python3 -c 'import json,sys; print(max(int(k) for k in json.load(open(sys.argv[1]))))' "$truth")"
samples="$work/samples.tsv"
produce_secs=""
printf 'secs\tframes\trss_kb\topen_windows\n' >"$samples"
while :; do
    sleep "$sample_secs"
    kill -0 "$kuniq_pid" 2>/dev/null || { cat "$work/count.err" >&2; die "kuniq count exited during the soak"; }
    t="$(secs_between "$started" "$(now_ns)")"
    rss="$(awk '/^VmRSS/ { print $2 }' "/proc/$kuniq_pid/status")"
    status_line="$(grep '^kuniq: .* frames, ' "$work/count.err" | tail -n 1 || true)"
    got_frames="$(sed -n 's/^kuniq: [0-9]* MB, \([0-9]*\) frames,.*/\1/p' <<<"$status_line")"
    open="$(sed -n 's/.*, \([0-9]*\) open windows$/\1/p' <<<"$status_line")"
    printf '%s\t%s\t%s\t%s\n' "$t" "${got_frames:-0}" "$rss" "${open:-}" >>"$samples"
    if [[ -n "$producer_pid" ]] && ! kill -0 "$producer_pid" 2>/dev/null; then
        wait "$producer_pid" || { cat "$work/produce.err" >&2; die "kuniq produce failed"; }
        producer_pid=""
        produce_secs="$t"
        log "Producer done after $t s; waiting for the last minute on the output topic..."
    fi
    if [[ -z "$producer_pid" ]]; then
        if "$KUNIQ_BIN" consume -b "$brokers" -t uniques -e -K 2>/dev/null | grep -q "^minute:$last_minute	"; then
            break
        fi
    fi
    if awk -v t="$t" 'BEGIN { exit !(t > 3600) }'; then
        die "no record for the last minute an hour into the soak"
    fi
done
total_secs="$(secs_between "$started" "$(now_ns)")"
kill -TERM "$kuniq_pid"
kuniq_status=0
wait "$kuniq_pid" || kuniq_status=$?
kuniq_pid=""
((kuniq_status == 0)) || { cat "$work/count.err" >&2; die "kuniq count exited $kuniq_status after SIGTERM"; }
echo "produce: $(tail -n 1 "$work/produce.err")"
echo "count:   stopped with SIGTERM after $total_secs s; summary $(tail -n 1 "$work/count.err")"
echo

"$KUNIQ_BIN" consume -b "$brokers" -t uniques -e -K >"$work/uniques.tsv"
python3 - "$samples" "$truth" "$work/uniques.tsv" "${produce_secs:-$total_secs}" <<'PY'
import csv
import json
import statistics
import sys

samples_path, truth_path, out_path, produce_secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rows = list(csv.DictReader(open(samples_path), delimiter="\t"))
print("## samples")
print()
print("   secs     frames   frames/s (interval)   RSS MB   open windows")
rates = []
prev_t, prev_f = 0.0, 0
for r in rows:
    t, f, rss = float(r["secs"]), int(r["frames"]), int(r["rss_kb"]) / 1024
    rate = (f - prev_f) / (t - prev_t) if t > prev_t else 0
    if f > prev_f and t <= produce_secs:
        rates.append(rate)
    print(f"{t:7.1f} {f:10d} {rate:20.0f} {rss:8.1f}   {r['open_windows']}")
    prev_t, prev_f = t, f
print()
ok = True
third = max(1, len(rows) // 3)
first = max(int(r["rss_kb"]) for r in rows[:third]) / 1024
last = max(int(r["rss_kb"]) for r in rows[-third:]) / 1024
flat = last <= first * 1.25
ok &= flat
print(f"RSS: peak {first:.1f} MB in the first third of the samples, {last:.1f} MB in the last third "
      f"({'flat' if flat else 'GROWING'}: last/first = {last / first:.2f}, limit 1.25)")
if len(rates) >= 3:
    steady = [r for r in rates if r > 0]
    print(f"throughput while producing: median {statistics.median(steady):.0f} frames/s over "
          f"{len(steady)} intervals, min {min(steady):.0f}, max {max(steady):.0f}")

truth = {int(k): tuple(v) for k, v in json.load(open(truth_path)).items()}
values, last_rev = {}, {}
conflicts = 0
for line in open(out_path):
    key, value = line.rstrip("\n").split("\t", 1)
    v = json.loads(value)
    k = (key, v["revision"])
    if values.setdefault(k, value) != value:
        conflicts += 1
    cur = last_rev.get(v["start"])
    if cur is None or v["revision"] >= cur[0]:
        last_rev[v["start"]] = (v["revision"], v["unique_users"], v["frames"])
missing = sorted(set(truth) - set(last_rev))
wrong = [m for m in truth if m in last_rev and last_rev[m][1:] != truth[m]]
extra = sorted(set(last_rev) - set(truth))
correct = not missing and not wrong and not extra and conflicts == 0
ok &= correct
print(f"correctness: {len(truth)} minutes in the input; {len(values)} distinct (window, revision) records; "
      f"missing {len(missing)}, wrong last revision {len(wrong)}, unexpected {len(extra)}, conflicting {conflicts}: "
      f"{'PASS' if correct else 'FAIL'}")
if missing[:5] or wrong[:5]:
    print(f"  e.g. missing {missing[:5]}, wrong {[(m, last_rev[m], truth[m]) for m in wrong[:5]]}")
print()
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
PY
