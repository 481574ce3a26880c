#!/usr/bin/env bash
# One core: `kuniq count --workers 1` against `wc -l` on the same file.
#
# The target (issue 16, the scanner at memory speed): pinned to one core,
# kuniq replays the official one-million-frame file within 2.5x the time
# `wc -l` takes merely to find its line ends. This script times both,
# alternating, checks that kuniq's counts are exact, and prints a report
# meant to be pasted into profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: scripts/bench-scan.sh [--strict] [-h|--help]

Pins both commands to one core (taskset -c CORE) and alternates, RUNS times:
  kuniq   kuniq count -i FILE --workers 1 --progress never --summary json
  wc      wc -l FILE
on the page-cached official input. Prints every run (wall clock from the
shell, and kuniq's user and system CPU seconds from GNU time), the medians,
the ratio of the medians (kuniq / wc) and PASS/FAIL for ratio <= 2.5.

Counts are checked, not assumed: every kuniq run must print the same
records; every frame must be counted (no bad frames); and the last
revision of every minute must equal an independent count made once with
Python's json module (json.loads per line, distinct top-level uid per
floor(ts / 60) * 60), kept beside the input as FILE.minutes.json and
remade when the input's stamp changes. Exits 1 when a count differs.

Options:
  --strict     also exit 2 when the ratio target FAILs (numbers on a
               shared or small machine are noisy).
  -h, --help   this text.

Environment:
  RUNS                runs of each command [default: 5]
  CORE                the core both are pinned to [default: 0]
  KUNIQ_BENCH_BIN     a kuniq binary to time as it is, e.g. an older build
                      [default: target/release/kuniq, built here]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 1000000]
  KUNIQ_BENCH_FILE    input path [default: bench-data/official.jsonl]

Needs: cargo, python3, taskset, GNU time at /usr/bin/time.

Quick smoke run:  KUNIQ_BENCH_FRAMES=20000 RUNS=2 scripts/bench-scan.sh
USAGE
}

strict=0
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --strict) strict=1; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
runs="${RUNS:-5}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
core="${CORE:-0}"
[[ "$core" =~ ^[0-9]+$ ]] || die "CORE must be a core number, not '$core'"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time (Debian: apt-get install time)"
command -v taskset >/dev/null || die "taskset is needed (Debian: util-linux)"

if [[ -n "${KUNIQ_BENCH_BIN:-}" ]]; then
    KUNIQ_BIN="$KUNIQ_BENCH_BIN"
else
    build_release scan
fi
[[ -x "$KUNIQ_BIN" ]] || die "no kuniq binary at $KUNIQ_BIN"
file="$(bench_input)"
bytes="$(file_bytes "$file")"

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench-scan.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The independent count, made once per input (stamp) and kept.
truth="$file.minutes.json"
stamp="$(cat "$file.stamp" 2>/dev/null || echo "unstamped") bytes=$bytes"
if [[ ! -f "$truth" ]] || [[ "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["stamp"])' "$truth")" != "$stamp" ]]; then
    log "Counting $file independently with Python's json module (once per input; a minute or two)..."
    python3 - "$file" "$truth" "$stamp" <<'PY'
import json
import sys

