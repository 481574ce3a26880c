//! End-to-end tests: the real `kuniq` binary run as a process on real files
//! (and stdin) in a temporary directory.
//!
//! What a run prints is held to expectations that share no code with kuniq:
//!
//! - per-minute users and frames of generated inputs (plain and gzip),
//!   counted by the oracle;
//! - the serde_json oracle (`common::oracle`) for each frame's verdict, fed
//!   through [`simulate`], a plain sequential reading of the documented
//!   window rules (watermark, allowed lateness, warm-up, quarantine);
//! - kuniq itself under other worker counts, parsers and input forms, which
//!   must not change a byte of stdout.
//!
//! Every successful run is also checked against the output contract (field
//! names and order, one window kind, revisions numbered 0, 1, 2.. per
//! window, counts that only grow) and against its own `--summary json`.
//! No run, successful or not, may print panic text.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::cli::{Counted, KUNIQ, REASONS, count, count_env, generate, parse_record, path_str, run};
use common::oracle::{count_per_minute, oracle};
use kuniq::window::clock::{JUMP_CONFIRM_FRAMES, WARMUP_FRAMES};
use tempfile::TempDir;

/// First event time of the generator (2016-07-11 13:39:44 UTC).
const T0: i64 = 1_468_244_384;

// ---------------------------------------------------------------------------
// The expectation: oracle verdicts through the documented window rules

/// Window rules as `kuniq count` flags (defaults: 5 s, 60 s, 5 s, 1 h).
#[derive(Debug, Clone, Copy)]
struct Rules {
    lateness_secs: i64,
    allowed_lateness_secs: i64,
    revision_interval_secs: i64,
    quarantine_secs: i64,
}

impl Rules {
    const DEFAULT: Rules =
        Rules { lateness_secs: 5, allowed_lateness_secs: 60, revision_interval_secs: 5, quarantine_secs: 3600 };

    fn flags(&self) -> Vec<String> {
        vec![
            format!("--lateness={}s", self.lateness_secs),
            format!("--allowed-lateness={}s", self.allowed_lateness_secs),
            format!("--revision-interval={}s", self.revision_interval_secs),
            format!("--quarantine={}s", self.quarantine_secs),
        ]
    }

    /// Most revisions a window can have: revision 0 and one per stage.
    fn max_revision(&self) -> u64 {
        (self.allowed_lateness_secs + self.revision_interval_secs - 1).div_euclid(self.revision_interval_secs) as u64
    }
}

/// What a correct run reports.
#[derive(Default)]
struct Expected {
    minutes: BTreeMap<i64, (HashSet<Vec<u8>>, u64)>,
    counted: u64,
    late: u64,
    too_late: u64,
    quarantined: u64,
}

impl fmt::Debug for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} minutes, counted {}, late {}, too late {}, quarantined {}",
            self.minutes.len(),
            self.counted,
            self.late,
            self.too_late,
            self.quarantined
        )
    }
}

impl Expected {
    /// start -> (unique users, frames), as [`Counted::last`] gives.
    fn last(&self) -> BTreeMap<i64, (u64, u64)> {
        self.minutes.iter().map(|(&m, (users, frames))| (m, (users.len() as u64, *frames))).collect()
    }
}

/// The frames of `bytes` (one per line, a final line feed optional) that
/// the oracle finds usable and that fit in `max_frame_bytes`, in order.
fn usable_frames(bytes: &[u8], max_frame_bytes: usize) -> Vec<(Vec<u8>, i64)> {
    lines(bytes)
        .filter(|line| line.len() <= max_frame_bytes)
        .filter_map(|line| oracle(line).ok())
        .map(|(uid, ts)| (uid, ts as i64))
        .collect()
}

/// The lines of a JSON-lines text: a final line feed ends the last line
/// rather than starting an empty one.
fn lines(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n').take(if bytes.is_empty() { 0 } else { usize::MAX })
}

