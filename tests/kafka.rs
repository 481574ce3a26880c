//! End-to-end tests against Apache Kafka (one broker for this test binary,
//! started by `scripts/broker.sh run --kind kafka`; a test fails if it
//! cannot start): generate frames, `kuniq produce` them to a 4-partition
//! topic, `kuniq count` them from Kafka, and check every minute's last
//! revision against the oracle. Each test has its own topics and groups.
//!
//! A smaller compatibility set (names starting `tansu_`) runs the same
//! checks on tansu, a broker of its own per test.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::TestBroker;
use common::apache_kafka::{ApacheKafka, unique};
use common::broker::Broker;
use common::kafka::kuniq;
use common::oracle::count_per_minute;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use tempfile::TempDir;

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");

fn generate(dir: &TempDir, args: &[&str]) -> PathBuf {
    let path = dir.path().join("frames.jsonl");
    let mut all = vec!["gen", "-o", path.to_str().unwrap()];
    all.extend_from_slice(args);
    kuniq(&all);
    path
}

fn produce(broker: &dyn TestBroker, topic: &str, path: &Path) {
    kuniq(&["produce", "-b", broker.addr(), "-t", topic, "-i", path.to_str().unwrap(), "--progress", "never"]);
}

/// Last revision of every minute: start -> (unique_users, frames).
fn last_revisions(stdout: &[u8]) -> BTreeMap<u64, (usize, u64)> {
    let mut last: BTreeMap<u64, (u64, usize, u64)> = BTreeMap::new();
    for line in stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("a JSON record");
        let start = v["start"].as_u64().unwrap();
        let revision = v["revision"].as_u64().unwrap();
        let value = (revision, v["unique_users"].as_u64().unwrap() as usize, v["frames"].as_u64().unwrap());
        let entry = last.entry(start).or_insert(value);
        assert!(revision >= entry.0, "revisions of minute {start} out of order");
        *entry = value;
    }
    last.into_iter().map(|(m, (_, users, frames))| (m, (users, frames))).collect()
}

fn oracle_counts(path: &Path) -> BTreeMap<u64, (usize, u64)> {
    let bytes = std::fs::read(path).unwrap();
    let lines: Vec<&[u8]> =
        bytes.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l)).filter(|l| !l.is_empty()).collect();
    count_per_minute(lines)
}

fn count_from_kafka(broker: &dyn TestBroker, topic: &str, group: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "count",
        "-b",
        broker.addr(),
        "-t",
        topic,
        "-G",
        group,
        "--offset",
        "beginning",
        "-e",
        "--progress",
        "never",
        "--summary",
        "json",
    ];
    args.extend_from_slice(extra);
    kuniq(&args)
}

/// Every frame is within the allowed lateness (delays up to 40 s, allowed
/// 60 s), so the last revision of each minute counts all of its frames.
fn check_topic_counts(broker: &dyn TestBroker, gen_args: &[&str], extra: &[&str]) {
    let topic = unique("frames");
    broker.create_topic(&topic, 4);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, gen_args);
    produce(broker, &topic, &path);
    let out = count_from_kafka(broker, &topic, &unique("e2e"), extra);
    let expected = oracle_counts(&path);
    assert!(expected.len() >= 2, "the test needs several minutes");
    assert_eq!(last_revisions(&out.stdout), expected);
}

#[test]
fn ordered_frames_from_four_partitions_match_the_oracle() {
    check_topic_counts(ApacheKafka::shared(), &["-c", "30000", "-r", "400", "-n", "5000", "-s", "3"], &[]);
}

#[test]
fn tansu_ordered_frames_from_four_partitions_match_the_oracle() {
    check_topic_counts(&Broker::start(), &["-c", "30000", "-r", "400", "-n", "5000", "-s", "3"], &[]);
}

