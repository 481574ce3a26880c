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

/// 2016-07-11 00:00 UTC: the day of the retention test.
const DAY: u64 = 1_468_195_200;

/// Line `n` of the day: a frame every 10 s of event time, 3,000 users
/// shared between the partitions; `kuniq produce` sends line `n` to
/// partition `n % 2`, at offset `n / 2`.
fn day_line(n: u64) -> String {
    format!("{{\"uid\":\"user-{}\",\"ts\":{}}}\n", (n * 7919) % 3000, DAY + n * 10)
}

/// The newest value under `key` in `topic` (partition 0), read with a
/// plain consumer: the state topic also holds binary chunks.
fn latest_state(brokers: &str, topic: &str, key: &str) -> Option<String> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "kuniq-test-state-reader")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    consumer.assign(&list).unwrap();
    let mut latest = None;
    loop {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(m)) if m.key() == Some(key.as_bytes()) => {
                latest = Some(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Ok(_)) => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => return latest,
            Some(Err(e)) => panic!("reading state topic {topic}: {e}"),
        }
    }
}

/// Deletes the records of `topic`'s partitions below `offsets` (as
/// retention would).
fn delete_records(brokers: &str, topic: &str, offsets: &[i64]) {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", brokers).create().unwrap();
    let mut list = TopicPartitionList::new();
    for (p, &offset) in offsets.iter().enumerate() {
        list.add_partition_offset(topic, p as i32, Offset::Offset(offset)).unwrap();
    }
    let done = kuniq::kafka::block_on(admin.delete_records(&list, &AdminOptions::new())).expect("DeleteRecords");
    for e in done.elements() {
        assert!(e.error().is_ok(), "DeleteRecords on partition {}: {:?}", e.partition(), e.error());
    }
}

/// A crash mid-day after retention deleted the day's morning: the first run
/// counts six hours of a day (minute and day windows) and saves the open day
/// window with its checkpoints; it is killed (`signal`); every record more
/// than an hour older than its frontier is deleted; two more hours arrive and
/// a second run reads to the end. The day's count must be exact, and the
/// second run must have read again only the last minutes before the crash.
/// `extra` flags go to both runs (an estimator).
fn day_survives_a_crash_after_retention(signal: &str, extra: &[&str]) {
    let broker = ApacheKafka::shared();
    let (input, output, group, state) = (unique("day-in"), unique("day-out"), unique("day"), unique("day-state"));
    broker.create_topic(&input, 2);
    broker.create_topic(&output, 1);
    let mut args = vec![
        "-b",
        &broker.addr,
        "-t",
        &input,
        "-G",
        &group,
        "-o",
        &output,
        "--state-topic",
        &state,
        "--offset",
        "beginning",
        "--windows",
        "minute,day",
        "--lateness",
        "1",
        "--allowed-lateness",
        "20",
        "--revision-interval",
        "5",
        "--idle-timeout",
        "1s",
        "--commit-interval",
        "200ms",
        "--status-interval",
        "200ms",
    ];
    args.extend(extra);
    let morning: u64 = 6 * 360; // six hours of lines
    let evening: u64 = 2 * 360;
    produce(broker, &input, &(0..morning).map(day_line).collect::<String>());

    // First run, until a checkpoint covers every line with the day saved.
    let (mut child, rx) = spawn_count(&args);
    let key = format!("{group}/{input}");
    let per_partition = morning / 2;
    wait_for(Duration::from_secs(90), "a checkpoint of every line, with the day window", || {
        latest_state(&broker.addr, &state, &key).is_some_and(|text| {
            text.contains(" windows=")
                && (0..2).all(|p| {
                    text.contains(&format!(" p{p}=")) && {
                        let field = text.split_whitespace().find(|f| f.starts_with(&format!("p{p}="))).unwrap();
                        field.split(&['=', ':'][..]).nth(2) == Some(&per_partition.to_string())
                    }
                })
        })
    });
    // The checkpoints after the run's first save only what changed since
    // it: the state names both (incremental saves).
    let text = latest_state(&broker.addr, &state, &key).unwrap();
    assert!(text.contains(" windows=") && text.contains(" whole="), "{text}");
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    child.wait().unwrap();
    drop(rx);

    // Retention: everything more than an hour of event time before the
    // first run's frontier is gone.
    let keep_from = (morning - 360) / 2;
    delete_records(&broker.addr, &input, &[keep_from as i64, keep_from as i64]);

    produce(broker, &input, &(morning..morning + evening).map(day_line).collect::<String>());
    let mut to_end = args.to_vec();
    to_end.extend(["-e", "--summary", "json"]);
    let out = kuniq(&[&["count", "--progress", "never"][..], &to_end].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: serde_json::Value =
        serde_json::from_str(stderr.lines().rev().find(|l| l.starts_with('{')).expect("a JSON summary")).unwrap();
    let read_again = summary["frames"].as_u64().unwrap() - evening;
    // Lateness, allowed lateness, a minute and a commit interval of event
    // time before the crash, on two partitions: 8 lines a minute.
    assert!(read_again <= 24, "the second run read {read_again} lines of the morning again:\n{stderr}");

    let lines: Vec<String> = (0..morning + evening).map(day_line).collect();
    let users: std::collections::HashSet<&str> = lines.iter().map(|l| l.split('"').nth(3).expect("a uid")).collect();
    let mut day = None;
    for (_, value) in topic_records(&broker.addr, &output, true) {
        let v: serde_json::Value = serde_json::from_str(&value).unwrap();
        if v["window"] == "day" {
            day = Some((v["unique_users"].as_u64().unwrap(), v["frames"].as_u64().unwrap()));
            if extra.contains(&"--emit-sketch") {
                assert!(v["sketch"].as_str().is_some_and(|s| !s.is_empty()), "{value}");
            }
        }
    }
    // A sketch of 2^17 registers counts a few thousand users exactly.
    assert_eq!(day, Some((users.len() as u64, morning + evening)), "the day's last record");
}

#[test]
fn a_day_survives_kill_9_after_retention_deleted_its_morning() {
    day_survives_a_crash_after_retention("-KILL", &[]);
}

#[test]
fn a_day_survives_sigterm_after_retention_deleted_its_morning() {
    day_survives_a_crash_after_retention("-TERM", &[]);
}

/// The same with the day counted by a sketch, saved as one in the
/// checkpoint, and sent with the records.
#[test]
fn a_sketched_day_survives_kill_9_after_retention_deleted_its_morning() {
    day_survives_a_crash_after_retention("-KILL", &["--estimator", "hll", "--emit-sketch"]);
}
