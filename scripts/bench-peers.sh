#!/usr/bin/env bash
# kuniq vs DuckDB on the same file and the same cores, side by side.
#
# The target (BRIEF.md): replaying the one-million-frame official input, kuniq
# has at least 3x DuckDB's throughput, with peak memory under 100 MB. This
# script measures both, checks that both give the same count for every
# minute, and prints a report meant to be pasted into profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/bench-vs-duckdb.sh [--parser NAME] [--strict] [-h|--help]

Times `kuniq count` against DuckDB's
  SELECT ts//60*60 AS minute, count(DISTINCT uid)
  FROM read_json(FILE, format='newline_delimited', columns={'ts':'BIGINT','uid':'VARCHAR'})
  GROUP BY 1
on the same cached file, with as many threads as cores (nproc) for both,
alternating the two RUNS times each. Then prints every run, the medians,
the speed ratio, kuniq's peak RSS against the 100 MB budget, and PASS/FAIL
for the targets.

What is timed:
  kuniq   wall clock of the whole process (start-up, mapping, parsing,
          counting, output), from the shell, with `date +%s%N`.
  DuckDB  the query alone (execute + fetchall), inside Python with
          time.perf_counter; interpreter start, `import duckdb` and connect
          are excluded. The whole Python process is timed too and shown.
The speed ratio uses DuckDB's query time against kuniq's whole process:
the comparison that favours DuckDB.

Peak RSS is GNU time's %M (ru_maxrss): anonymous memory plus the mapped
file pages resident at the peak.

Exits 1 if the per-minute counts of kuniq (the last revision of every
minute) and DuckDB differ, or if two kuniq runs print different records.

Options:
  --parser NAME   kuniq's frame parser: scan (default), sonic or serde;
                  sonic and serde are built in with their cargo feature.
  --strict        also exit 2 when a target FAILs (for CI; numbers on a
                  shared or small machine are noisy).
  -h, --help      this text.

Environment:
  RUNS                runs of each tool [default: 5]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 1000000]
  KUNIQ_BENCH_FILE    input path [default: bench-data/official.jsonl, or
                      bench-data/frames-N.jsonl for other sizes]; an existing
                      file not generated here is used as given
  DUCKDB_SPEC         pip requirement for DuckDB [default: duckdb]

Needs: cargo, python3 (with venv; DuckDB goes into target/bench-venv),
GNU time at /usr/bin/time (Debian: apt-get install time).

Quick smoke run:  KUNIQ_BENCH_FRAMES=50000 RUNS=2 scripts/bench-vs-duckdb.sh
EOF
}

parser=scan
strict=0
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --parser) [[ $# -ge 2 ]] || die "--parser needs a value"; parser="$2"; shift 2 ;;
        --parser=*) parser="${1#--parser=}"; shift ;;
        --strict) strict=1; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
features_for_parser "$parser" >/dev/null
runs="${RUNS:-5}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$runs'"
threads="$(nproc)"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time to measure peak RSS (Debian: apt-get install time)"

build_release "$parser"
file="$(bench_input)"

venv="$KUNIQ_ROOT/target/bench-venv"
if ! "$venv/bin/python" -c 'import duckdb' 2>/dev/null; then
    log "Creating $venv with ${DUCKDB_SPEC:-duckdb}..."
    python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
    "$venv/bin/pip" install --quiet "${DUCKDB_SPEC:-duckdb}" || die "pip install ${DUCKDB_SPEC:-duckdb} failed"
fi
py="$venv/bin/python"
duckdb_version="$("$py" -c 'import duckdb; print(duckdb.__version__)')"

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The DuckDB side: one fresh process per run, so no run inherits another's
# memory or caches; it prints the query's seconds and writes the rows.
cat >"$work/duckdb_count.py" <<'PY'
import sys
import time

import duckdb