#[test]
fn out_of_order_frames_from_four_partitions_match_the_oracle() {
    check_topic_counts(
        ApacheKafka::shared(),
        &["-c", "30000", "-r", "400", "-n", "5000", "-d", "40", "-p", "20", "-s", "4"],
        &["--workers", "2"],
    );
}

#[test]
fn output_topic_holds_the_same_records_keyed_by_window() {
    let broker = ApacheKafka::shared();
    let (frames, uniques) = (unique("frames"), unique("uniques"));
    broker.create_topic(&frames, 4);
    broker.create_topic(&uniques, 1);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, &["-c", "20000", "-r", "300", "-n", "4000", "-d", "30", "-p", "10", "-s", "5"]);
    produce(broker, &frames, &path);
    let stdout = count_from_kafka(broker, &frames, &unique("to-stdout"), &[]).stdout;
    count_from_kafka(broker, &frames, &unique("to-topic"), &["-o", &uniques]);

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    consumer.subscribe(&[&uniques]).unwrap();
    let want: Vec<&[u8]> = stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    let mut got: Vec<(String, Vec<u8>)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < want.len() && Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("reading the output topic");
            let key = String::from_utf8(message.key().unwrap_or_default().to_vec()).unwrap();
            got.push((key, message.payload().unwrap_or_default().to_vec()));
        }
    }
    assert_eq!(got.len(), want.len(), "records on the output topic");
    for ((key, value), line) in got.iter().zip(&want) {
        assert_eq!(value.as_slice(), *line, "output topic record differs from stdout");
        let v: serde_json::Value = serde_json::from_slice(value).unwrap();
        assert_eq!(key, &format!("minute:{}", v["start"]));
    }
}

#[test]
fn a_quiet_topic_still_gets_its_last_minute_and_stops_cleanly_on_sigterm() {
    let broker = ApacheKafka::shared();
    let topic = unique("frames");
    broker.create_topic(&topic, 4);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, &["-c", "3000", "-r", "100", "-n", "500", "-s", "6"]);
    produce(broker, &topic, &path);
    let expected = oracle_counts(&path);
    // No -e: kuniq keeps running; once every partition is idle (1 s), the
    // watermark follows the wall clock and the last minute closes.
    let mut child = Command::new(KUNIQ)
        .args(["count", "-b", &broker.addr, "-t", &topic, "-G", &unique("quiet"), "--offset", "beginning"])
        .args(["--idle-timeout", "1s", "--lateness", "1", "--allowed-lateness", "2", "--revision-interval", "1"])
        .args(["--progress", "never", "--summary", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut out = Vec::new();
    let last_minute = *expected.keys().last().unwrap();
    // Reading takes well under a second; then 1 s to go idle and 1 s of
    // lateness, and the last minute is emitted (not when the wall clock
    // would reach its end, up to a minute later).
    let deadline = Instant::now() + Duration::from_secs(15);
    while !last_revisions(&out).contains_key(&last_minute) {
        assert!(Instant::now() < deadline, "the last minute was not emitted; got:\n{}", String::from_utf8_lossy(&out));
        if let Ok(bytes) = rx.recv_timeout(Duration::from_millis(200)) {
            out.extend_from_slice(&bytes);
        }
    }
    // SIGTERM: a clean stop, exit 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    while let Ok(bytes) = rx.recv_timeout(Duration::from_millis(500)) {
        out.extend_from_slice(&bytes);
    }
    assert!(status.success(), "kuniq exited with {status} after SIGTERM");
    assert_eq!(last_revisions(&out), expected);
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    missing_topic_is_a_clear_error(ApacheKafka::shared());
}

#[test]
fn tansu_a_missing_topic_is_a_clear_error() {
    missing_topic_is_a_clear_error(&Broker::start());
}

