//! `kuniq query`: unique users over any time range, from records that carry
//! their window's users as data (`kuniq count --emit-sketch`).
//!
//! The range `[from, to)` is cut into windows of one kind (minute by
//! default); the latest record of each (highest revision) gives its users,
//! and their union is the answer: the sketches merged (DataSketches'
//! union, an estimate within the sketch's error) or the exact hash sets
//! united (exact). Windows of the range with no record had no frames.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufRead};

use base64::Engine as _;

use crate::count::sketch::UidSketch;
use crate::count::{Estimator, UidSet, Users};
use crate::window::{Secs, WindowKind, format_utc};

/// What to answer: unique users of the windows of `kind` inside
/// `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Range start, unix seconds: a window start.
    pub from: Secs,
    /// Range end (exclusive), unix seconds: a window end.
    pub to: Secs,
    /// The windows whose records are merged.
    pub kind: WindowKind,
}

impl Range {
    /// A range whose bounds fall on windows of `kind`; an error saying
    /// which bound does not, and the nearest ones that would.
    pub fn new(from: Secs, to: Secs, kind: WindowKind) -> Result<Range, String> {
        if to <= from {
            return Err(format!("--to {} is not after --from {}", format_utc(to), format_utc(from)));
        }
        for (flag, at) in [("--from", from), ("--to", to)] {
            let start = kind.start(at);
            if start != at {
                return Err(format!(
                    "{flag} {} is inside the {} window {}..{}: records of {} windows cannot split one; use one of \
                     those bounds",
                    format_utc(at),
                    kind.name(),
                    format_utc(start),
                    format_utc(kind.end(start)),
                    kind.name()
                ));
            }
        }
        Ok(Range { from, to, kind })
    }
}

/// The answer to a query.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The range asked for.
    pub range: Range,
    /// Distinct users of the range: exact, or the merged sketch's estimate.
    pub unique_users: u64,
    /// Frames counted in those windows.
    pub frames: u64,
    /// Windows of the range that had a record.
    pub windows: u64,
    /// Of those, windows whose latest record is provisional (still open
    /// when it was sent): the answer may grow.
    pub provisional: u64,
    /// How `unique_users` was counted (`exact`, or `hll-N`: the smallest
    /// sketch merged).
    pub estimator: Estimator,
}

impl Answer {
    /// The answer as one line of JSON (no newline).
    pub fn to_json(&self) -> String {
        format!(
            r#"{{"from":{},"to":{},"window":"{}","unique_users":{},"frames":{},"windows":{},"provisional":{},"estimator":"{}"}}"#,
            self.range.from,
            self.range.to,
            self.range.kind.name(),
            self.unique_users,
            self.frames,
            self.windows,
            self.provisional,
            self.estimator
        )
    }
}

/// Why a query could not be answered.
#[derive(Debug)]
#[non_exhaustive]
pub enum QueryError {
    /// Reading the records failed.
    Read(io::Error),
    /// A line is not a kuniq record.
    NotARecord {
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A window of the range has a record without its users as data.
    NoUsers {
        /// The window's start.
        start: Secs,
        /// The window kind.
        kind: WindowKind,
    },
    /// Records of the range were counted with different estimators.
    MixedEstimators,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Read(_) => f.write_str("reading records"),
            QueryError::NotARecord { line, reason } => write!(f, "line {line} is not a kuniq record: {reason}"),
            QueryError::NoUsers { start, kind } => write!(
                f,
                "the record of the {} window at {} carries no \"sketch\" or \"hashes\": count with --emit-sketch \
                 (and --estimator hll for sketches)",
                kind.name(),
                format_utc(*start)
            ),
            QueryError::MixedEstimators => {
                f.write_str("the range's records mix exact hashes and sketches; query records of one estimator")
            }
        }
    }
}

impl std::error::Error for QueryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            QueryError::Read(e) => Some(e),
            _ => None,
        }
    }
}

/// The latest record of one window.
struct Latest {
    revision: u64,
    frames: u64,
    closed: bool,
    users: Option<Users>,
}

