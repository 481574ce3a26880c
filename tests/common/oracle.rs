//! The independent oracle: a full serde_json parse of each frame, read the
//! plainest way, and a HashSet of uid strings per minute.
//!
//! It shares no code with kuniq's parsers: validity is serde_json's
//! (grammar, escapes, control characters) plus std's UTF-8 check; fields are
//! read from serde_json's own map access with raw values.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::de::{Deserializer as _, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// kuniq's verdict on a frame, by reason name: `Ok((uid, ts))` or `Err(reason)`.
pub type Verdict = Result<(Vec<u8>, u64), String>;

const MAX_TS: u64 = 253_402_300_799;

fn reject(reason: &str) -> Verdict {
    Err(reason.to_string())
}

/// The verdict kuniq documents, computed independently.
pub fn oracle(frame: &[u8]) -> Verdict {
    let ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    match frame.iter().find(|b| !ws(b)) {
        None => return reject("empty"),
        Some(b'{') => {}
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => return reject("not_object"),
        Some(_) => return reject("malformed"),
    }
    if std::str::from_utf8(frame).is_err() {
        return reject("malformed");
    }
    let mut de = serde_json::Deserializer::from_slice(frame);
    de.disable_recursion_limit();
    if serde::Deserialize::deserialize(&mut de).map(|_: IgnoredAny| ()).and_then(|_| de.end()).is_err() {
        return reject("malformed");
    }
    let mut de = serde_json::Deserializer::from_slice(frame);
    de.disable_recursion_limit();
    let pairs = de.deserialize_map(Pairs).expect("a valid object has readable members");
    let uids: Vec<&str> = pairs.iter().filter(|(k, _)| k == b"uid").map(|(_, v)| v.get()).collect();
    let tss: Vec<&str> = pairs.iter().filter(|(k, _)| k == b"ts").map(|(_, v)| v.get()).collect();
    if uids.len() > 1 || tss.len() > 1 {
        return reject("duplicate_field");
    }
    let Some(uid_raw) = uids.first() else { return reject("missing_uid") };
    let Some(ts_raw) = tss.first() else { return reject("missing_ts") };
    if !uid_raw.starts_with('"') {
        return reject("uid_not_string");
    }
    let Ok(uid) = serde_json::from_str::<String>(uid_raw) else {
        return reject("malformed");
    };
    if uid.is_empty() {
        return reject("uid_empty");
    }
    let ts = if ts_raw.starts_with('"') {
        let text: String = match serde_json::from_str(ts_raw) {
            Ok(t) => t,
            Err(_) => return reject("ts_not_integer"),
        };
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return reject("ts_not_integer");
        }
        text
    } else {
        let digits = ts_raw.strip_prefix('-').unwrap_or(ts_raw);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return reject("ts_not_integer");
        }
        if ts_raw.starts_with('-') && digits.bytes().any(|b| b != b'0') {
            return reject("ts_out_of_range");
        }
        digits.to_string()
    };
    match ts.parse::<u128>() {
        Ok(v) if v <= u128::from(MAX_TS) => Ok((uid.into_bytes(), v as u64)),
        _ => reject("ts_out_of_range"),
    }
}

struct Pairs;

impl<'de> Visitor<'de> for Pairs {
    type Value = Vec<(Vec<u8>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key_seed(KeyBytes)? {
            pairs.push((key, map.next_value::<&'de RawValue>()?));
        }
        Ok(pairs)
    }
}

/// A key as decoded bytes (a lone-surrogate escape cannot be a `String`).
struct KeyBytes;

impl<'de> serde::de::DeserializeSeed<'de> for KeyBytes {
    type Value = Vec<u8>;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl<'de> Visitor<'de> for KeyBytes {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
}

/// Exact unique users per minute of a list of frames, by the oracle's
/// verdicts: minute start -> (unique uids, frames).
pub fn count_per_minute<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> BTreeMap<u64, (usize, u64)> {
    let mut minutes: BTreeMap<u64, (HashSet<Vec<u8>>, u64)> = BTreeMap::new();
    for frame in frames {
        if let Ok((uid, ts)) = oracle(frame) {
            let entry = minutes.entry(ts / 60 * 60).or_default();
            entry.0.insert(uid);
            entry.1 += 1;
        }
    }
    minutes.into_iter().map(|(m, (users, frames))| (m, (users.len(), frames))).collect()
}

/// Runs `f` on a thread with a large stack (the oracle's serde_json parse
/// recurses once per nesting level).
pub fn with_big_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new().stack_size(1 << 30).spawn(f).unwrap().join().unwrap()
}
