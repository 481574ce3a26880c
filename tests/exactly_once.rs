//! `--exactly-once` against rdkafka's in-process MockCluster (tansu cannot
//! commit transactions). The mock is slow (a few hundred messages a
//! second), so volumes are small: a few minutes of small frames.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::kafka::{kuniq, topic_records};
use common::oracle::count_per_minute;
use rdkafka::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
const T0: u64 = 1_468_244_384;

/// Small frames, 4 per second of event time over about 4 minutes, a tenth
/// of them 1 to 30 s late, round-robin over 2 partitions.
fn frames() -> Vec<String> {
    (0..1000u64)
        .map(|i| {
            let late = if i % 10 == 3 { 1 + i % 30 } else { 0 };
            format!(r#"{{"uid":"u{}","ts":{}}}"#, (i * 7919) % 300, T0 + i / 4 - late)
        })
        .collect()
}

fn load(cluster: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>, frames: &[String]) {
    let producer: BaseProducer =
        ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
    for (i, frame) in frames.iter().enumerate() {
        producer.send(BaseRecord::<(), _>::to("frames").payload(frame).partition(i as i32 % 2)).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
}

/// Committed records of the output topic: (key, value) in order.
fn committed_records(brokers: &str) -> Vec<(String, String)> {
    topic_records(brokers, "uniques", true)
}

fn last_revisions(records: &[(String, String)]) -> BTreeMap<u64, (usize, u64)> {
    let mut last: BTreeMap<u64, (u64, usize, u64)> = BTreeMap::new();
    for (_, value) in records {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        let revision = v["revision"].as_u64().unwrap();
        let now = (revision, v["unique_users"].as_u64().unwrap() as usize, v["frames"].as_u64().unwrap());
        let entry = last.entry(v["start"].as_u64().unwrap()).or_insert(now);
        if revision >= entry.0 {
            *entry = now;
        }
    }
    last.into_iter().map(|(m, (_, u, f))| (m, (u, f))).collect()
}

fn cluster() -> MockCluster<'static, rdkafka::producer::DefaultProducerContext> {
    let cluster = MockCluster::new(1).expect("an rdkafka mock cluster");
    cluster.create_topic("frames", 2, 1).unwrap();
    cluster.create_topic("uniques", 1, 1).unwrap();
    cluster.create_topic("kuniq-state", 1, 1).unwrap();
    cluster
}

fn count_args(brokers: &str) -> Vec<&str> {
    vec!["count", "-b", brokers, "-t", "frames", "-G", "eos", "-o", "uniques", "--offset", "beginning"]
        .into_iter()
        .chain(["--exactly-once", "--idle-timeout", "1h", "--progress", "never"])
        .collect()
}

#[test]
fn exactly_once_records_match_the_oracle_once_each() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let frames = frames();
    load(&cluster, &frames);
    kuniq(&[&count_args(&brokers)[..], &["-e", "--commit-interval", "200ms"]].concat());
    let records = committed_records(&brokers);
    let expected = count_per_minute(frames.iter().map(|f| f.as_bytes()));
    assert!(expected.len() >= 3);
    assert_eq!(last_revisions(&records), expected);
    let mut keys: Vec<(String, u64)> = records
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::from_str::<serde_json::Value>(v).unwrap()["revision"].as_u64().unwrap()))
        .collect();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a (window, revision) committed twice");
}

/// Starts kuniq with `interval` between commits and kills it (-9) after
/// `after`.
fn run_and_kill(brokers: &str, interval: &str, after: Duration) {
    let mut args = count_args(brokers);
    args.extend(["--commit-interval", interval]);
    let mut child = Command::new(KUNIQ)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    assert!(child.try_wait().unwrap().is_none(), "kuniq stopped before the kill");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Two killed runs, then a run to the end. The first never commits (its
/// transaction is open when it dies); the second commits every 200 ms and
/// dies with the last minutes open; the third resumes from the second's
/// last committed state. The mock cluster does not hide aborted records
/// from read_committed readers (it reports no aborted transactions and a
/// last stable offset at the end of the log), so the first run's records
/// stay visible here, where Kafka would hide them; after them, the log
/// holds every (window, revision) exactly once, and the last revisions are
/// the oracle's.
#[test]
fn killed_exactly_once_runs_commit_each_record_once() {
    let cluster = cluster();
    let brokers = cluster.bootstrap_servers();
    let frames = frames();
    load(&cluster, &frames);
    run_and_kill(&brokers, "1h", Duration::from_millis(1500));
    let aborted = committed_records(&brokers).len();
    assert!(aborted > 0, "the first run emitted nothing before the kill");
    run_and_kill(&brokers, "200ms", Duration::from_millis(1500));
    kuniq(&[&count_args(&brokers)[..], &["-e"]].concat());

    let records = committed_records(&brokers).split_off(aborted);
    let expected = count_per_minute(frames.iter().map(|f| f.as_bytes()));
    assert_eq!(last_revisions(&records), expected);
    let mut seen = BTreeMap::new();
    for (key, value) in &records {
        let revision = serde_json::from_str::<serde_json::Value>(value).unwrap()["revision"].as_u64().unwrap();
        assert!(seen.insert((key.clone(), revision), value.clone()).is_none(), "{key} revision {revision} twice");
    }
}