/// The fate of every frame under the documented rules, decided one frame
/// at a time in arrival order (a file is one stream):
///
/// - The first [`WARMUP_FRAMES`] frames are held; then, around their median
///   ts, those more than `quarantine` ahead are quarantined, those more
///   than `quarantine` behind are too late, the rest admitted in order.
/// - Afterwards a frame more than `quarantine` ahead of the watermark
///   (`max ts - lateness`) is held; [`JUMP_CONFIRM_FRAMES`] of them in a
///   row are a real jump and are anchored around their median like a
///   warm-up (the far ones quarantined); any other frame first releases
///   the held ones as quarantined.
/// - An admitted frame raises max ts; with the watermark just after it, its
///   minute `[start, end)` takes it on time if `wm < end`, late if
///   `wm < end + allowed_lateness`, else it is too late and not counted.
/// - At the end of input an unfinished warm-up is anchored and held frames
///   are quarantined.
fn simulate(frames: &[(Vec<u8>, i64)], rules: Rules) -> Expected {
    let mut sim = Sim { rules, max_ts: None, out: Expected::default() };
    let mut warmup: Vec<(&[u8], i64)> = Vec::new();
    let mut held: Vec<(&[u8], i64)> = Vec::new();
    for (uid, ts) in frames {
        let frame = (uid.as_slice(), *ts);
        match sim.max_ts {
            None => {
                warmup.push(frame);
                if warmup.len() == WARMUP_FRAMES {
                    sim.anchor(std::mem::take(&mut warmup), true);
                }
            }
            Some(max_ts) if frame.1 - (max_ts - rules.lateness_secs) > rules.quarantine_secs => {
                held.push(frame);
                if held.len() == JUMP_CONFIRM_FRAMES {
                    sim.anchor(std::mem::take(&mut held), false);
                }
            }
            Some(_) => {
                sim.out.quarantined += held.len() as u64;
                held.clear();
                sim.admit(frame);
            }
        }
    }
    if !warmup.is_empty() {
        sim.anchor(warmup, true);
    }
    sim.out.quarantined += held.len() as u64;
    sim.out
}

struct Sim {
    rules: Rules,
    max_ts: Option<i64>,
    out: Expected,
}

impl Sim {
    fn admit(&mut self, (uid, ts): (&[u8], i64)) {
        let max_ts = self.max_ts.map_or(ts, |m| m.max(ts));
        self.max_ts = Some(max_ts);
        let watermark = max_ts - self.rules.lateness_secs;
        let start = ts.div_euclid(60) * 60;
        let end = start + 60;
        if watermark >= end + self.rules.allowed_lateness_secs {
            self.out.too_late += 1;
            return;
        }
        if watermark >= end {
            self.out.late += 1;
        }
        self.out.counted += 1;
        let minute = self.out.minutes.entry(start).or_default();
        minute.0.insert(uid.to_vec());
        minute.1 += 1;
    }

    fn anchor(&mut self, frames: Vec<(&[u8], i64)>, warmup: bool) {
        let mut times: Vec<i64> = frames.iter().map(|f| f.1).collect();
        times.sort_unstable();
        let median = times[times.len() / 2];
        let q = self.rules.quarantine_secs;
        for frame in frames {
            if frame.1 > median + q {
                self.out.quarantined += 1;
            } else if frame.1 < median - q {
                if warmup {
                    self.out.too_late += 1;
                } else {
                    self.out.quarantined += 1;
                }
            } else {
                self.admit(frame);
            }
        }
    }
}

/// Asserts a run reported exactly what the rules say about `frames` lines
/// of input.
fn assert_as_expected(got: &Counted, expected: &Expected, rules: Rules, frames: u64, what: &str) {
    let (got_last, want_last) = (got.last(), expected.last());
    if got_last != want_last {
        let minutes: HashSet<i64> = got_last.keys().chain(want_last.keys()).copied().collect();
        let mut diff: Vec<String> = minutes
            .into_iter()
            .filter(|m| got_last.get(m) != want_last.get(m))
            .map(|m| format!("minute {m}: kuniq {:?}, expected {:?}", got_last.get(&m), want_last.get(&m)))
            .collect();
        diff.sort();
        panic!("{what}: last revisions (users, frames) differ from the oracle:\n{}", diff.join("\n"));
    }
    assert_eq!(got.stat("frames"), frames, "{what}: frames read");
    for (name, want) in [
        ("counted", expected.counted),
        ("late", expected.late),
        ("too_late", expected.too_late),
        ("quarantined", expected.quarantined),
    ] {
        assert_eq!(got.stat(name), want, "{what}: summary '{name}'");
    }
    let most = rules.max_revision();
    assert!(got.records.iter().all(|r| r.revision <= most), "{what}: at most {most} revisions after revision 0");
}

