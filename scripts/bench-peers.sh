#!/usr/bin/env bash
# kuniq against the tools a data engineer would otherwise pick for a file
# replay, DuckDB, chDB (ClickHouse's engine in-process) and Polars, on the
# same file and the same cores, side by side.
#
# The target (the one-pipeline and scanner issues): replaying the
# one-million-frame official input, kuniq has at least 3x the throughput of
# the fastest peer, with peak memory under 100 MB. This script times every
# tool, checks that all give the same count for every minute, and prints a
# report meant to be pasted into profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'USAGE'
Usage: scripts/bench-peers.sh [--parser NAME] [--strict] [-h|--help]
       (scripts/bench-vs-duckdb.sh runs this script)

Times `kuniq count` against, on the same cached file, with as many threads
as cores (nproc) for each:
  duckdb  SELECT ts//60*60 AS minute, count(DISTINCT uid)
          FROM read_json(FILE, format='newline_delimited',
                         columns={'ts':'BIGINT','uid':'VARCHAR'}) GROUP BY 1
  chdb    SELECT intDiv(ts, 60) * 60 AS minute, uniqExact(uid)
          FROM file(FILE, JSONEachRow, 'ts Int64, uid String') GROUP BY minute
  polars  pl.scan_ndjson(FILE, schema={'ts': Int64, 'uid': String})
          .group_by(ts // 60 * 60).agg(uid.n_unique()).collect()
alternating the tools RUNS times each. Then prints every run, the medians,
kuniq's speed against each peer and against the fastest, kuniq's peak RSS
against the 100 MB budget, and PASS/FAIL for the targets.

What is timed:
  kuniq   wall clock of the whole process (start-up, mapping, parsing,
          counting, output), from the shell, with `date +%s%N`.
  peers   the query alone, inside Python with time.perf_counter;
          interpreter start, imports and connections are excluded. The
          whole Python process is timed too and shown.
The speed ratios use each peer's query time against kuniq's whole process:
the comparison that favours the peers.

Peak RSS is GNU time's %M (ru_maxrss): anonymous memory plus the mapped
file pages resident at the peak.

Exits 1 if the per-minute counts of kuniq (the last revision of every
minute) and any peer differ, or if two runs of a tool give different
results.

Options:
  --parser NAME   kuniq's frame parser: scan (default), sonic or serde;
                  sonic and serde are built in with their cargo feature.
  --strict        also exit 2 when a target FAILs (for CI; numbers on a
                  shared or small machine are noisy).
  -h, --help      this text.

Environment:
  RUNS                runs of each tool [default: 5]
  PEERS               peers to run, space-separated [default: duckdb chdb polars]
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 1000000]
  KUNIQ_BENCH_FILE    input path [default: bench-data/official.jsonl, or
                      bench-data/frames-N.jsonl for other sizes]; an existing
                      file not generated here is used as given
  DUCKDB_SPEC, CHDB_SPEC, POLARS_SPEC
                      pip requirements [default: duckdb, chdb, polars]

Needs: cargo, python3 (with venv; the peers go into target/bench-venv),
GNU time at /usr/bin/time (Debian: apt-get install time).

Quick smoke run:  KUNIQ_BENCH_FRAMES=50000 RUNS=2 scripts/bench-peers.sh
USAGE
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
read -r -a peers <<<"${PEERS:-duckdb chdb polars}"
((${#peers[@]})) || die "PEERS names no peer"
for peer in "${peers[@]}"; do
    case "$peer" in
        duckdb | chdb | polars) ;;
        *) die "unknown peer '$peer' in PEERS; expected duckdb, chdb or polars" ;;
    esac
done
threads="$(nproc)"
[[ -x /usr/bin/time ]] || die "GNU time is needed at /usr/bin/time to measure peak RSS (Debian: apt-get install time)"

build_release "$parser"
file="$(bench_input)"

venv="$KUNIQ_ROOT/target/bench-venv"
[[ -x "$venv/bin/python" ]] || python3 -m venv "$venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
py="$venv/bin/python"
for peer in "${peers[@]}"; do
    case "$peer" in
        duckdb) spec="${DUCKDB_SPEC:-duckdb}" ;;
        chdb) spec="${CHDB_SPEC:-chdb}" ;;
        polars) spec="${POLARS_SPEC:-polars}" ;;
    esac
    if ! "$py" -c "import $peer" 2>/dev/null; then
        log "Installing $spec into $venv..."
        "$venv/bin/pip" install --quiet "$spec" || die "pip install $spec failed"
    fi
