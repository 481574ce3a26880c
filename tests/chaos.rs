//! Faults while kuniq runs Kafka to Kafka: `kill -9` at seeded moments while
//! frames are still being produced, and a broker that stops and comes back.
//!
//! After every scenario the output topic is checked the same way: every
//! (window, revision) has one value however often it was written, every
//! minute of the input has a record, and each minute's last revision is the
//! oracle's count (a full serde_json parse and a HashSet per minute).
//!
//! In `--exactly-once` runs the output is read with
//! `isolation.level=read_committed`, and a (window, revision) that shows
//! twice fails the test, even when both values are the same.
//!
//! The kill -9 tests run on Apache Kafka (the binary's shared broker,
//! `common::apache_kafka`, topics and group of their own), in both delivery
//! modes. A smaller at-least-once run on tansu (memory storage), named
//! `tansu_`, keeps kuniq's tansu workarounds (a fetch from the middle of a
//! record batch answered with the next batch) under the same kills. The
//! broker restart runs on a durable (sqlite) tansu, which this harness can
//! kill and start again with its data.
//!
//! The tests here are the short versions that run in CI. `chaos_long`
//! (ignored) is the long one `scripts/chaos-crash.sh` runs, sized by
//! environment variables:
//!
//! - `KUNIQ_CHAOS_MODE`: `at-least-once` or `exactly-once`;
//! - `KUNIQ_CHAOS_BROKER`: `kafka` (Apache Kafka, the default) or `tansu`
//!   (at-least-once only: tansu 0.6 has no transactions);
//! - `KUNIQ_CHAOS_FRAMES`, `KUNIQ_CHAOS_KILLS`, `KUNIQ_CHAOS_SEED`.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::TestBroker;
use common::apache_kafka::{ApacheKafka, unique};
use common::broker::Broker;
use common::kafka::{kuniq, topic_records};
use common::oracle::count_per_minute;
use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tempfile::TempDir;

const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");
const PARTITIONS: i32 = 4;

/// Out-of-order frames from `kuniq gen`, spread over about 30 minutes of
/// event time, frames of at most `size` bytes: delays up to 40 s (allowed
/// lateness 60 s), so each minute's last revision counts all its frames.
fn generate(dir: &Path, frames: usize, size: &str, seed: u64) -> Vec<String> {
    let path = dir.join("frames.jsonl");
    let count = frames.to_string();
    let rate = (frames / 1800).max(1).to_string();
    let seed = seed.to_string();
    let args = ["gen", "-o", path.to_str().unwrap(), "-c", &count, "-r", &rate, "-n", "20000", "-d", "40", "-p", "20"];
    kuniq(&[&args[..], &["-l", size, "-s", &seed]].concat());
    std::fs::read_to_string(&path).unwrap().lines().map(str::to_owned).collect()
}

/// Produces `frames` round-robin over the partitions of `topic`, paced to
/// take about `over`; returns how many were sent so far through `sent`.
fn produce_paced(brokers: String, topic: String, frames: Arc<Vec<String>>, over: Duration, sent: Arc<AtomicUsize>) {
    let (go, parts) = mpsc::channel();
    go.send((frames.len(), over)).unwrap();
    drop(go);
    produce_in_parts(brokers, topic, frames, parts, sent);
}

