//! Hostile input through the real `kuniq count` process: every case of the
//! shared hostile-frame table (tests/common/hostile.rs) between good frames,
//! bit-flipped timestamps in an ordered stream, and input that would open
//! windows without bound.
//!
//! Each run must exit 0 without panic text, report the hostile frame under
//! exactly the expected counter, and give every minute the count the
//! oracle (tests/common/oracle.rs) gives over the good frames (plus the
//! hostile one where it is usable).

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;

use common::cli::{Counted, REASONS, count, path_str};
use common::hostile::{self, Case, TS};
use common::oracle::{Verdict, count_per_minute, oracle};
use kuniq::source::file::DEFAULT_MAX_FRAME_BYTES;
use kuniq::window::clock::{JUMP_CONFIRM_FRAMES, WARMUP_FRAMES};
use tempfile::TempDir;

/// Where the hostile frame goes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Position {
    /// Between good frames of its own minute, with the minutes before and
    /// after it around.
    Between,
    /// The first line of the input, then good frames of its minute and the
    /// two after.
    First,
    /// The last line, with no line feed after it, after good frames of the
    /// minute before and its own.
    LastUnterminated,
}

/// The good frames before and after the hostile one at `position`, in ts
/// order with it (so none is late): 24 before it at most (the minute before
/// [`TS`]'s and its own), 30 after (its minute and the two after), 7 users.
fn good_frames(position: Position) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let frame = |i: u64, ts: u64| format!(r#"{{"a":{{"uid":"decoy"}},"uid":"user-{}","ts":{ts}}}"#, i % 7).into_bytes();
    let before = (0..24).map(|i| frame(i, TS - 70 + 3 * i)).collect();
    let after = (0..30).map(|i| frame(i + 3, TS + 4 * i)).collect();
    match position {
        Position::Between => (before, after),
        Position::First => (Vec::new(), after),
        Position::LastUnterminated => (before, Vec::new()),
    }
}