fn missing_topic_is_a_clear_error(broker: &dyn TestBroker) {
    let out = Command::new(KUNIQ)
        .args(["count", "-b", broker.addr(), "-t", "nosuchtopic", "-e", "--progress", "never"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("nosuchtopic"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_partition_with_no_saved_state_or_commit_needs_an_offset_choice() {
    let broker = ApacheKafka::shared();
    let (topic, group) = (unique("frames"), unique("new"));
    broker.create_topic(&topic, 2);
    let out = Command::new(KUNIQ)
        .args(["count", "-b", &broker.addr, "-t", &topic, "-G", &group, "-e", "--progress", "never"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("no saved state or committed offset for group '{group}'")), "{stderr}");
    assert!(stderr.contains("--offset beginning"), "{stderr}");
}

/// `kuniq produce --rate` paces the records: 3,000 at 1,000 a second take at
/// least 2 s (the pacing pauses at records 1024 and 2048), and all arrive.
#[test]
fn produce_rate_paces_a_replay() {
    let broker = ApacheKafka::shared();
    let topic = unique("frames");
    broker.create_topic(&topic, 2);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, &["-c", "3000", "-r", "100", "-l", "100", "-s", "8"]);
    let started = Instant::now();
    let path_arg = path.to_str().unwrap();
    kuniq(&["produce", "-b", &broker.addr, "-t", &topic, "-i", path_arg, "--rate", "1000", "--progress", "never"]);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(2000), "3,000 records at 1,000/s took only {took:?}");
    let out = kuniq(&["consume", "-b", &broker.addr, "-t", &topic, "-e"]);
    assert_eq!(out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 3000);
}

/// A Kafka run logs a status line every --status-interval, even when the
/// topic is quiet: frames, rate, total lag, watermark, open windows.
#[test]
fn a_kafka_run_logs_status_lines() {
    use std::io::BufRead;
    let broker = ApacheKafka::shared();
    let topic = unique("frames");
    broker.create_topic(&topic, 2);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, &["-c", "2000", "-r", "100", "-n", "500", "-s", "7"]);
    produce(broker, &topic, &path);
    let mut child = Command::new(KUNIQ)
        .args(["count", "-b", &broker.addr, "-t", &topic, "-G", &unique("status"), "--offset", "beginning"])
        .args(["--status-interval", "300ms", "--summary", "none"])
        .env_remove("KUNIQ_LOG_FORMAT")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    // Lag shows once librdkafka's statistics (every 2 s) gave every
    // partition's end; all 2000 frames are read by then.
    let wanted = |l: &String| {
        l.starts_with("kuniq: ")
            && l.contains(" 2000 frames, ")
            && l.contains("lag 0 messages")
            && l.contains("event time 2016-")
    };
    while !seen.iter().any(wanted) {
        assert!(Instant::now() < deadline, "no status line with lag:\n{}", seen.join("\n"));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
        }
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(child.wait().unwrap().success());
    let status = seen.iter().filter(|l| l.contains("frames/s over the last")).count();
    assert!(status >= 2, "status lines come at the interval:\n{}", seen.join("\n"));
}

/// `-X`/`-F` cannot override what kuniq's results depend on: each such
/// property is a usage error (exit 2) naming the kuniq flag to use, before
/// any broker is contacted. `-X auto.offset.reset=earliest`, which kcat
/// users type, used to be ignored silently.
#[test]
fn properties_kuniq_sets_itself_are_refused_with_the_flag_to_use() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("client.properties");
    std::fs::write(&file, "client.id=mine\nenable.auto.commit=true\n").unwrap();
    let file = file.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["-X", "auto.offset.reset=earliest"], "--offset beginning"),
        (&["-X", "group.id=other"], "-G/--group"),
        (&["-X", "enable.partition.eof=false"], "-e and --idle-timeout"),
        (&["-X", "isolation.level=read_uncommitted"], "read_committed"),
        (&["-X", "bootstrap.servers=elsewhere:9092"], "-b/--brokers"),
        (&["-F", file], "--commit-interval"),
    ];
    for (extra, hint) in cases {
        let out = Command::new(KUNIQ)
            .args(["count", "-b", "127.0.0.1:9", "-t", "frames", "-e", "--offset", "beginning"])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains("sets the librdkafka property") && stderr.contains(hint), "{extra:?}: {stderr}");
    }
}

