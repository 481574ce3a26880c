#!/usr/bin/env bash
# A local tansu broker (Kafka protocol, Apache-2.0) for trying kuniq's Kafka
# source and sink by hand: install it, start and stop it in the background,
# create topics. The integration tests do not use this script to run brokers;
# they start their own on free ports (tests/common/broker.rs). They do need
# the binary that `install` provides.
#
# Usage: scripts/broker.sh COMMAND [OPTIONS]
#
#   install                 cargo install tansu (pinned version, with memory
#                           and sqlite storage); skipped when an installed
#                           tansu already answers `--version`
#   start [--port N] [--storage memory|sqlite:PATH]
#                           start a broker in the background on 127.0.0.1:N
#                           and wait until it answers; memory is the default;
#                           sqlite:PATH keeps topics and records in the file
#                           PATH (relative to the current directory), so they
#                           survive a restart
#   topic NAME PARTITIONS [--port N]
#                           create a topic; an existing one is left as is
#   stop [--port N]         stop the broker this script started on port N
#   status                  list the brokers this script started
#
# Defaults: port 9092. Runtime files live in target/broker/:
# tansu-PORT.log (the broker's output) and tansu-PORT.pid.
#
# Environment:
#   TANSU                     the tansu binary [default: tansu on PATH, else
#                             $CARGO_HOME/bin/tansu]
#   TANSU_VERSION             the version `install` installs [default: 0.6.0,
#                             the release the project measured]
#   BROKER_START_TIMEOUT_SECS how long `start` waits [default: 30]
#   TANSU_LOG                 the broker's RUST_LOG filter [default: warn]
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; }
log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Relative paths on the command line are the caller's; everything else is
# relative to the repository root.
caller_dir="$(pwd)"
cd "$(dirname "$0")/.."
root="$(pwd)"
run_dir="$root/target/broker"

readonly default_port=9092
readonly tansu_version="${TANSU_VERSION:-0.6.0}"
readonly start_timeout_secs="${BROKER_START_TIMEOUT_SECS:-30}"
# Every tansu CLI call is bounded: against a port nobody answers on,
# `tansu topic list` retries for about 26 s before it gives up.
readonly cli_timeout_secs=15
# tansu's tracing honours NO_COLOR; without it the log is full of escapes.
export NO_COLOR=1

