//! `kuniq count --metrics-addr`: the endpoint scraped while real runs go
//! on, its values checked against the frames fed and the run's summary.
//!
//! kuniq is given port 0 and prints the address it bound; the tests poll
//! the endpoint against a deadline until the run has taken in everything
//! it was given (never a fixed sleep), then stop it and compare.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::apache_kafka::{ApacheKafka, unique};
use common::cli::{KUNIQ, generate, path_str};
use tempfile::TempDir;

/// Longest wait for a run to reach the state a test expects.
const DEADLINE: Duration = Duration::from_secs(90);

/// One scrape: every sample, keyed by its series (`name{labels}`).
type Samples = BTreeMap<String, f64>;

/// A running `kuniq count` whose stderr lines are collected.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Running {
    fn start(args: &[&str], stdin: bool) -> Running {
        let mut child = Command::new(KUNIQ)
            .args(args)
            .env_remove("KUNIQ_WORKERS")
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting kuniq");
        let err = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running { child, lines, stderr: Vec::new() }
    }

    /// The address kuniq printed for its metrics endpoint.
    fn metrics_addr(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let addr = line
                        .strip_prefix("kuniq: metrics at http://")
                        .and_then(|rest| rest.strip_suffix("/metrics"))
                        .map(str::to_string);
                    self.stderr.push(line);
                    if let Some(addr) = addr {
                        return addr;
                    }
                }
                Err(_) => panic!("kuniq printed no metrics address:\n{}", self.stderr.join("\n")),
            }
        }
    }

    /// Scrapes until `ready` holds for a scrape; panics at the deadline with
    /// the last scrape and kuniq's stderr.
    fn scrape_until(&mut self, addr: &str, ready: impl Fn(&Samples) -> bool) -> Samples {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let samples = parse(&scrape(addr, "/metrics"));
            if ready(&samples) {
                return samples;
            }
            while let Ok(line) = self.lines.try_recv() {
                self.stderr.push(line);
            }
            assert!(
                Instant::now() < deadline,
                "the metrics never reached the expected state; last scrape:\n{samples:#?}\nkuniq's stderr:\n{}",
                self.stderr.join("\n")
            );
            assert!(self.child.try_wait().unwrap().is_none(), "kuniq exited early:\n{}", self.stderr.join("\n"));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the exit (status 0) and returns the `--summary json` object.
    fn summary(mut self) -> serde_json::Value {
        let status = self.child.wait().unwrap();
        self.stderr.extend(self.lines.iter());
        let all = self.stderr.join("\n");
        assert!(status.success() && !all.contains("panicked"), "kuniq exited with {status}:\n{all}");
        let json =
            self.stderr.iter().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| panic!("no summary:\n{all}"));
        serde_json::from_str(json).unwrap()
    }
}

/// One HTTP/1.1 GET; the whole response, status line included.
fn scrape(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}

/// The samples of a 200 response in the text format.
fn parse(response: &str) -> Samples {
    let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.ends_with("# EOF\n"), "an OpenMetrics body ends with # EOF:\n{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap_or_else(|_| panic!("a number in {l:?}")))
        })
        .collect()
}

fn get(samples: &Samples, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(-1.0)
}

fn rejected(samples: &Samples, reason: &str) -> f64 {
    get(samples, &format!("kuniq_frames_rejected_total{{reason=\"{reason}\"}}"))
}

/// Highest ts among the good frames of a generated file.
fn max_ts(path: &Path) -> i64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()?["ts"].as_i64()).max().unwrap()
}

