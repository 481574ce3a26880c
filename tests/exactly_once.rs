//! `--exactly-once` against Apache Kafka (the test binary's shared broker,
//! `common::apache_kafka`; each test has its own topics and group, so its
//! own transactional id): a `read_committed` reader sees every (window,
//! revision) once, the records of a run killed mid-transaction stay in the
//! log but are hidden from it, and the last revisions are the oracle's.
//! The long kill -9 version, with frames still arriving, is in tests/chaos.rs.

mod common;

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::apache_kafka::{ApacheKafka, unique};
use common::kafka::{kuniq, topic_records};
use common::oracle::count_per_minute;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
const T0: u64 = 1_468_244_384;
/// Longest wait for a run to reach the state a test expects.
const DEADLINE: Duration = Duration::from_secs(60);

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

/// One test's topics and group on the shared broker.
struct Setup {
    brokers: String,
    frames: String,
    uniques: String,
    group: String,
}

impl Setup {
    fn new() -> Setup {
        let broker = ApacheKafka::shared();
        let setup = Setup {
            brokers: broker.addr.clone(),
            frames: unique("frames"),
            uniques: unique("uniques"),
            group: unique("eos"),
        };
        broker.create_topic(&setup.frames, 2);
        broker.create_topic(&setup.uniques, 1);
        setup
    }

    fn load(&self, frames: &[String]) {
        let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &self.brokers).create().unwrap();
        for (i, frame) in frames.iter().enumerate() {
            producer.send(BaseRecord::<(), _>::to(&self.frames).payload(frame).partition(i as i32 % 2)).unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Records of the output topic, (key, value) in order: the committed
    /// ones (read_committed), or every one in the log (read_uncommitted).
    fn records(&self, committed: bool) -> Vec<(String, String)> {
        topic_records(&self.brokers, &self.uniques, committed)
    }

    fn count_args(&self) -> Vec<&str> {
        vec!["count", "-b", &self.brokers, "-t", &self.frames, "-G", &self.group, "-o", &self.uniques]
            .into_iter()
            .chain(["--offset", "beginning", "--exactly-once", "--idle-timeout", "1h", "--progress", "never"])
            .collect()
    }

    fn spawn(&self, interval: &str) -> Killed {
        let mut args = self.count_args();
        args.extend(["--commit-interval", interval]);
        let child =
            Command::new(KUNIQ).args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn();
        Killed(child.unwrap())
    }
}

/// A running kuniq, killed (SIGKILL) when dropped, so a failing test leaves
/// no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn revision(value: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(value).unwrap()["revision"].as_u64().unwrap()
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

/// Panics if a (window, revision) appears twice.
fn assert_each_once(records: &[(String, String)]) {
    let mut seen = BTreeMap::new();
    for (key, value) in records {
        let revision = revision(value);
        if let Some(first) = seen.insert((key.clone(), revision), value.clone()) {
            panic!("{key} revision {revision} committed twice:\n  {first}\n  {value}");
        }
    }
}

/// Polls `done` every 100 ms until it holds; panics after [`DEADLINE`].
fn wait_for(what: &str, child: &mut Killed, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(child.0.try_wait().unwrap().is_none(), "kuniq exited while waiting for {what}");
        assert!(Instant::now() < deadline, "no {what} within {} s", DEADLINE.as_secs());
        thread::sleep(Duration::from_millis(100));
    }
}

fn kill(mut child: Killed) {
    assert!(child.0.try_wait().unwrap().is_none(), "kuniq stopped before the kill");
    drop(child); // SIGKILL
}

#[test]
fn exactly_once_records_match_the_oracle_once_each() {
    let setup = Setup::new();
    let frames = frames();
    setup.load(&frames);
    kuniq(&[&setup.count_args()[..], &["-e", "--commit-interval", "200ms"]].concat());
    let records = setup.records(true);
    let expected = count_per_minute(frames.iter().map(|f| f.as_bytes()));
    assert!(expected.len() >= 3);
    assert_eq!(last_revisions(&records), expected);
    assert_each_once(&records);
    // Committed transactions only: nothing in the log is hidden.
    assert_eq!(setup.records(false), records);
}

/// Two killed runs, then a run to the end. The first never commits (its
/// interval is an hour): its records reach the log but a read_committed
/// reader sees none of them, neither while its transaction hangs open nor
/// after the next run's `init_transactions` aborts it. The second commits
/// every 200 ms and is killed once a commit shows, with the last minutes
/// still open (the idle timeout is an hour); the third resumes from the
/// second's last committed state and runs to the end. The committed log
/// holds every (window, revision) exactly once, with the oracle's last
/// revisions, and the aborted records are still in the log, hidden.
#[test]
fn killed_exactly_once_runs_commit_each_record_once() {
    let setup = Setup::new();
    let frames = frames();
    setup.load(&frames);

    let mut first = setup.spawn("1h");
    wait_for("record from the first run", &mut first, || !setup.records(false).is_empty());
    kill(first);
    let aborted = setup.records(false).len();
    assert!(setup.records(true).is_empty(), "a read_committed reader sees the killed run's open transaction");

    let mut second = setup.spawn("200ms");
    wait_for("commit from the second run", &mut second, || !setup.records(true).is_empty());
    kill(second);
    kuniq(&[&setup.count_args()[..], &["-e"]].concat());

    let records = setup.records(true);
    let expected = count_per_minute(frames.iter().map(|f| f.as_bytes()));
    assert_eq!(last_revisions(&records), expected);
    assert_each_once(&records);
    let all = setup.records(false);
    assert!(
        all.len() >= records.len() + aborted,
        "the log holds {} records: fewer than the {} committed plus the first run's {aborted} aborted ones",
        all.len(),
        records.len()
    );
}
