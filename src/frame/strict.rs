//! A plain, iterative, byte-at-a-time strict JSON parser for frames.
//!
//! It validates the whole frame (RFC 8259) with an explicit stack, so any
//! nesting depth costs heap bytes, not thread stack. It is the reference the
//! fast parsers are easiest to compare with, and the fallback the sonic and
//! serde parsers use for frames whose depth could overflow their recursion.
//! Throughput is not its job.

use super::{FieldSeen, Fields, FrameParser, Reject, Scratch, classify_non_object, finish, strings};

/// Strict iterative parser with reusable buffers.
#[derive(Debug, Default)]
pub struct StrictParser {
    scratch: Scratch,
    key: Vec<u8>,
    stack: Vec<u8>,
}

impl StrictParser {
    /// A parser with empty buffers.
    pub fn new() -> StrictParser {
        StrictParser::default()
    }
}

impl FrameParser for StrictParser {
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<Fields<'a>, Reject> {
        let (uid, ts) = scan_object(frame, &mut self.key, &mut self.stack)?;
        finish(uid, ts, &mut self.scratch)
    }
}

/// Not valid JSON; the position is of no use to callers, which only count.
struct Invalid;

type Seen<'a> = (FieldSeen<'a>, FieldSeen<'a>);

/// Validates `frame` as one JSON object and records its top-level `uid` and
/// `ts` occurrences.
pub(crate) fn scan_object<'a>(frame: &'a [u8], key: &mut Vec<u8>, stack: &mut Vec<u8>) -> Result<Seen<'a>, Reject> {
    let start = skip_ws(frame, 0);
    if frame.get(start) != Some(&b'{') {
        return Err(classify_non_object(frame));
    }
    members(frame, start + 1, key, stack).map_err(|Invalid| Reject::Malformed)
}

fn members<'a>(frame: &'a [u8], mut p: usize, key: &mut Vec<u8>, stack: &mut Vec<u8>) -> Result<Seen<'a>, Invalid> {
    let mut uid = FieldSeen::NONE;
    let mut ts = FieldSeen::NONE;
    p = skip_ws(frame, p);
    if frame.get(p) == Some(&b'}') {
        p += 1;
    } else {
        loop {
            let (after_key, escaped) = string(frame, p)?;
            let body = &frame[p + 1..after_key - 1];
            let name: &[u8] = if escaped {
                strings::decode_body(body, key).map_err(|_| Invalid)?;
                key
            } else {
                body
            };
            let is_uid = name == b"uid";
            let is_ts = name == b"ts";
            p = expect(frame, skip_ws(frame, after_key), b':')?;
            let value_start = skip_ws(frame, p);
            p = value(frame, value_start, stack)?;
            let raw = &frame[value_start..p];
            if is_uid {
                uid.see(raw);
            } else if is_ts {
                ts.see(raw);
            }
            p = skip_ws(frame, p);
            match frame.get(p) {
                Some(b',') => p = skip_ws(frame, p + 1),
                Some(b'}') => {
                    p += 1;
                    break;
                }
                _ => return Err(Invalid),
            }
        }
    }
    if skip_ws(frame, p) != frame.len() {
        return Err(Invalid);
    }
    Ok((uid, ts))
}

#[inline]
fn skip_ws(frame: &[u8], mut p: usize) -> usize {
    while p < frame.len() && super::is_json_ws(frame[p]) {
        p += 1;
    }
    p
}

#[inline]
fn expect(frame: &[u8], p: usize, byte: u8) -> Result<usize, Invalid> {
    if frame.get(p) == Some(&byte) { Ok(p + 1) } else { Err(Invalid) }
}

/// Validates the string starting at `frame[p] == '"'`; returns the index
/// after its closing quote and whether it holds escapes.
fn string(frame: &[u8], p: usize) -> Result<(usize, bool), Invalid> {
    if frame.get(p) != Some(&b'"') {
        return Err(Invalid);
    }
    let mut i = p + 1;
    let mut escaped = false;
    loop {
        match frame.get(i) {
            None => return Err(Invalid),
            Some(b'"') => break,
            Some(b'\\') => {
                escaped = true;
                i += 2;
            }
            Some(_) => i += 1,
        }
    }
    let end = i.min(frame.len());
    strings::validate_body(&frame[p + 1..end]).map_err(|_| Invalid)?;
    Ok((end + 1, escaped))
}

/// Validates one value starting at `p` (no leading whitespace); returns the
/// index after it. Containers are walked with `stack`, never recursion.
fn value(frame: &[u8], mut p: usize, stack: &mut Vec<u8>) -> Result<usize, Invalid> {
    stack.clear();
    loop {
        // A value is expected at p.
        match frame.get(p) {
            Some(b'"') => p = string(frame, p)?.0,
            Some(b'{') => {
                p = skip_ws(frame, p + 1);
                if frame.get(p) == Some(&b'}') {
                    p += 1;
                } else {
                    stack.push(b'}');
                    p = object_key(frame, p)?;
                    continue;
                }
            }
            Some(b'[') => {
                p = skip_ws(frame, p + 1);
                if frame.get(p) == Some(&b']') {
                    p += 1;
                } else {
                    stack.push(b']');
                    continue;
                }
            }
            Some(b't') => p = literal(frame, p, b"true")?,
            Some(b'f') => p = literal(frame, p, b"false")?,
            Some(b'n') => p = literal(frame, p, b"null")?,
            Some(b'-' | b'0'..=b'9') => p = number(frame, p)?,
            _ => return Err(Invalid),
        }
        // A value ended at p: close containers until the next element.
        loop {
            let Some(&close) = stack.last() else {
                return Ok(p);
            };
            p = skip_ws(frame, p);
            match frame.get(p) {
                Some(b',') => {
                    p = skip_ws(frame, p + 1);
                    if close == b'}' {
                        p = object_key(frame, p)?;
                    }
                    break;
                }
                Some(&c) if c == close => {
                    stack.pop();
                    p += 1;
                }
                _ => return Err(Invalid),
            }
        }
    }
}