/// Produces `frames` in order, round-robin over the partitions of `topic`,
/// one part at a time: for each `(end, over)` received, the frames up to
/// index `end`, paced to take about `over`. Stores how many were sent so far
/// in `sent`, and waits for every delivery once `parts` is closed.
fn produce_in_parts(
    brokers: String,
    topic: String,
    frames: Arc<Vec<String>>,
    parts: mpsc::Receiver<(usize, Duration)>,
    sent: Arc<AtomicUsize>,
) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "20")
        .create()
        .expect("a producer for the input topic");
    let mut next = 0;
    for (end, over) in parts {
        let started = Instant::now();
        let per_frame = over.as_secs_f64() / (end - next).max(1) as f64;
        for (n, i) in (next..end).enumerate() {
            if n % 100 == 0 {
                let due = started + Duration::from_secs_f64(n as f64 * per_frame);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    thread::sleep(wait);
                }
            }
            let mut record =
                BaseRecord::<(), str>::to(&topic).payload(frames[i].as_str()).partition(i as i32 % PARTITIONS);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        // Queue full: let deliveries drain.
                        record = back;
                        producer.poll(Duration::from_millis(5));
                    }
                }
            }
            producer.poll(Duration::ZERO);
            sent.store(i + 1, Ordering::Relaxed);
        }
        next = end;
    }
    producer.flush(Duration::from_secs(60)).expect("every input frame delivered");
}

/// Every record of `topic`; read_committed for `--exactly-once` runs.
fn output_records(brokers: &str, topic: &str, committed: bool) -> Vec<(String, String)> {
    topic_records(brokers, topic, committed)
}

/// What the output topic shows.
struct Verdict {
    records: usize,
    /// Records that repeat an earlier (window, revision) byte for byte.
    repeated: usize,
    minutes: usize,
}

/// Checks the output topic against the oracle; panics with `context` on
/// a wrong, missing or conflicting record, and, when `once`, on any
/// (window, revision) that shows twice.
fn check_output(records: &[(String, String)], frames: &[String], once: bool, context: &str) -> Verdict {
    let mut values: BTreeMap<(String, u64), String> = BTreeMap::new();
    let mut last: BTreeMap<u64, (u64, usize, u64)> = BTreeMap::new();
    let mut repeated = 0;
    for (key, value) in records {
        let v: serde_json::Value = serde_json::from_str(value).unwrap();
        let (start, revision) = (v["start"].as_u64().unwrap(), v["revision"].as_u64().unwrap());
        assert_eq!(key, &format!("minute:{start}"), "{context}");
        match values.get(&(key.clone(), revision)) {
            Some(seen) => {
                assert_eq!(seen, value, "two different records for {key} revision {revision}; {context}");
                assert!(!once, "{key} revision {revision} shows twice (read_committed):\n  {value}\n{context}");
                repeated += 1;
            }
            None => {
                values.insert((key.clone(), revision), value.clone());
            }
        }
        let now = (revision, v["unique_users"].as_u64().unwrap() as usize, v["frames"].as_u64().unwrap());
        let entry = last.entry(start).or_insert(now);
        if revision >= entry.0 {
            *entry = now;
        }
    }
    let got: BTreeMap<u64, (usize, u64)> = last.into_iter().map(|(m, (_, u, f))| (m, (u, f))).collect();
    let expected = count_per_minute(frames.iter().map(|f| f.as_bytes()));
    let missing: Vec<&u64> = expected.keys().filter(|m| !got.contains_key(m)).collect();
    assert!(missing.is_empty(), "minutes with no record: {missing:?}; {context}");
    for (minute, want) in &expected {
        assert_eq!(&got[minute], want, "minute {minute}: (unique_users, frames); {context}");
    }
    assert_eq!(got.len(), expected.len(), "records for minutes not in the input; {context}");
    Verdict { records: records.len(), repeated, minutes: expected.len() }
}

struct Chaos<'a> {
    broker: &'a dyn TestBroker,
    /// What the report calls the broker.
    broker_name: &'a str,
    frames: usize,
    kills: usize,
    seed: u64,
    exactly_once: bool,
}