# find_tansu: prints the tansu binary's path, or nothing when there is none.
find_tansu() {
    if [[ -n "${TANSU:-}" ]]; then
        printf '%s\n' "$TANSU"
    elif command -v tansu >/dev/null 2>&1; then
        command -v tansu
    elif [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/tansu" ]]; then
        printf '%s\n' "${CARGO_HOME:-$HOME/.cargo}/bin/tansu"
    fi
}

# need_tansu: sets $tansu or stops with how to install it.
need_tansu() {
    tansu="$(find_tansu)"
    [[ -n "$tansu" && -x "$tansu" ]] \
        || die "tansu is not installed; run scripts/broker.sh install (about 7-11 minutes) or set TANSU"
}

# tansu_cli ARGS...: the tansu CLI, bounded by $cli_timeout_secs, with none of
# the environment variables tansu reads as defaults (ADVERTISED_LISTENER_URL
# would pick the broker of `tansu cat`, OTEL_EXPORTER_OTLP_ENDPOINT would make
# it export traces).
tansu_cli() {
    timeout "$cli_timeout_secs" env -u ADVERTISED_LISTENER_URL -u LISTENER_URL -u STORAGE_ENGINE \
        -u CLUSTER_ID -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u DATA_LAKE \
        "$tansu" "$@"
}

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# check_port VALUE: stops unless VALUE is a TCP port number.
check_port() {
    if ! [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] || (($1 > 65535)); then
        die "--port needs a number in 1..65535, not '$1'"
    fi
}

pid_file() { printf '%s/tansu-%s.pid\n' "$run_dir" "$1"; }
log_file() { printf '%s/tansu-%s.log\n' "$run_dir" "$1"; }

# running_pid PORT: prints the pid of the broker this script started on PORT
# when it is still alive (and still tansu, not a recycled pid).
running_pid() {
    local file pid
    file="$(pid_file "$1")"
    [[ -f "$file" ]] || return 1
    pid="$(cat "$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        && [[ "$(cat "/proc/$pid/comm" 2>/dev/null || echo tansu)" == tansu ]] || return 1
    printf '%s\n' "$pid"
}

# log_tail PORT: the end of the broker's log, indented, for error messages.
log_tail() { tail -n 20 "$(log_file "$1")" 2>/dev/null | sed 's/^/    /' >&2 || true; }

cmd_install() {
    [[ $# -eq 0 ]] || die "install takes no arguments"
    local found
    found="$(find_tansu)"
    if [[ -n "${TANSU:-}" ]] && ! "$TANSU" --version >/dev/null 2>&1; then
        die "TANSU=$TANSU does not run; unset it to install tansu with cargo"
    fi
    if [[ -n "$found" ]] && "$found" --version >/dev/null 2>&1; then
        local have
        have="$("$found" --version)"
        log "$have is already installed at $found; skipping the install."
        [[ "$have" == "tansu $tansu_version" ]] \
            || log "warning: the project measured tansu $tansu_version; set TANSU to that one if results differ."
        # The memory and sqlite storage engines are cargo features; the help
        # text lists the ones compiled in.
        "$found" --help | grep -q 'Storage engines:.*dynostore.*libsql' \
            || die "$found lacks the dynostore or libsql storage engine; reinstall it with: cargo install tansu --locked --force --version $tansu_version --features dynostore,libsql"
        return
    fi
    command -v cargo >/dev/null 2>&1 || die "cargo is not on PATH; install Rust first (https://rustup.rs)"
    log "Installing tansu $tansu_version with cargo (features dynostore, libsql); this compiles about 600 crates and takes 7-11 minutes on 2 cores..."
    local started=$SECONDS
    cargo install tansu --locked --version "$tansu_version" --features dynostore,libsql \
        || die "cargo install tansu failed (see cargo's output above)"
    local elapsed=$((SECONDS - started))
    tansu="$(find_tansu)"
    [[ -n "$tansu" ]] || die "cargo installed tansu but it is neither on PATH nor in ${CARGO_HOME:-$HOME/.cargo}/bin"
    log "Installed $("$tansu" --version) at $tansu in $((elapsed / 60)) min $((elapsed % 60)) s."
}

cmd_start() {
    local port=$default_port storage=memory
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
            --storage) [[ $# -ge 2 ]] || die "--storage needs a value"; storage="$2"; shift 2 ;;
            *) die "start: unknown argument '$1' (see --help)" ;;
        esac
    done
    check_port "$port"
    need_tansu

    # tansu opens its sqlite file relative to its working directory, whatever
    # the URL says (sqlite:///abs/x.db is cwd/abs/x.db), so the broker runs in
    # the file's directory and the URL names only the file.
    local work_dir="$run_dir" engine
    case "$storage" in
        memory) engine="memory://tansu/" ;;
        sqlite:?*)
            local path="${storage#sqlite:}"
            [[ "$path" == /* ]] || path="$caller_dir/$path"
            local name
            name="$(basename "$path")"
            # The file name is the URL's host, so it must be one.
            [[ "$name" =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] \
                || die "the sqlite file name '$name' must be letters, digits, '.', '_' or '-'"
            mkdir -p "$(dirname "$path")"
            work_dir="$(cd "$(dirname "$path")" && pwd)"
            engine="sqlite://$name"
            ;;
        *) die "--storage must be memory or sqlite:PATH, not '$storage'" ;;
    esac

    mkdir -p "$run_dir"
    local pid
    [[ "$start_timeout_secs" =~ ^[1-9][0-9]*$ ]] \
        || die "BROKER_START_TIMEOUT_SECS must be a positive integer, not '$start_timeout_secs'"
    if pid="$(running_pid "$port")"; then
        die "a broker started by this script already runs on port $port (pid $pid); stop it first"
    fi
    port_open "$port" && die "port $port is already in use by another process; pick one with --port"

    local url="tcp://127.0.0.1:$port" log
    log="$(log_file "$port")"
    printf '== %s: starting %s on %s with %s (working directory %s)\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$("$tansu" --version)" "$url" "$engine" "$work_dir" >>"$log"
    # nohup: the broker outlives the terminal this was started from. The
    # listener must be 127.0.0.1, not localhost: tansu listens on IPv4 only.
    (
        cd "$work_dir"
        exec nohup env -u ADVERTISED_LISTENER_URL -u LISTENER_URL -u STORAGE_ENGINE -u CLUSTER_ID \
            -u SCHEMA_REGISTRY -u OTEL_EXPORTER_OTLP_ENDPOINT -u DATA_LAKE RUST_LOG="${TANSU_LOG:-warn}" \
            "$tansu" broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine "$engine"
    ) </dev/null >>"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$(pid_file "$port")"

    # Ready when the port accepts connections and tansu answers a metadata
    # request; the broker must still be alive then (it exits, with status 0,
    # when the port is taken, and the answer would have come from the other
    # process).
    local started_ns deadline_ns
    started_ns="$(date +%s%N)"
    deadline_ns=$((started_ns + start_timeout_secs * 1000000000))
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$(pid_file "$port")"
            log "error: tansu exited while starting; the end of $log:"
            log_tail "$port"
            exit 1
        fi
        if port_open "$port" && tansu_cli topic list --broker "$url" >/dev/null 2>&1 && kill -0 "$pid" 2>/dev/null; then
            break
        fi
        if (($(date +%s%N) >= deadline_ns)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$(pid_file "$port")"
            log "error: tansu did not answer on $url within ${start_timeout_secs} s; stopped it. The end of $log:"
            log_tail "$port"
            exit 1
        fi
        sleep 0.1
    done
    local ms=$((($(date +%s%N) - started_ns) / 1000000))
    log "tansu broker ready on $url in $ms ms (pid $pid, storage $engine, log ${log#"$root"/})."
}

cmd_topic() {
    [[ $# -ge 2 ]] || die "usage: scripts/broker.sh topic NAME PARTITIONS [--port N]"
    local name="$1" partitions="$2" port=$default_port
    shift 2
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
            *) die "topic: unknown argument '$1' (see --help)" ;;
        esac
    done
    check_port "$port"
    [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, not '$partitions'"
    need_tansu
    port_open "$port" || die "no broker answers on port $port; start one with: scripts/broker.sh start --port $port"

    local url="tcp://127.0.0.1:$port" err
    if err="$(tansu_cli topic create --broker "$url" --partitions "$partitions" "$name" 2>&1)"; then
        log "Created topic $name with $partitions partitions on $url."
    elif [[ "$err" == *"already exists"* ]]; then
        log "Topic $name already exists on $url; left as is (its partition count was not checked)."
    else
        die "could not create topic $name on $url: $err"
    fi
}

cmd_stop() {
    local port=$default_port
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
            *) die "stop: unknown argument '$1' (see --help)" ;;
        esac
    done
    check_port "$port"
    local pid
    if ! pid="$(running_pid "$port")"; then
        rm -f "$(pid_file "$port")"
        log "No broker started by this script runs on port $port; nothing to stop."
        return
    fi
    # SIGTERM first: tansu shuts down cleanly on it (sqlite checkpoints).
    kill "$pid"
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "tansu (pid $pid) ignored SIGTERM for 10 s; killing it."
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pid_file "$port")"
    log "Stopped the broker on port $port (pid $pid)."
}

# status: one line per broker this script started. Exit status 0 when there
# is at least one and all of them run, 1 otherwise.
cmd_status() {
    [[ $# -eq 0 ]] || die "status takes no arguments"
    local file found=0 down=0
    shopt -s nullglob
    for file in "$run_dir"/tansu-*.pid; do
        found=1
        local port
        port="$(basename "$file" .pid)"
        port="${port#tansu-}"
        local pid storage
        if pid="$(running_pid "$port")"; then
            storage="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 's/.*--storage-engine \([^ ]*\).*/\1/p')"
            [[ "$storage" == sqlite* ]] && storage="$storage in $(readlink "/proc/$pid/cwd" 2>/dev/null || echo '?')"
            local answers="answers"
            port_open "$port" || answers="does NOT answer"
            printf 'port %s: running, pid %s, storage %s, %s on tcp://127.0.0.1:%s, log %s\n' \
                "$port" "$pid" "${storage:-unknown}" "$answers" "$port" "${run_dir#"$root"/}/tansu-$port.log"
            [[ "$answers" == answers ]] || down=1
        else
            printf 'port %s: NOT running (stale pid file %s; see %s)\n' \
                "$port" "${file#"$root"/}" "${run_dir#"$root"/}/tansu-$port.log"
            down=1
        fi
    done
    if ((found == 0)); then
        echo "No brokers started by scripts/broker.sh (no pid files in ${run_dir#"$root"/})."
        return 1
    fi
    return "$down"
}

case "${1:-}" in
    install | start | topic | stop | status)
        command="$1"
        shift
        "cmd_$command" "$@"
        ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) log "unknown command '$1'"; usage >&2; exit 2 ;;
esac