/// Reads a whole gzip file. The system's gzip does it when present: a
/// debug build of flate2 takes seconds for the fixtures.
fn read_gz(path: &Path) -> Vec<u8> {
    if let Ok(out) = Command::new("gzip").arg("-dc").arg(path).stderr(Stdio::inherit()).output() {
        assert!(out.status.success(), "gzip -dc {}: {:?}", path.display(), out.status);
        return out.stdout;
    }
    let mut bytes = Vec::new();
    let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    flate2::read::MultiGzDecoder::new(file)
        .read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    bytes
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

// ---------------------------------------------------------------------------
// 1. Generated inputs (gzip, in order and out of order) against the oracle
//
// The official samples with their truth files are checked by
// scripts/check-samples.sh where they are available (CI runs it); the tests
// need nothing beside the repository.

fn check_gzip_input(name: &str, gen_args: &[&str]) {
    let dir = TempDir::new().unwrap();
    let input = generate(&dir, &format!("{name}.jsonl.gz"), gen_args);
    let text = read_gz(&input);
    let expected: BTreeMap<i64, (u64, u64)> = count_per_minute(lines(&text))
        .into_iter()
        .map(|(m, (users, frames))| (m as i64, (users as u64, frames)))
        .collect();
    assert!(expected.len() >= 3, "{name}: the input spans several minutes");

    let got = count(&["-i", path_str(&input)], None);
    assert_eq!(got.last(), expected, "{name}: last revision per minute (users, frames) vs the oracle");
    let total = lines(&text).count() as u64;
    assert_eq!(got.stat("frames"), total, "{name}: frames read");
    assert_eq!(got.stat("counted"), total, "{name}: every frame is counted");
}

#[test]
fn an_ordered_gzip_input_matches_the_oracle() {
    check_gzip_input("ordered", &["-c", "20000", "-r", "100", "-n", "3000", "-s", "11"]);
}

#[test]
fn a_delayed_gzip_input_matches_the_oracle() {
    // Delays up to 30 s, within the allowed lateness: the last revision of
    // every minute holds all of its frames.
    check_gzip_input("delayed", &["-c", "20000", "-r", "100", "-n", "3000", "-d", "30", "-p", "20", "-s", "12"]);
}

// ---------------------------------------------------------------------------
// 2. Generated out-of-order data against the oracle and the rules

/// Generates a file with `args`, counts it under `rules`, and compares
/// with the oracle; returns the expectation for further checks.
fn check_generated(dir: &TempDir, name: &str, args: &[&str], rules: &[Rules]) -> Vec<Expected> {
    let path = generate(dir, name, args);
    let bytes = fs::read(&path).unwrap();
    let frames = usable_frames(&bytes, usize::MAX);
    let total = lines(&bytes).count() as u64;
    assert_eq!(frames.len() as u64, total, "{name}: every generated frame is usable");
    rules
        .iter()
        .map(|&rules| {
            let expected = simulate(&frames, rules);
            let flags = rules.flags();
            let mut args = vec!["-i", path_str(&path)];
            args.extend(flags.iter().map(String::as_str));
            let got = count(&args, None);
            assert_as_expected(&got, &expected, rules, total, &format!("{name} {flags:?}"));
            assert_eq!(got.stat("rejected"), 0, "{name}: generated frames are all usable");
            expected
        })
        .collect()
}

#[test]
fn out_of_order_frames_within_allowed_lateness_revise_their_minutes() {
    let dir = TempDir::new().unwrap();
    let args = ["-c", "30000", "-r", "200", "-n", "3000", "-d", "40", "-p", "20", "-s", "11"];
    let expected = check_generated(&dir, "delayed.jsonl", &args, &[Rules::DEFAULT]);
    assert!(expected[0].late > 0, "the case exercises late frames and revisions");
}

#[test]
fn frames_beyond_allowed_lateness_are_dropped_and_reported() {
    let dir = TempDir::new().unwrap();
    let args = ["-c", "30000", "-r", "200", "-n", "3000", "-d", "150", "-p", "5", "-s", "12"];
    // The defaults, and tighter rules that drop more and revise more often.
    let tight = Rules { lateness_secs: 2, allowed_lateness_secs: 20, revision_interval_secs: 3, quarantine_secs: 600 };
    let expected = check_generated(&dir, "late.jsonl", &args, &[Rules::DEFAULT, tight]);
    for e in &expected {
        assert!(e.too_late > 0 && e.late > 0, "the case exercises both late and too-late frames: {e:?}");
    }
    assert!(expected[1].too_late > expected[0].too_late, "a shorter allowed lateness drops more frames");
}

#[test]
fn string_timestamps_and_crlf_lines_count_like_the_oracle() {
    let dir = TempDir::new().unwrap();
    let args =
        ["-c", "30000", "-r", "200", "-n", "3000", "-d", "40", "-p", "20", "-s", "13", "--ts-strings", "30", "-w"];
    let expected = check_generated(&dir, "strings-crlf.jsonl", &args, &[Rules::DEFAULT]);
    assert!(expected[0].late > 0);
    let text = fs::read(dir.path().join("strings-crlf.jsonl")).unwrap();
    assert!(text.ends_with(b"\r\n"), "the case has CRLF lines");
    assert!(text.windows(8).any(|w| w == b"\"ts\":\"14"), "the case has string timestamps");
}

// ---------------------------------------------------------------------------
// 3. Workers and parsers do not change a byte

/// Parsers compiled into this build (the binary is built with the same
/// features as this test).
fn compiled_parsers() -> Vec<&'static str> {
    let mut parsers = Vec::new();
    if cfg!(feature = "scan") {
        parsers.push("scan");
    }
    if cfg!(feature = "sonic") {
        parsers.push("sonic");
    }
    if cfg!(feature = "serde") {
        parsers.push("serde");
    }
    parsers
}