done

work="$(mktemp -d "${TMPDIR:-/tmp}/kuniq-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# Each peer: one fresh Python process per run, so no run inherits another's
# memory or caches; it prints the query's seconds and writes minute<TAB>users
# rows.
cat >"$work/peer.py" <<'PY'
import sys
import time

peer, path, threads, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
literal = "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"

if peer == "duckdb":
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    sql = (
        "SELECT ts//60*60 AS minute, count(DISTINCT uid) FROM read_json("
        + "'" + path.replace("'", "''") + "'"
        + ", format='newline_delimited', columns={'ts':'BIGINT','uid':'VARCHAR'}) GROUP BY 1"
    )
    start = time.perf_counter()
    rows = con.execute(sql).fetchall()
elif peer == "chdb":
    import chdb

    sql = (
        f"SELECT intDiv(ts, 60) * 60 AS minute, uniqExact(uid) FROM file({literal}, JSONEachRow, "
        f"'ts Int64, uid String') GROUP BY minute SETTINGS max_threads = {threads}"
    )
    start = time.perf_counter()
    result = chdb.query(sql, "TabSeparated")
    rows = [tuple(int(x) for x in line.split("\t")) for line in result.bytes().decode().splitlines() if line]
elif peer == "polars":
    import os

    os.environ["POLARS_MAX_THREADS"] = str(threads)
    import polars as pl

    start = time.perf_counter()
    frame = (
        pl.scan_ndjson(path, schema={"ts": pl.Int64, "uid": pl.String})
        .group_by((pl.col("ts") // 60 * 60).alias("minute"))
        .agg(pl.col("uid").n_unique())
        .collect()
    )
    rows = frame.rows()
query_secs = time.perf_counter() - start
with open(out, "w") as f:
    for minute, users in sorted(rows):
        f.write(f"{minute}\t{users}\n")
print(f"{query_secs:.6f}")
PY

bytes="$(file_bytes "$file")"
kuniq_cmd=("$KUNIQ_BIN" count -i "$file" --parser "$parser" --workers "$threads" --progress never --summary json)

echo "# kuniq vs its peers (${peers[*]}): unique users per minute, file replay"
echo
machine_info
for peer in "${peers[@]}"; do
    printf '%-8s %s (Python %s)\n' "$peer:" "$("$py" -c "import $peer; print($peer.__version__)")" \
        "$("$py" -c 'import platform; print(platform.python_version())')"
done
echo
echo "input:   $file"
echo "         $bytes bytes ($(awk -v b="$bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')), page cache warmed with cat before the runs"
echo "kuniq:   ${kuniq_cmd[*]#"$KUNIQ_ROOT/"}"
echo "         timed: whole process, wall clock"
echo "peers:   $threads threads each; timed: the query alone in Python ('process' is the whole python run)"
echo "         duckdb: SELECT ts//60*60, count(DISTINCT uid) FROM read_json(FILE, columns={'ts':'BIGINT','uid':'VARCHAR'}) GROUP BY 1"
echo "         chdb:   SELECT intDiv(ts, 60) * 60, uniqExact(uid) FROM file(FILE, JSONEachRow, 'ts Int64, uid String') GROUP BY 1"
echo "         polars: scan_ndjson(FILE, schema={ts: Int64, uid: String}).group_by(ts // 60 * 60).agg(uid.n_unique())"
echo "runs:    $runs of each, alternating kuniq ${peers[*]}"
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
    for peer in "${peers[@]}"; do
        log "Run $i of $runs: $peer..."
        wall="$(run_timed "$peer-$i" "$work/$peer-$i.rss" "$py" "$work/peer.py" "$peer" "$file" "$threads" "$work/$peer-$i.tsv")"
        printf '%s\t%s\t%s\t%s\t%s\n' "$peer" "$i" "$(cat "$work/$peer-$i.out")" "$wall" "$(tail -n1 "$work/$peer-$i.rss")" \
            >>"$work/runs.tsv"
    done
done

set +e
PYTHONPATH="$KUNIQ_ROOT/scripts" "$py" - "$work" "$runs" "$bytes" "$strict" "${peers[@]}" <<'PY'
import json
import statistics
import sys
from kuniq_records import last_minutes, tsv_minutes

work, runs, size, strict = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
peers = sys.argv[5:]
tools = ["kuniq"] + peers

rows = {tool: [] for tool in tools}
with open(f"{work}/runs.tsv") as f:
    for line in f:
        tool, run, timed, process, rss_kib = line.split("\t")
        rows[tool].append((int(run), float(timed), float(process), int(rss_kib) * 1024 / 1e6))

summary = json.loads(open(f"{work}/kuniq-1.err").read().strip().splitlines()[-1])
frames = summary["frames"]

print("tool     run   timed s   frames/s   GB/s  process s  RSS MB")
for tool in tools:
    for run, timed, process, rss in rows[tool]:
        print(f"{tool:<8} {run:3d}  {timed:8.3f}  {frames / timed / 1e3:8.0f}k  {size / timed / 1e9:5.2f}  {process:9.3f}  {rss:6.1f}")
print("(timed: kuniq's whole process; a peer's query alone. process: the whole process.)")
print()
med = {}
print("median   timed s   frames/s   GB/s  process s  max RSS MB")
for tool in tools:
    timed = statistics.median(r[1] for r in rows[tool])
    process = statistics.median(r[2] for r in rows[tool])
    rss = max(r[3] for r in rows[tool])
    med[tool] = (timed, process, rss)
    print(f"{tool:<8} {timed:8.3f}  {frames / timed / 1e3:8.0f}k  {size / timed / 1e9:5.2f}  {process:9.3f}  {rss:10.1f}")
print()
print(
    f"kuniq summary (run 1): {frames} frames, counted {summary['counted']}, rejected {summary['rejected']}, "
    f"late {summary['late']}, too late {summary['too_late']}, quarantined {summary['quarantined']}, "
    f"records {summary['records']}; its own elapsed {summary['elapsed_secs']:.3f} s"
)

# Correctness: the last revision of every kuniq minute against each peer's rows.
failures = []


first = open(f"{work}/kuniq-1.out", "rb").read()
for run in range(2, runs + 1):
    if open(f"{work}/kuniq-{run}.out", "rb").read() != first:
        failures.append(f"kuniq run {run} printed different records from run 1")
got = last_minutes(f"{work}/kuniq-1.out")
for peer in peers:
    want = tsv_minutes(f"{work}/{peer}-1.tsv")
    for run in range(2, runs + 1):
        if tsv_minutes(f"{work}/{peer}-{run}.tsv") != want:
            failures.append(f"{peer} run {run} gave different rows from run 1")
    diff = sorted(m for m in want.keys() | got.keys() if want.get(m) != got.get(m))
    for m in diff[:10]:
        failures.append(f"minute {m}: kuniq {got.get(m, 'missing')}, {peer} {want.get(m, 'missing')}")
    if len(diff) > 10:
        failures.append(f"... and {len(diff) - 10} more minutes differ from {peer}")
print()
if failures:
    print("COUNTS DIFFER:")
    for line in failures:
        print(f"  {line}")
else:
    print(f"counts:  identical for all {len(got)} minutes (kuniq's last revision per minute vs every peer's rows)")

k = med["kuniq"][0]
for peer in peers:
    print(f"speed:   {peer} query / kuniq = {med[peer][0] / k:.2f}x (median {med[peer][0]:.3f} s / {k:.3f} s); "
          f"whole processes {med[peer][1] / k:.2f}x")
fastest = min(peers, key=lambda p: med[p][0])
ratio = med[fastest][0] / k
k_rss = med["kuniq"][2]
print(f"memory:  kuniq peak RSS {k_rss:.1f} MB of the 100 MB budget ("
      + ", ".join(f"{p} {med[p][2]:.1f} MB" for p in peers) + ")")
# A fast wrong answer is no result: the speed target fails with the counts.
speed_ok = ratio >= 3.0 and not failures
rss_ok = k_rss < 100.0
wrong = ", but the counts differ" if failures else ""
print(f"{'PASS' if speed_ok else 'FAIL'}: kuniq at least 3x faster than the fastest peer, {fastest} ({ratio:.2f}x{wrong})")
print(f"{'PASS' if rss_ok else 'FAIL'}: kuniq peak RSS under 100 MB ({k_rss:.1f} MB)")
if failures:
    sys.exit(1)
if strict and not (speed_ok and rss_ok):
    sys.exit(2)
PY
status=$?
set -e
exit "$status"
