//! Provisional records of open windows (`--early-interval`): a multi-day
//! replay's day windows say their count so far while they are open, every
//! interval of event time, marked `"closed": false`, never decreasing, and
//! then close with the exact count.

mod common;

use std::collections::{BTreeMap, HashSet};

use common::cli::{generate, path_str, run};
use tempfile::TempDir;

/// One parsed record of any kind.
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    window: String,
    start: i64,
    users: u64,
    frames: u64,
    revision: u64,
    closed: bool,
}

fn records(stdout: &[u8]) -> Vec<Rec> {
    stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let v: serde_json::Value = serde_json::from_slice(line).expect("a JSON record");
            Rec {
                window: v["window"].as_str().unwrap().to_string(),
                start: v["start"].as_i64().unwrap(),
                users: v["unique_users"].as_u64().unwrap(),
                frames: v["frames"].as_u64().unwrap(),
                revision: v["revision"].as_u64().unwrap(),
                closed: v["closed"].as_bool().expect("every record says whether its window closed"),
            }
        })
        .collect()
}

/// Exact (users, frames) per UTC day of a generated file.
fn oracle_days(path: &std::path::Path) -> BTreeMap<i64, (u64, u64)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut days: BTreeMap<i64, (HashSet<String>, u64)> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let ts = v["ts"].as_i64().unwrap();
        let day = days.entry(ts.div_euclid(86_400) * 86_400).or_default();
        day.0.insert(v["uid"].as_str().unwrap().to_string());
        day.1 += 1;
    }
    days.into_iter().map(|(d, (users, frames))| (d, (users.len() as u64, frames))).collect()
}

#[test]
fn days_of_a_multi_day_replay_answer_early_and_close_exact() {
    let dir = TempDir::new().unwrap();
    // Four days and a bit: a frame every 0 to 36 s, 2,000 users.
    let path = generate(&dir, "days.jsonl", &["-c", "20000", "--spacing", "18", "-n", "2000", "-s", "9"]);
    let out = run(
        &["count", "-i", path_str(&path), "--windows", "day", "--early-interval", "1h", "--progress", "never"],
        None,
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let all = records(&out.stdout);
    let expected = oracle_days(&path);
    assert!(expected.len() >= 4, "the replay spans {} days", expected.len());
    let mut by_day: BTreeMap<i64, Vec<Rec>> = BTreeMap::new();
    for r in all {
        assert_eq!(r.window, "day");
        by_day.entry(r.start).or_default().push(r);
    }
    assert_eq!(by_day.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    let (first_day, last_day) = (*by_day.keys().next().unwrap(), *by_day.keys().last().unwrap());
    for (day, recs) in &by_day {
        let provisional: Vec<&Rec> = recs.iter().take_while(|r| !r.closed).collect();
        let closing = &recs[provisional.len()];
        // A whole day answers early at most 23 times, once an hour; the
        // replay starts and ends mid-day.
        let whole = *day != first_day && *day != last_day;
        assert!(provisional.len() >= if whole { 20 } else { 1 }, "day {day}: {} provisional", provisional.len());
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.revision, i as u64, "day {day}: revisions count every record");
        }
        for pair in recs.windows(2) {
            assert!(pair[1].users >= pair[0].users && pair[1].frames >= pair[0].frames, "day {day}: {pair:?}");
        }
        assert!(recs[provisional.len()..].iter().all(|r| r.closed), "day {day}: nothing provisional after the close");
        assert_eq!((closing.users, closing.frames), expected[day], "day {day}: the close is exact");
    }
    // Turned off, the same replay sends one record per day.
    let off = run(&["count", "-i", path_str(&path), "--windows", "day", "--early-interval", "0"], None, &[]);
    let off = records(&off.stdout);
    assert_eq!(off.len(), expected.len());
    assert!(off.iter().all(|r| r.closed && r.revision == 0));
}