/// Records, provisional ones included (`--early-interval`), are a function
/// of each partition's frames in offset order: the same whatever the batch
/// size and the number of workers, on a 1- and a 4-partition topic (byte for
/// byte in emission order on one partition; as a set of lines on four, where
/// windows of different partitions may close in another order).
#[test]
fn records_with_provisional_ones_do_not_depend_on_batches_or_workers() {
    let broker = ApacheKafka::shared();
    let dir = TempDir::new().unwrap();
    // 400 s of event time, 15 % of frames up to 30 s late: an hour with
    // provisional records every 20 s, minutes with revisions.
    let path = generate(&dir, &["-c", "12000", "-r", "30", "-n", "2000", "-d", "30", "-p", "15", "-s", "11"]);
    for partitions in [1, 4] {
        let topic = unique("early");
        broker.create_topic(&topic, partitions);
        produce(broker, &topic, &path);
        let runs: Vec<Vec<u8>> = [
            &["--batch-size", "1", "--workers", "1"][..],
            &["--workers", "2"],
            &["--batch-size", "1", "--workers", "2"],
            &["--workers", "1"],
        ]
        .iter()
        .map(|extra| {
            let mut args = vec!["--windows", "minute,hour", "--early-interval", "20s"];
            args.extend_from_slice(extra);
            let out = count_from_kafka(broker, &topic, &unique("early"), &args);
            if partitions == 1 {
                out.stdout
            } else {
                let mut lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
                lines.sort_unstable();
                lines.join(&b'\n')
            }
        })
        .collect();
        let text = String::from_utf8_lossy(&runs[0]);
        assert!(
            text.contains(r#""window":"hour""#) && text.contains(r#""closed":false"#),
            "provisional hours:\n{text}"
        );
        for (i, run) in runs.iter().enumerate().skip(1) {
            assert!(run == &runs[0], "{partitions} partition(s): run {i} differs from run 0");
        }
    }
}

/// Sketched records (`--estimator hll-8 --emit-sketch`: 256 registers, which
/// 2,000 users fill) are a pure function of the input too: the same bytes,
/// sketches included, whatever the batch size and number of workers, on a
/// 1- and a 4-partition topic. A sketch's own serialization depends on the
/// order of its updates; records carry its canonical form.
#[test]
fn sketched_records_do_not_depend_on_batches_or_workers() {
    let broker = ApacheKafka::shared();
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, &["-c", "12000", "-r", "30", "-n", "2000", "-d", "30", "-p", "15", "-s", "12"]);
    for partitions in [1, 4] {
        let topic = unique("sketched");
        broker.create_topic(&topic, partitions);
        produce(broker, &topic, &path);
        let runs: Vec<Vec<u8>> = [&["--batch-size", "1", "--workers", "1"][..], &["--workers", "2"]]
            .iter()
            .map(|extra| {
                let mut args = vec![
                    "--windows",
                    "minute,hour",
                    "--early-interval",
                    "20s",
                    "--estimator",
                    "hll-8",
                    "--emit-sketch",
                ];
                args.extend_from_slice(extra);
                let out = count_from_kafka(broker, &topic, &unique("sketched"), &args);
                let mut lines: Vec<&[u8]> = out.stdout.split(|&b| b == b'\n').collect();
                lines.sort_unstable();
                lines.join(&b'\n')
            })
            .collect();
        let text = String::from_utf8_lossy(&runs[0]);
        assert!(text.contains(r#""estimator":"hll-8""#) && text.contains(r#""sketch":""#), "sketched records:\n{text}");
        assert!(runs[1] == runs[0], "{partitions} partition(s): the runs differ");
    }
}
