//! A real Kafka-protocol broker per test: tansu, run as a child process on a
//! free loopback port (`scripts/broker.sh install` provides the binary).
//!
//! Each [`Broker`] owns its process, its port and its log, so tests and test
//! binaries run side by side without sharing a broker. A broker that cannot
//! start fails the test with the end of its log: a missing or broken tansu is
//! an error, never a skipped test. Dropping a [`Broker`] kills its process.
//!
//! What tansu 0.6.0 does that this harness relies on or works around:
//! - It listens on IPv4 only, so it listens on and advertises `127.0.0.1`,
//!   never `localhost`.
//! - It opens no port besides its Kafka listener (no metrics or admin port),
//!   so one free port per broker is all a broker needs.
//! - It opens its sqlite file relative to its working directory whatever the
//!   URL says (`sqlite:///abs/x.db` is `cwd/abs/x.db`), so a sqlite broker
//!   runs in its storage directory and the URL names only the file.
//! - When its port is taken it exits with status 0 after another process
//!   already answered on that port; so readiness also needs its own
//!   `ready in` line, which it prints once it has bound the port.
//! - Its CLI retries for about 26 s against a port nobody answers on, so
//!   every CLI call here is bounded by [`CLI_TIMEOUT`].
//! - `tansu cat produce` given several records sends one batch whose
//!   `last_offset_delta` is 0; the sqlite engine trusts it, advances the high
//!   watermark by one instead of by the record count, hides the other records
//!   and fails every later produce to that partition. [`Broker::produce_one`]
//!   therefore sends one record per call.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a broker may take to answer after it is spawned. tansu 0.6.0
/// answers in well under a second; the rest is headroom for loaded CI hosts.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Bound on one tansu CLI call (see the module docs for why there is one).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(15);
/// Fresh ports tried when another process takes the chosen one between
/// picking it and the broker binding it.
const PORT_ATTEMPTS: u32 = 3;
/// Log lines quoted when a broker fails.
const LOG_TAIL_LINES: usize = 30;
/// The sqlite file in a durable broker's storage directory.
const SQLITE_FILE: &str = "tansu.db";
/// How long one `tansu cat consume` waits for records that are not there.
const CONSUME_WAIT_MS: u32 = 200;
/// Environment variables tansu reads as defaults for its flags or settings.
/// Children get none of them, so a developer's or CI's environment cannot
/// redirect a broker (`OTEL_EXPORTER_OTLP_ENDPOINT` would make it export
/// traces, `ADVERTISED_LISTENER_URL` picks the broker of `tansu cat`).
const TANSU_ENV: &[&str] = &[
    "ADVERTISED_LISTENER_URL",
    "LISTENER_URL",
    "STORAGE_ENGINE",
    "CLUSTER_ID",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "DATA_LAKE",
    "RUST_LOG",
];

/// Where a broker keeps topics and records.
enum Storage {
    /// In the broker's memory: gone when the process stops.
    Memory,
    /// In `SQLITE_FILE` inside this directory: survives restarts.
    Sqlite(PathBuf),
}

impl Storage {
    fn url(&self) -> String {
        match self {
            Storage::Memory => "memory://tansu/".to_owned(),
            Storage::Sqlite(_) => format!("sqlite://{SQLITE_FILE}"),
        }
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Storage::Memory => f.write_str("memory storage"),
            Storage::Sqlite(dir) => write!(f, "sqlite storage in {}", dir.join(SQLITE_FILE).display()),
        }
    }
}

/// Why one start attempt failed.
enum StartError {
    Spawn(io::Error),
    PortTaken,
    Exited(ExitStatus),
    TimedOut,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Spawn(err) => write!(f, "could not spawn it: {err}"),
            StartError::PortTaken => f.write_str("another process took its port"),
            StartError::Exited(status) => write!(f, "it exited while starting ({status})"),
            StartError::TimedOut => write!(f, "it did not answer within {} s", START_TIMEOUT.as_secs()),
        }
    }
}

/// A running tansu broker owned by one test.
pub struct Broker {
    /// `127.0.0.1:PORT`, as librdkafka's `bootstrap.servers` wants it.
    pub addr: String,
    storage: Storage,
    tansu: PathBuf,
    child: Option<Child>,
    /// Holds the log, and is the working directory of a memory broker.
    run_dir: TempDir,
}

impl Broker {
    /// Starts a broker with memory storage on a free port and waits until it
    /// answers. Panics, quoting its log, when it cannot start.
    pub fn start() -> Broker {
        Broker::start_new(Storage::Memory)
    }

    /// Starts a broker that keeps its data in `dir` (created if missing;
    /// the sqlite file is `dir/tansu.db`), so that it survives
    /// [`Broker::restart`]. Panics like [`Broker::start`].
    pub fn start_sqlite(dir: &Path) -> Broker {
        fs::create_dir_all(dir).unwrap_or_else(|err| panic!("creating {}: {err}", dir.display()));
        let dir = dir.canonicalize().unwrap_or_else(|err| panic!("resolving {}: {err}", dir.display()));
        Broker::start_new(Storage::Sqlite(dir))
    }