/// Answers `range` from records, one JSON object per line (blank lines are
/// ignored; records of other windows and kinds are skipped).
pub fn answer(input: impl BufRead, range: Range) -> Result<Answer, QueryError> {
    let mut latest: BTreeMap<Secs, Latest> = BTreeMap::new();
    for (index, line) in input.split(b'\n').enumerate() {
        let line = line.map_err(QueryError::Read)?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let not_a_record = |reason: String| QueryError::NotARecord { line: index as u64 + 1, reason };
        let value: serde_json::Value =
            serde_json::from_slice(&line).map_err(|e| not_a_record(format!("invalid JSON ({e})")))?;
        let record = value.as_object().ok_or_else(|| not_a_record("not a JSON object".into()))?;
        let field = |name: &str| record.get(name).ok_or_else(|| not_a_record(format!("no \"{name}\" field")));
        let int =
            |name: &str| field(name)?.as_i64().ok_or_else(|| not_a_record(format!("\"{name}\" is not an integer")));
        let window = field("window")?.as_str().ok_or_else(|| not_a_record("\"window\" is not a string".into()))?;
        let start = int("start")?;
        if window != range.kind.name() || start < range.from || range.kind.end(start) > range.to {
            continue;
        }
        let revision = int("revision")? as u64;
        if latest.get(&start).is_some_and(|l| l.revision >= revision) {
            continue;
        }
        let users = users_of(record, start).map_err(not_a_record)?;
        latest.insert(
            start,
            Latest {
                revision,
                frames: int("frames")? as u64,
                closed: record.get("closed").and_then(serde_json::Value::as_bool).unwrap_or(true),
                users,
            },
        );
    }
    let mut union: Option<Users> = None;
    for (&start, window) in &latest {
        let users = window.users.as_ref().ok_or(QueryError::NoUsers { start, kind: range.kind })?;
        match &mut union {
            None => union = Some(users.clone()),
            Some(u) => u.union_with(users).map_err(|_| QueryError::MixedEstimators)?,
        }
    }
    let estimator = match &union {
        Some(Users::Sketch(sketch)) => Estimator::Hll { lg_k: sketch.lg_k() },
        _ => Estimator::Exact,
    };
    Ok(Answer {
        range,
        unique_users: union.as_ref().map_or(0, Users::count),
        frames: latest.values().map(|w| w.frames).sum(),
        windows: latest.len() as u64,
        provisional: latest.values().filter(|w| !w.closed).count() as u64,
        estimator,
    })
}

/// The users a record carries: its `"sketch"` or `"hashes"`, if any.
fn users_of(record: &serde_json::Map<String, serde_json::Value>, start: Secs) -> Result<Option<Users>, String> {
    let decode = |name: &str| -> Result<Option<Vec<u8>>, String> {
        let Some(value) = record.get(name) else { return Ok(None) };
        let text = value.as_str().ok_or_else(|| format!("\"{name}\" is not a string"))?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Some)
            .map_err(|e| format!("\"{name}\" of the window at {start} is not base64 ({e})"))
    };
    if let Some(bytes) = decode("sketch")? {
        let sketch = UidSketch::from_bytes(&bytes).map_err(|e| format!("\"sketch\" of the window at {start}: {e}"))?;
        return Ok(Some(Users::Sketch(sketch)));
    }
    if let Some(bytes) = decode("hashes")? {
        if bytes.len() % 8 != 0 {
            return Err(format!("\"hashes\" of the window at {start} is {} bytes, not a multiple of 8", bytes.len()));
        }
        let set: UidSet = bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect();
        return Ok(Some(Users::Exact(set)));
    }
    Ok(None)
}