/// Produces the frames live while kuniq is killed `kills` times at seeded
/// moments and restarted with the same group, then runs it to the end
/// (-e) and checks the output topic. Returns a report, one line per kill.
/// Topics, group and state topic (created by kuniq) are the run's own, so
/// runs can share a broker.
fn chaos(c: &Chaos) -> String {
    let dir = TempDir::new().unwrap();
    let (topic, uniques, group, state) = (unique("frames"), unique("uniques"), unique("chaos"), unique("state"));
    c.broker.create_topic(&topic, PARTITIONS as u32);
    c.broker.create_topic(&uniques, 1);
    let brokers = c.broker.addr().to_owned();
    let frames = Arc::new(generate(dir.path(), c.frames, "2048", c.seed));

    // Seeded kill moments: 1 to 4 s after each start.
    let mut rng = c.seed ^ 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        rng >> 33
    };
    let delays: Vec<Duration> = (0..c.kills).map(|_| Duration::from_millis(1000 + next() % 3000)).collect();
    // The frames come in kills + 1 parts. Part k starts with killed run k and
    // is paced over 1.25 times that run's life, so each kill lands while
    // frames still arrive, and the rest of the part arrives while kuniq is
    // down. The last part comes after the last kill, before the last run.
    let sent = Arc::new(AtomicUsize::new(0));
    let (go, parts) = mpsc::channel();
    let part_end = |k: usize| frames.len() * (k + 1) / (c.kills + 1);
    let producer = {
        let (brokers, topic, frames, sent) = (brokers.clone(), topic.clone(), Arc::clone(&frames), Arc::clone(&sent));
        thread::spawn(move || produce_in_parts(brokers, topic, frames, parts, sent))
    };

    let mut args = vec!["count", "-b", &brokers, "-t", &topic, "-G", &group, "-o", &uniques, "--state-topic", &state];
    args.extend(["--offset", "beginning", "--commit-interval", "200ms", "--idle-timeout", "1h", "--progress", "never"]);
    if c.exactly_once {
        args.push("--exactly-once");
    }
    let mode = format!("{}, {}", if c.exactly_once { "exactly-once" } else { "at-least-once" }, c.broker_name);
    let mut report = format!(
        "chaos: {} frames ({} minutes of event time), {} partitions, {mode}, seed {}\n",
        frames.len(),
        count_per_minute(frames.iter().map(|f| f.as_bytes())).len(),
        PARTITIONS,
        c.seed
    );
    let mut hits = 0;
    for (i, after) in delays.iter().enumerate() {
        let mut child: Child = Command::new(KUNIQ)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kuniq");
        let stderr = drain(child.stderr.take().unwrap());
        go.send((part_end(i), *after * 5 / 4)).unwrap();
        thread::sleep(*after);
        let running = child.try_wait().unwrap().is_none();
        child.kill().unwrap(); // SIGKILL
        let at_kill = sent.load(Ordering::Relaxed);
        child.wait().unwrap();
        let stderr = stderr.recv().unwrap_or_default();
        assert!(!stderr.contains("panicked"), "kuniq panicked before kill {}:\n{stderr}", i + 1);
        assert!(running, "kuniq exited before kill {} ({} ms):\n{stderr}", i + 1, after.as_millis());
        hits += 1;
        let so_far = output_records(&brokers, &uniques, false).len();
        report += &format!(
            "kill {:2}: SIGKILL {:4} ms after start; {:7} of {} frames produced by then; {:5} output records so far{}\n",
            i + 1,
            after.as_millis(),
            at_kill,
            frames.len(),
            so_far,
            if c.exactly_once { " (read_uncommitted)" } else { "" }
        );
        assert!(at_kill < part_end(i), "kill {} came after its part of the frames was produced", i + 1);
    }
    go.send((frames.len(), Duration::from_secs(1))).unwrap();
    drop(go);
    producer.join().expect("the producer thread");
    let started = Instant::now();
    let last = kuniq(&[&args[..], &["-e", "--summary", "json"]].concat());
    let summary = String::from_utf8_lossy(&last.stderr).lines().last().unwrap_or_default().to_owned();
    report += &format!("last run: -e, {:.1} s, summary {summary}\n", started.elapsed().as_secs_f64());

    let context = format!("after {hits} kills, seed {}, {mode}; the run so far:\n{report}", c.seed);
    let records = output_records(&brokers, &uniques, c.exactly_once);
    let verdict = check_output(&records, &frames, c.exactly_once, &context);
    report += &format!(
        "outcome: {} minutes, each with a record, last revision = oracle for all; {} output records{}, {} of them \
         repeats of an earlier (window, revision), byte-identical; no (window, revision) with two values\n",
        verdict.minutes,
        verdict.records,
        if c.exactly_once { " read_committed" } else { "" },
        verdict.repeated
    );
    if c.exactly_once {
        let all = output_records(&brokers, &uniques, false).len();
        report += &format!(
            "log: {all} records read_uncommitted, {} of them from aborted transactions and hidden from \
             read_committed readers\n",
            all - records.len()
        );
    }
    report
}

