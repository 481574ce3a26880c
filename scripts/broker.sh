#!/usr/bin/env bash
# A local Kafka broker for kuniq's tests, benchmarks and demo, and for
# trying kuniq by hand: install it, start and stop it in the background,
# create topics. Two kinds:
#
#   kafka   Apache Kafka (the broker kuniq's users run), assembled from
#           Maven Central with mvn (scripts/kafka/pom.xml) and run as a
#           single-node KRaft broker and controller on 127.0.0.1. Needs java
#           (17 or newer) and mvn.
#   tansu   tansu (a Kafka-protocol broker in Rust), installed with cargo.
#           Starts in under a second and can keep its data in sqlite.
#
# Usage: scripts/broker.sh COMMAND [--kind kafka|tansu] [OPTIONS]
#
#   install                 kafka: copy the pinned Apache Kafka jars and
#                           what they need at run time from Maven Central
#                           into the cache (about 90 jars, 120 MB); tansu:
#                           cargo install tansu (pinned version, memory and
#                           sqlite storage). Skipped when already there.
#   start [--port N]        start a broker in the background on 127.0.0.1:N
#                           and return once it answers.
#         kafka only: [--controller-port N] the KRaft controller's port
#                           [default: a free one]
#                     [--sasl-ssl-port N --tls-dir DIR]
#                           also listen with SASL_SSL (SCRAM-SHA-512) on N,
#                           with the key and certificate chain in
#                           DIR/broker.pem (PEM, unencrypted PKCS#8 key), and
#                           turn on ACLs: users named in --super-user may do
#                           anything, others only what an ACL grants them
#                     [--scram-user NAME:PASSWORD]... a SCRAM-SHA-512 user
#                     [--super-user NAME]... a user with every right
#                     [--data-dir DIR] where the broker keeps its data
#                           [default: target/broker/kafka-N/data]
#         tansu only: [--storage memory|sqlite:PATH] memory is the default;
#                           sqlite:PATH keeps topics and records in PATH
#                           (relative to the current directory)
#   run [same options as start]
#                           kafka only, for test harnesses: start the broker,
#                           print "ready 127.0.0.1:N" on stdout, then stop it
#                           and remove its data when stdin closes (the
#                           harness exits or dies) or on SIGTERM.
#   topic NAME PARTITIONS [--port N]
#                           create a topic; an existing one is left as is
#   stop [--port N]         stop the broker this script started on port N;
#                           a kafka broker's data is removed
#   status                  list the brokers this script started (both kinds
#                           unless --kind is given)
#
# Defaults: port 9092; kind $BROKER_KIND, else kafka. Runtime files live in
# target/broker/: tansu-PORT.log and tansu-PORT.pid; kafka-PORT/ (config,
# data, kafka.log, kafka.pid).
#
# Environment:
#   BROKER_KIND               the kind when --kind is not given [default: kafka]
#   BROKER_START_TIMEOUT_SECS how long `start` waits [default: 30 for tansu,
#                             90 for kafka]
#   KAFKA_VERSION             the Apache Kafka version `install` fetches
#                             [default: 4.1.1, the release the project measured]
#   KUNIQ_CACHE               where the Kafka jars go [default:
#                             $XDG_CACHE_HOME/kuniq, else ~/.cache/kuniq]
#   KAFKA_HEAP                the broker's Java heap [default: 512m]
#   JAVA                      the java binary [default: $JAVA_HOME/bin/java,
#                             else java on PATH]
#   TANSU                     the tansu binary [default: tansu on PATH, else
#                             $CARGO_HOME/bin/tansu]
#   TANSU_VERSION             the tansu version `install` installs
#                             [default: 0.6.0, the release the project measured]
#   TANSU_LOG                 tansu's RUST_LOG filter [default: warn]
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
readonly kafka_version="${KAFKA_VERSION:-4.1.1}"
# Pinned so a machine that already has it never reaches for another one.
readonly maven_dependency_plugin=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
readonly kafka_home="${KUNIQ_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuniq}/kafka-$kafka_version"
# Every tansu CLI call is bounded: against a port nobody answers on,
# `tansu topic list` retries for about 26 s before it gives up.
readonly cli_timeout_secs=15
# tansu's tracing honours NO_COLOR; without it the log is full of escapes.
export NO_COLOR=1

