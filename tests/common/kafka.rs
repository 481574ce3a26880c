//! Helpers for the tests that run kuniq against a broker: run the binary
//! and insist it succeeded, and read a topic back through `kuniq consume`.

use std::process::{Command, Output, Stdio};

use super::cli::KUNIQ;

/// Runs `kuniq args` with no stdin; fails the test on panic text or a
/// failed exit.
pub fn kuniq(args: &[&str]) -> Output {
    let out = Command::new(KUNIQ).args(args).stdin(Stdio::null()).output().expect("running kuniq");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "kuniq {args:?} panicked:\n{stderr}");
    assert!(out.status.success(), "kuniq {args:?} failed ({}):\n{stderr}", out.status);
    out
}

/// Every record of `topic` as (key, value), read to its end: only committed
/// records when `committed` (isolation.level=read_committed), else every
/// record in the log, those of open and aborted transactions too
/// (read_uncommitted; librdkafka's default is read_committed).
pub fn topic_records(brokers: &str, topic: &str, committed: bool) -> Vec<(String, String)> {
    let isolation = if committed { "isolation.level=read_committed" } else { "isolation.level=read_uncommitted" };
    let args = ["consume", "-b", brokers, "-t", topic, "-e", "-K", "-X", isolation];
    String::from_utf8(kuniq(&args).stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (key, value) = line.split_once('\t').expect("key<TAB>value");
            (key.to_owned(), value.to_owned())
        })
        .collect()
}