/// Collects a child's stderr on a thread (so a full pipe never blocks it).
fn drain(mut pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut text = String::new();
        let _ = pipe.read_to_string(&mut text);
        let _ = tx.send(text);
    });
    rx
}

const APACHE_KAFKA: &str = "Apache Kafka";

#[test]
fn killed_at_least_once_runs_lose_nothing_and_repeat_records_exactly() {
    let broker = ApacheKafka::shared();
    let c = Chaos { broker, broker_name: APACHE_KAFKA, frames: 40_000, kills: 3, seed: 0x5eed, exactly_once: false };
    eprintln!("{}", chaos(&c));
}

/// Exactly once for real: read_committed, every (window, revision) once.
#[test]
fn killed_exactly_once_runs_lose_nothing_and_commit_each_record_once() {
    let broker = ApacheKafka::shared();
    let c = Chaos { broker, broker_name: APACHE_KAFKA, frames: 40_000, kills: 3, seed: 0x5eed, exactly_once: true };
    eprintln!("{}", chaos(&c));
}

/// The compatibility run on tansu (no transactions): at least once.
#[test]
fn tansu_killed_at_least_once_runs_lose_nothing_and_repeat_records_exactly() {
    let broker = Broker::start();
    let c = Chaos {
        broker: &broker,
        broker_name: "tansu memory storage",
        frames: 20_000,
        kills: 2,
        seed: 0x7a05,
        exactly_once: false,
    };
    eprintln!("{}", chaos(&c));
}

/// The long run of `scripts/chaos-crash.sh`; see the module docs.
#[test]
#[ignore = "minutes long: scripts/chaos-crash.sh runs it"]
fn chaos_long() {
    let var = |name: &str, default: u64| -> u64 {
        std::env::var(name).map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
    };
    let exactly_once = match std::env::var("KUNIQ_CHAOS_MODE").as_deref() {
        Ok("exactly-once") => true,
        Ok("at-least-once") | Err(_) => false,
        Ok(other) => panic!("KUNIQ_CHAOS_MODE must be at-least-once or exactly-once, not {other}"),
    };
    let tansu;
    let (broker, broker_name): (&dyn TestBroker, &str) = match std::env::var("KUNIQ_CHAOS_BROKER").as_deref() {
        Ok("kafka") | Err(_) => (ApacheKafka::shared(), APACHE_KAFKA),
        Ok("tansu") => {
            assert!(
                !exactly_once,
                "KUNIQ_CHAOS_BROKER=tansu needs KUNIQ_CHAOS_MODE=at-least-once: tansu has no transactions"
            );
            tansu = Broker::start();
            (&tansu, "tansu memory storage")
        }
        Ok(other) => panic!("KUNIQ_CHAOS_BROKER must be kafka or tansu, not {other}"),
    };
    let report = chaos(&Chaos {
        broker,
        broker_name,
        frames: var("KUNIQ_CHAOS_FRAMES", 200_000) as usize,
        kills: var("KUNIQ_CHAOS_KILLS", 10) as usize,
        seed: var("KUNIQ_CHAOS_SEED", 1),
        exactly_once,
    });
    println!("{report}");
}

