//! Security on a real broker: Apache Kafka with a SASL_SSL listener
//! (SCRAM-SHA-512 users, a certificate from a CA this binary makes with
//! openssl) beside its plain one, and ACLs on (users other than the super
//! user have no rights unless an ACL grants them).
//!
//! kuniq reads and writes through the SASL_SSL listener with its secrets in
//! a `-F` file, and each way of getting it wrong (a wrong password, a CA
//! that did not sign the broker's certificate, a plaintext client against
//! the TLS port, a user with no ACLs) ends with exit status 1, an error
//! that says what is wrong, within a bound; no password ever shows on
//! stdout or stderr. Topics are created as the super user ANONYMOUS through
//! the plain listener.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::apache_kafka::{ApacheKafka, SecureListener, unique};
use common::cli::{generate, path_str, run_bounded as run};
use common::oracle::count_per_minute;
use common::tls::{self, Tls};
use tempfile::TempDir;

/// The super user kuniq runs as, and its password.
const USER: &str = "kuniq";
const PASSWORD: &str = "kuniq-Pa55-SECRET";
/// A user with no ACLs (not a super user).
const NOBODY: &str = "nobody";
const NOBODY_PASSWORD: &str = "nobody-Pa55-SECRET";
/// A user with the ACLs a test grants it (not a super user).
const READER: &str = "reader";
const READER_PASSWORD: &str = "reader-Pa55-SECRET";
/// What the wrong-password case sends.
const WRONG_PASSWORD: &str = "wrong-Pa55-SECRET";

/// The secure broker of this binary and the TLS files it uses.
struct Secure {
    broker: ApacheKafka,
    tls: Tls,
}

impl Secure {
    fn get() -> &'static Secure {
        static SECURE: OnceLock<Secure> = OnceLock::new();
        SECURE.get_or_init(|| {
            let tls = tls::make();
            let users = [
                format!("{USER}:{PASSWORD}"),
                format!("{NOBODY}:{NOBODY_PASSWORD}"),
                format!("{READER}:{READER_PASSWORD}"),
            ];
            let users: Vec<&str> = users.iter().map(String::as_str).collect();
            let broker = ApacheKafka::start(Some(&SecureListener {
                tls_dir: tls.dir.path(),
                users: &users,
                super_users: &[USER],
            }));
            Secure { broker, tls }
        })
    }

    fn sasl_ssl_addr(&self) -> &str {
        self.broker.sasl_ssl_addr.as_deref().expect("the broker has a SASL_SSL listener")
    }
}

