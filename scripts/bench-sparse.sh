#!/usr/bin/env bash
# Sparse history against dense data: the same frames, two event-time spreads.
#
# The target (the one-pipeline issue): two years of sparse history count at
# the same bytes per second as dense data, within 3x, and force no window
# out. This script generates FRAMES frames twice with the same seed, once
# dense (1000 frames per second of event time, the official shape) and once
# sparse (one frame every ~158 s: 400,000 frames span two years), times
# `kuniq count --windows minute,hour,day,week,month,year` on each,
# alternating, and prints the medians, the ratio and PASS/FAIL.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-sparse.sh [-h|--help]

Generates bench-data/sparse-dense-N.jsonl (kuniq gen -r 1000) and
bench-data/sparse-N.jsonl (kuniq gen --spacing 158), same seed and users,
then alternates RUNS timed runs of
  kuniq count -i FILE --windows minute,hour,day,week,month,year --summary json
on each (whole process under GNU time, page cache warm). Prints every run,
the medians (wall, MB/s, CPU, peak RSS), the sparse/dense time ratio against
the 3x target, and each run's windows_forced and records.

Environment:
  FRAMES   frames in each input [default: 400000]
  RUNS     runs of each input [default: 5]
  WORKERS  kuniq --workers [default: kuniq's default]

Needs: cargo, GNU time at /usr/bin/time (Debian: apt-get install time).
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; die "unknown argument '$1'" ;;
esac

frames="${FRAMES:-400000}"
runs="${RUNS:-5}"
[[ "$frames" =~ ^[1-9][0-9]*$ ]] || die "FRAMES must be a positive integer, not '$frames'"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time (Debian: apt-get install time)"

build_release scan
data="$KUNIQ_ROOT/bench-data"
common=(-c "$frames" -n 100000 -s 1)
generated_input "$data/sparse-dense-$frames.jsonl" "${common[*]} -r 1000" "${common[@]}" -r 1000
generated_input "$data/sparse-$frames.jsonl" "${common[*]} --spacing 158" "${common[@]}" --spacing 158
dense="$data/sparse-dense-$frames.jsonl"
sparse="$data/sparse-$frames.jsonl"
warm_page_cache "$dense"
warm_page_cache "$sparse"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kuniq=("$KUNIQ_BIN" count --windows minute,hour,day,week,month,year --summary json --progress never)
[[ -n "${WORKERS:-}" ]] && kuniq+=(--workers "$WORKERS")

: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    for kind in dense sparse; do
        file="$dense"
        [[ "$kind" == sparse ]] && file="$sparse"
        log "Run $i of $runs: $kind..."
        /usr/bin/time -o "$work/time" -f '%e %U %S %M' "${kuniq[@]}" -i "$file" >"$work/out" 2>"$work/err" \
            || { cat "$work/err" >&2; die "kuniq count failed on $file"; }
        read -r wall user sys rss <"$work/time"
        summary="$(grep '^{' "$work/err" | tail -n 1)"
        forced="$(sed -n 's/.*"windows_forced":\([0-9]*\).*/\1/p' <<<"$summary")"
        records="$(wc -l <"$work/out")"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$i" "$kind" "$wall" "$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')" \
            "$rss" "$forced" "$records" >>"$work/runs.tsv"
    done
done

echo "# Sparse history vs dense data: kuniq count, every window kind"
echo
machine_info
echo "dense:   $dense ($(file_bytes "$dense") bytes; kuniq gen ${common[*]} -r 1000)"
echo "sparse:  $sparse ($(file_bytes "$sparse") bytes; kuniq gen ${common[*]} --spacing 158)"
echo "kuniq:   ${kuniq[*]#"$KUNIQ_ROOT/"} -i FILE"
echo "timed:   whole process under GNU time, $runs alternating runs of each"
echo
python3 - "$work/runs.tsv" "$(file_bytes "$dense")" "$(file_bytes "$sparse")" <<'EOF'
import statistics, sys
rows = [line.split("\t") for line in open(sys.argv[1]).read().splitlines()]
size = {"dense": int(sys.argv[2]), "sparse": int(sys.argv[3])}
print("run kind     wall s   cpu s  peak RSS MB  windows_forced  records")
for r in rows:
    print(f"{r[0]:>3} {r[1]:<7} {float(r[2]):>7.2f} {float(r[3]):>7.2f} {int(r[4]) / 1024:>12.0f} {r[5]:>15} {r[6]:>8}")
med = {}
for kind in ("dense", "sparse"):
    k = [r for r in rows if r[1] == kind]
    med[kind] = statistics.median(float(r[2]) for r in k)
    cpu = statistics.median(float(r[3]) for r in k)
    rss = statistics.median(int(r[4]) for r in k) / 1024
    print(f"median {kind:<7} wall {med[kind]:.2f} s, {size[kind] / med[kind] / 1e6:.0f} MB/s, cpu {cpu:.2f} s, peak RSS {rss:.0f} MB")
ratio = (med["sparse"] / size["sparse"]) / (med["dense"] / size["dense"])
forced = sum(int(r[5] or 0) for r in rows if r[1] == "sparse")
print()
print(f"sparse / dense time per byte: {ratio:.2f}x")
print(f"{'PASS' if ratio <= 3 else 'FAIL'}: sparse history within 3x of dense data's time per byte: {ratio:.2f}x")
print(f"{'PASS' if forced == 0 else 'FAIL'}: no window forced out on sparse history ({forced} over all runs)")
EOF
