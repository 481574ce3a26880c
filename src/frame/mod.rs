//! Frame parsing: from one frame's bytes to its top-level `uid` and `ts`.
//!
//! A frame is one JSON object (one line of a file, or one Kafka record
//! value). Every parser here answers the same question with the same
//! verdict: either [`Fields`] (the decoded uid bytes and the ts in unix
//! seconds) or the [`Reject`] reason that applies first in the order the
//! enum lists them.
//!
//! The rules every parser follows (see README "What kuniq accepts"):
//! - The frame must be valid JSON (RFC 8259: grammar, string escapes,
//!   UTF-8, no trailing bytes but whitespace), of any nesting depth, and its
//!   value must be an object.
//! - `uid` and `ts` are looked up among the object's own (top-level) members
//!   only, after decoding escapes in keys (`"\u0075id"` is `uid`). Each must
//!   appear exactly once.
//! - `uid` must be a non-empty string; its identity is its decoded text.
//! - `ts` is an integer literal (no fraction, no exponent) or a string of 1
//!   to 19 ASCII digits, in `0..=MAX_TS` seconds.
//!
//! Parsers never panic and never allocate per frame on the hot path; a
//! rejected frame is a value, counted by the caller.

use std::fmt;

pub mod strings;

#[cfg(feature = "scan")]
pub mod scan;
#[cfg(feature = "serde")]
pub mod serdejson;
#[cfg(feature = "sonic")]
pub mod sonic;
pub mod strict;

#[cfg(not(any(feature = "scan", feature = "sonic", feature = "serde")))]
compile_error!("enable at least one parser feature: scan, sonic or serde");

/// Every parser this build can run, with every SIMD classifier this CPU
/// has (not only the one `ScanParser::new` picks) and the strict parser:
/// what the property tests hold to the oracle and the scan bench compares.
pub fn every_parser() -> Vec<(&'static str, Box<dyn FrameParser>)> {
    let mut all: Vec<(&'static str, Box<dyn FrameParser>)> = vec![("strict", Box::new(strict::StrictParser::new()))];
    #[cfg(feature = "scan")]
    {
        use scan::{Isa, ScanParser};
        all.push(("scan", Box::new(ScanParser::new())));
        all.push(("scan-portable", Box::new(ScanParser::with_isa(Isa::Portable))));
        for (name, isa) in [("scan-avx2", Isa::Avx2), ("scan-avx512", Isa::Avx512)] {
            if isa.supported() && isa != Isa::detect() {
                all.push((name, Box::new(ScanParser::with_isa(isa))));
            }
        }
    }
    #[cfg(feature = "sonic")]
    all.push(("sonic", Box::new(sonic::SonicParser::new())));
    #[cfg(feature = "serde")]
    all.push(("serde", Box::new(serdejson::SerdeParser::new())));
    all
}

/// Largest accepted ts: 9999-12-31T23:59:59Z. Larger values are not time.
pub const MAX_TS: u64 = 253_402_300_799;

/// The top-level fields of a usable frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// The uid's decoded text (valid UTF-8, non-empty).
    pub uid: &'a [u8],
    /// Event time, unix seconds, UTC.
    pub ts: u64,
}

/// Why a frame is not usable. When several apply, the first one listed wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Reject {
    /// The line is empty or holds only whitespace.
    Empty,
    /// Longer than the source's frame size limit; skipped unread.
    TooLarge,
    /// A JSON value that is not an object (array, string, number, literal).
    NotObject,
    /// Not valid JSON: syntax, truncation, bad escape, invalid UTF-8,
    /// control characters in strings, or bytes after the object.
    Malformed,
    /// `uid` or `ts` appears more than once among the top-level members.
    DuplicateField,
    /// No top-level `uid`.
    MissingUid,
    /// No top-level `ts`.
    MissingTs,
    /// `uid` is not a string.
    UidNotString,
    /// `uid` is the empty string.
    UidEmpty,
    /// `ts` is neither an integer literal nor a string of decimal digits.
    TsNotInteger,
    /// `ts` is negative or later than [`MAX_TS`].
    TsOutOfRange,
}

