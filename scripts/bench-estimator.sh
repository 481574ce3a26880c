#!/usr/bin/env bash
# The HLL estimator against exact counting, on generated data of several
# shapes: error per window kind, bytes per window, cost per frame.
#
# The target (the window-state issue): `--estimator hll` within 1 % of the
# exact count at p99 in every window kind. For each shape this script
# generates the input once, runs
#   kuniq count --windows minute,hour,day,week,month,year --estimator E
# with E = exact and hll, alternating, RUNS times each (timed), and one more
# hll run with --emit-sketch (the bytes each record's sketch takes). It
# prints, per shape and window kind, the windows, the relative error of the
# final hll record against the exact one (p50, p99 by nearest rank, max),
# the largest sketch in a record, and the median wall time, CPU time and
# peak RSS of each estimator, with the hll/exact CPU ratio.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-estimator.sh [-h|--help]

Shapes (kuniq gen, 512-byte frames, into bench-data/estimator-*.jsonl):
  dense      FRAMES frames, 1000 a second, 100,000 users (the official shape)
  fresh      FRAMES frames, 1000 a second, every frame a new user
  multi-day  FRAMES frames, 10 a second (days of history), 3,000,000 users,
             10 % delayed up to 30 s

Environment:
  FRAMES   frames per shape [default: 3000000]
  RUNS     timed runs of each estimator per shape [default: 3]
  WORKERS  kuniq --workers [default: kuniq's default]

Needs: cargo, python3, GNU time at /usr/bin/time.
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
esac

frames="${FRAMES:-3000000}"
runs="${RUNS:-3}"
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "FRAMES must be a positive integer, not '$frames'"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time (Debian: apt-get install time)"

build_release scan
data="$KUNIQ_ROOT/bench-data"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kuniq=("$KUNIQ_BIN" count --windows minute,hour,day,week,month,year --summary json --progress never)
[[ -n "${WORKERS:-}" ]] && kuniq+=(--workers "$WORKERS")

declare -A shape_args=(
    [dense]="-c $frames -r 1000 -n 100000 -l 512 -s 3"
    [fresh]="-c $frames -r 1000 -n 0 -l 512 -s 4"
    [multi-day]="-c $frames -r 10 -n 3000000 -d 30 -p 10 -l 512 -s 5"
)
shapes=(dense fresh multi-day)

echo "# HLL estimator against exact counting, by shape and window kind"
echo
machine_info
echo "kuniq:   ${kuniq[*]#"$KUNIQ_ROOT/"} -i FILE --estimator exact|hll"
echo "timed:   whole process under GNU time, $runs alternating runs of each estimator per shape"
echo
for shape in "${shapes[@]}"; do
    file="$data/estimator-$shape-$frames.jsonl"
    # shellcheck disable=SC2086 # the shape's flags are words
    generated_input "$file" "${shape_args[$shape]}" ${shape_args[$shape]}
    warm_page_cache "$file"
    : >"$work/runs.tsv"
    for ((i = 1; i <= runs; i++)); do
        for estimator in exact hll; do
            log "$shape: run $i of $runs, $estimator..."
            /usr/bin/time -o "$work/time" -f '%e %U %S %M' "${kuniq[@]}" -i "$file" --estimator "$estimator" \
                >"$work/$estimator.jsonl" 2>"$work/err" || { cat "$work/err" >&2; die "kuniq count failed"; }
            read -r wall user sys rss <"$work/time"
            printf '%s\t%s\t%s\t%s\t%s\n' "$i" "$estimator" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
                "$rss" >>"$work/runs.tsv"
        done
    done
    log "$shape: one more hll run with --emit-sketch..."
    "${kuniq[@]}" -i "$file" --estimator hll --emit-sketch >"$work/sketched.jsonl" 2>"$work/err" \
        || { cat "$work/err" >&2; die "kuniq count --emit-sketch failed"; }
    echo "## $shape: kuniq gen ${shape_args[$shape]} ($(file_bytes "$file") bytes)"
    echo
    python3 - "$work" "$frames" <<'EOF'
import base64, json, statistics, sys
work, frames = sys.argv[1], int(sys.argv[2])

def final(path, sizes=None):
    latest = {}
    for line in open(path):
        r = json.loads(line)
        key = (r["window"], r["start"])
        if key not in latest or r["revision"] > latest[key]["revision"]:
            latest[key] = r
        if sizes is not None and "sketch" in r:
            sizes[r["window"]] = max(sizes.get(r["window"], 0), len(base64.b64decode(r["sketch"])))
    return latest

exact, hll = final(f"{work}/exact.jsonl"), final(f"{work}/hll.jsonl")
sizes = {}
sketched = final(f"{work}/sketched.jsonl", sizes)
assert set(exact) == set(hll) == set(sketched), "the same windows"
assert all(hll[k]["unique_users"] == sketched[k]["unique_users"] for k in hll), "--emit-sketch changes no count"
print("| window | windows | exact users (median) | p50 error % | p99 error % | max error % | largest sketch in a record |")
print("|---|---:|---:|---:|---:|---:|---:|")
worst = 0.0
for kind in ["minute", "hour", "day", "week", "month", "year"]:
    keys = sorted(k for k in exact if k[0] == kind)
    if not keys:
        continue
    errors = sorted(abs(hll[k]["unique_users"] - exact[k]["unique_users"]) / exact[k]["unique_users"] for k in keys)
    p = lambda q: errors[max(1, min(len(errors), -(-len(errors) * q // 100))) - 1]
    worst = max(worst, p(99))
    users = statistics.median(exact[k]["unique_users"] for k in keys)
    print(f"| {kind} | {len(keys)} | {users:.0f} | {100 * p(50):.3f} | {100 * p(99):.3f} | {100 * errors[-1]:.3f} | {sizes.get(kind, 0)} B |")
print()
rows = [line.split("\t") for line in open(f"{work}/runs.tsv").read().splitlines()]
print("| estimator | median wall s | median CPU s | CPU ns per frame | median peak RSS MB |")
print("|---|---:|---:|---:|---:|")
cpu = {}
for est in ("exact", "hll"):
    r = [x for x in rows if x[1] == est]
    cpu[est] = statistics.median(float(x[3]) for x in r)
    wall = statistics.median(float(x[2]) for x in r)
    rss = statistics.median(int(x[4]) for x in r) / 1024
    print(f"| {est} | {wall:.2f} | {cpu[est]:.2f} | {1e9 * cpu[est] / frames:.0f} | {rss:.0f} |")
print()
print("runs (wall s / CPU s): " + ", ".join(f"{x[1]} {float(x[2]):.2f}/{float(x[3]):.2f}" for x in rows))
print(f"hll / exact CPU: {cpu['hll'] / cpu['exact']:.2f}x ({1e9 * (cpu['hll'] - cpu['exact']) / frames:+.0f} ns per frame)")
print(f"{'PASS' if worst <= 0.01 else 'FAIL'}: hll within 1 % of exact at p99 in every window kind (worst p99 {100 * worst:.3f} %)")
print()
EOF
done