# abs PATH: PATH made absolute against the caller's directory.
abs() { if [[ "$1" == /* ]]; then printf '%s\n' "$1"; else printf '%s\n' "$caller_dir/$1"; fi; }

# port_open PORT: true when something accepts TCP connections on 127.0.0.1:PORT.
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# check_port VALUE: stops unless VALUE is a TCP port number.
check_port() {
    if ! [[ "$1" =~ ^[1-9][0-9]{0,4}$ ]] || (($1 > 65535)); then
        die "a port must be a number in 1..65535, not '$1'"
    fi
}

# free_port: a loopback port nothing listens on a moment ago.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null \
        || die "python3 is needed to pick a free port; pass --controller-port"
}

# start_timeout DEFAULT: BROKER_START_TIMEOUT_SECS or DEFAULT, checked.
start_timeout() {
    local secs="${BROKER_START_TIMEOUT_SECS:-$1}"
    [[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "BROKER_START_TIMEOUT_SECS must be a positive integer, not '$secs'"
    printf '%s\n' "$secs"
}

# port_option COMMAND ARGS...: the --port value (default 9092) of a command
# whose only option is --port, checked.
port_option() {
    local command="$1" port=$default_port
    shift
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --port) [[ $# -ge 2 ]] || die "--port needs a value"; port="$2"; shift 2 ;;
            *) die "$command: unknown argument '$1' (see --help)" ;;
        esac
    done
    check_port "$port"
    printf '%s\n' "$port"
}

# live_pid FILE COMM: the pid in FILE when that process is still alive and
# still COMM (not a recycled pid).
live_pid() {
    local pid
    [[ -f "$1" ]] || return 1
    pid="$(cat "$1")"
    [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null \
        && [[ "$(cat "/proc/$pid/comm" 2>/dev/null || echo "$2")" == "$2" ]] || return 1
    printf '%s\n' "$pid"
}

################################################################ tansu

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
        || die "tansu is not installed; run scripts/broker.sh install --kind tansu (about 7-11 minutes) or set TANSU"
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

pid_file() { printf '%s/tansu-%s.pid\n' "$run_dir" "$1"; }
log_file() { printf '%s/tansu-%s.log\n' "$run_dir" "$1"; }

# running_pid PORT: the pid of the tansu this script started on PORT, while
# it runs.
running_pid() { live_pid "$(pid_file "$1")" tansu; }

# log_tail PORT: the end of the broker's log, indented, for error messages.
log_tail() { tail -n 20 "$(log_file "$1")" 2>/dev/null | sed 's/^/    /' >&2 || true; }

tansu_install() {
    [[ $# -eq 0 ]] || die "install takes no arguments besides --kind"
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

tansu_start() {
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
            local path
            path="$(abs "${storage#sqlite:}")"
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
    local pid start_timeout_secs
    start_timeout_secs="$(start_timeout 30)"
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

tansu_topic() {
    [[ $# -ge 2 ]] || die "usage: scripts/broker.sh topic NAME PARTITIONS [--port N]"
    local name="$1" partitions="$2" port
    shift 2
    port="$(port_option topic "$@")"
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

tansu_stop() {
    local port
    port="$(port_option stop "$@")"
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
tansu_status() {
    [[ $# -eq 0 ]] || die "status takes no arguments besides --kind"
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
    ((found == 1)) || return 2
    return "$down"
}

################################################################ Apache Kafka

# find_java: sets $java or stops with how to get one.
find_java() {
    if [[ -n "${JAVA:-}" ]]; then
        java="$JAVA"
    elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
        java="$JAVA_HOME/bin/java"
    else
        java="$(command -v java || true)"
    fi
    [[ -n "$java" && -x "$java" ]] \
        || die "java is not installed; Apache Kafka $kafka_version needs Java 17 or newer (Debian: apt-get install openjdk-17-jre-headless), or set JAVA"
    local major
    major="$("$java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = \([0-9]*\).*/\1/p')"
    [[ "$major" =~ ^[0-9]+$ ]] || die "$java does not run (java -version failed)"
    ((major >= 17)) || die "$java is Java $major; Apache Kafka $kafka_version needs Java 17 or newer (set JAVA or JAVA_HOME)"
}

kafka_libs() { printf '%s/libs\n' "$kafka_home"; }

# need_kafka: stops unless the Kafka jars are in the cache.
need_kafka() {
    [[ -f "$kafka_home/.complete" ]] \
        || die "Apache Kafka $kafka_version is not installed in $kafka_home; run scripts/broker.sh install --kind kafka (about 100 MB from Maven Central)"
}

# kafka_java CLASS ARGS...: runs a Kafka class on the cached class path.
kafka_java() {
    "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$kafka_home/log4j2-tools.properties" \
        -cp "$(kafka_libs)/*" "$@"
}

kafka_install() {
    [[ $# -eq 0 ]] || die "install takes no arguments besides --kind"
    find_java
    if [[ -f "$kafka_home/.complete" ]]; then
        log "Apache Kafka $kafka_version is already installed in $kafka_home; skipping the install."
        return
    fi
    command -v mvn >/dev/null 2>&1 \
        || die "mvn is not installed; it fetches Apache Kafka from Maven Central (Debian: apt-get install maven)"
    log "Installing Apache Kafka $kafka_version from Maven Central into $kafka_home (about 100 MB)..."
    local started=$SECONDS staging="$kafka_home.partial" mvn_log
    rm -rf "$staging"
    mkdir -p "$staging"
    mvn_log="$staging/mvn.log"
    if ! mvn -B -q -f "$root/scripts/kafka/pom.xml" -Dkafka.version="$kafka_version" \
        "$maven_dependency_plugin:copy-dependencies" -DincludeScope=runtime \
        -DoutputDirectory="$staging/libs" >"$mvn_log" 2>&1; then
        sed 's/^/    /' "$mvn_log" | tail -n 25 >&2
        if grep -qiE 'could not transfer|unknown ?host|connect(ion)? (timed out|refused)|network is unreachable' "$mvn_log"; then
            die "mvn could not reach Maven Central (see above); check the network or the proxy in ~/.m2/settings.xml, then run this again"
        fi
        die "mvn could not fetch Apache Kafka $kafka_version (see above; the full output is in $mvn_log)"
    fi
    ls "$staging/libs"/kafka_2.13-"$kafka_version".jar >/dev/null 2>&1 \
        || die "mvn finished but $staging/libs has no kafka_2.13-$kafka_version.jar"
    # The broker's log: warnings and errors, and the few lines that say when
    # it is up. The tools (storage format, topics) print only errors.
    cat >"$staging/log4j2.properties" <<'PROPS'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.server.name = kafka.server.KafkaRaftServer
logger.server.level = info
PROPS
    cat >"$staging/log4j2-tools.properties" <<'PROPS'
status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %m%n
rootLogger.level = error
rootLogger.appenderRef.err.ref = err
PROPS
    rm -f "$mvn_log"
    touch "$staging/.complete"
    rm -rf "$kafka_home"
    mv "$staging" "$kafka_home"
    log "Installed Apache Kafka $kafka_version ($(find "$kafka_home/libs" -name '*.jar' | wc -l) jars) in $((SECONDS - started)) s."
}

kafka_dir() { printf '%s/kafka-%s\n' "$run_dir" "$1"; }

# kafka_running_pid PORT: the pid of the Apache Kafka this script started on
# PORT, while it runs.
kafka_running_pid() { live_pid "$(kafka_dir "$1")/kafka.pid" java; }

kafka_log_tail() { tail -n 30 "$(kafka_dir "$1")/kafka.log" 2>/dev/null | sed 's/^/    /' >&2 || true; }

# kafka_launch ARGS...: parses start's options, writes the broker's config,
# formats its storage, starts it in the background and waits until it
# answers. Sets $port, $pid and $dir.
kafka_launch() {
    port=$default_port
    local controller_port="" sasl_port="" tls_dir="" data_dir="" users=() supers=()
    while [[ $# -gt 0 ]]; do
        [[ "$1" == --* && $# -ge 2 ]] || die "start: unknown argument '$1', or an option without its value (see --help)"
        case "$1" in
            --port) port="$2" ;;
            --controller-port) controller_port="$2" ;;
            --sasl-ssl-port) sasl_port="$2" ;;
            --tls-dir) tls_dir="$(abs "$2")" ;;
            --scram-user) users+=("$2") ;;
            --super-user) supers+=("$2") ;;
            --data-dir) data_dir="$(abs "$2")" ;;
            --storage) die "--storage is for --kind tansu; Apache Kafka keeps its data in --data-dir" ;;
            *) die "start: unknown option '$1' (see --help)" ;;
        esac
        shift 2
    done
    check_port "$port"
    [[ -n "$controller_port" ]] || controller_port="$(free_port)"
    check_port "$controller_port"
    if [[ -n "$sasl_port" ]]; then
        check_port "$sasl_port"
        [[ -n "$tls_dir" ]] || die "--sasl-ssl-port needs --tls-dir DIR with DIR/broker.pem"
        [[ -f "$tls_dir/broker.pem" ]] || die "$tls_dir/broker.pem is missing (the broker's key and certificate chain, PEM)"
    elif [[ -n "$tls_dir" || ${#users[@]} -gt 0 || ${#supers[@]} -gt 0 ]]; then
        die "--tls-dir, --scram-user and --super-user need --sasl-ssl-port"
    fi
    # In a variable: written inline, bash reads the bracket expression's
    # escapes literally and the pattern matches no NAME:PASSWORD at all.
    local user user_pattern='^[A-Za-z0-9_.-]+:[^],"]+$'
    for user in "${users[@]}"; do
        [[ "$user" =~ $user_pattern ]] \
            || die "--scram-user wants NAME:PASSWORD (name of letters, digits, '_', '.', '-'; no ',', ']' or '\"' in the password)"
    done
    find_java
    need_kafka

    dir="$(kafka_dir "$port")"
    local pid_old
    if pid_old="$(kafka_running_pid "$port")"; then
        die "an Apache Kafka broker started by this script already runs on port $port (pid $pid_old); stop it first"
    fi
    local p
    for p in "$port" "$controller_port" ${sasl_port:+"$sasl_port"}; do
        port_open "$p" && die "port $p is already in use by another process; pick another with --port, --controller-port or --sasl-ssl-port"
    done
    rm -rf "$dir"
    mkdir -p "$dir"
    [[ -n "$data_dir" ]] || data_dir="$dir/data"
    mkdir -p "$data_dir"
    [[ -z "$(ls -A "$data_dir")" ]] || die "--data-dir $data_dir is not empty; the broker formats a fresh one"
    printf '%s\n' "$data_dir" >"$dir/data-dir"

    local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port"
    local advertised="PLAINTEXT://127.0.0.1:$port"
    local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    if [[ -n "$sasl_port" ]]; then
        listeners+=",SASL_SSL://127.0.0.1:$sasl_port"
        advertised+=",SASL_SSL://127.0.0.1:$sasl_port"
        protocols+=",SASL_SSL:SASL_SSL"
    fi
    # One node: every internal topic has one replica and needs one in sync;
    # few partitions for the internal topics so the broker starts quickly;
    # no delay before a group's first rebalance; a log cleaner buffer that
    # fits a small heap.
    cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$protocols
log.dirs=$data_dir
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.cleaner.dedupe.buffer.size=4194304
log.cleaner.threads=1
num.network.threads=2
num.io.threads=2
auto.create.topics.enable=false
PROPS
    if [[ -n "$sasl_port" ]]; then
        local super="User:ANONYMOUS" name
        for name in "${supers[@]}"; do super+=";User:$name"; done
        cat >>"$dir/server.properties" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
ssl.keystore.type=PEM
ssl.keystore.location=$tls_dir/broker.pem
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=$super
allow.everyone.if.no.acl.found=false
PROPS
    fi

    local log="$dir/kafka.log" cluster_id format_args=()
    for user in "${users[@]}"; do
        format_args+=(--add-scram "SCRAM-SHA-512=[name=${user%%:*},password=${user#*:}]")
    done
    cluster_id="$(kafka_java kafka.tools.StorageTool random-uuid 2>>"$log")" \
        || { kafka_log_tail "$port"; die "kafka-storage random-uuid failed"; }
    kafka_java kafka.tools.StorageTool format --standalone -t "$cluster_id" -c "$dir/server.properties" \
        "${format_args[@]}" >>"$log" 2>&1 \
        || { kafka_log_tail "$port"; die "kafka-storage format failed; the end of $log above"; }

    local heap="${KAFKA_HEAP:-512m}" timeout_secs
    timeout_secs="$(start_timeout 90)"
    printf '== %s: starting Apache Kafka %s on 127.0.0.1:%s (controller %s%s), heap %s\n' \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$kafka_version" "$port" "$controller_port" \
        "${sasl_port:+, SASL_SSL $sasl_port}" "$heap" >>"$log"
    # nohup and setsid: the broker outlives the terminal and the process
    # group it was started from.
    nohup setsid "$java" -Xms"$heap" -Xmx"$heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$kafka_home/log4j2.properties" \
        -cp "$(kafka_libs)/*" kafka.Kafka "$dir/server.properties" </dev/null >>"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/kafka.pid"

    # Ready when the broker says it started and its port accepts connections.
    local started_ns deadline_ns
    started_ns="$(date +%s%N)"
    deadline_ns=$((started_ns + timeout_secs * 1000000000))
    while true; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$dir/kafka.pid"
            log "error: Apache Kafka exited while starting; the end of $log:"
            kafka_log_tail "$port"
            exit 1
        fi
        if grep -q 'Kafka Server started' "$log" && port_open "$port"; then
            break
        fi
        if (($(date +%s%N) >= deadline_ns)); then
            kafka_kill "$pid"
            rm -f "$dir/kafka.pid"
            log "error: Apache Kafka did not come up on 127.0.0.1:$port within $timeout_secs s; stopped it. The end of $log:"
            kafka_log_tail "$port"
            exit 1
        fi
        sleep 0.2
    done
    local ms=$((($(date +%s%N) - started_ns) / 1000000))
    log "Apache Kafka $kafka_version ready on 127.0.0.1:$port${sasl_port:+ (SASL_SSL on 127.0.0.1:$sasl_port)} in $ms ms (pid $pid, log ${log#"$root"/})."
}

# kafka_kill PID: SIGTERM (a clean shutdown), SIGKILL after 20 s.
kafka_kill() {
    local pid="$1" i
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "Apache Kafka (pid $pid) ignored SIGTERM for 20 s; killing it."
    kill -KILL "$pid" 2>/dev/null || true
}

# kafka_remove_data PORT: removes the broker's data directory and its runtime
# directory (the log goes with it).
kafka_remove_data() {
    local dir data
    dir="$(kafka_dir "$1")"
    data="$(cat "$dir/data-dir" 2>/dev/null || true)"
    [[ -n "$data" ]] && rm -rf "$data"
    rm -rf "$dir"
}

kafka_start() {
    local port pid dir
    kafka_launch "$@"
}

# run: kafka_launch, then wait for stdin to close (or SIGTERM/SIGINT) and
# stop the broker and remove its data. For test harnesses that keep a broker
# for as long as they live, and whose death closes the pipe.
kafka_run() {
    local port pid dir
    kafka_launch "$@"
    trap 'kafka_kill "$pid"; kafka_remove_data "$port"; exit 0' TERM INT HUP
    printf 'ready 127.0.0.1:%s\n' "$port"
    # Reads until end of input; `|| true`: a read error means the same.
    cat >/dev/null || true
    kafka_kill "$pid"
    kafka_remove_data "$port"
}

kafka_stop() {
    local port
    port="$(port_option stop "$@")"
    local pid
    if ! pid="$(kafka_running_pid "$port")"; then
        kafka_remove_data "$port"
        log "No Apache Kafka broker started by this script runs on port $port; nothing to stop (its data, if any, removed)."
        return
    fi
    kafka_kill "$pid"
    kafka_remove_data "$port"
    log "Stopped Apache Kafka on port $port (pid $pid) and removed its data."
}

kafka_topic() {
    [[ $# -ge 2 ]] || die "usage: scripts/broker.sh topic NAME PARTITIONS [--kind kafka] [--port N]"
    local name="$1" partitions="$2" port
    shift 2
    port="$(port_option topic "$@")"
    [[ "$partitions" =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer, not '$partitions'"
    find_java
    need_kafka
    port_open "$port" || die "no broker answers on port $port; start one with: scripts/broker.sh start --kind kafka --port $port"
    local err
    if err="$(kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
        --create --topic "$name" --partitions "$partitions" --replication-factor 1 2>&1)"; then
        log "Created topic $name with $partitions partitions on 127.0.0.1:$port."
    elif [[ "$err" == *"already exists"* ]]; then
        log "Topic $name already exists on 127.0.0.1:$port; left as is (its partition count was not checked)."
    else
        die "could not create topic $name on 127.0.0.1:$port: $err"
    fi
}

# kafka_status: one line per Apache Kafka broker this script started.
# Returns 0 when all run, 1 when one does not, 2 when there are none.
kafka_status() {
    [[ $# -eq 0 ]] || die "status takes no arguments besides --kind"
    local file found=0 down=0
    shopt -s nullglob
    for file in "$run_dir"/kafka-*/kafka.pid; do
        found=1
        local port pid
        port="$(basename "$(dirname "$file")")"
        port="${port#kafka-}"
        if pid="$(kafka_running_pid "$port")"; then
            local answers="answers"
            port_open "$port" || answers="does NOT answer"
            printf 'port %s: Apache Kafka running, pid %s, %s on 127.0.0.1:%s, log %s\n' \
                "$port" "$pid" "$answers" "$port" "${run_dir#"$root"/}/kafka-$port/kafka.log"
            [[ "$answers" == answers ]] || down=1
        else
            printf 'port %s: Apache Kafka NOT running (stale pid file %s; see %s)\n' \
                "$port" "${file#"$root"/}" "${run_dir#"$root"/}/kafka-$port/kafka.log"
            down=1
        fi
    done
    ((found == 1)) || return 2
    return "$down"
}

################################################################ commands

# The kind: --kind anywhere among the arguments, else $BROKER_KIND, else kafka.
kind="${BROKER_KIND:-}"
kind_given=0
[[ -n "$kind" ]] && kind_given=1
args=()
command="${1:-}"
[[ $# -gt 0 ]] && shift
while [[ $# -gt 0 ]]; do
    if [[ "$1" == --kind ]]; then
        [[ $# -ge 2 ]] || die "--kind needs a value: kafka or tansu"
        kind="$2"
        kind_given=1
        shift 2
    elif [[ "$1" == --kind=* ]]; then
        kind="${1#--kind=}"
        kind_given=1
        shift
    else
        args+=("$1")
        shift
    fi
done
[[ -n "$kind" ]] || kind=kafka
[[ "$kind" == kafka || "$kind" == tansu ]] || die "--kind must be kafka or tansu, not '$kind'"

case "$command" in
    install | start | topic | stop)
        "${kind}_$command" ${args[@]+"${args[@]}"}
        ;;
    run)
        [[ "$kind" == kafka ]] || die "run is for --kind kafka (tests start tansu themselves)"
        kafka_run ${args[@]+"${args[@]}"}
        ;;
    status)
        mkdir -p "$run_dir"
        kinds=(kafka tansu)
        ((kind_given)) && kinds=("$kind")
        worst=2
        for k in "${kinds[@]}"; do
            rc=0
            "${k}_status" ${args[@]+"${args[@]}"} || rc=$?
            if ((rc == 1)); then worst=1; elif ((rc == 0 && worst == 2)); then worst=0; fi
        done
        if ((worst == 2)); then
            echo "No brokers started by scripts/broker.sh (nothing in ${run_dir#"$root"/})."
            exit 1
        fi
        exit "$worst"
        ;;
    -h | --help | help) usage ;;
    "") usage >&2; exit 2 ;;
    *) log "unknown command '$command'"; usage >&2; exit 2 ;;
esac
