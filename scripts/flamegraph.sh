#!/usr/bin/env bash
# A CPU flamegraph of `kuniq count` on the benchmark input.
#
# Samples with `perf record -e cpu-clock` (a software timer): this VM exposes
# no hardware performance counters, so `cycles` and friends are unavailable.
# cpu-clock sampling shows where on-CPU time goes, kernel included (page
# faults, mapping), but not why (cache misses, branch misses).
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/flamegraph.sh [--parser NAME] [--call-graph dwarf|fp] [-h|--help]

Builds kuniq (release), makes sure the benchmark input exists, records
`kuniq count -i FILE --parser NAME` with
  perf record -e cpu-clock -F 999 -g --call-graph dwarf
and writes flamegraphs/kuniq-count-NAME.svg (inferno), then prints the
functions with the most self time.

Hardware counters are not available on this VM: sampling uses the
cpu-clock software event, i.e. on-CPU time, kernel time included.

Options:
  --parser NAME          frame parser: scan (default), sonic or serde; sonic and
                         serde are built in with their cargo feature.
  --call-graph dwarf|fp  how perf unwinds stacks [default: dwarf].
                         dwarf: copies 8 KiB of stack per sample and unwinds
                         with the binary's unwind tables; works on the normal
                         release build and shows inlined functions (the release
                         profile keeps line tables).
                         fp: frame pointers; needs a build with
                         -C force-frame-pointers=yes, made in
                         target/flamegraph-fp so the normal build is untouched;
                         cheaper to record, but inlined functions vanish into
                         their callers: with fat LTO, a trial put 63 % of all
                         self time in one frame (the worker thread's entry).
  -h, --help             this text.

Environment:
  KUNIQ_BENCH_FRAMES  frames in the generated input [default: 1000000]
  KUNIQ_BENCH_FILE    input path [default: bench-data/official.jsonl, or
                      bench-data/frames-N.jsonl for other sizes]
  PERF_FREQ           samples per second per CPU [default: 999]
  REPEAT              runs of kuniq recorded into one profile, for more
                      samples [default: 1]
  OUTPUT              SVG path [default: flamegraphs/kuniq-count-PARSER.svg]

Needs: perf (Debian: linux-perf), inferno (installed with
`cargo install inferno --locked` when inferno-flamegraph is missing).
The perf data stays in target/flamegraph/ for `perf report -i`.
EOF
}

parser=scan
call_graph="${CALL_GRAPH:-dwarf}"
while (($#)); do
    case "$1" in
        -h | --help) usage; exit 0 ;;
        --parser) [[ $# -ge 2 ]] || die "--parser needs a value"; parser="$2"; shift 2 ;;
        --parser=*) parser="${1#--parser=}"; shift ;;
        --call-graph) [[ $# -ge 2 ]] || die "--call-graph needs a value"; call_graph="$2"; shift 2 ;;
        --call-graph=*) call_graph="${1#--call-graph=}"; shift ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done
features="$(features_for_parser "$parser")"
case "$call_graph" in
    dwarf | fp) ;;
    *) die "--call-graph must be dwarf or fp, not '$call_graph'" ;;
esac
freq="${PERF_FREQ:-999}"
[[ "$freq" =~ ^[1-9][0-9]*$ ]] || die "PERF_FREQ must be a positive integer, not '$freq'"
repeat="${REPEAT:-1}"
[[ "$repeat" =~ ^[1-9][0-9]*$ ]] || die "REPEAT must be a positive integer, not '$repeat'"
command -v perf >/dev/null || die "perf is missing (Debian: apt-get install linux-perf)"

if ! command -v inferno-flamegraph >/dev/null || ! command -v inferno-collapse-perf >/dev/null; then
    log "Installing inferno (cargo install inferno --locked)..."
    cargo install inferno --locked || die "cargo install inferno failed"
    command -v inferno-flamegraph >/dev/null || die "inferno-flamegraph is not on PATH (is ~/.cargo/bin in PATH?)"