    fn start_new(storage: Storage) -> Broker {
        let run_dir = tempfile::Builder::new()
            .prefix("kuniq-tansu-")
            .tempdir()
            .unwrap_or_else(|err| panic!("creating a directory for the broker's log: {err}"));
        let mut broker = Broker { addr: String::new(), storage, tansu: tansu_binary(), child: None, run_dir };
        let mut attempt = 1;
        loop {
            broker.addr = format!("127.0.0.1:{}", free_port());
            match broker.spawn_and_wait() {
                Ok(()) => return broker,
                Err(StartError::PortTaken) if attempt < PORT_ATTEMPTS => attempt += 1,
                Err(err) => broker.fail_start(&err),
            }
        }
    }

    /// `tcp://127.0.0.1:PORT`, as the tansu CLI wants it.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Kills the broker (SIGKILL, like a crash) and waits for it to exit; does
    /// nothing when it is already stopped. Its port is free while it is
    /// stopped: [`Broker::start_again`] panics if something took it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An error means the process has already exited; wait reaps it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts a stopped broker again on the same port with the same storage
    /// and waits until it answers; a memory broker comes back empty. Panics
    /// like [`Broker::start`], also when the port was taken meanwhile.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again: the broker on {} is still running", self.addr);
        if let Err(err) = self.spawn_and_wait() {
            self.fail_start(&err);
        }
    }

    /// [`Broker::stop`], then [`Broker::start_again`].
    pub fn restart(&mut self) {
        self.stop();
        self.start_again();
    }

    /// Creates `name` with `partitions` partitions. Panics when tansu refuses,
    /// including when the topic exists: every broker here starts empty, so a
    /// second creation is a bug in the test.
    pub fn create_topic(&self, name: &str, partitions: u32) {
        let partitions_arg = partitions.to_string();
        let url = self.url();
        self.cli(&["topic", "create", "--broker", &url, "--partitions", &partitions_arg, name], None)
            .unwrap_or_else(|err| panic!("creating topic {name} ({partitions} partitions) on {}: {err}", self.addr));
    }

    /// Every topic with its partition count, from a metadata request.
    pub fn topics(&self) -> BTreeMap<String, usize> {
        let url = self.url();
        let out = self
            .cli(&["topic", "list", "--broker", &url], None)
            .unwrap_or_else(|err| panic!("listing topics on {}: {err}", self.addr));
        let listed: serde_json::Value = serde_json::from_str(&out)
            .unwrap_or_else(|err| panic!("`tansu topic list` printed something other than JSON ({err}): {out}"));
        fn unexpected(out: &str) -> ! {
            panic!("`tansu topic list` printed an unexpected shape: {out}")
        }
        let topics = listed.as_array().unwrap_or_else(|| unexpected(&out));
        topics
            .iter()
            .map(|topic| {
                let name = topic["name"].as_str().unwrap_or_else(|| unexpected(&out));
                let partitions = topic["partitions"].as_array().map_or(0, Vec::len);
                (name.to_owned(), partitions)
            })
            .collect()
    }

    /// Appends one record with no key and the JSON string `value` to
    /// `partition` of `topic`, through `tansu cat produce` (one record per
    /// call: see the module docs).
    pub fn produce_one(&self, topic: &str, partition: u32, value: &str) {
        let record = serde_json::json!({ "value": value }).to_string();
        let partition_arg = partition.to_string();
        let url = self.url();
        self.cli(&["cat", "produce", "--broker", &url, "--partition", &partition_arg, topic], Some(&record))
            .unwrap_or_else(|err| panic!("producing to {topic}/{partition} on {}: {err}", self.addr));
    }

    /// The values of the records in `partition` of `topic` from offset 0, as
    /// one `tansu cat consume` fetch returns them (enough for the few small
    /// records of a smoke test, not for volume). String values come back
    /// as the string, others as their JSON text.
    pub fn consume(&self, topic: &str, partition: u32) -> Vec<String> {
        let partition_arg = partition.to_string();
        let wait_arg = CONSUME_WAIT_MS.to_string();
        let url = self.url();
        let args =
            ["cat", "consume", "--broker", &url, "--partition", &partition_arg, "--max-wait-time-ms", &wait_arg, topic];
        let out =
            self.cli(&args, None).unwrap_or_else(|err| panic!("consuming {topic}/{partition} on {}: {err}", self.addr));
        // One JSON array of {key, value} per record batch, one batch a line.
        let mut values = Vec::new();
        for line in out.lines().filter(|line| !line.trim().is_empty()) {
            let batch: Vec<serde_json::Value> = serde_json::from_str(line)
                .unwrap_or_else(|err| panic!("`tansu cat consume` printed an unexpected line ({err}): {line}"));
            values.extend(batch.iter().map(|record| match &record["value"] {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            }));
        }
        values
    }

    /// The last `lines` lines of the broker's log (its stdout and stderr,
    /// across restarts), for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    fn log_path(&self) -> PathBuf {
        self.run_dir.path().join("tansu.log")
    }

    /// Spawns tansu on `self.addr` and waits until it answers on it.
    fn spawn_and_wait(&mut self) -> Result<(), StartError> {
        let log_path = self.log_path();
        let log_start = fs::metadata(&log_path).map_or(0, |meta| meta.len());
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|err| panic!("opening {}: {err}", log_path.display()));
        let url = self.url();
        // The harness's own line; a failed write only loses that line.
        let _ =
            writeln!(log, "== kuniq test harness: starting {} on {url} with {}", self.tansu.display(), self.storage);
        let stderr = log.try_clone().unwrap_or_else(|err| panic!("duplicating {}: {err}", log_path.display()));
        let work_dir = match &self.storage {
            Storage::Memory => self.run_dir.path(),
            Storage::Sqlite(dir) => dir.as_path(),
        };
        let mut command = Command::new(&self.tansu);
        command
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", &self.storage.url()])
            .current_dir(work_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        clean_env(&mut command);
        // Quiet by default: tansu's debug logging costs throughput.
        command.env("RUST_LOG", std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".to_owned()));

        let started = Instant::now();
        self.child = Some(command.spawn().map_err(StartError::Spawn)?);
        let socket: SocketAddr = self.addr.parse().expect("addr is 127.0.0.1:PORT");
        loop {
            let log_since = read_from(&log_path, log_start);
            let exited = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let taken = log_since.contains("Address already in use") || log_since.contains("AddrInUse");
                return Err(if taken { StartError::PortTaken } else { StartError::Exited(status) });
            }
            if log_since.lines().any(|line| line.starts_with("ready in "))
                && TcpStream::connect_timeout(&socket, Duration::from_millis(200)).is_ok()
                && self.cli(&["topic", "list", "--broker", &url], None).is_ok()
            {
                eprintln!(
                    "tansu broker ready on {} with {} in {} ms.",
                    self.addr,
                    self.storage,
                    started.elapsed().as_millis()
                );
                return Ok(());
            }
            if started.elapsed() >= START_TIMEOUT {
                self.stop();
                return Err(StartError::TimedOut);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn fail_start(&mut self, err: &StartError) -> ! {
        self.stop();
        panic!(
            "could not start the tansu broker {} on {} with {}: {err}.\n\
             Install tansu with `scripts/broker.sh install --kind tansu`, or point TANSU at a working binary.\n\
             --- the end of its log ---\n{}",
            self.tansu.display(),
            self.addr,
            self.storage,
            self.log_tail(LOG_TAIL_LINES)
        );
    }

    /// Runs the tansu CLI with `args` (and `stdin`, if any), bounded by
    /// [`CLI_TIMEOUT`]. Ok holds stdout; Err says what went wrong, with
    /// everything it printed (tansu prints its errors on stdout).
    fn cli(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        let mut command = Command::new(&self.tansu);
        command.args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        clean_env(&mut command);
        let mut child = command.spawn().map_err(|err| format!("could not run {}: {err}", self.tansu.display()))?;
        // Dropping stdin closes it, so tansu sees the end of its input. When
        // tansu exits before reading it all, its status and output say why.
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
            let _ = pipe.write_all(input.as_bytes());
        }
        // Readers on threads, so a chatty child never blocks on a full pipe.
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < CLI_TIMEOUT => thread::sleep(Duration::from_millis(5)),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        match status {
            Some(status) if status.success() => Ok(stdout),
            Some(status) => Err(format!("`tansu {}` failed ({status}): {stdout}{stderr}", args.join(" "))),
            None => Err(format!(
                "`tansu {}` did not finish within {} s: {stdout}{stderr}",
                args.join(" "),
                CLI_TIMEOUT.as_secs()
            )),
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The tansu binary: `$TANSU`, else `tansu` on PATH, else
/// `$CARGO_HOME/bin/tansu` (`~/.cargo/bin/tansu`), where `cargo install`
/// puts it even when that directory is not on PATH. Panics, saying how to
/// install it, when there is none.
fn tansu_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("TANSU") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("tansu"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")));
    let in_cargo_home = cargo_home.map(|home| home.join("bin").join("tansu"));
    on_path.chain(in_cargo_home).find(|candidate| candidate.is_file()).unwrap_or_else(|| {
        panic!(
            "tansu is not installed (not in $TANSU, on PATH or in ~/.cargo/bin); \
             run `scripts/broker.sh install --kind tansu` (about 7-11 minutes) or set TANSU"
        )
    })
}

/// A port that was free a moment ago: the kernel picks it for a listener
/// that is dropped at once. Another process may take it before tansu binds
/// it; [`Broker::start`] then retries with a fresh one.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("finding a free port on 127.0.0.1: {err}"))
}

/// Removes the variables tansu would read as defaults and turns off its
/// colours (its tracing honours NO_COLOR), so logs and errors are plain text.
fn clean_env(command: &mut Command) {
    for name in TANSU_ENV {
        command.env_remove(name);
    }
    command.env("NO_COLOR", "1");
}

/// The text of `path` from byte `offset` on; empty when unreadable.
fn read_from(path: &Path, offset: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// Reads a child's pipe to the end on a thread.
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            // A read error leaves what was read; the exit status tells the rest.
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}