/// Validates `"key" :` at `p`; returns the index of the member's value.
fn object_key(frame: &[u8], p: usize) -> Result<usize, Invalid> {
    let after = string(frame, p)?.0;
    let p = expect(frame, skip_ws(frame, after), b':')?;
    Ok(skip_ws(frame, p))
}

fn literal(frame: &[u8], p: usize, word: &[u8]) -> Result<usize, Invalid> {
    if frame.get(p..p + word.len()) == Some(word) { Ok(p + word.len()) } else { Err(Invalid) }
}

/// Validates `-? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)?` at `p`.
pub(crate) fn number_end(frame: &[u8], mut p: usize) -> Option<usize> {
    let digits = |frame: &[u8], mut p: usize| -> (usize, usize) {
        let start = p;
        while p < frame.len() && frame[p].is_ascii_digit() {
            p += 1;
        }
        (p, p - start)
    };
    if frame.get(p) == Some(&b'-') {
        p += 1;
    }
    match frame.get(p) {
        Some(b'0') => p += 1,
        Some(b'1'..=b'9') => p = digits(frame, p).0,
        _ => return None,
    }
    if frame.get(p) == Some(&b'.') {
        let (end, n) = digits(frame, p + 1);
        if n == 0 {
            return None;
        }
        p = end;
    }
    if matches!(frame.get(p), Some(b'e' | b'E')) {
        p += 1;
        if matches!(frame.get(p), Some(b'+' | b'-')) {
            p += 1;
        }
        let (end, n) = digits(frame, p);
        if n == 0 {
            return None;
        }
        p = end;
    }
    Some(p)
}

fn number(frame: &[u8], p: usize) -> Result<usize, Invalid> {
    number_end(frame, p).ok_or(Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(frame: &[u8]) -> Result<(Vec<u8>, u64), Reject> {
        let mut p = StrictParser::new();
        p.parse(frame).map(|f| (f.uid.to_vec(), f.ts))
    }

    #[test]
    fn finds_top_level_fields_past_decoys() {
        let f = br#"{"a":{"uid":"decoy","ts":1},"ts":1468244384,"b":[{"uid":"x"}],"uid":"abc"}"#;
        assert_eq!(parse(f), Ok((b"abc".to_vec(), 1_468_244_384)));
        assert_eq!(parse(br#"{"\u0075id":"a\"b","ts":"7"}"#), Ok((b"a\"b".to_vec(), 7)));
    }

    #[test]
    fn reasons() {
        assert_eq!(parse(b""), Err(Reject::Empty));
        assert_eq!(parse(b"[]"), Err(Reject::NotObject));
        assert_eq!(parse(br#"{"uid":"a","ts":1"#), Err(Reject::Malformed));
        assert_eq!(parse(br#"{"uid":"a","ts":1} x"#), Err(Reject::Malformed));
        assert_eq!(parse(br#"{"uid":"a","ts":1,"x":[1,]}"#), Err(Reject::Malformed));
        assert_eq!(parse(br#"{"uid":"a","ts":1,"x":01}"#), Err(Reject::Malformed));
        assert_eq!(parse(br#"{"uid":"a","uid":"b","ts":1}"#), Err(Reject::DuplicateField));
        assert_eq!(parse(br#"{"ts":1}"#), Err(Reject::MissingUid));
        assert_eq!(parse(br#"{"uid":"a"}"#), Err(Reject::MissingTs));
        assert_eq!(parse(br#"{"uid":1,"ts":1}"#), Err(Reject::UidNotString));
        assert_eq!(parse(br#"{"uid":"","ts":1}"#), Err(Reject::UidEmpty));
        assert_eq!(parse(br#"{"uid":"a","ts":1.5}"#), Err(Reject::TsNotInteger));
        assert_eq!(parse(br#"{"uid":"a","ts":-5}"#), Err(Reject::TsOutOfRange));
        assert_eq!(parse(br#"{"uid":"\ud800","ts":1}"#), Err(Reject::Malformed));
    }

    #[test]
    fn deep_nesting_uses_no_recursion() {
        let depth = 100_000;
        let f = format!(r#"{{"x":{}0{},"uid":"u","ts":5}}"#, "[".repeat(depth), "]".repeat(depth));
        assert_eq!(parse(f.as_bytes()), Ok((b"u".to_vec(), 5)));
        let bad = format!(r#"{{"x":{}0{},"uid":"u","ts":5}}"#, "[".repeat(depth), "]".repeat(depth - 1));
        assert_eq!(parse(bad.as_bytes()), Err(Reject::Malformed));
    }
}