/// A durable broker (sqlite) killed while kuniq runs and started again
/// 12 s later, longer than the idle timeout plus the lateness (5 s + 5 s): kuniq reconnects by
/// itself, does not take the outage for a quiet topic (which would close
/// the last minutes early and make the frames produced after the restart
/// too late), takes those frames, emits the last minutes once the topic
/// goes quiet, stops cleanly on SIGTERM, and the output topic holds every
/// minute right.
#[test]
fn kuniq_rides_out_a_broker_restart() {
    let dir = TempDir::new().unwrap();
    let mut broker = Broker::start_sqlite(&dir.path().join("broker"));
    broker.create_topic("frames", PARTITIONS as u32);
    broker.create_topic("uniques", 1);
    // Small frames: the second half reaches kuniq well within the idle
    // timeout after the restart, even on a loaded machine.
    let frames = generate(dir.path(), 20_000, "200", 7);
    let (first, second) = frames.split_at(frames.len() / 2);
    let brokers = broker.addr.clone();
    let whole = Duration::from_secs(1);
    produce_paced(brokers.clone(), "frames".into(), Arc::new(first.to_vec()), whole, Arc::new(AtomicUsize::new(0)));

    let mut child = Command::new(KUNIQ)
        .args(["count", "-b", &brokers, "-t", "frames", "-G", "restart", "-o", "uniques", "--offset", "beginning"])
        .args(["--commit-interval", "200ms", "--idle-timeout", "5s", "--progress", "never", "--summary", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = drain(child.stderr.take().unwrap());
    // Mid-run: the first half's minutes are on the output topic.
    let first_minutes = count_per_minute(first.iter().map(|f| f.as_bytes())).len();
    wait_for(Duration::from_secs(60), "records of the first half", || {
        output_records(&brokers, "uniques", false).len() >= first_minutes / 2
    });
    broker.stop();
    thread::sleep(Duration::from_secs(12));
    assert!(child.try_wait().unwrap().is_none(), "kuniq exited while the broker was down");
    broker.start_again();
    produce_paced(brokers.clone(), "frames".into(), Arc::new(second.to_vec()), whole, Arc::new(AtomicUsize::new(0)));

    // The last minute arrives once the partitions go idle (5 s) and the
    // lateness (5 s) passes on the wall clock.
    let last_minute = *count_per_minute(frames.iter().map(|f| f.as_bytes())).keys().last().unwrap();
    wait_for(Duration::from_secs(60), "the last minute's record", || {
        output_records(&brokers, "uniques", false).iter().any(|(key, _)| *key == format!("minute:{last_minute}"))
    });
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let stderr = stderr.recv().unwrap_or_default();
    assert!(status.success(), "kuniq exited with {status} after SIGTERM:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    check_output(
        &output_records(&brokers, "uniques", false),
        &frames,
        false,
        &format!("after a broker restart; kuniq said:\n{stderr}"),
    );
    eprintln!("kuniq's stderr across the broker restart:\n{stderr}");
}

/// Polls `done` every 200 ms until it holds; panics after `limit`.
fn wait_for(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "no {what} within {} s", limit.as_secs());
        thread::sleep(Duration::from_millis(200));
    }
}

/// No broker at the address: a clear error naming it, within the
/// `--connect-timeout`, not a silent hang.
#[test]
fn an_unreachable_broker_is_a_clear_error_within_the_connect_timeout() {
    // A port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let brokers = format!("127.0.0.1:{port}");
    let started = Instant::now();
    let out = Command::new(KUNIQ)
        .args(["count", "-b", &brokers, "-t", "frames", "-e", "--offset", "beginning", "--connect-timeout", "3s"])
        .args(["--progress", "never"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&brokers), "the error names the brokers: {stderr}");
    assert!(stderr.contains("within 3 s"), "the error says how long it waited: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(took < Duration::from_secs(15), "took {took:?} to give up");
}
