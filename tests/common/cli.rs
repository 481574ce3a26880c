//! Running the real `kuniq` binary in tests and checking what it prints
//! against the output contract: every successful `kuniq count` is checked
//! for field names and order, revisions numbered 0, 1, 2.. per window,
//! counts that only grow, and agreement with its own `--summary json`. No
//! run, successful or not, may print panic text.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde::de::{Deserializer as _, MapAccess, Visitor};
use serde_json::Value;
use tempfile::TempDir;

/// The binary under test, built with the same features as the tests.
pub const KUNIQ: &str = env!("CARGO_BIN_EXE_kuniq");

/// The fields every record starts with, in this order (BRIEF "Output contract").
pub const CONTRACT_FIELDS: [&str; 8] =
    ["window", "start", "end", "unique_users", "frames", "revision", "estimator", "closed"];

/// Every reason a frame can be rejected for, as the summary names them.
pub const REASONS: [&str; 11] = [
    "empty",
    "too_large",
    "not_object",
    "malformed",
    "duplicate_field",
    "missing_uid",
    "missing_ts",
    "uid_not_string",
    "uid_empty",
    "ts_not_integer",
    "ts_out_of_range",
];

// ---------------------------------------------------------------------------
// Running the binary

/// What a finished `kuniq` process left behind.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `kuniq args`, feeding `stdin` (if any) from another thread so a
/// child that writes while it reads cannot deadlock. Fails the test on
/// panic text in stderr, whatever the exit status.
pub fn run(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(KUNIQ);
    cmd.args(args)
        .env_remove("KUNIQ_WORKERS")
        .envs(env.iter().copied())
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("starting kuniq");
    let output = std::thread::scope(|scope| {
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            // A child that stops early closes its end; that is its verdict
            // to report, not ours.
            scope.spawn(move || {
                let _ = pipe.write_all(bytes);
            });
        }
        child.wait_with_output().expect("waiting for kuniq")
    });
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "kuniq {args:?} panicked:\n{stderr}");
    Run { code: output.status.code(), stdout: output.stdout, stderr }
}

/// A successful `kuniq count`, its records checked against the contract.
pub struct Counted {
    pub stdout: Vec<u8>,
    pub records: Vec<Record>,
    pub summary: Value,
    pub stderr: String,
}

impl Counted {
    /// A counter of the JSON summary.
    pub fn stat(&self, name: &str) -> u64 {
        self.summary[name].as_u64().unwrap_or_else(|| panic!("summary has no counter '{name}': {}", self.summary))
    }

    /// Rejected frames of one reason.
    pub fn rejected(&self, reason: &str) -> u64 {
        self.summary["rejected_by_reason"][reason]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no reason '{reason}': {}", self.summary))
    }

    /// The last revision of every window: start -> (unique users, frames).
    pub fn last(&self) -> BTreeMap<i64, (u64, u64)> {
        self.records.iter().map(|r| (r.start, (r.unique_users, r.frames))).collect()
    }
}

/// Runs `kuniq count --progress never --summary json <args>`, requires
/// success, and checks stdout against the output contract and the summary.
pub fn count(args: &[&str], stdin: Option<&[u8]>) -> Counted {
    count_env(args, stdin, &[])
}

pub fn count_env(args: &[&str], stdin: Option<&[u8]>, env: &[(&str, &str)]) -> Counted {
    let mut all = vec!["count", "--progress", "never", "--summary", "json"];
    all.extend_from_slice(args);
    let out = run(&all, stdin, env);
    assert_eq!(out.code, Some(0), "kuniq {all:?} failed:\n{}", out.stderr);
    let summary_line = out.stderr.lines().rev().find(|l| l.starts_with('{')).unwrap_or_else(|| {
        panic!("kuniq {all:?}: no JSON summary on stderr:\n{}", out.stderr);
    });
    let summary: Value = serde_json::from_str(summary_line).expect("the summary is JSON");
    let records = parse_records(&out.stdout);
    check_revisions(&records);
    let counted = Counted { stdout: out.stdout, records, summary, stderr: out.stderr };
    assert_eq!(counted.stat("records"), counted.records.len() as u64, "summary 'records' vs stdout lines");
    let revised = counted.records.iter().filter(|r| r.revision > 0).count() as u64;
    assert_eq!(counted.stat("revisions"), revised, "summary 'revisions' vs records with revision > 0");
    let reasons = counted.summary["rejected_by_reason"].as_object().expect("the summary counts rejections by reason");
    for reason in REASONS {
        counted.rejected(reason);
    }
    let by_reason: u64 = reasons.values().map(|n| n.as_u64().unwrap()).sum();
    assert_eq!(counted.stat("rejected"), by_reason, "summary 'rejected' is the sum over reasons");
    let settled = counted.stat("counted") + counted.stat("too_late") + counted.stat("quarantined");
    assert_eq!(
        counted.stat("frames"),
        by_reason + settled,
        "every frame is rejected, counted, too late or quarantined"
    );
    counted
}

