//! Restarts of `kuniq count` on Apache Kafka that must neither lose nor
//! repeat a record: a quiet topic whose minute the wall clock closed before
//! the restart, and two restarts in a row, the second before the resumed run
//! has read again the windows the first had emitted.
//!
//! Each test has its own topics and group on the binary's broker.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestBroker;
use common::apache_kafka::{ApacheKafka, unique};
use common::broker::Broker;
use common::kafka::{kuniq, topic_records};

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
/// A minute of 2016 (the generator's era), on a minute boundary.
const MINUTE: u64 = 1_468_244_400;

/// `count` frames of minute `ts / 60`, users `first..first + count`.
fn frames(ts: u64, first: u64, count: u64) -> String {
    (first..first + count).map(|u| format!("{{\"uid\":\"user-{u}\",\"ts\":{ts}}}\n")).collect()
}

fn produce(broker: &dyn TestBroker, topic: &str, lines: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("frames.jsonl");
    std::fs::write(&path, lines).unwrap();
    kuniq(&["produce", "-b", broker.addr(), "-t", topic, "-i", path.to_str().unwrap(), "--progress", "never"]);
}

/// Every record of `topic` by (window start, revision): unique users, and
/// how often that (window, revision) was written.
fn records(broker: &dyn TestBroker, topic: &str, committed: bool) -> BTreeMap<(u64, u64), (u64, usize)> {
    let mut out: BTreeMap<(u64, u64), (u64, usize)> = BTreeMap::new();
    for (_, value) in topic_records(broker.addr(), topic, committed) {
        let v: serde_json::Value = serde_json::from_str(&value).expect("a JSON record");
        let key = (v["start"].as_u64().unwrap(), v["revision"].as_u64().unwrap());
        let users = v["unique_users"].as_u64().unwrap();
        let entry = out.entry(key).or_insert((users, 0));
        assert_eq!(entry.0, users, "({key:?}) written twice with different values");
        entry.1 += 1;
    }
    out
}