impl Reject {
    /// Every reason, in precedence order.
    pub const ALL: [Reject; 11] = [
        Reject::Empty,
        Reject::TooLarge,
        Reject::NotObject,
        Reject::Malformed,
        Reject::DuplicateField,
        Reject::MissingUid,
        Reject::MissingTs,
        Reject::UidNotString,
        Reject::UidEmpty,
        Reject::TsNotInteger,
        Reject::TsOutOfRange,
    ];

    /// Stable snake_case name used in summaries, metrics and side outputs.
    pub fn name(self) -> &'static str {
        match self {
            Reject::Empty => "empty",
            Reject::TooLarge => "too_large",
            Reject::NotObject => "not_object",
            Reject::Malformed => "malformed",
            Reject::DuplicateField => "duplicate_field",
            Reject::MissingUid => "missing_uid",
            Reject::MissingTs => "missing_ts",
            Reject::UidNotString => "uid_not_string",
            Reject::UidEmpty => "uid_empty",
            Reject::TsNotInteger => "ts_not_integer",
            Reject::TsOutOfRange => "ts_out_of_range",
        }
    }

    /// Position in [`Reject::ALL`], for counter arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A frame parser. Implementations keep scratch space between calls so the
/// hot path does not allocate.
pub trait FrameParser: Send {
    /// Extracts the top-level uid and ts of `frame`, or says why not.
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<Fields<'a>, Reject>;

    /// Parses the line at the start of `data`: its bytes up to the first
    /// line feed (excluded), or all of `data`. Returns the line's length and
    /// the verdict. Parsers that find the line's end while scanning it
    /// override this to save a separate pass.
    fn parse_line<'a>(&'a mut self, data: &'a [u8]) -> (usize, Result<Fields<'a>, Reject>) {
        let len = memchr::memchr(b'\n', data).unwrap_or(data.len());
        (len, self.parse(&data[..len]))
    }
}

/// The parsers this build can run, selected with `--parser`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParserKind {
    /// Our SIMD structural scanner (feature `scan`).
    Scan,
    /// sonic-rs lazy iteration (feature `sonic`).
    Sonic,
    /// serde_json full parse (feature `serde`).
    Serde,
}

impl ParserKind {
    /// Parsers compiled into this build, fastest first.
    pub fn available() -> Vec<ParserKind> {
        let mut kinds = Vec::new();
        if cfg!(feature = "scan") {
            kinds.push(ParserKind::Scan);
        }
        if cfg!(feature = "sonic") {
            kinds.push(ParserKind::Sonic);
        }
        if cfg!(feature = "serde") {
            kinds.push(ParserKind::Serde);
        }
        kinds
    }

    /// The parser used when `--parser` is not given.
    pub fn default_kind() -> ParserKind {
        ParserKind::available()[0]
    }

    /// Name as used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ParserKind::Scan => "scan",
            ParserKind::Sonic => "sonic",
            ParserKind::Serde => "serde",
        }
    }

    /// Parses a `--parser` value, saying which parsers this build has.
    pub fn from_name(name: &str) -> Result<ParserKind, String> {
        let kind = match name {
            "scan" => ParserKind::Scan,
            "sonic" => ParserKind::Sonic,
            "serde" => ParserKind::Serde,
            _ => return Err(format!("unknown parser '{name}'; expected scan, sonic or serde")),
        };
        if ParserKind::available().contains(&kind) {
            Ok(kind)
        } else {
            let have: Vec<&str> = ParserKind::available().iter().map(|k| k.name()).collect();
            Err(format!(
                "parser '{name}' is not compiled into this build (it has: {}); rebuild with --features {name}",
                have.join(", ")
            ))
        }
    }

    /// A fresh parser of this kind.
    pub fn build(self) -> Box<dyn FrameParser> {
        match self {
            #[cfg(feature = "scan")]
            ParserKind::Scan => Box::new(scan::ScanParser::new()),
            #[cfg(feature = "sonic")]
            ParserKind::Sonic => Box::new(sonic::SonicParser::new()),
            #[cfg(feature = "serde")]
            ParserKind::Serde => Box::new(serdejson::SerdeParser::new()),
            #[allow(unreachable_patterns)]
            other => unreachable!("parser {} checked by from_name", other.name()),
        }
    }
}