fi

# The input is generated with the normal release build either way.
build_release "$parser"
file="$(bench_input)"
out_dir="$KUNIQ_ROOT/target/flamegraph"
mkdir -p "$out_dir"

if [[ "$call_graph" == fp ]]; then
    # RUSTFLAGS replaces .cargo/config.toml's rustflags, so target-cpu=native
    # is repeated here; a separate target dir keeps the normal build intact.
    log "Building kuniq with frame pointers into target/flamegraph-fp..."
    (cd "$KUNIQ_ROOT" && RUSTFLAGS="-C target-cpu=native -C force-frame-pointers=yes" \
        CARGO_TARGET_DIR="$KUNIQ_ROOT/target/flamegraph-fp" \
        cargo build --release --quiet ${features:+--features "$features"}) || die "frame-pointer build failed"
    KUNIQ_BIN="$KUNIQ_ROOT/target/flamegraph-fp/release/kuniq"
    perf_call_graph=(--call-graph fp)
else
    perf_call_graph=(--call-graph dwarf)
fi

svg="${OUTPUT:-$KUNIQ_ROOT/flamegraphs/kuniq-count-$parser.svg}"
mkdir -p "$(dirname "$svg")"
data="$out_dir/perf-$parser-$call_graph.data"
kuniq_cmd=("$KUNIQ_BIN" count -i "$file" --parser "$parser" --progress never --summary text)
commit="$(git -C "$KUNIQ_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
frames_note="$(awk -v b="$(file_bytes "$file")" 'BEGIN { printf "%.2f GB", b / 1e9 }')"

warm_page_cache "$file"
log "Recording ${repeat} run(s) of: ${kuniq_cmd[*]#"$KUNIQ_ROOT/"}"
log "Sampling with the cpu-clock software event at $freq Hz ($call_graph call graphs): this VM has no hardware counters."
# shellcheck disable=SC2016 # the inner script expands its own arguments
perf record -e cpu-clock -F "$freq" -g "${perf_call_graph[@]}" -o "$data" --quiet -- \
    bash -c 'for ((i = 0; i < $1; i++)); do "${@:2}" >/dev/null; done' _ "$repeat" "${kuniq_cmd[@]}" \
    || die "perf record failed"

log "Collapsing stacks (perf script | inferno-collapse-perf)..."
collapsed="$out_dir/kuniq-count-$parser-$call_graph.folded"
perf script -i "$data" 2>/dev/null | inline_order | inferno-collapse-perf >"$collapsed"
[[ -s "$collapsed" ]] || die "no samples collapsed from $data"

title="kuniq count --parser $parser, $(basename "$file") ($frames_note), commit $commit"
subtitle="$(date -u +%Y-%m-%d), $(nproc) cores $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); perf cpu-clock (software; no hardware counters on this VM) at $freq Hz, $call_graph call graphs"
# Stack weights are cpu-clock periods: nanoseconds of CPU time.
inferno-flamegraph --title "$title" --subtitle "$subtitle" --countname ns <"$collapsed" >"$svg"

cpu="$(awk -v f="$freq" '{ n += $NF } END { printf "%.0f ms of CPU time, about %.0f samples", n / 1e6, n * f / 1e9 }' "$collapsed")"
echo "flamegraph: ${svg#"$KUNIQ_ROOT/"} ($cpu)"
echo "perf data:  ${data#"$KUNIQ_ROOT/"} (perf report -i ${data#"$KUNIQ_ROOT/"})"
echo
echo "Self time by function (leaf frames, all threads and processes, $cpu):"
awk '{
    n = $NF; stack = $0; sub(/ [0-9]+$/, "", stack)
    leaf = stack; sub(/.*;/, "", leaf)
    self[leaf] += n; total += n
} END {
    for (f in self) printf "%6.2f%%  %s\n", 100 * self[f] / total, f
}' "$collapsed" | sort -rn | head -n 15