path, threads, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
literal = "'" + path.replace("'", "''") + "'"
sql = (
    "SELECT ts//60*60 AS minute, count(DISTINCT uid) FROM read_json("
    + literal
    + ", format='newline_delimited', columns={'ts':'BIGINT','uid':'VARCHAR'}) GROUP BY 1"
)
con = duckdb.connect()
con.execute(f"SET threads = {threads}")
start = time.perf_counter()
rows = con.execute(sql).fetchall()
query_secs = time.perf_counter() - start
with open(out, "w") as f:
    for minute, users in sorted(rows):
        f.write(f"{minute}\t{users}\n")
print(f"{query_secs:.6f}")
PY

bytes="$(file_bytes "$file")"
kuniq_cmd=("$KUNIQ_BIN" count -i "$file" --parser "$parser" --workers "$threads" --progress never --summary json)

echo "# kuniq vs DuckDB: unique users per minute, file replay"
echo
machine_info
echo "duckdb:  $duckdb_version (Python API, $("$py" -c 'import platform; print(platform.python_version())'))"
echo
echo "input:   $file"
echo "         $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')), page cache warmed with cat before the runs"
echo "kuniq:   ${kuniq_cmd[*]#"$KUNIQ_ROOT/"}"
echo "         timed: whole process, wall clock"
echo "duckdb:  SET threads = $threads;"
echo "         SELECT ts//60*60 AS minute, count(DISTINCT uid) FROM read_json('FILE', format='newline_delimited', columns={'ts':'BIGINT','uid':'VARCHAR'}) GROUP BY 1"
echo "         timed: the query alone (execute + fetchall) in Python; 'process' is the whole python run"
echo "runs:    $runs of each, alternating kuniq, DuckDB"
echo

warm_page_cache "$file"

# run_timed LABEL RSS_FILE CMD...: runs CMD under GNU time with stdout to
# $work/LABEL.out and stderr to $work/LABEL.err; prints its wall seconds.
run_timed() {
    local label="$1" rss_file="$2"
    shift 2
    local t0 t1
    t0="$(now_ns)"
    if ! /usr/bin/time -f %M -o "$rss_file" "$@" >"$work/$label.out" 2>"$work/$label.err"; then
        log "$label failed:"
        cat "$work/$label.err" >&2
        exit 1
    fi
    t1="$(now_ns)"
    secs_between "$t0" "$t1"
}

: >"$work/runs.tsv"
for ((i = 1; i <= runs; i++)); do
    log "Run $i of $runs: kuniq..."
    wall="$(run_timed "kuniq-$i" "$work/kuniq-$i.rss" "${kuniq_cmd[@]}")"
    printf 'kuniq\t%s\t%s\t%s\t%s\n' "$i" "$wall" "$wall" "$(tail -n1 "$work/kuniq-$i.rss")" >>"$work/runs.tsv"

    log "Run $i of $runs: DuckDB..."
    wall="$(run_timed "duckdb-$i" "$work/duckdb-$i.rss" "$py" "$work/duckdb_count.py" "$file" "$threads" "$work/duckdb-$i.tsv")"
    printf 'duckdb\t%s\t%s\t%s\t%s\n' "$i" "$(cat "$work/duckdb-$i.out")" "$wall" "$(tail -n1 "$work/duckdb-$i.rss")" >>"$work/runs.tsv"
done

set +e
"$py" - "$work" "$runs" "$bytes" "$strict" <<'PY'
import json
import statistics
import sys

work, runs, size, strict = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"

rows = {"kuniq": [], "duckdb": []}
with open(f"{work}/runs.tsv") as f:
    for line in f:
        tool, run, timed, process, rss_kib = line.split("\t")
        rows[tool].append((int(run), float(timed), float(process), int(rss_kib) * 1024 / 1e6))

summary = json.loads(open(f"{work}/kuniq-1.err").read().strip().splitlines()[-1])
frames = summary["frames"]