/// Runs `kuniq gen --progress never -o <dir>/<name> <args>`.
pub fn generate(dir: &TempDir, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.path().join(name);
    let mut all = vec!["gen", "--progress", "never", "-o", path.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = run(&all, None, &[]);
    assert_eq!(out.code, Some(0), "kuniq {all:?} failed:\n{}", out.stderr);
    path
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

// ---------------------------------------------------------------------------
// The output contract

/// One output record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub start: i64,
    pub end: i64,
    pub unique_users: u64,
    pub frames: u64,
    pub revision: u64,
}

/// Parses stdout, one record a line, checking each line's shape.
pub fn parse_records(stdout: &[u8]) -> Vec<Record> {
    if stdout.is_empty() {
        return Vec::new();
    }
    assert!(stdout.ends_with(b"\n"), "stdout ends with a line feed");
    stdout[..stdout.len() - 1].split(|&b| b == b'\n').map(parse_record).collect()
}

pub fn parse_record(line: &[u8]) -> Record {
    let text = String::from_utf8_lossy(line);
    let mut de = serde_json::Deserializer::from_slice(line);
    let members = de.deserialize_map(Members).unwrap_or_else(|e| panic!("record {text} is not a JSON object: {e}"));
    de.end().unwrap_or_else(|e| panic!("record {text} has trailing bytes: {e}"));
    let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        names.len() >= CONTRACT_FIELDS.len() && names[..CONTRACT_FIELDS.len()] == CONTRACT_FIELDS,
        "record {text}: fields must start with {CONTRACT_FIELDS:?}"
    );
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(unique.len(), names.len(), "record {text}: repeated field");
    let field = |name: &str| &members.iter().find(|(k, _)| k == name).unwrap().1;
    let int = |name: &str| field(name).as_i64().unwrap_or_else(|| panic!("record {text}: {name} is not an integer"));
    let count = |name: &str| field(name).as_u64().unwrap_or_else(|| panic!("record {text}: {name} is not a count"));
    assert_eq!(field("window"), "minute", "record {text}: only minute windows were asked for");
    assert_eq!(field("estimator"), "exact", "record {text}");
    assert_eq!(field("closed"), true, "record {text}: a minute has no provisional records");
    let record = Record {
        start: int("start"),
        end: int("end"),
        unique_users: count("unique_users"),
        frames: count("frames"),
        revision: count("revision"),
    };
    assert_eq!(record.start.rem_euclid(60), 0, "record {text}: a minute starts on the minute");
    assert_eq!(record.end, record.start + 60, "record {text}: a minute is 60 s, end exclusive");
    assert!(
        1 <= record.unique_users && record.unique_users <= record.frames,
        "record {text}: 1 <= unique_users <= frames"
    );
    record
}

/// A JSON object's members in the order written.
struct Members;

impl<'de> Visitor<'de> for Members {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::new();
        while let Some(member) = map.next_entry()? {
            members.push(member);
        }
        Ok(members)
    }
}

/// Revisions of each window appear in order 0, 1, 2.., each one with more
/// frames and at least as many users as the one before.
pub fn check_revisions(records: &[Record]) {
    let mut seen: HashMap<i64, Record> = HashMap::new();
    for r in records {
        match seen.get(&r.start) {
            None => assert_eq!(r.revision, 0, "first record of minute {} is revision 0: {r:?}", r.start),
            Some(prev) => {
                assert_eq!(r.revision, prev.revision + 1, "revisions of minute {} are consecutive", r.start);
                assert!(r.frames > prev.frames, "a revision adds frames: {prev:?} then {r:?}");
                assert!(r.unique_users >= prev.unique_users, "users never decrease: {prev:?} then {r:?}");
            }
        }
        seen.insert(r.start, *r);
    }
}

/// Runs kuniq with `args` (no stdin; KUNIQ_CONFIG_FILE and KUNIQ_BROKERS
/// unset), killing it after `limit`; its output and how long it ran.
pub fn run_bounded(args: &[&str], limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    let mut child = Command::new(KUNIQ)
        .args(args)
        .env_remove("KUNIQ_CONFIG_FILE")
        .env_remove("KUNIQ_BROKERS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kuniq");
    // stdout and stderr are read on threads so a chatty run cannot block on
    // a full pipe while this thread waits for it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stdout, &mut buf).unwrap();
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut stderr, &mut buf).unwrap();
        buf
    });
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for kuniq") {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().expect("killing kuniq");
            break child.wait().expect("waiting for kuniq");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = started.elapsed();
    (Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }, elapsed)
}