/// Counts `path` with 1, 2 and 3 workers and with every compiled parser;
/// all stdout must equal the sequential run's, byte for byte.
fn assert_configurations_agree(path: &Path) -> Counted {
    let input = path_str(path);
    let base = count(&["-i", input, "--workers", "1"], None);
    assert!(!base.records.is_empty());
    let same = |got: &Counted, what: &str| {
        assert!(got.stdout == base.stdout, "{what}: stdout differs from --workers 1");
        assert_eq!(got.summary["counted"], base.summary["counted"], "{what}");
    };
    for workers in ["2", "3"] {
        same(&count(&["-i", input, "--workers", workers], None), &format!("--workers {workers}"));
    }
    same(&count_env(&["-i", input, "--no-pin"], None, &[("KUNIQ_WORKERS", "3")]), "KUNIQ_WORKERS=3 --no-pin");
    for parser in compiled_parsers() {
        same(&count(&["-i", input, "--workers", "2", "--parser", parser], None), &format!("--parser {parser}"));
    }
    for parser in ["scan", "sonic", "serde"].into_iter().filter(|p| !compiled_parsers().contains(p)) {
        let out = run(&["count", "-i", input, "--parser", parser], None, &[]);
        assert_ne!(out.code, Some(0), "--parser {parser} is not compiled in and must be refused");
        assert!(out.stderr.contains("not compiled"), "--parser {parser}: {}", out.stderr);
        eprintln!("note: parser {parser} not compiled into this build; build with --all-features to test it");
    }
    base
}

#[test]
fn workers_and_parsers_give_identical_output_on_ordered_frames() {
    let dir = TempDir::new().unwrap();
    // About 30 MB: several input segments, so workers really share the file.
    let path = generate(&dir, "ordered.jsonl", &["-c", "15000", "-r", "200", "-n", "3000", "-s", "21"]);
    let base = assert_configurations_agree(&path);
    assert_eq!(base.stat("late"), 0, "ordered frames are never late");
}

#[test]
fn workers_and_parsers_give_identical_output_on_out_of_order_frames() {
    let dir = TempDir::new().unwrap();
    let args = ["-c", "15000", "-r", "200", "-n", "3000", "-d", "90", "-p", "10", "-s", "22", "--ts-strings", "10"];
    let path = generate(&dir, "shuffled.jsonl", &args);
    let base = assert_configurations_agree(&path);
    assert!(base.stat("late") > 0 && base.stat("too_late") > 0, "the case has late and too-late frames");
}

// ---------------------------------------------------------------------------
// 4. Input forms

/// Asserts every run printed the same records, byte for byte, as `base`.
fn assert_same_output(base: &Counted, forms: &[(&str, Counted)]) {
    for (what, got) in forms {
        assert_eq!(got.records, base.records, "{what}: records differ from the plain file's");
        assert!(got.stdout == base.stdout, "{what}: stdout differs from the plain file's");
        assert_eq!(got.stat("frames"), base.stat("frames"), "{what}: frames read");
    }
}

#[test]
fn plain_gzip_stdin_and_crlf_inputs_give_identical_output() {
    let dir = TempDir::new().unwrap();
    // About 8 MB: more than one 4 MiB read, so lines are carried across
    // chunk ends on every input path.
    let args = ["-c", "4000", "-r", "30", "-n", "800", "-d", "40", "-p", "20", "-s", "31"];
    let plain = generate(&dir, "f.jsonl", &args);
    let crlf = generate(&dir, "f-crlf.jsonl", &[&args[..], &["-w"]].concat());
    let gz = generate(&dir, "f.jsonl.gz", &args);
    let text = fs::read(&plain).unwrap();
    assert_eq!(read_gz(&gz), text, "gen writes the same frames gzipped");
    let crlf_text = fs::read(&crlf).unwrap();
    let mut lf_to_crlf = Vec::new();
    for line in text.split_inclusive(|&b| b == b'\n') {
        lf_to_crlf.extend_from_slice(&line[..line.len() - 1]);
        lf_to_crlf.extend_from_slice(b"\r\n");
    }
    assert!(crlf_text == lf_to_crlf, "-w changes only the line endings");
    let unterminated = dir.path().join("no-final-newline.jsonl");
    fs::write(&unterminated, &text[..text.len() - 1]).unwrap();

    let base = count(&["-i", path_str(&plain)], None);
    let expected = simulate(&usable_frames(&text, usize::MAX), Rules::DEFAULT);
    assert_as_expected(&base, &expected, Rules::DEFAULT, lines(&text).count() as u64, "plain file");
    assert!(expected.late > 0, "the case has revisions");
    assert_same_output(
        &base,
        &[
            ("crlf file", count(&["-i", path_str(&crlf)], None)),
            (".gz file", count(&["-i", path_str(&gz)], None)),
            ("no final newline", count(&["-i", path_str(&unterminated)], None)),
            ("stdin", count(&["-i", "-"], Some(&text))),
            ("crlf on stdin", count(&["-i", "-"], Some(&crlf_text))),
        ],
    );
}

