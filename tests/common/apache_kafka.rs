//! Apache Kafka for the tests: one single-node KRaft broker per test binary,
//! started by `scripts/broker.sh run --kind kafka` on a free loopback port
//! the first time a test asks for it, and shared by every test of that
//! binary, each with its own topics and groups ([`unique`]).
//!
//! The broker lives as long as the test binary: the harness holds the write
//! end of the script's stdin, and when the binary exits (or dies) the pipe
//! closes and the script stops the broker and removes its data. A broker
//! that cannot start fails the test with the end of its log and what to
//! install: never a skipped test.
//!
//! Topics are created through rdkafka's admin API (a JVM tool would cost two
//! seconds a topic).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use kuniq::kafka::block_on;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tempfile::TempDir;

/// Bound on one admin or metadata call.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Fresh ports tried when another process takes the chosen one first.
const PORT_ATTEMPTS: u32 = 3;

/// A running Apache Kafka broker shared by the tests of one binary.
pub struct ApacheKafka {
    /// `127.0.0.1:PORT` of the PLAINTEXT listener.
    pub addr: String,
    /// `127.0.0.1:PORT` of the SASL_SSL listener, when the broker has one.
    pub sasl_ssl_addr: Option<String>,
    /// The script's process, and the write end of its stdin: never written,
    /// only closed when the test binary exits.
    _script: Mutex<(Child, ChildStdin)>,
    /// The script's stderr: the broker's start-up messages.
    _run_dir: TempDir,
}

/// What a secure broker needs beside its plain listener.
pub struct SecureListener<'a> {
    /// A directory holding `broker.pem` (key and certificate chain).
    pub tls_dir: &'a Path,
    /// SCRAM-SHA-512 users as `NAME:PASSWORD`.
    pub users: &'a [&'a str],
    /// Users with every right; the others have none unless an ACL grants it.
    pub super_users: &'a [&'a str],
}

impl ApacheKafka {
    /// The broker of this test binary, started on first use. Panics, with
    /// the end of its log, when it cannot start.
    pub fn shared() -> &'static ApacheKafka {
        static BROKER: OnceLock<ApacheKafka> = OnceLock::new();
        BROKER.get_or_init(|| ApacheKafka::start(None))
    }

    /// Starts a broker of its own (for tests that need a listener the shared
    /// one lacks). It stops when the test binary exits.
    pub fn start(secure: Option<&SecureListener<'_>>) -> ApacheKafka {
        let run_dir = tempfile::Builder::new()
            .prefix("kuniq-kafka-")
            .tempdir()
            .unwrap_or_else(|err| panic!("creating a directory for the broker's messages: {err}"));
        let mut attempt = 1;
        loop {
            let port = free_port();
            let sasl_port = secure.map(|_| free_port());
            match spawn(&run_dir, port, sasl_port, secure) {
                Ok(script) => {
                    return ApacheKafka {
                        addr: format!("127.0.0.1:{port}"),
                        sasl_ssl_addr: sasl_port.map(|port| format!("127.0.0.1:{port}")),
                        _script: Mutex::new(script),
                        _run_dir: run_dir,
                    };
                }
                Err(messages) if messages.contains("already in use") && attempt < PORT_ATTEMPTS => attempt += 1,
                Err(messages) => panic!(
                    "could not start Apache Kafka with scripts/broker.sh run --kind kafka.\n\
                     Install it with `scripts/broker.sh install --kind kafka` (needs java 17+ and mvn).\n\
                     --- what the script said ---\n{messages}"
                ),
            }
        }
    }

    /// Creates `name` with `partitions` partitions and waits until the
    /// broker's metadata shows them. Panics when the broker refuses,
    /// including when the topic exists (names come from [`unique`]).
    pub fn create_topic(&self, name: &str, partitions: u32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// [`ApacheKafka::create_topic`] with topic configs (`retention.ms`...).
    pub fn create_topic_with(&self, name: &str, partitions: u32, configs: &[(&str, &str)]) {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config().create().unwrap_or_else(|err| panic!("creating an admin client: {err}"));
        let count = i32::try_from(partitions).expect("partition count fits i32");
        let mut topic = NewTopic::new(name, count, TopicReplication::Fixed(1));
        for (key, value) in configs {
            topic = topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT));
        let results = block_on(admin.create_topics([&topic], &options))
            .unwrap_or_else(|err| panic!("creating topic {name} on {}: {err}", self.addr));
        for result in results {
            if let Err((topic, code)) = result {
                panic!("creating topic {topic} on {}: {code}", self.addr);
            }
        }
        let deadline = std::time::Instant::now() + ADMIN_TIMEOUT;
        while self.topics().get(name) != Some(&(partitions as usize)) {
            assert!(std::time::Instant::now() < deadline, "topic {name} did not show in the metadata");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every topic with its partition count, from a metadata request.
    pub fn topics(&self) -> BTreeMap<String, usize> {
        let consumer: BaseConsumer =
            self.client_config().create().unwrap_or_else(|err| panic!("creating a metadata client: {err}"));
        let metadata = consumer
            .fetch_metadata(None, ADMIN_TIMEOUT)
            .unwrap_or_else(|err| panic!("reading metadata from {}: {err}", self.addr));
        metadata.topics().iter().map(|topic| (topic.name().to_owned(), topic.partitions().len())).collect()
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.addr).set("log_level", "3");
        config
    }
}

/// A name no other test of this run uses: `prefix-PID-N`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Runs `scripts/broker.sh run --kind kafka` and waits for its `ready` line.
/// Err holds what the script printed.
fn spawn(
    run_dir: &TempDir,
    port: u16,
    sasl_port: Option<u16>,
    secure: Option<&SecureListener<'_>>,
) -> Result<(Child, ChildStdin), String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/broker.sh");
    let messages_path: PathBuf = run_dir.path().join(format!("broker-{port}.txt"));
    let messages =
        File::create(&messages_path).unwrap_or_else(|err| panic!("creating {}: {err}", messages_path.display()));
    let mut command = Command::new("bash");
    command.arg(&script).args(["run", "--kind", "kafka", "--port", &port.to_string()]);
    if let (Some(sasl_port), Some(secure)) = (sasl_port, secure) {
        command.args(["--sasl-ssl-port", &sasl_port.to_string()]).arg("--tls-dir").arg(secure.tls_dir);
        for user in secure.users {
            command.args(["--scram-user", user]);
        }
        for user in secure.super_users {
            command.args(["--super-user", user]);
        }
    }
    // A developer's BROKER_KIND must not matter: --kind is explicit.
    command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(messages);
    let mut child = command.spawn().map_err(|err| format!("could not run bash {}: {err}", script.display()))?;
    let stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut line = String::new();
    // The script prints its ready line once the broker answers, or exits
    // (closing stdout) when it cannot start; it bounds the wait itself.
    let read = BufReader::new(stdout).read_line(&mut line);
    let said = || fs::read_to_string(&messages_path).unwrap_or_default();
    match read {
        Ok(_) if line.starts_with("ready ") => {
            eprintln!("{}", said().trim_end());
            Ok((child, stdin))
        }
        _ => {
            drop(stdin);
            let _ = child.wait();
            Err(format!("{line}{}", said()))
        }
    }
}

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|err| panic!("finding a free port on 127.0.0.1: {err}"))
}