/// The input: good frames with `hostile` at `position`, one per line.
fn input(hostile: &[u8], position: Position) -> Vec<u8> {
    let (before, after) = good_frames(position);
    let mut text = Vec::new();
    for line in &before {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text.extend_from_slice(hostile);
    if position != Position::LastUnterminated {
        text.push(b'\n');
    }
    for line in &after {
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    text
}

/// start -> (unique users, frames) of the good frames, as the oracle reads
/// them, plus the hostile frame when its verdict makes it usable.
fn expected_minutes(position: Position, verdict: &Verdict) -> BTreeMap<i64, (u64, u64)> {
    let (before, after) = good_frames(position);
    let mut usable: Vec<(Vec<u8>, u64)> = before.iter().chain(&after).map(|f| oracle(f).unwrap()).collect();
    usable.extend(verdict.clone());
    let mut minutes: BTreeMap<i64, (HashSet<Vec<u8>>, u64)> = BTreeMap::new();
    for (uid, ts) in usable {
        let minute = minutes.entry((ts / 60 * 60) as i64).or_default();
        minute.0.insert(uid);
        minute.1 += 1;
    }
    minutes.into_iter().map(|(m, (users, frames))| (m, (users.len() as u64, frames))).collect()
}

/// Asserts a run over good frames and one hostile frame with `verdict`
/// (`too_large` for a frame over the size limit) reported just that.
fn assert_one_hostile(got: &Counted, position: Position, verdict: &Verdict, lines: u64, what: &str) {
    let (before, after) = good_frames(position);
    let good = (before.len() + after.len()) as u64;
    assert_eq!(got.stat("frames"), lines, "{what}: frames read");
    for reason in REASONS {
        let want = u64::from(verdict.as_ref().err().is_some_and(|r| r == reason));
        assert_eq!(got.rejected(reason), want, "{what}: rejected as {reason}");
    }
    let usable = u64::from(verdict.is_ok());
    assert_eq!(got.stat("counted"), good + usable, "{what}: counted");
    for name in ["late", "too_late", "quarantined", "windows_forced"] {
        assert_eq!(got.stat(name), 0, "{what}: {name}");
    }
    assert_eq!(got.last(), expected_minutes(position, verdict), "{what}: (users, frames) per minute vs the oracle");
}

/// Counts `text` from a file and from stdin with `flags`, checking both.
fn check_both_ways(dir: &TempDir, position: Position, hostile: &[u8], flags: &[&str], verdict: &Verdict, what: &str) {
    let text = &input(hostile, position)[..];
    // A final line feed ends the last line rather than starting one.
    let lines = text.strip_suffix(b"\n").unwrap_or(text).split(|&b| b == b'\n').count();
    let path = dir.path().join("hostile.jsonl");
    fs::write(&path, text).unwrap();
    let from_file = count(&[&["-i", path_str(&path)][..], flags].concat(), None);
    assert_one_hostile(&from_file, position, verdict, lines as u64, &format!("{what}, file"));
    let from_stdin = count(&[&["-i", "-"][..], flags].concat(), Some(text));
    assert_one_hostile(&from_stdin, position, verdict, lines as u64, &format!("{what}, stdin"));
    assert!(from_file.stdout == from_stdin.stdout, "{what}: file and stdin give the same records");
}

#[test]
fn every_hostile_frame_is_counted_or_rejected_and_the_rest_still_counts() {
    let dir = TempDir::new().unwrap();
    let cases = hostile::cases();
    assert!(cases.len() >= 40, "the table is the shared one");
    for Case { name, frame, verdict } in &cases {
        assert!(!frame.contains(&b'\n'), "{name}: a case is one line");
        for position in [Position::Between, Position::First, Position::LastUnterminated] {
            if frame.is_empty() && position == Position::LastUnterminated {
                // Nothing after the last line feed is no line at all.
                continue;
            }
            check_both_ways(&dir, position, frame, &[], verdict, &format!("{name} ({position:?})"));
        }
    }
}

#[test]
fn deep_nesting_through_the_binary() {
    let dir = TempDir::new().unwrap();
    for case in hostile::big_cases().into_iter().filter(|c| c.name.contains("100,000")) {
        check_both_ways(&dir, Position::Between, &case.frame, &[], &case.verdict, case.name);
    }
}

#[test]
fn a_16_mib_frame_against_the_frame_size_limit() {
    let dir = TempDir::new().unwrap();
    let case = hostile::big_cases().into_iter().find(|c| c.name == "16 MiB frame").unwrap();
    let len = case.frame.len();
    let too_large: Verdict = Err("too_large".into());
    for (flags, verdict) in [
        (vec![], &case.verdict),
        (vec!["--max-frame-bytes".to_string(), "16MiB".to_string()], &case.verdict),
        (vec!["--max-frame-bytes".to_string(), len.to_string()], &case.verdict),
        (vec!["--max-frame-bytes".to_string(), (len - 1).to_string()], &too_large),
    ] {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        check_both_ways(&dir, Position::Between, &case.frame, &flags, verdict, &format!("16 MiB frame, {flags:?}"));
    }
}

#[test]
fn a_frame_just_over_the_default_limit_is_too_large() {
    let dir = TempDir::new().unwrap();
    let at_limit = hostile::padded_frame(hostile::UID, TS, DEFAULT_MAX_FRAME_BYTES);
    let over = hostile::padded_frame(hostile::UID, TS, DEFAULT_MAX_FRAME_BYTES + 1);
    let ok: Verdict = Ok((hostile::UID.as_bytes().to_vec(), TS));
    check_both_ways(&dir, Position::Between, &at_limit, &[], &ok, "a frame at the default limit");
    check_both_ways(&dir, Position::Between, &over, &[], &Err("too_large".into()), "one byte over it");
}

// ---------------------------------------------------------------------------
// Bit-flipped timestamps

/// First ts of the ordered streams below (2016-07-11 13:39:44 UTC).
const T0: u64 = 1_468_244_384;

/// An ordered stream of `len` frames, 3 a second, 97 users: (uid, ts).
fn ordered(len: u64) -> Vec<(String, u64)> {
    (0..len).map(|i| (format!("user-{}", i % 97), T0 + i / 3)).collect()
}

fn jsonl(frames: &[(String, u64)]) -> Vec<u8> {
    let mut text = Vec::new();
    for (uid, ts) in frames {
        text.extend_from_slice(format!(r#"{{"x":[{{"ts":1}}],"uid":"{uid}","ts":{ts},"y":"z"}}"#).as_bytes());
        text.push(b'\n');
    }
    text
}

/// Flips that put a frame far ahead (quarantined), far behind (too late) or
/// past year 9999 (rejected before the clock sees it).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fate {
    Quarantined,
    TooLate,
    OutOfRange,
}

/// A named bit flip: the flipped ts as a function of the good one, and what
/// becomes of the frame.
type Flip = (&'static str, fn(u64) -> u64, Fate);

const FLIPS: [Flip; 8] = [
    ("bit 33 set", |t| t | (1 << 33), Fate::Quarantined),
    ("bit 31 flipped (2084)", |t| t ^ (1 << 31), Fate::Quarantined),
    ("year 2106 (u32::MAX)", |_| u32::MAX as u64, Fate::Quarantined),
    ("bit 22 flipped (48 days ahead)", |t| t ^ (1 << 22), Fate::Quarantined),
    ("zero", |_| 0, Fate::TooLate),
    ("bit 30 cleared (1982)", |t| t & !(1 << 30), Fate::TooLate),
    ("bit 28 flipped (8 years back)", |t| t ^ (1 << 28), Fate::TooLate),
    ("bit 40 set (past year 9999)", |t| t | (1 << 40), Fate::OutOfRange),
];

/// Positions of flipped frames in a stream of `len` good frames (each
/// inserted before the good frame at that index, in this order).
fn placements(len: usize) -> Vec<(&'static str, Vec<usize>)> {
    let mid = len / 2;
    vec![
        ("one in the middle", vec![mid]),
        ("the very first frame", vec![0]),
        ("a burst of 10", vec![mid; 10]),
        ("a burst of 50", vec![mid; 50]),
        ("30 scattered", (0..30).map(|k| 100 + 29 * k).rev().collect()),
        ("the first 7 (under half the warm-up)", vec![0; WARMUP_FRAMES / 2 - 1]),
    ]
}

#[test]
fn bit_flipped_timestamps_do_not_make_the_stream_late() {
    let dir = TempDir::new().unwrap();
    let good = ordered(1200);
    let want: BTreeMap<i64, (u64, u64)> =
        count_per_minute(jsonl(&good).split(|&b| b == b'\n').filter(|l| !l.is_empty()))
            .into_iter()
            .map(|(m, (users, frames))| (m as i64, (users as u64, frames)))
            .collect();
    assert!(want.len() >= 7, "the stream spans several minutes");
    for (name, flip, fate) in FLIPS {
        for (placement, positions) in placements(good.len()) {
            assert!(positions.len() < JUMP_CONFIRM_FRAMES);
            let mut frames = good.clone();
            for (k, &at) in positions.iter().enumerate() {
                frames.insert(at, (format!("flipped-{k}"), flip(good[at].1)));
            }
            let text = jsonl(&frames);
            let path = dir.path().join("flips.jsonl");
            fs::write(&path, &text).unwrap();
            let what = format!("{name}, {placement}");
            for (input, stdin) in [(path_str(&path), None), ("-", Some(text.as_slice()))] {
                let got = count(&["-i", input], stdin);
                assert_eq!(got.last(), want, "{what}: every minute as the oracle counts the good frames");
                assert_eq!(got.stat("counted"), good.len() as u64, "{what}");
                assert_eq!(got.stat("late"), 0, "{what}: nothing made late");
                let n = positions.len() as u64;
                let expect = |f: Fate| if fate == f { n } else { 0 };
                assert_eq!(got.stat("quarantined"), expect(Fate::Quarantined), "{what}: quarantined");
                assert_eq!(got.stat("too_late"), expect(Fate::TooLate), "{what}: too late");
                assert_eq!(got.rejected("ts_out_of_range"), expect(Fate::OutOfRange), "{what}: out of range");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Open windows are capped

#[test]
fn open_windows_are_capped_and_forced_windows_are_reported() {
    let dir = TempDir::new().unwrap();
    // Three hours, 5 frames a minute, ordered; with a two-hour lateness every
    // minute stays open for two hours: about 120 windows at once.
    let mut frames: Vec<(String, u64)> = (0..180 * 5).map(|i| (format!("u{}", i % 13), T0 + 12 * i)).collect();
    // One frame for the first minute, within the lateness: counted without
    // a cap, too late once that minute was forced out.
    let late_one = (String::from("late-one"), T0);
    frames.insert(400, late_one.clone());
    let text = jsonl(&frames);
    let path = dir.path().join("wide.jsonl");
    fs::write(&path, &text).unwrap();
    let lines = || text.split(|&b| b == b'\n').filter(|l| !l.is_empty());
    let all: BTreeMap<i64, (u64, u64)> =
        count_per_minute(lines()).into_iter().map(|(m, (u, f))| (m as i64, (u as u64, f))).collect();

    let wide = ["-i", path_str(&path), "--lateness", "2h", "--quarantine", "3h"];
    let uncapped = count(&wide, None);
    assert_eq!(uncapped.last(), all, "without a cap every frame counts");
    assert_eq!(uncapped.stat("windows_forced"), 0);
    assert!(uncapped.stat("open_windows_peak") > 100, "the input holds many windows open");

    let cap = 10;
    let capped = count(&[&["--max-open-windows", "10"][..], &wide].concat(), None);
    let warnings = capped.stderr.matches("--max-open-windows").count();
    assert_eq!(warnings, 1, "one warning, the first time: {}", capped.stderr);
    assert!(capped.stat("open_windows_peak") <= cap, "at most {cap} open: {}", capped.summary);
    let minutes = all.len() as u64;
    assert_eq!(capped.stat("windows_forced"), minutes - cap, "every window but the last {cap} was forced out");
    assert_eq!(capped.stat("too_late"), 1, "the frame for a forced minute");
    let first = *all.keys().next().unwrap();
    let mut want = all.clone();
    let entry = want.get_mut(&first).unwrap();
    *entry = (entry.0 - 1, entry.1 - 1);
    assert_eq!(capped.last(), want, "forced windows keep their frames; only the late one is missing");
    assert!(capped.stat("state_bytes_peak") > 0);
    assert!(capped.stat("state_bytes_peak") < uncapped.stat("state_bytes_peak"), "the cap bounds the state");
}