#[test]
fn gzip_is_recognized_by_content_in_files_and_on_stdin() {
    let dir = TempDir::new().unwrap();
    let args = ["-c", "1500", "-r", "30", "-n", "500", "-d", "20", "-p", "10", "-s", "32"];
    let plain = generate(&dir, "f.jsonl", &args);
    let text = fs::read(&plain).unwrap();
    // Gzip under a plain name, and a multi-member file as `cat a.gz b.gz`
    // makes, split between two lines.
    let disguised = dir.path().join("gzipped.jsonl");
    fs::write(&disguised, gzip(&text)).unwrap();
    let half = text[..text.len() / 2].iter().rposition(|&b| b == b'\n').unwrap() + 1;
    let multi = [gzip(&text[..half]), gzip(&text[half..])].concat();
    let multi_path = dir.path().join("multi.gz");
    fs::write(&multi_path, &multi).unwrap();

    let base = count(&["-i", path_str(&plain)], None);
    assert_same_output(
        &base,
        &[
            ("gzip named .jsonl", count(&["-i", path_str(&disguised)], None)),
            ("multi-member gzip", count(&["-i", path_str(&multi_path)], None)),
            ("multi-member gzip on stdin", count(&["-i", "-"], Some(&multi))),
        ],
    );
}

// ---------------------------------------------------------------------------
// 5. Bad input