/// Frames with at most this many `[`/`{` bytes nest at most this deep, which
/// recursive parsers (serde_json, sonic-rs) handle on any thread stack of
/// 1 MiB or more.
pub const RECURSION_SAFE_BRACKETS: usize = 1024;

/// True when `frame` holds more than `limit` opening brackets (a cheap upper
/// bound on its nesting depth); such frames go to the iterative parser.
#[allow(dead_code)]
pub(crate) fn may_nest_deeper_than(frame: &[u8], limit: usize) -> bool {
    frame.len() > 2 * limit && memchr::memchr2_iter(b'[', b'{', frame).nth(limit).is_some()
}

/// JSON whitespace: space, tab, line feed, carriage return.
#[inline]
pub fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The verdict for a frame whose first non-whitespace byte is not `{`:
/// [`Reject::Empty`], [`Reject::NotObject`] or [`Reject::Malformed`].
pub fn classify_non_object(frame: &[u8]) -> Reject {
    match frame.iter().copied().find(|&b| !is_json_ws(b)) {
        None => Reject::Empty,
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => Reject::NotObject,
        Some(_) => Reject::Malformed,
    }
}

/// Interprets the raw text of a JSON number (already known to be valid
/// JSON) as a ts: integer literals only, within `0..=MAX_TS`.
pub fn ts_from_number(raw: &[u8]) -> Result<u64, Reject> {
    let (negative, digits) = match raw.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reject::TsNotInteger);
    }
    let value = parse_digits(digits).ok_or(Reject::TsOutOfRange)?;
    if negative && value != 0 {
        return Err(Reject::TsOutOfRange);
    }
    Ok(value)
}

/// Interprets a decoded string value as a ts: ASCII digits (leading zeros
/// allowed), within `0..=MAX_TS`.
pub fn ts_from_string(text: &[u8]) -> Result<u64, Reject> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return Err(Reject::TsNotInteger);
    }
    parse_digits(text).ok_or(Reject::TsOutOfRange)
}

/// Decimal digits to a value in `0..=MAX_TS`, or None when larger.
#[inline]
fn parse_digits(digits: &[u8]) -> Option<u64> {
    let significant = &digits[digits.iter().take_while(|&&d| d == b'0').count()..];
    if significant.len() > 12 {
        return None;
    }
    let value = significant.iter().fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0'));
    (value <= MAX_TS).then_some(value)
}

/// What a parser saw of one top-level field: the raw JSON text of its first
/// value (quotes included for strings) and how many times the key occurred.
#[derive(Debug, Clone, Copy)]
pub struct FieldSeen<'a> {
    /// Raw text of the first occurrence's value.
    pub first: Option<&'a [u8]>,
    /// Number of occurrences among the top-level members.
    pub count: u32,
}

impl<'a> FieldSeen<'a> {
    /// Nothing seen yet.
    pub const NONE: FieldSeen<'static> = FieldSeen { first: None, count: 0 };

    /// Records one occurrence whose value's raw text is `raw`.
    #[inline]
    pub fn see(&mut self, raw: &'a [u8]) {
        if self.count == 0 {
            self.first = Some(raw);
        }
        self.count += 1;
    }
}

/// Scratch buffers for decoding escaped uid and ts strings.
#[derive(Debug, Default)]
pub struct Scratch {
    uid: Vec<u8>,
    ts: Vec<u8>,
}