/// Kafka in, Kafka out, without `-e`: the run stays up. Once every frame
/// is in, the scrape shows them all, the two bad ones by reason, the
/// records emitted so far (each with its latency, acknowledged), both
/// partitions' watermarks and no lag; SIGTERM's summary agrees. On Apache
/// Kafka (the binary's shared broker, topics and group of its own).
#[test]
fn kafka_run_is_scraped_while_it_runs_and_agrees_with_its_summary() {
    let broker = ApacheKafka::shared();
    let (topic, uniques, group) = (unique("frames"), unique("uniques"), unique("metrics"));
    broker.create_topic(&topic, 2);
    broker.create_topic(&uniques, 1);
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, "frames.jsonl", &["-c", "6000", "-r", "40", "-n", "500", "-s", "11"]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"{\"uid\": broken\n{\"uid\":\"no-ts\"}\n");
    std::fs::write(&path, &bytes).unwrap();
    let produced = Command::new(KUNIQ)
        .args(["produce", "-b", &broker.addr, "-t", &topic, "-i", path_str(&path), "--progress", "never"])
        .output()
        .unwrap();
    assert!(produced.status.success(), "{}", String::from_utf8_lossy(&produced.stderr));
    let frames = 6002.0;

    // The idle timeout outlasts the test: once every frame is in, nothing
    // moves the watermark, so the records scraped are all the run emits.
    let mut run = Running::start(
        &[
            "count",
            "-b",
            &broker.addr,
            "-t",
            &topic,
            "-G",
            &group,
            "--offset",
            "beginning",
            "-o",
            &uniques,
            "--idle-timeout",
            "10m",
            "--commit-interval",
            "500ms",
            "--metrics-addr",
            "127.0.0.1:0",
            "--summary",
            "json",
            "--progress",
            "never",
        ],
        false,
    );
    let addr = run.metrics_addr();
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    assert!(scrape(&addr, "/").starts_with("HTTP/1.1 404 "));
    let samples = run.scrape_until(&addr, |s| {
        get(s, "kuniq_frames_total") == frames
            && get(s, "kuniq_records_emitted_total") > 0.0
            && get(s, "kuniq_emission_latency_seconds_count") == get(s, "kuniq_records_emitted_total")
            && get(s, "kuniq_consumer_lag_messages{partition=\"0\"}") == 0.0
            && get(s, "kuniq_consumer_lag_messages{partition=\"1\"}") == 0.0
    });
    assert_eq!(rejected(&samples, "malformed"), 1.0);
    assert_eq!(rejected(&samples, "missing_ts"), 1.0);
    assert_eq!(rejected(&samples, "empty"), 0.0);
    assert_eq!(
        get(&samples, "kuniq_input_bytes_total"),
        bytes.len() as f64 - frames,
        "payload bytes, without line feeds"
    );
    assert_eq!(get(&samples, "kuniq_producer_errors_total"), 0.0);
    let wm0 = get(&samples, "kuniq_partition_watermark_seconds{partition=\"0\"}");
    let wm1 = get(&samples, "kuniq_partition_watermark_seconds{partition=\"1\"}");
    assert_eq!(wm0.max(wm1), (max_ts(&path) - 5) as f64, "the partition with the last frame: its ts - lateness");
    assert_eq!(get(&samples, "kuniq_watermark_seconds"), wm0.min(wm1), "global = minimum over partitions");
    assert!(get(&samples, "kuniq_open_windows") > 0.0 && get(&samples, "kuniq_window_state_bytes") > 0.0);

    let pid = run.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let summary = run.summary();
    assert_eq!(summary["frames"].as_f64(), Some(frames));
    assert_eq!(summary["rejected_by_reason"]["malformed"].as_f64(), Some(1.0));
    assert_eq!(summary["records"].as_f64(), Some(get(&samples, "kuniq_records_emitted_total")));
    assert_eq!(summary["late"].as_f64(), Some(get(&samples, "kuniq_frames_late_total")));
    assert_eq!(summary["too_late"].as_f64(), Some(get(&samples, "kuniq_frames_too_late_total")));
}

/// stdin kept open: the chunks read so far are scraped (frames, a bad
/// frame by reason, records written to stdout with their latency, the
/// watermark; no partition series), then the end of input finishes the run.
#[test]
fn stdin_run_is_scraped_while_input_is_still_open() {
    let dir = TempDir::new().unwrap();
    // 1 KB frames, 30 MB: several 4 MiB chunks are complete while stdin
    // stays open.
    let path = generate(&dir, "frames.jsonl", &["-c", "30000", "-l", "1K", "-r", "100", "-n", "1000", "-s", "12"]);
    let mut run =
        Running::start(&["count", "-i", "-", "--metrics-addr", "0", "--summary", "json", "--progress", "never"], true);
    let addr = run.metrics_addr();
    assert!(addr.starts_with("127.0.0.1:"), "a port alone binds loopback: {addr}");
    let mut stdin = run.child.stdin.take().unwrap();
    stdin.write_all(b"[1,2]\n").unwrap();
    stdin.write_all(&std::fs::read(&path).unwrap()).unwrap();
    let samples = run.scrape_until(&addr, |s| {
        rejected(s, "not_object") == 1.0
            && get(s, "kuniq_records_emitted_total") > 0.0
            && get(s, "kuniq_emission_latency_seconds_count") == get(s, "kuniq_records_emitted_total")
    });
    let scraped = get(&samples, "kuniq_frames_total");
    assert!(scraped > 1.0 && scraped < 30001.0, "{scraped}");
    assert!(get(&samples, "kuniq_watermark_seconds") > 1.4e9);
    assert!(!samples.keys().any(|k| k.contains("partition=")), "no Kafka partitions for stdin");
    drop(stdin);
    let summary = run.summary();
    assert_eq!(summary["frames"].as_f64(), Some(30001.0));
    assert_eq!(summary["rejected_by_reason"]["not_object"].as_f64(), Some(1.0));
}