path, out, stamp = sys.argv[1], sys.argv[2], sys.argv[3]
minutes, frames, bad = {}, 0, 0
with open(path, "rb") as f:
    for line in f:
        frames += 1
        try:
            obj = json.loads(line)
            uid, ts = obj["uid"], obj["ts"]
        except (ValueError, KeyError, TypeError):
            bad += 1
            continue
        minutes.setdefault(int(ts) // 60 * 60, set()).add(uid)
with open(out + ".partial", "w") as f:
    json.dump({"stamp": stamp, "frames": frames, "bad": bad,
               "minutes": {str(m): len(u) for m, u in sorted(minutes.items())}}, f)
import os
os.replace(out + ".partial", out)
PY
fi

kuniq_cmd=("$KUNIQ_BIN" count -i "$file" --workers 1 --progress never --summary json)
wc_cmd=(wc -l "$file")

echo "# One core: kuniq count --workers 1 against wc -l"
echo
machine_info
echo
if [[ -n "${KUNIQ_BENCH_BIN:-}" ]]; then
    echo "binary:  $KUNIQ_BIN (from KUNIQ_BENCH_BIN: not necessarily built from the commit above)"
fi
echo "input:   $file"
echo "         $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')), page cache warmed with cat before the runs"
echo "kuniq:   taskset -c $core ${kuniq_cmd[*]#"$KUNIQ_ROOT/"}"
echo "wc:      taskset -c $core ${wc_cmd[*]}"
echo "         timed: whole processes, wall clock from the shell; CPU seconds from GNU time"
echo "runs:    $runs of each, alternating kuniq wc"
echo

warm_page_cache "$file"

# run_timed LABEL CMD...: runs CMD pinned, under GNU time (user and system
# seconds into $work/LABEL.time), stdout to $work/LABEL.out and stderr to
# $work/LABEL.err; prints its wall seconds.
run_timed() {
    local label="$1"
    shift
    local t0 t1
    t0="$(now_ns)"
    if ! /usr/bin/time -f '%U %S' -o "$work/$label.time" taskset -c "$core" "$@" \
        >"$work/$label.out" 2>"$work/$label.err"; then
        log "$label failed:"
        cat "$work/$label.err" >&2
        exit 1
    fi
    t1="$(now_ns)"
    secs_between "$t0" "$t1"
}

: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    log "Run $i of $runs: kuniq, wc..."
    wall="$(run_timed "kuniq-$i" "${kuniq_cmd[@]}")"
    printf 'kuniq\t%s\t%s\t%s\n' "$i" "$wall" "$(tail -n1 "$work/kuniq-$i.time")" >>"$work/runs.tsv"
    wall="$(run_timed "wc-$i" "${wc_cmd[@]}")"
    printf 'wc\t%s\t%s\t%s\n' "$i" "$wall" "$(tail -n1 "$work/wc-$i.time")" >>"$work/runs.tsv"
done

set +e
PYTHONPATH="$KUNIQ_ROOT/scripts" python3 - "$work" "$runs" "$bytes" "$strict" "$truth" <<'PY'
import json
import statistics
import sys
from kuniq_records import last_minutes

work, runs, size, strict, truth_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
rows = {"kuniq": [], "wc": []}
with open(f"{work}/runs.tsv") as f:
    for line in f:
        tool, run, wall, times = line.rstrip("\n").split("\t")
        user, sys_ = (float(x) for x in times.split())
        rows[tool].append((int(run), float(wall), user, sys_))

summary = json.loads(open(f"{work}/kuniq-1.err").read().strip().splitlines()[-1])
frames = summary["frames"]
print("tool   run   wall s   user s   sys s   GB/s   ns/frame")
for tool in ("kuniq", "wc"):
    for run, wall, user, sys_ in rows[tool]:
        print(f"{tool:<6} {run:3d}  {wall:7.3f}  {user:7.3f}  {sys_:6.3f}  {size / wall / 1e9:5.2f}  {wall * 1e9 / frames:8.0f}")
print()
med = {}
print("median wall s   user s   sys s   GB/s   ns/frame   (wall: min-max)")
for tool in ("kuniq", "wc"):
    walls = [r[1] for r in rows[tool]]
    med[tool] = statistics.median(walls)
    user = statistics.median(r[2] for r in rows[tool])
    sys_ = statistics.median(r[3] for r in rows[tool])
    print(f"{tool:<6} {med[tool]:7.3f}  {user:7.3f}  {sys_:6.3f}  {size / med[tool] / 1e9:5.2f}  "
          f"{med[tool] * 1e9 / frames:8.0f}   ({min(walls):.3f}-{max(walls):.3f})")
print()
print(f"kuniq summary (run 1): {frames} frames, counted {summary['counted']}, rejected {summary['rejected']}, "
      f"records {summary['records']}; its own elapsed {summary['elapsed_secs']:.3f} s")

failures = []
first = open(f"{work}/kuniq-1.out", "rb").read()
for run in range(2, runs + 1):
    if open(f"{work}/kuniq-{run}.out", "rb").read() != first:
        failures.append(f"kuniq run {run} printed different records from run 1")
truth = json.load(open(truth_path))
if summary["frames"] != truth["frames"] or summary["rejected"] != truth["bad"]:
    failures.append(f"kuniq saw {summary['frames']} frames, {summary['rejected']} rejected; "
                    f"the Python count {truth['frames']} frames, {truth['bad']} bad")
want = {int(m): n for m, n in truth["minutes"].items()}
got = last_minutes(f"{work}/kuniq-1.out")
diff = sorted(m for m in want.keys() | got.keys() if want.get(m) != got.get(m))
for m in diff[:10]:
    failures.append(f"minute {m}: kuniq {got.get(m, 'missing')}, Python {want.get(m, 'missing')}")
if failures:
    print("COUNTS DIFFER:")
    for line in failures:
        print(f"  {line}")
else:
    print(f"counts:  exact: all {len(want)} minute windows equal the independent Python count "
          f"({truth['frames']} frames, {truth['bad']} bad)")
ratio = med["kuniq"] / med["wc"]
ok = ratio <= 2.5 and not failures
print(f"ratio:   kuniq / wc -l = {ratio:.2f}x (median {med['kuniq']:.3f} s / {med['wc']:.3f} s)")
print(f"{'PASS' if ok else 'FAIL'}: one core within 2.5x of wc -l ({ratio:.2f}x{', but the counts differ' if failures else ''})")
if failures:
    sys.exit(1)
if strict and not ok:
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