/// Turns what a parser saw of a *valid* JSON object's top-level `uid` and
/// `ts` into the verdict. Shared by every parser.
pub fn finish<'a>(uid: FieldSeen<'a>, ts: FieldSeen<'a>, scratch: &'a mut Scratch) -> Result<Fields<'a>, Reject> {
    if uid.count > 1 || ts.count > 1 {
        return Err(Reject::DuplicateField);
    }
    let uid_raw = uid.first.ok_or(Reject::MissingUid)?;
    let ts_raw = ts.first.ok_or(Reject::MissingTs)?;
    let uid_body = string_body(uid_raw).ok_or(Reject::UidNotString)?;
    let uid_text: &'a [u8] = if uid_body.contains(&b'\\') {
        match strings::decode_body(uid_body, &mut scratch.uid) {
            Ok(true) => &scratch.uid,
            // A lone surrogate is valid JSON grammar but not text: a uid
            // must be text, so the frame is malformed for kuniq's purpose.
            Ok(false) | Err(_) => return Err(Reject::Malformed),
        }
    } else {
        uid_body
    };
    if uid_text.is_empty() {
        return Err(Reject::UidEmpty);
    }
    let ts = match ts_raw.first() {
        Some(b'"') => {
            let body = string_body(ts_raw).ok_or(Reject::TsNotInteger)?;
            if body.contains(&b'\\') {
                strings::decode_body(body, &mut scratch.ts).map_err(|_| Reject::Malformed)?;
                ts_from_string(&scratch.ts)?
            } else {
                ts_from_string(body)?
            }
        }
        Some(b'-' | b'0'..=b'9') => ts_from_number(ts_raw)?,
        _ => return Err(Reject::TsNotInteger),
    };
    Ok(Fields { uid: uid_text, ts })
}

/// The bytes between the quotes of a raw JSON string, or None when `raw` is
/// not a string.
#[inline]
fn string_body(raw: &[u8]) -> Option<&[u8]> {
    match raw {
        [b'"', body @ .., b'"'] => Some(body),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_numbers() {
        assert_eq!(ts_from_number(b"1468244384"), Ok(1_468_244_384));
        assert_eq!(ts_from_number(b"0"), Ok(0));
        assert_eq!(ts_from_number(b"-0"), Ok(0));
        assert_eq!(ts_from_number(b"-1"), Err(Reject::TsOutOfRange));
        assert_eq!(ts_from_number(b"253402300799"), Ok(MAX_TS));
        assert_eq!(ts_from_number(b"253402300800"), Err(Reject::TsOutOfRange));
        assert_eq!(ts_from_number(b"99999999999999999999999"), Err(Reject::TsOutOfRange));
        assert_eq!(ts_from_number(b"1.5"), Err(Reject::TsNotInteger));
        assert_eq!(ts_from_number(b"1e3"), Err(Reject::TsNotInteger));
        assert_eq!(ts_from_number(b"1468244384.0"), Err(Reject::TsNotInteger));
    }

    #[test]
    fn ts_strings() {
        assert_eq!(ts_from_string(b"1468244384"), Ok(1_468_244_384));
        assert_eq!(ts_from_string(b"0001468244384"), Ok(1_468_244_384));
        for bad in [&b""[..], b" 1", b"+1", b"-1", b"1 ", b"12a", b"1.0"] {
            assert_eq!(ts_from_string(bad), Err(Reject::TsNotInteger), "{bad:?}");
        }
        assert_eq!(ts_from_string(b"253402300800"), Err(Reject::TsOutOfRange));
        assert_eq!(ts_from_string(b"99999999999999999999"), Err(Reject::TsOutOfRange));
    }

    #[test]
    fn non_objects() {
        assert_eq!(classify_non_object(b""), Reject::Empty);
        assert_eq!(classify_non_object(b" \t\r"), Reject::Empty);
        assert_eq!(classify_non_object(b"[1]"), Reject::NotObject);
        assert_eq!(classify_non_object(b" \"x\""), Reject::NotObject);
        assert_eq!(classify_non_object(b"\xEF\xBB\xBF{}"), Reject::Malformed);
        assert_eq!(classify_non_object(b"\0"), Reject::Malformed);
    }

    #[test]
    fn reasons_are_listed_in_index_order() {
        for (i, r) in Reject::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