/// A frame of exactly `len` bytes that the oracle accepts.
fn padded_frame(uid: &str, ts: i64, len: usize) -> Vec<u8> {
    let bare = format!(r#"{{"uid":"{uid}","ts":{ts},"pad":""}}"#);
    let frame = format!(r#"{{"uid":"{uid}","ts":{ts},"pad":"{}"}}"#, "p".repeat(len - bare.len()));
    assert_eq!(frame.len(), len);
    frame.into_bytes()
}

/// Good frames from the generator with bad lines mixed in; returns the
/// file's bytes and the rejections put in, by reason.
fn mixed_input(dir: &TempDir, max_frame_bytes: usize) -> (Vec<u8>, BTreeMap<&'static str, u64>) {
    let good = generate(
        dir,
        "good.jsonl",
        &["-c", "2500", "-r", "20", "-n", "400", "-l", "200", "-d", "30", "-p", "10", "-s", "41"],
    );
    let good = fs::read(&good).unwrap();
    let t = T0 + 30;
    let mut bad: Vec<(&'static str, Vec<u8>)> = vec![
        ("malformed", br#"{"uid":"62a4c731b0630387913","ts":146824"#.to_vec()),
        ("malformed", br#"{"uid":"62a4c731b0630387913","ts":1468244390,"#.to_vec()),
        ("malformed", b"{\"uid\":\"ab\xff\xfe\",\"ts\":1468244390}".to_vec()),
        ("malformed", b"\xef\xbb\xbf{\"uid\":\"bom\",\"ts\":1468244390}".to_vec()),
        ("malformed", br#"{"uid":"a","ts":1468244390}}"#.to_vec()),
        ("missing_uid", br#"{"ts":1468244390,"a":{"uid":"decoy"}}"#.to_vec()),
        ("missing_ts", br#"{"uid":"no-ts","x":{"ts":1468244390}}"#.to_vec()),
        ("duplicate_field", br#"{"uid":"a","ts":1468244390,"uid":"b"}"#.to_vec()),
        ("uid_not_string", br#"{"uid":123456,"ts":1468244390}"#.to_vec()),
        ("uid_empty", br#"{"uid":"","ts":1468244390}"#.to_vec()),
        ("ts_not_integer", br#"{"uid":"float","ts":1468244390.5}"#.to_vec()),
        ("ts_not_integer", br#"{"uid":"exp","ts":1.46e9}"#.to_vec()),
        ("ts_not_integer", br#"{"uid":"word","ts":"soon"}"#.to_vec()),
        ("ts_out_of_range", br#"{"uid":"neg","ts":-1468244390}"#.to_vec()),
        ("ts_out_of_range", br#"{"uid":"huge","ts":99999999999999999999999}"#.to_vec()),
        ("ts_out_of_range", br#"{"uid":"year-10000","ts":253402300800}"#.to_vec()),
        ("not_object", b"[1,2,3]".to_vec()),
        ("not_object", br#""62a4c731b0630387913""#.to_vec()),
        ("not_object", b"1468244390".to_vec()),
        ("empty", b"".to_vec()),
        ("empty", b" \t ".to_vec()),
        ("too_large", padded_frame("one-over", t, max_frame_bytes + 1)),
        ("too_large", padded_frame("much-over", t, 3 * max_frame_bytes)),
        // Longer than a whole read buffer: skipped without being held.
        ("too_large", vec![b'x'; 5 << 20]),
    ];
    // Good frames that test the rules rather than the parser: one at the
    // size limit, a string ts, a bit flip far ahead (quarantined) and one
    // far behind (too late).
    bad.push(("", padded_frame("at-the-limit", t, max_frame_bytes)));
    bad.push(("", format!(r#"{{"uid":"string-ts","ts":"{t}"}}"#).into_bytes()));
    bad.push(("", format!(r#"{{"uid":"flipped-ahead","ts":{}}}"#, t | (1 << 33)).into_bytes()));
    bad.push(("", format!(r#"{{"uid":"flipped-behind","ts":{}}}"#, t & !(1 << 30)).into_bytes()));

    let mut text = Vec::new();
    let mut put = BTreeMap::new();
    let mut extra = bad.into_iter();
    for (i, line) in lines(&good).enumerate() {
        // After the warm-up, one odd line every 37 good ones.
        if i >= 2 * WARMUP_FRAMES
            && i % 37 == 0
            && let Some((reason, odd)) = extra.next()
        {
            let verdict =
                if odd.len() > max_frame_bytes { Err("too_large".to_string()) } else { oracle(&odd).map(|_| ()) };
            match reason {
                "" => assert_eq!(verdict, Ok(()), "{:?} is a good frame", String::from_utf8_lossy(&odd)),
                _ => {
                    assert_eq!(
                        verdict,
                        Err(reason.to_string()),
                        "oracle on {:?}",
                        String::from_utf8_lossy(&odd[..odd.len().min(80)])
                    );
                    *put.entry(reason).or_insert(0) += 1;
                }
            }
            text.extend_from_slice(&odd);
            text.push(b'\n');
        }
        if line.len() > max_frame_bytes {
            *put.entry("too_large").or_insert(0) += 1;
        }
        text.extend_from_slice(line);
        text.push(b'\n');
    }
    assert!(extra.next().is_none(), "every odd line went in");
    (text, put)
}

#[test]
fn bad_frames_are_counted_by_reason_and_good_frames_still_count() {
    let dir = TempDir::new().unwrap();
    let max = 1024;
    let (text, put) = mixed_input(&dir, max);
    assert_eq!(put.len(), REASONS.len(), "the case has every reason: {put:?}");
    let path = dir.path().join("mixed.jsonl");
    fs::write(&path, &text).unwrap();
    let gz = dir.path().join("mixed.jsonl.gz");
    fs::write(&gz, gzip(&text)).unwrap();

    let expected = simulate(&usable_frames(&text, max), Rules::DEFAULT);
    assert!(expected.quarantined >= 1 && expected.too_late >= 1, "the case has a flipped ts either way: {expected:?}");
    let total = lines(&text).count() as u64;
    let limit = ["--max-frame-bytes", "1KiB"];
    for (what, got) in [
        ("file", count(&[&["-i", path_str(&path)][..], &limit].concat(), None)),
        ("gzip", count(&[&["-i", path_str(&gz)][..], &limit].concat(), None)),
        ("stdin", count(&[&["-i", "-"][..], &limit].concat(), Some(&text))),
    ] {
        assert_as_expected(&got, &expected, Rules::DEFAULT, total, what);
        let by_reason = got.summary["rejected_by_reason"].as_object().unwrap();
        for (reason, n) in by_reason {
            let want = put.get(reason.as_str()).copied().unwrap_or(0);
            assert_eq!(n.as_u64(), Some(want), "{what}: rejected as {reason}");
        }
        for reason in put.keys() {
            assert!(by_reason.contains_key(*reason), "{what}: summary names {reason}");
        }
        assert!(got.records.iter().all(|r| r.start < T0 + 86_400), "{what}: no minute from a flipped ts");
    }
}

#[test]
fn a_missing_input_file_is_an_error_that_names_it() {
    let dir = TempDir::new().unwrap();
    let missing = dir.path().join("no-such-frames.jsonl");
    let out = run(&["count", "-i", path_str(&missing)], None, &[]);
    assert!(matches!(out.code, Some(c) if c != 0), "exit status {:?}", out.code);
    assert!(out.stderr.contains(path_str(&missing)), "the error names the file: {}", out.stderr);
    assert!(out.stdout.is_empty());
}

#[test]
fn unreadable_input_fails_without_a_panic() {
    let dir = TempDir::new().unwrap();
    let gz = generate(&dir, "f.jsonl.gz", &["-c", "3000", "-s", "51"]);
    let bytes = fs::read(&gz).unwrap();
    let truncated = dir.path().join("truncated.jsonl.gz");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for input in [path_str(dir.path()), path_str(&truncated)] {
        let out = run(&["count", "-i", input, "--progress", "never"], None, &[]);
        assert!(matches!(out.code, Some(c) if c != 0), "{input}: exit status {:?}", out.code);
        assert!(out.stderr.contains("error"), "{input}: {}", out.stderr);
    }
    let out = run(&["count", "-i", "-", "--progress", "never"], Some(&bytes[..bytes.len() / 2]), &[]);
    assert!(matches!(out.code, Some(c) if c != 0), "truncated gzip on stdin: exit status {:?}", out.code);
}

#[test]
fn read_errors_name_the_input() {
    let dir = TempDir::new().unwrap();
    let gz = generate(&dir, "f.jsonl.gz", &["-c", "3000", "-s", "51"]);
    let bytes = fs::read(&gz).unwrap();
    let truncated = dir.path().join("truncated.jsonl.gz");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    for input in [path_str(dir.path()), path_str(&truncated)] {
        let out = run(&["count", "-i", input, "--progress", "never"], None, &[]);
        assert!(out.stderr.contains(input), "the error names {input}: {}", out.stderr);
    }
}

#[test]
fn invalid_flags_are_refused_before_any_output() {
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, "f.jsonl", &["-c", "100", "-s", "61"]);
    let input = path_str(&path);
    for (flags, named) in [
        (&["--workers", "0"][..], "--workers"),
        (&["--parser", "bogus"], "bogus"),
        (&["--lateness", "5 parsecs"], "--lateness"),
        (&["--revision-interval", "0"], "--revision-interval"),
        (&["--max-frame-bytes", "1"], "--max-frame-bytes"),
        (&["--windows", "fortnight"], "fortnight"),
    ] {
        let out = run(&[&["count", "-i", input][..], flags].concat(), None, &[]);
        assert!(matches!(out.code, Some(c) if c != 0), "{flags:?}: exit status {:?}", out.code);
        assert!(out.stderr.contains(named), "{flags:?}: the error names {named}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{flags:?}: no records");
    }
}

#[test]
fn invalid_flag_values_exit_with_the_usage_status() {
    let dir = TempDir::new().unwrap();
    let path = generate(&dir, "f.jsonl", &["-c", "100", "-s", "61"]);
    for flags in [&["--workers", "0"][..], &["--parser", "bogus"], &["--lateness", "5 parsecs"]] {
        let out = run(&[&["count", "-i", path_str(&path)][..], flags].concat(), None, &[]);
        assert_eq!(out.code, Some(2), "{flags:?}: usage errors exit 2 (as for an unknown flag): {}", out.stderr);
    }
    let out = run(&["count", "--no-such-flag"], None, &[]);
    assert_eq!(out.code, Some(2), "clap's usage errors exit 2");
}

// ---------------------------------------------------------------------------
// Event-time defences, end to end

/// Writes `frames` (uid, ts) as JSON lines.
fn frames_file(dir: &TempDir, name: &str, frames: &[(String, i64)]) -> (PathBuf, Vec<u8>) {
    let mut text = Vec::new();
    for (uid, ts) in frames {
        writeln!(text, r#"{{"a":[1,{{"uid":7}}],"uid":"{uid}","ts":{ts},"b":"x"}}"#).unwrap();
    }
    let path = dir.path().join(name);
    fs::write(&path, &text).unwrap();
    (path, text)
}

#[test]
fn bit_flips_are_quarantined_and_real_gaps_are_followed() {
    let dir = TempDir::new().unwrap();
    let mut frames: Vec<(String, i64)> = Vec::new();
    let mut push = |range: std::ops::Range<i64>, ts: &dyn Fn(i64) -> i64| {
        for i in range {
            frames.push((format!("user-{}", i % 97), ts(i)));
        }
    };
    // Two minutes of ordered frames, a bit flip forward and one backward.
    push(0..300, &|i| T0 + i / 3);
    push(0..1, &|_| T0 + 100 + (1 << 32));
    push(300..400, &|i| T0 + i / 3);
    push(0..1, &|_| (T0 + 140) & !(1 << 30));
    // A short burst far ahead (a broken producer), not long enough to be a jump.
    push(0..(JUMP_CONFIRM_FRAMES as i64 - 1), &|i| T0 + 10 * 86_400 + i);
    push(400..500, &|i| T0 + i / 3);
    // A real gap of a day: long enough a run to be followed.
    push(0..300, &|i| T0 + 86_400 + i / 3);
    let (path, text) = frames_file(&dir, "gaps.jsonl", &frames);

    let expected = simulate(&usable_frames(&text, usize::MAX), Rules::DEFAULT);
    assert_eq!(expected.quarantined, JUMP_CONFIRM_FRAMES as u64, "one flip ahead and the burst");
    assert_eq!(expected.too_late, 1, "one flip behind");
    assert!(expected.minutes.keys().any(|&m| m >= T0 + 86_400), "the day after is counted");
    let got = count(&["-i", path_str(&path)], None);
    assert_as_expected(&got, &expected, Rules::DEFAULT, frames.len() as u64, "gaps");
    let got = count(&["-i", "-"], Some(&text));
    assert_as_expected(&got, &expected, Rules::DEFAULT, frames.len() as u64, "gaps on stdin");
}

#[test]
fn a_far_behind_frame_in_the_warm_up_is_too_late() {
    let dir = TempDir::new().unwrap();
    for position in [0, 5] {
        let mut frames: Vec<(String, i64)> = (0..40).map(|i| (format!("u{i}"), T0 + i)).collect();
        frames.insert(position, ("flipped".into(), (T0 + 3) & !(1 << 30)));
        let (path, text) = frames_file(&dir, &format!("warmup-{position}.jsonl"), &frames);
        let expected = simulate(&usable_frames(&text, usize::MAX), Rules::DEFAULT);
        assert_eq!((expected.too_late, expected.quarantined), (1, 0));
        let got = count(&["-i", path_str(&path)], None);
        assert_as_expected(&got, &expected, Rules::DEFAULT, frames.len() as u64, &format!("flip at {position}"));
    }
}

// ---------------------------------------------------------------------------
// Output closed early

#[test]
fn closing_stdout_early_is_a_clean_exit() {
    let dir = TempDir::new().unwrap();
    // A thousand minutes of small frames: far more records than a pipe holds.
    let path = generate(&dir, "long.jsonl", &["-c", "100000", "-r", "1", "-n", "50", "-l", "64", "-s", "71"]);
    let mut child = Command::new(KUNIQ)
        .args(["count", "-i", path_str(&path), "--progress", "never", "--summary", "none"])
        .env_remove("KUNIQ_WORKERS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    parse_record(first.trim_end().as_bytes());
    // The reader is dropped: kuniq's next writes find the pipe closed, as
    // under `| head -1`.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a closed stdout is a clean exit: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "nothing to report: {stderr}");
}

/// KUNIQ_BROKERS set for Kafka runs does not stop a file run: an explicit
/// -i wins over brokers from the environment; -i with -b on the command
/// line is a usage error.
#[test]
fn input_wins_over_brokers_from_the_environment() {
    let bin = env!("CARGO_BIN_EXE_kuniq");
    let dir = TempDir::new().unwrap();
    let file = generate(&dir, "frames.jsonl.gz", &["-c", "2000", "-r", "100", "-s", "13"]);
    let file = path_str(&file);
    let plain = std::process::Command::new(bin).args(["count", "-i", file, "--progress", "never"]).output().unwrap();
    assert!(plain.status.success(), "{}", String::from_utf8_lossy(&plain.stderr));
    let with_env = std::process::Command::new(bin)
        .args(["count", "-i", file, "--progress", "never"])
        .env("KUNIQ_BROKERS", "127.0.0.1:1")
        .output()
        .unwrap();
    assert!(with_env.status.success(), "{}", String::from_utf8_lossy(&with_env.stderr));
    assert_eq!(with_env.stdout, plain.stdout);
    let both = std::process::Command::new(bin)
        .args(["count", "-i", file, "-b", "127.0.0.1:1", "-t", "frames", "--progress", "never"])
        .env_remove("KUNIQ_BROKERS")
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(2), "{}", String::from_utf8_lossy(&both.stderr));
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
}
