//! Scale-out on Apache Kafka: workers (`kuniq count --partials-topic`) in a
//! consumer group and `kuniq merge`, as separate processes on a 6-partition
//! topic. The merged records must be exactly those of one `kuniq count`
//! over the whole topic, with each worker counting only its share, and a
//! worker or the merge killed with `kill -9` and replaced must neither lose
//! a record nor send two different records for one (window, revision).
//!
//! Each test has its own topics and groups on the binary's broker.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::TestBroker;
use common::apache_kafka::{ApacheKafka, unique};
use common::kafka::{kuniq, topic_records};
use common::oracle::count_per_minute;

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
const WINDOWS: &str = "minute,hour";

/// A running kuniq process with its stderr read on a thread.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn spawn(args: &[&str]) -> Process {
        let mut child = Command::new(KUNIQ)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running kuniq");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Process { child, lines, seen: Vec::new() }
    }

    /// Every stderr line so far.
    fn stderr(&mut self) -> &[String] {
        self.seen.extend(self.lines.try_iter());
        &self.seen
    }

    /// The partitions the group assigns this worker now, from its log.
    fn partitions(&mut self) -> BTreeSet<u32> {
        let mut owned = BTreeSet::new();
        for line in self.stderr() {
            if let Some(p) = partition_in(line, "counting partition ") {
                owned.insert(p);
            } else if let Some(p) = partition_in(line, "partition ").filter(|_| line.contains("moved to another")) {
                owned.remove(&p);
            }
        }
        owned
    }

    fn kill_9(mut self) {
        assert!(Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().unwrap().success());
        self.child.wait().unwrap();
    }

    /// Sends SIGTERM.
    fn terminate(&self) {
        assert!(Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success());
    }

    /// After [`Process::terminate`]: a clean exit, and the JSON summary on
    /// its last line, with everything it printed.
    fn stopped(mut self) -> (serde_json::Value, String) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        let text = self.seen.join("\n");
        assert!(status.success() && !text.contains("panicked"), "kuniq exited with {status}:\n{text}");
        let summary =
            serde_json::from_str(self.seen.last().expect("a summary")).unwrap_or_else(|e| panic!("{e}: {text}"));
        (summary, text)
    }

    /// SIGTERM, a clean exit, and the JSON summary on its last line.
    fn stop(mut self) -> serde_json::Value {
        assert!(Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        let text = self.seen.join("\n");
        assert!(status.success() && !text.contains("panicked"), "kuniq exited with {status}:\n{text}");
        serde_json::from_str(self.seen.last().expect("a summary")).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// Waits (up to `limit`) for a clean exit; returns stdout.
    fn wait(mut self, limit: Duration) -> Vec<u8> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                self.seen.extend(self.lines.iter());
                let text = self.seen.join("\n");
                assert!(status.success() && !text.contains("panicked"), "kuniq exited with {status}:\n{text}");
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut self.child.stdout.take().unwrap(), &mut out).unwrap();
                return out;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("kuniq did not finish within {limit:?}:\n{}", self.stderr().join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn partition_in(line: &str, before: &str) -> Option<u32> {
    let rest = &line[line.find(before)? + before.len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

fn worker(broker: &ApacheKafka, topic: &str, group: &str, partials: &str) -> Process {
    worker_with(broker, topic, group, partials, &[])
}

fn worker_with(broker: &ApacheKafka, topic: &str, group: &str, partials: &str, extra: &[&str]) -> Process {
    let args = [
        "count",
        "-b",
        broker.addr(),
        "-t",
        topic,
        "-G",
        group,
        "--partials-topic",
        partials,
        "--windows",
        WINDOWS,
        "--idle-timeout",
        "15s",
        "--commit-interval",
        "500ms",
        "--summary",
        "json",
        // A dead worker's partitions move after 6 s, not librdkafka's 45.
        "-X",
        "session.timeout.ms=6000",
        "-X",
        "heartbeat.interval.ms=500",
    ];
    Process::spawn(&[&args[..], extra].concat())
}

/// Waits until the group has given each live worker its share of the six
/// partitions (two each for three workers) and kept it for 3 s (a
/// cooperative rebalance takes more than one round).
fn wait_for_shares(workers: &mut [&mut Process], each: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut settled: Option<(Vec<BTreeSet<u32>>, Instant)> = None;
    loop {
        let shares: Vec<BTreeSet<u32>> = workers.iter_mut().map(|w| w.partitions()).collect();
        let all: BTreeSet<u32> = shares.iter().flatten().copied().collect();
        if shares.iter().all(|s| s.len() == each) && all.len() == 6 {
            match &settled {
                Some((before, since)) if *before == shares => {
                    if since.elapsed() >= Duration::from_secs(3) {
                        return;
                    }
                }
                _ => settled = Some((shares.clone(), Instant::now())),
            }
        } else {
            settled = None;
        }
        assert!(Instant::now() < deadline, "the group never settled: {shares:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The input of every scenario here: 30,000 frames over about five minutes,
/// 2,500 users, a tenth of the frames delayed by up to 20 s.
fn frames(dir: &tempfile::TempDir) -> std::path::PathBuf {
    common::cli::generate(dir, "frames.jsonl", &["-c", "30000", "-r", "100", "-n", "2500", "-d", "20", "-p", "10"])
}

fn produce(broker: &ApacheKafka, topic: &str, path: &Path) {
    kuniq(&["produce", "-b", broker.addr(), "-t", topic, "-i", path.to_str().unwrap(), "--progress", "never"]);
}

/// The records one `kuniq count -e` over the whole topic emits.
fn single_process(broker: &ApacheKafka, topic: &str) -> Vec<String> {
    let group = unique("single");
    let args = ["count", "-b", broker.addr(), "-t", topic, "-G", &group, "--offset", "beginning", "-e"];
    let out = kuniq(&[&args[..], &["--windows", WINDOWS, "--progress", "never", "--summary", "none"]].concat());
    sorted_lines(&out.stdout)
}

fn sorted_lines(bytes: &[u8]) -> Vec<String> {
    let mut lines: Vec<String> = String::from_utf8_lossy(bytes).lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

fn merge(broker: &ApacheKafka, partials: &str, output: Option<&str>) -> Process {
    merge_with(broker, partials, output, &[])
}

fn merge_with(broker: &ApacheKafka, partials: &str, output: Option<&str>, extra: &[&str]) -> Process {
    let mut args = vec![
        "merge",
        "-b",
        broker.addr(),
        "--partials-topic",
        partials,
        "-e",
        "--windows",
        WINDOWS,
        "--commit-interval",
        "500ms",
    ];
    if let Some(output) = output {
        args.extend(["-o", output]);
    }
    args.extend(extra);
    Process::spawn(&args)
}

/// The last revision of every minute record: start -> unique users.
fn last_minutes(lines: &[String]) -> BTreeMap<u64, (u64, u64)> {
    let mut last: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["window"] == "minute" {
            let (start, revision) = (v["start"].as_u64().unwrap(), v["revision"].as_u64().unwrap());
            let users = v["unique_users"].as_u64().unwrap();
            let entry = last.entry(start).or_insert((revision, users));
            if revision >= entry.0 {
                *entry = (revision, users);
            }
        }
    }
    last
}

fn oracle_minutes(path: &Path) -> BTreeMap<u64, (u64, u64)> {
    let bytes = std::fs::read(path).unwrap();
    count_per_minute(bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()))
        .into_iter()
        .map(|(minute, (users, _))| (minute, (0, users as u64)))
        .collect()
}

#[test]
fn merged_records_equal_one_process_and_each_worker_counts_its_share() {
    let broker = ApacheKafka::shared();
    let (topic, group, partials) = (unique("so-in"), unique("so-workers"), unique("so-partials"));
    broker.create_topic(&topic, 6);
    let dir = tempfile::tempdir().unwrap();
    let path = frames(&dir);
    let (mut a, mut b, mut c) = (
        worker(broker, &topic, &group, &partials),
        worker(broker, &topic, &group, &partials),
        worker(broker, &topic, &group, &partials),
    );
    wait_for_shares(&mut [&mut a, &mut b, &mut c], 2);
    produce(broker, &topic, &path);

    let merged = sorted_lines(&merge(broker, &partials, None).wait(Duration::from_secs(120)));
    let single = single_process(broker, &topic);
    assert!(single.len() > 20, "the input spans several minutes: {single:?}");
    assert_eq!(merged, single, "the merge emits exactly the records of one kuniq count over the topic");
    let expected = oracle_minutes(&path);
    let got: BTreeMap<u64, u64> = last_minutes(&merged).into_iter().map(|(m, (_, u))| (m, u)).collect();
    assert_eq!(got, expected.into_iter().map(|(m, (_, u))| (m, u)).collect::<BTreeMap<_, _>>());

    // All at once: a worker leaving the group hands its partitions to the
    // others, which would read them again from their checkpoints.
    for w in [&a, &b, &c] {
        w.terminate();
    }
    let stopped = [a.stopped(), b.stopped(), c.stopped()];
    let logs: Vec<&str> = stopped.iter().map(|(_, log)| log.as_str()).collect();
    let summaries: Vec<&serde_json::Value> = stopped.iter().map(|(s, _)| s).collect();
    let frames: Vec<u64> = summaries.iter().map(|s| s["frames"].as_u64().unwrap()).collect();
    assert_eq!(frames.iter().sum::<u64>(), 30_000, "every frame read once:\n{}", logs.join("\n---\n"));
    for s in &summaries {
        assert_eq!(s["partitions"].as_array().unwrap().len(), 2, "two partitions each: {s}");
        let share = s["frames"].as_u64().unwrap();
        assert!((8_000..=12_000).contains(&share), "about a third of the frames each: {s}");
        assert_eq!(s["counted"], s["frames"], "{s}");
    }
}

#[test]
fn kill_9_of_a_worker_and_of_the_merge_lose_and_change_no_record() {
    kill_9_scenario(false);
}

/// With --exactly-once on the workers and the merge, a read_committed
/// reader of the output sees every (window, revision) exactly once.
#[test]
fn exactly_once_survives_kill_9_of_a_worker_and_of_the_merge() {
    kill_9_scenario(true);
}

fn kill_9_scenario(exactly_once: bool) {
    let eos: &[&str] = if exactly_once { &["--exactly-once"] } else { &[] };
    let broker = ApacheKafka::shared();
    let (topic, group, partials, output) =
        (unique("sok-in"), unique("sok-workers"), unique("sok-partials"), unique("sok-out"));
    broker.create_topic(&topic, 6);
    broker.create_topic(&output, 1);
    let dir = tempfile::tempdir().unwrap();
    let path = frames(&dir);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let chunks: Vec<std::path::PathBuf> = lines
        .chunks(lines.len().div_ceil(3))
        .enumerate()
        .map(|(i, chunk)| {
            let p = dir.path().join(format!("chunk-{i}.jsonl"));
            std::fs::write(&p, chunk.join("\n") + "\n").unwrap();
            p
        })
        .collect();
    let (mut a, mut b, mut c) = (
        worker_with(broker, &topic, &group, &partials, eos),
        worker_with(broker, &topic, &group, &partials, eos),
        worker_with(broker, &topic, &group, &partials, eos),
    );
    wait_for_shares(&mut [&mut a, &mut b, &mut c], 2);
    let first_merge = merge_with(broker, &partials, Some(&output), eos);
    produce(broker, &topic, &chunks[0]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while topic_records(broker.addr(), &output, false).is_empty() {
        assert!(Instant::now() < deadline, "the merge emitted nothing from the first third");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Every partition has a saved checkpoint (the workers save every
    // --commit-interval).
    let state_topic = format!("{partials}-state");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = kuniq(&["consume", "-b", broker.addr(), "-t", &state_topic, "-e", "-K"]).stdout;
        // Values are binary: keep the lines that start with a key.
        let keys: BTreeSet<String> = out
            .split(|&b| b == b'\n')
            .filter(|line| line.starts_with(group.as_bytes()))
            .filter_map(|line| line.split(|&b| b == b'\t').next())
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect();
        if keys.len() == 6 {
            break;
        }
        assert!(Instant::now() < deadline, "checkpoints of six partitions, got {keys:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // A worker dies mid-run; another takes its place (and its partitions,
    // resumed from their checkpoints).
    a.kill_9();
    let mut d = worker_with(broker, &topic, &group, &partials, eos);
    produce(broker, &topic, &chunks[1]);
    // The merge dies too, and a new one goes on from its checkpoint.
    std::thread::sleep(Duration::from_secs(1));
    first_merge.kill_9();
    let mut second_merge = merge_with(broker, &partials, Some(&output), eos);
    // A fourth live worker joins: partitions move again.
    let mut e = worker_with(broker, &topic, &group, &partials, eos);
    produce(broker, &topic, &chunks[2]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !second_merge.stderr().iter().any(|l| l.contains("resumed from the merge's checkpoint")) {
        assert!(Instant::now() < deadline, "the merge did not resume: {:?}", second_merge.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    second_merge.wait(Duration::from_secs(180));

    let mut by_revision: BTreeMap<(String, u64), String> = BTreeMap::new();
    for (key, value) in topic_records(broker.addr(), &output, exactly_once) {
        let v: serde_json::Value = serde_json::from_str(&value).unwrap();
        let revision = v["revision"].as_u64().unwrap();
        if let Some(before) = by_revision.insert((key.clone(), revision), value.clone()) {
            assert_eq!(before, value, "two different records for {key} revision {revision}");
            assert!(!exactly_once, "{key} revision {revision} twice for a read_committed reader");
        }
    }
    let distinct: Vec<String> = by_revision.into_values().collect();
    assert_eq!(sorted_lines(distinct.join("\n").as_bytes()), single_process(broker, &topic));
    let moved: BTreeSet<u32> = d.partitions().union(&e.partitions()).copied().collect();
    assert!(!moved.is_empty(), "the new workers took partitions over");
    let resumed = [&mut d, &mut e]
        .iter_mut()
        .flat_map(|w| w.stderr().to_vec())
        .filter(|l| l.contains("resumed from its saved checkpoint"))
        .count();
    assert!(resumed > 0, "a partition that moved resumed from its checkpoint instead of its start");
    for w in [b, c, d, e] {
        w.stop();
    }
}