/// Parses a query bound: unix seconds, or an RFC 3339 UTC time
/// (`2016-07-11T10:03:00Z`; seconds and the `Z` may be left out, and a
/// date alone means its midnight).
pub fn parse_time(text: &str) -> Result<Secs, String> {
    if let Ok(secs) = text.parse::<Secs>() {
        return Ok(secs);
    }
    crate::window::parse_utc(text).ok_or_else(|| {
        format!("'{text}' is not a time: give unix seconds or a UTC time like 2016-07-11T10:03:00Z or 2016-07-11")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::UidHasher;

    const MINUTE: Secs = 1_468_244_400;

    fn record(start: Secs, revision: u32, closed: bool, uids: &[&str], estimator: Estimator) -> String {
        let hasher = UidHasher::new();
        let mut users = estimator.users();
        for uid in uids {
            users.add(crate::count::UidKey {
                hash: hasher.hash(uid.as_bytes()),
                coupon: crate::count::sketch::UidCoupon::of(uid.as_bytes()),
            });
        }
        let data: Vec<u8> = match &users {
            Users::Sketch(s) => s.canonical_bytes(),
            Users::Exact(set) => set.sorted().iter().flat_map(|h| h.to_le_bytes()).collect(),
        };
        let emission = crate::window::engine::Emission {
            kind: WindowKind::Minute,
            start,
            end: start + 60,
            unique_users: users.count(),
            frames: uids.len() as u64,
            revision,
            closed,
            estimator,
            sketch: Some(data.into()),
        };
        let mut out = Vec::new();
        emission.write_json(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn merges_the_latest_record_of_each_window_in_the_range() {
        for estimator in [Estimator::Exact, Estimator::HLL] {
            let lines = [
                record(MINUTE, 0, true, &["a", "b"], estimator),
                record(MINUTE + 60, 0, false, &["b"], estimator),
                // A revision of the first minute, then an older one again
                // (a topic may hold both).
                record(MINUTE, 1, true, &["a", "b", "c"], estimator),
                record(MINUTE, 0, true, &["a", "b"], estimator),
                record(MINUTE + 120, 0, true, &["d"], estimator),
                // Outside the range.
                record(MINUTE - 60, 0, true, &["x", "y"], estimator),
                record(MINUTE + 180, 0, true, &["z"], estimator),
            ]
            .join("\n");
            let range = Range::new(MINUTE, MINUTE + 180, WindowKind::Minute).unwrap();
            let got = answer(lines.as_bytes(), range).unwrap();
            assert_eq!((got.unique_users, got.frames, got.windows, got.provisional), (4, 5, 3, 1), "{estimator}");
            assert_eq!(got.estimator, estimator);
        }
    }

    #[test]
    fn a_range_without_records_has_no_users() {
        let range = Range::new(MINUTE, MINUTE + 60, WindowKind::Minute).unwrap();
        let got = answer(&b""[..], range).unwrap();
        assert_eq!((got.unique_users, got.windows), (0, 0));
    }

    #[test]
    fn records_without_users_or_of_two_estimators_are_refused() {
        let range = Range::new(MINUTE, MINUTE + 120, WindowKind::Minute).unwrap();
        let bare = r#"{"window":"minute","start":1468244400,"end":1468244460,"unique_users":2,"frames":2,"revision":0,"estimator":"exact","closed":true}"#;
        let err = answer(bare.as_bytes(), range).unwrap_err();
        assert!(err.to_string().contains("--emit-sketch"), "{err}");
        let mixed =
            [record(MINUTE, 0, true, &["a"], Estimator::Exact), record(MINUTE + 60, 0, true, &["b"], Estimator::HLL)]
                .join("\n");
        assert!(matches!(answer(mixed.as_bytes(), range), Err(QueryError::MixedEstimators)));
        let err = answer(&b"{\"window\":\"minute\"}\nnot json\n"[..], range).unwrap_err();
        assert!(err.to_string().starts_with("line 1 is not a kuniq record"), "{err}");
    }

    #[test]
    fn bounds_must_fall_on_windows() {
        assert!(Range::new(MINUTE, MINUTE, WindowKind::Minute).is_err());
        let err = Range::new(MINUTE + 30, MINUTE + 120, WindowKind::Minute).unwrap_err();
        assert!(err.contains("--from 2016-07-11T13:40:30Z is inside the minute window"), "{err}");
        assert!(Range::new(MINUTE - 2400, MINUTE + 1200, WindowKind::Hour).is_ok());
    }

    #[test]
    fn times_parse_as_unix_seconds_or_utc() {
        assert_eq!(parse_time("1468244400"), Ok(MINUTE));
        assert_eq!(parse_time("2016-07-11T13:40:00Z"), Ok(MINUTE));
        assert_eq!(parse_time("2016-07-11T13:40"), Ok(MINUTE));
        assert_eq!(parse_time("2016-07-11"), Ok(MINUTE - 13 * 3600 - 40 * 60));
        for bad in ["yesterday", "2016-13-01", "2016-07-11T25:00Z", "2016-07-11T13:40:00+02:00"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
