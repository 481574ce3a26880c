#!/usr/bin/env bash
# Crash test, long version: kill -9 kuniq at seeded moments while frames are
# produced, restart it with the same group each time, then run it to the
# end and check the output topic against the oracle. Runs both delivery
# modes; prints a report meant for profiles/.
set -euo pipefail

# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
    cat <<'EOF'
Usage: scripts/chaos-crash.sh [-h|--help]

Runs the ignored test `chaos_long` of tests/chaos.rs (release build) once
per mode, on an Apache Kafka broker the test starts (scripts/broker.sh run
--kind kafka):

  at-least-once  FRAMES out-of-order 2 KB frames (kuniq gen -d 40 -p 20)
                 are produced live to a 4-partition topic while kuniq count
                 (Kafka to Kafka, --commit-interval 200ms) is killed with
                 SIGKILL KILLS times, 1 to 4 s after each start (seeded),
                 and restarted with the same group; each kill lands while
                 frames are still being produced. Then a last run with -e.
  exactly-once   the same with --exactly-once (Kafka transactions).

Checked after each: every minute of the input has a record on the output
topic, each minute's last revision equals the oracle's count (serde_json +
HashSet), and every record that repeats a (window, revision) is byte-identical
to the first. In exactly-once mode the output is read with
isolation.level=read_committed and no (window, revision) may show twice;
the report also counts the aborted records in the log.

Environment:
  FRAMES     frames, at-least-once run [default: 200000]
  EO_FRAMES  frames, exactly-once run [default: FRAMES]
  KILLS      kills per run [default: 10]
  SEED       seed of the input and the kill moments [default: 1]
  MODES      which runs [default: "at-least-once exactly-once"; with
             BROKER=tansu, "at-least-once"]
  BROKER     kafka (Apache Kafka) or tansu (memory storage, at-least-once
             only: tansu 0.6 has no transactions) [default: kafka]

Needs cargo, and java 17+ and mvn for Apache Kafka (scripts/broker.sh
install --kind kafka) or tansu (scripts/broker.sh install --kind tansu).
EOF
}

case "${1:-}" in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) die "unknown argument '$1' (see --help)" ;;
esac

frames="${FRAMES:-200000}"
eo_frames="${EO_FRAMES:-$frames}"
kills="${KILLS:-10}"
seed="${SEED:-1}"
broker="${BROKER:-kafka}"
[[ "$broker" == kafka || "$broker" == tansu ]] || die "BROKER must be kafka or tansu, not '$broker'"
default_modes="at-least-once exactly-once"
[[ "$broker" == kafka ]] || default_modes="at-least-once"
modes="${MODES:-$default_modes}"
for v in "$frames" "$eo_frames" "$kills" "$seed"; do
    [[ "$v" =~ ^[0-9]+$ ]] || die "FRAMES, EO_FRAMES, KILLS and SEED must be numbers, not '$v'"
done

"$KUNIQ_ROOT/scripts/broker.sh" install --kind "$broker"
log "Building the chaos test (release)..."
(cd "$KUNIQ_ROOT" && cargo test --release --test chaos --no-run --quiet) || die "building tests/chaos.rs failed"

echo "# kuniq crash test: kill -9 while Kafka to Kafka"
echo
machine_info
echo
echo "command: FRAMES=$frames EO_FRAMES=$eo_frames KILLS=$kills SEED=$seed BROKER=$broker scripts/chaos-crash.sh"
echo

status=0
for mode in $modes; do
    case "$mode" in
        at-least-once) n="$frames" ;;
        exactly-once)
            n="$eo_frames"
            [[ "$broker" == kafka ]] || die "MODES: exactly-once needs BROKER=kafka (tansu 0.6 has no transactions)"
            ;;
        *) die "MODES: unknown mode '$mode'" ;;
    esac
    echo "## $mode"
    echo
    started="$(now_ns)"
    if out="$(cd "$KUNIQ_ROOT" && KUNIQ_CHAOS_MODE="$mode" KUNIQ_CHAOS_BROKER="$broker" KUNIQ_CHAOS_FRAMES="$n" KUNIQ_CHAOS_KILLS="$kills" \
        KUNIQ_CHAOS_SEED="$seed" cargo test --release --quiet --test chaos -- --ignored --exact chaos_long \
        --nocapture 2>&1)"; then
        grep -E '^(chaos:|kill +[0-9]+:|last run:|outcome:|log:)' <<<"$out"
        echo "result: PASS ($(secs_between "$started" "$(now_ns)") s)"
    else
        printf '%s\n' "$out" | tail -n 40
        echo "result: FAIL"
        status=1
    fi
    echo
done
exit "$status"