def rate(secs):
    return f"{frames / secs / 1e3:8.0f}k {size / secs / 1e9:5.2f}"


print("run   kuniq s   frames/s   GB/s  RSS MB | DuckDB query s  frames/s   GB/s  process s  RSS MB")
for (run, k, _, k_rss), (_, q, p, d_rss) in zip(rows["kuniq"], rows["duckdb"]):
    print(f"{run:3d}  {k:8.3f}  {rate(k)}  {k_rss:6.1f} | {q:14.3f}  {rate(q)}  {p:9.3f}  {d_rss:6.1f}")
k_med = statistics.median(r[1] for r in rows["kuniq"])
q_med = statistics.median(r[1] for r in rows["duckdb"])
p_med = statistics.median(r[2] for r in rows["duckdb"])
k_rss = max(r[3] for r in rows["kuniq"])
d_rss = max(r[3] for r in rows["duckdb"])
print(f"med  {k_med:8.3f}  {rate(k_med)}  {k_rss:6.1f} | {q_med:14.3f}  {rate(q_med)}  {p_med:9.3f}  {d_rss:6.1f}")
print("(RSS columns: the maximum over the runs)")
print()
print(
    f"kuniq summary (run 1): {frames} frames, counted {summary['counted']}, rejected {summary['rejected']}, "
    f"late {summary['late']}, too late {summary['too_late']}, quarantined {summary['quarantined']}, "
    f"records {summary['records']}; its own elapsed {summary['elapsed_secs']:.3f} s"
)

# Correctness: the last revision of every minute against DuckDB's rows.
failures = []


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


def duckdb_minutes(path):
    with open(path) as f:
        return {int(m): int(n) for m, n in (line.split("\t") for line in f)}


first = open(f"{work}/kuniq-1.out", "rb").read()
for run in range(2, runs + 1):
    if open(f"{work}/kuniq-{run}.out", "rb").read() != first:
        failures.append(f"kuniq run {run} printed different records from run 1")
want = duckdb_minutes(f"{work}/duckdb-1.tsv")
for run in range(2, runs + 1):
    if duckdb_minutes(f"{work}/duckdb-{run}.tsv") != want:
        failures.append(f"DuckDB run {run} gave different rows from run 1")
got = kuniq_minutes(f"{work}/kuniq-1.out")
diff = sorted(m for m in want.keys() | got.keys() if want.get(m) != got.get(m))
for m in diff[:10]:
    failures.append(f"minute {m}: kuniq {got.get(m, 'missing')}, DuckDB {want.get(m, 'missing')}")
if len(diff) > 10:
    failures.append(f"... and {len(diff) - 10} more minutes differ")
print()
if failures:
    print(f"COUNTS DIFFER: {len(diff)} of {len(want | got)} minutes")
    for line in failures:
        print(f"  {line}")
else:
    print(f"counts:  identical for all {len(want)} minutes (kuniq's last revision per minute vs DuckDB's rows)")

ratio = q_med / k_med
ratio_process = p_med / k_med
# A fast wrong answer is no result: the speed target fails with the counts.
speed_ok = ratio >= 3.0 and not failures
rss_ok = k_rss < 100.0
print(f"speed:   DuckDB query / kuniq = {ratio:.2f}x (median {q_med:.3f} s / {k_med:.3f} s); "
      f"whole processes {ratio_process:.2f}x")
print(f"memory:  kuniq peak RSS {k_rss:.1f} MB of the 100 MB budget (DuckDB: {d_rss:.1f} MB)")
wrong = ", but the counts differ" if failures else ""
print(f"{'PASS' if speed_ok else 'FAIL'}: kuniq at least 3x faster than DuckDB ({ratio:.2f}x{wrong})")
print(f"{'PASS' if rss_ok else 'FAIL'}: kuniq peak RSS under 100 MB ({k_rss:.1f} MB)")
if failures:
    sys.exit(1)
if strict and not (speed_ok and rss_ok):
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