/// Grants `user` the ACL `args` (AclCommand's resource and `--operation`
/// options) through the plain listener, as the super user ANONYMOUS, with
/// Kafka's own tool from the jars scripts/broker.sh installed.
fn grant(broker: &ApacheKafka, user: &str, args: &[&str]) {
    let cache = std::env::var_os("KUNIQ_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cache"))
            .join("kuniq")
    });
    let home = cache.join(format!("kafka-{}", std::env::var("KAFKA_VERSION").unwrap_or_else(|_| "4.1.1".into())));
    let java =
        std::env::var_os("JAVA_HOME").map_or_else(|| PathBuf::from("java"), |h| PathBuf::from(h).join("bin/java"));
    let principal = format!("User:{user}");
    let output = Command::new(&java)
        .arg(format!("-Dlog4j2.configurationFile={}", home.join("log4j2-tools.properties").display()))
        .arg("-cp")
        .arg(home.join("libs/*"))
        .args(["org.apache.kafka.tools.AclCommand", "--bootstrap-server", &broker.addr, "--add"])
        .args(["--allow-principal", &principal])
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running {} (Kafka's AclCommand): {err}", java.display()));
    assert!(
        output.status.success(),
        "granting {user} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A `-F` file in `dir`: SASL_SSL with SCRAM-SHA-512 as `user`, trusting `ca`.
fn properties(dir: &Path, user: &str, password: &str, ca: &Path) -> PathBuf {
    let path = dir.join(format!("{user}-{}.properties", unique("client")));
    std::fs::write(
        &path,
        format!(
            "# kuniq's client settings\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.username={user}\nsasl.password={password}\nssl.ca.location={}\n",
            ca.display()
        ),
    )
    .unwrap();
    path
}

/// Fails if any password (or a telling part of one) shows in `output`.
fn assert_no_secret(args: &[&str], output: &Output) {
    for (name, text) in [("stdout", &output.stdout), ("stderr", &output.stderr)] {
        let text = String::from_utf8_lossy(text);
        for secret in [PASSWORD, NOBODY_PASSWORD, READER_PASSWORD, WRONG_PASSWORD, "Pa55"] {
            assert!(!text.contains(secret), "kuniq {args:?} printed a password on {name}:\n{text}");
        }
    }
}

/// Runs kuniq, which must fail with exit status 1 within `within`, saying
/// every one of `expected` on stderr and no secret anywhere. Returns stderr.
fn assert_fails(args: &[&str], within: Duration, expected: &[&str]) -> String {
    // Killed a little after the bound, so a hang shows as a timing failure
    // with the output so far.
    let (output, elapsed) = run(args, within + Duration::from_secs(10));
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_no_secret(args, &output);
    assert!(elapsed < within, "kuniq {args:?} took {elapsed:?}, more than {within:?}:\n{stderr}");
    assert_eq!(output.status.code(), Some(1), "kuniq {args:?}: exit status; stderr:\n{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "kuniq {args:?}: expected '{text}' on stderr:\n{stderr}");
    }
    assert!(!stderr.contains("panicked"), "kuniq {args:?} panicked:\n{stderr}");
    stderr
}

/// Every minute's last revision, start -> (unique_users, frames), from
/// record values (JSON).
fn last_revisions<'a>(values: impl IntoIterator<Item = &'a str>) -> BTreeMap<u64, (usize, u64)> {
    let mut last: BTreeMap<u64, (u64, usize, u64)> = BTreeMap::new();
    for value in values {
        let v: serde_json::Value = serde_json::from_str(value).expect("a JSON record");
        let start = v["start"].as_u64().unwrap();
        let revision = v["revision"].as_u64().unwrap();
        let counts = (revision, v["unique_users"].as_u64().unwrap() as usize, v["frames"].as_u64().unwrap());
        let entry = last.entry(start).or_insert(counts);
        if revision >= entry.0 {
            *entry = counts;
        }
    }
    last.into_iter().map(|(start, (_, users, frames))| (start, (users, frames))).collect()
}

fn oracle_counts(path: &Path) -> BTreeMap<u64, (usize, u64)> {
    let bytes = std::fs::read(path).unwrap();
    count_per_minute(bytes.split(|&b| b == b'\n').filter(|line| !line.is_empty()))
}

#[test]
fn produce_count_and_consume_through_sasl_ssl_match_the_oracle() {
    let secure = Secure::get();
    let dir = TempDir::new().unwrap();
    let file = properties(dir.path(), USER, PASSWORD, &secure.tls.ca);
    let file = path_str(&file);
    let (frames, uniques, state) = (unique("frames"), unique("uniques"), unique("state"));
    secure.broker.create_topic(&frames, 3);
    secure.broker.create_topic(&uniques, 1);
    let input =
        generate(&dir, "frames.jsonl", &["-c", "6000", "-r", "50", "-n", "800", "-d", "20", "-p", "10", "-s", "7"]);
    let want = oracle_counts(&input);
    assert!(want.len() >= 2, "the input spans several minutes");
    let addr = secure.sasl_ssl_addr();

    let args = ["produce", "-b", addr, "-t", &frames, "-i", path_str(&input), "--progress", "never", "-F", file];
    let (output, elapsed) = run(&args, Duration::from_secs(120));
    assert_no_secret(&args, &output);
    assert_eq!(output.status.code(), Some(0), "produce: {}", String::from_utf8_lossy(&output.stderr));
    eprintln!("produce through SASL_SSL: {elapsed:?}");

    let group = unique("group");
    let args = [
        "count",
        "-b",
        addr,
        "-t",
        &frames,
        "-G",
        &group,
        "-o",
        &uniques,
        "--state-topic",
        &state,
        "--offset",
        "beginning",
        "-e",
        "--progress",
        "never",
        "--summary",
        "json",
        "-F",
        file,
    ];
    let (output, elapsed) = run(&args, Duration::from_secs(120));
    assert_no_secret(&args, &output);
    assert_eq!(output.status.code(), Some(0), "count: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stdout.is_empty(), "count -o writes its records to the topic, not stdout");
    eprintln!("count through SASL_SSL: {elapsed:?}");

    // The output topic, read back through the same listener: keyed by
    // window, and its last revisions are the oracle's counts.
    let args = ["consume", "-b", addr, "-t", &uniques, "-e", "-K", "-F", file];
    let (output, _) = run(&args, Duration::from_secs(60));
    assert_no_secret(&args, &output);
    assert_eq!(output.status.code(), Some(0), "consume: {}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let mut values = Vec::new();
    for line in stdout.lines() {
        let (key, value) = line.split_once('\t').expect("key<TAB>value");
        let v: serde_json::Value = serde_json::from_str(value).expect("a JSON record");
        assert_eq!(key, format!("minute:{}", v["start"]), "record key");
        values.push(value);
    }
    assert_eq!(last_revisions(values), want, "the output topic's last revisions against the oracle");
}

#[test]
fn a_wrong_password_is_a_refused_login_not_an_outage() {
    let secure = Secure::get();
    let dir = TempDir::new().unwrap();
    let file = properties(dir.path(), USER, WRONG_PASSWORD, &secure.tls.ca);
    let topic = unique("frames");
    secure.broker.create_topic(&topic, 1);
    let addr = secure.sasl_ssl_addr();
    let expected = ["refused the SASL login", "invalid credentials", "SCRAM-SHA-512", "sasl.password"];
    // Well before the 30 s connect timeout: a refused login ends the wait.
    let within = Duration::from_secs(15);
    let count = ["count", "-b", addr, "-t", &topic, "-e", "--offset", "beginning", "-F", path_str(&file)];
    assert_fails(&count, within, &expected);
    let produce = ["produce", "-b", addr, "-t", &topic, "-i", "/dev/null", "-F", path_str(&file)];
    assert_fails(&produce, within, &expected);
    let consume = ["consume", "-b", addr, "-t", &topic, "-e", "-F", path_str(&file)];
    assert_fails(&consume, within, &expected);
}

#[test]
fn a_ca_that_did_not_sign_the_broker_is_a_failed_tls_handshake() {
    let secure = Secure::get();
    let dir = TempDir::new().unwrap();
    let file = properties(dir.path(), USER, PASSWORD, &secure.tls.other_ca);
    let topic = unique("frames");
    secure.broker.create_topic(&topic, 1);
    let addr = secure.sasl_ssl_addr();
    let expected = ["TLS with the Kafka brokers", "certificate verify failed", "ssl.ca.location"];
    let within = Duration::from_secs(15);
    let count = ["count", "-b", addr, "-t", &topic, "-e", "--offset", "beginning", "-F", path_str(&file)];
    assert_fails(&count, within, &expected);
    let produce = ["produce", "-b", addr, "-t", &topic, "-i", "/dev/null", "-F", path_str(&file)];
    assert_fails(&produce, within, &expected);
}

#[test]
fn a_plaintext_client_against_the_tls_port_is_told_it_may_be_one() {
    let secure = Secure::get();
    let topic = unique("frames");
    secure.broker.create_topic(&topic, 1);
    let addr = secure.sasl_ssl_addr();
    // The password is given (as -X, without security.protocol), so a
    // message that quoted the settings would show it.
    let secret = format!("sasl.password={PASSWORD}");
    // No error ends this wait early (the broker just closes the connection),
    // so it lasts --connect-timeout; the message then names the likely cause.
    let args = ["count", "-b", addr, "-t", &topic, "-e", "--connect-timeout", "5s", "-X", &secret];
    assert_fails(
        &args,
        Duration::from_secs(15),
        &["close them at the first request", "is it a TLS port", "security.protocol=SSL or SASL_SSL"],
    );
}

#[test]
fn a_user_without_acls_is_told_so_not_that_the_topic_is_missing() {
    let secure = Secure::get();
    let dir = TempDir::new().unwrap();
    let file = properties(dir.path(), NOBODY, NOBODY_PASSWORD, &secure.tls.ca);
    let file = path_str(&file);
    let topic = unique("frames");
    secure.broker.create_topic(&topic, 1);
    let addr = secure.sasl_ssl_addr();
    // The login succeeds and the broker answers at once; the metadata says
    // TOPIC_AUTHORIZATION_FAILED for the topic, which kuniq used to report
    // as a missing topic.
    let expected = ["do not authorize", "TOPIC_AUTHORIZATION_FAILED", "ACLs"];
    let within = Duration::from_secs(15);
    for args in [
        vec!["count", "-b", addr, "-t", &topic, "-e", "--offset", "beginning", "-F", file],
        vec!["produce", "-b", addr, "-t", &topic, "-i", "/dev/null", "-F", file],
        vec!["consume", "-b", addr, "-t", &topic, "-e", "-F", file],
    ] {
        let stderr = assert_fails(&args, within, &expected);
        assert!(!stderr.contains("does not exist"), "{args:?}:\n{stderr}");
        assert!(!stderr.contains("cannot reach"), "{args:?}: an ACL-less user is not an outage:\n{stderr}");
    }
    // The same user against a topic that does not exist sees the same
    // answer: the broker does not tell users without rights what exists.
    let missing = unique("missing");
    assert_fails(&["consume", "-b", addr, "-t", &missing, "-e", "-F", file], within, &expected);
}

#[test]
fn a_user_without_the_group_acl_is_told_so_after_the_wait() {
    let secure = Secure::get();
    let dir = TempDir::new().unwrap();
    let file = properties(dir.path(), READER, READER_PASSWORD, &secure.tls.ca);
    let file = path_str(&file);
    let (topic, state, group) = (unique("frames"), unique("state"), unique("group"));
    secure.broker.create_topic(&topic, 2);
    let input = generate(&dir, "frames.jsonl", &["-c", "500", "-r", "20", "-n", "100", "-s", "3"]);
    let addr = secure.sasl_ssl_addr();
    let produce = ["produce", "-b", &secure.broker.addr, "-t", &topic, "-i", path_str(&input), "--progress", "never"];
    let (output, _) = run(&produce, Duration::from_secs(60));
    assert_eq!(output.status.code(), Some(0), "produce: {}", String::from_utf8_lossy(&output.stderr));
    // Every right a count to stdout needs, but the group's.
    grant(&secure.broker, READER, &["--operation", "Describe", "--operation", "Read", "--topic", &topic]);
    let state_rights =
        ["--operation", "Describe", "--operation", "Read", "--operation", "Write", "--operation", "Create"];
    grant(&secure.broker, READER, &[&state_rights[..], &["--topic", &state]].concat());
    let args = [
        "count",
        "-b",
        addr,
        "-t",
        &topic,
        "-G",
        &group,
        "--state-topic",
        &state,
        "--offset",
        "beginning",
        "-e",
        "--progress",
        "never",
        "--summary",
        "none",
        "-F",
        file,
    ];
    // The coordinator refuses the group; librdkafka's call for the committed
    // offsets waits out its 30 s anyway, then kuniq says why.
    let stderr = assert_fails(
        &args,
        Duration::from_secs(45),
        &["do not authorize", &format!("group '{group}'"), "GROUP_AUTHORIZATION_FAILED", "Read ACL"],
    );
    assert!(!stderr.contains("Timed out"), "the refusal, not the timeout, is the message:\n{stderr}");
    // With Read on the group the same run succeeds: the group was all it lacked.
    grant(&secure.broker, READER, &["--operation", "Read", "--group", &group]);
    let (output, elapsed) = run(&args, Duration::from_secs(60));
    assert_no_secret(&args, &output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "count with the group's ACL ({elapsed:?}): {stderr}");
    assert!(!output.stdout.is_empty(), "records on stdout");
}