/// Starts `kuniq count` with its stderr read on a thread (lines to `rx`).
fn spawn_count(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(KUNIQ)
        .args(["count", "--summary", "json"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kuniq");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// SIGTERM, then insists on a clean exit; returns what it printed.
fn stop(mut child: Child, rx: &mpsc::Receiver<String>) -> String {
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    let printed: Vec<String> = rx.try_iter().collect();
    let printed = printed.join("\n");
    assert!(status.success() && !printed.contains("panicked"), "kuniq exited with {status}:\n{printed}");
    printed
}

/// Polls `done` until it holds, failing after `limit` with `what`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The quiet topic of the report: 40 users in minute M, a run that the
/// wall clock lets emit minute M (revision 0, 40 users) and that is then
/// stopped; 40 more users of minute M and one frame 200 s later; a second
/// run to the end. An uninterrupted run sends revision 1 with 80 users; the
/// restart used to drop it as "emitted before the restart".
fn quiet_topic_restart(broker: &dyn TestBroker) {
    let (input, output, group) = (unique("quiet-in"), unique("quiet-out"), unique("quiet"));
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    produce(broker, &input, &frames(MINUTE + 10, 0, 40));
    let args = [
        "-b",
        broker.addr(),
        "-t",
        &input,
        "-G",
        &group,
        "-o",
        &output,
        "--offset",
        "beginning",
        "--idle-timeout",
        "2s",
        "--commit-interval",
        "1s",
    ];
    let (child, rx) = spawn_count(&args);
    wait_for(Duration::from_secs(60), "minute M, revision 0, on the output topic", || {
        records(broker, &output, false).contains_key(&(MINUTE, 0))
    });
    stop(child, &rx);
    assert_eq!(records(broker, &output, false), BTreeMap::from([((MINUTE, 0), (40, 1))]));

    produce(broker, &input, &(frames(MINUTE + 20, 40, 40) + &frames(MINUTE + 200, 1000, 1)));
    let mut resumed = args.to_vec();
    resumed.push("-e");
    let out = Command::new(KUNIQ).args(["count", "--progress", "never"]).args(&resumed).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the resumed run failed:\n{stderr}");

    let got = records(broker, &output, false);
    assert_eq!(got.get(&(MINUTE, 0)), Some(&(40, 1)), "revision 0 is not sent again: {got:?}");
    assert_eq!(got.get(&(MINUTE, 1)), Some(&(80, 1)), "frames after the restart revise the minute: {got:?}");
    assert_eq!(got.keys().filter(|(start, _)| *start == MINUTE).count(), 2, "{got:?}");
}

#[test]
fn a_quiet_topic_restarted_after_its_minute_closed_revises_it() {
    quiet_topic_restart(ApacheKafka::shared());
}

#[test]
fn tansu_a_quiet_topic_restarted_after_its_minute_closed_revises_it() {
    quiet_topic_restart(&Broker::start());
}

/// Two restarts in a row with `--exactly-once`. The first run lets a quiet
/// topic close minute M and revise it twice (late users produced while it
/// waits), then stops. The second run reads the minute's frames again and is
/// stopped at once: its own (frame-driven, then wall-clock) watermark has not
/// reached the stages of revisions 1 and 2 yet, so it has not emitted them
/// again. The third runs to the end. A read_committed reader must see every
/// (window, revision) once: the second run's state used to keep only what
/// it had emitted itself, so the third sent revisions 1 and 2 again (with
/// other counts).
#[test]
fn two_restarts_in_a_row_send_each_revision_once() {
    let broker = ApacheKafka::shared();
    let (input, output, group) = (unique("twice-in"), unique("twice-out"), unique("twice"));
    broker.create_topic(&input, 1);
    broker.create_topic(&output, 1);
    let args = [
        "-b",
        &broker.addr,
        "-t",
        &input,
        "-G",
        &group,
        "-o",
        &output,
        "--offset",
        "beginning",
        "--exactly-once",
        "--idle-timeout",
        "1s",
        "--lateness",
        "1",
        "--allowed-lateness",
        "120",
        "--revision-interval",
        "2",
        "--commit-interval",
        "200ms",
        "--status-interval",
        "200ms",
    ];
    let committed = |window: (u64, u64)| records(broker, &output, true).contains_key(&window);

    // First run: 30 users; the quiet topic's watermark passes M's end
    // (revision 0); 10 late users each time the last revision is out
    // (revisions 1 and 2, 40 and 50 users).
    produce(broker, &input, &frames(MINUTE + 30, 0, 30));
    let (child, rx) = spawn_count(&args);
    wait_for(Duration::from_secs(60), "revision 0 of minute M", || committed((MINUTE, 0)));
    produce(broker, &input, &frames(MINUTE + 59, 30, 10));
    wait_for(Duration::from_secs(60), "revision 1 of minute M", || committed((MINUTE, 1)));
    produce(broker, &input, &frames(MINUTE + 59, 40, 10));
    wait_for(Duration::from_secs(60), "revision 2 of minute M", || committed((MINUTE, 2)));
    stop(child, &rx);
    let first = records(broker, &output, true);
    let want = BTreeMap::from([((MINUTE, 0), (30, 1)), ((MINUTE, 1), (40, 1)), ((MINUTE, 2), (50, 1))]);
    assert_eq!(first, want);

    // Second run: stopped once it has read the 50 frames again.
    let (child, rx) = spawn_count(&args);
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.iter().any(|line: &String| line.contains(" 50 frames")) {
        assert!(Instant::now() < deadline, "the second run did not read the frames again:\n{}", seen.join("\n"));
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push(line);
        }
    }
    stop(child, &rx);

    // Third run, to the end: a frame far ahead makes M final.
    produce(broker, &input, &frames(MINUTE + 400, 1000, 1));
    let mut to_end = args.to_vec();
    to_end.push("-e");
    let out = Command::new(KUNIQ).args(["count", "--progress", "never"]).args(&to_end).output().unwrap();
    assert!(out.status.success(), "the third run failed:\n{}", String::from_utf8_lossy(&out.stderr));

    let all = records(broker, &output, true);
    let minute_m: BTreeMap<_, _> = all.range((MINUTE, 0)..(MINUTE + 1, 0)).map(|(k, v)| (*k, *v)).collect();
    assert_eq!(minute_m, want, "minute M: each revision once, as the first run sent it; all: {all:?}");
}
