//! The serde_json parser: the slow, obviously-correct baseline.
//!
//! It parses every frame completely with serde_json: the top-level object
//! through a visitor that reads keys as strings (so escaped keys are decoded
//! and duplicates are seen), `uid` and `ts` as raw text, and every other
//! value as `IgnoredAny` (which checks grammar, escapes and control
//! characters). serde_json does not check UTF-8 inside strings it ignores,
//! so the whole frame's UTF-8 is checked first; outside strings any
//! non-ASCII byte is a grammar error anyway.
//!
//! serde_json rejects keys holding lone-surrogate escapes, which RFC 8259's
//! grammar allows; so any frame serde_json rejects is judged again by the
//! strict parser, and every parser gives the same verdict and reason.
//!
//! serde_json recurses once per nesting level; frames that could nest
//! deeper than [`super::RECURSION_SAFE_BRACKETS`] go to the iterative
//! [`super::strict`] parser instead, so no frame can overflow the stack.

use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::strict::StrictParser;
use super::{FieldSeen, Fields, FrameParser, Reject, Scratch, classify_non_object, finish, is_json_ws};

/// serde_json-based parser with reusable scratch space.
#[derive(Debug, Default)]
pub struct SerdeParser {
    scratch: Scratch,
    strict: StrictParser,
}

impl SerdeParser {
    /// A parser with empty buffers.
    pub fn new() -> SerdeParser {
        SerdeParser::default()
    }
}

impl FrameParser for SerdeParser {
    fn parse<'a>(&'a mut self, frame: &'a [u8]) -> Result<Fields<'a>, Reject> {
        if super::may_nest_deeper_than(frame, super::RECURSION_SAFE_BRACKETS) {
            return self.strict.parse(frame);
        }
        let first = frame.iter().position(|&b| !is_json_ws(b));
        if first.map(|i| frame[i]) != Some(b'{') {
            return Err(classify_non_object(frame));
        }
        if simdutf8::basic::from_utf8(frame).is_err() {
            return Err(Reject::Malformed);
        }
        let mut de = serde_json::Deserializer::from_slice(frame);
        de.disable_recursion_limit();
        match de::Deserializer::deserialize_map(&mut de, TopLevel).and_then(|seen| de.end().map(|()| seen)) {
            Ok((uid, ts)) => finish(uid, ts, &mut self.scratch),
            Err(_) => self.strict.parse(frame),
        }
    }
}

struct TopLevel;

impl<'de> Visitor<'de> for TopLevel {
    type Value = (FieldSeen<'de>, FieldSeen<'de>);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut uid = FieldSeen::NONE;
        let mut ts = FieldSeen::NONE;
        while let Some(key) = map.next_key_seed(KeyName)? {
            match key {
                Key::Uid => uid.see(map.next_value::<&'de RawValue>()?.get().as_bytes()),
                Key::Ts => ts.see(map.next_value::<&'de RawValue>()?.get().as_bytes()),
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok((uid, ts))
    }
}

enum Key {
    Uid,
    Ts,
    Other,
}

/// Reads a key as a string (serde_json checks its escapes, control
/// characters and surrogates).
struct KeyName;

impl<'de> DeserializeSeed<'de> for KeyName {
    type Value = Key;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Key, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyName {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
        Ok(match v {
            "uid" => Key::Uid,
            "ts" => Key::Ts,
            _ => Key::Other,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_verdicts_as_the_strict_parser_on_basics() {
        let cases: &[&[u8]] = &[
            br#"{"uid":"a","ts":1}"#,
            br#"{"\u0075id":"a","ts":"12"}"#,
            br#"{"uid":"a","ts":1,"x":"\ud800"}"#,
            br#"{"uid":"a","ts":1,"x":"\x"}"#,
            b"{\"uid\":\"a\",\"ts\":1,\"x\":\"\xff\"}",
            br#"{"uid":"a","uid":"a","ts":1}"#,
            br#"{"uid":"a","ts":1} "#,
            br#"{"uid":"a","ts":1}}"#,
            br#"[1]"#,
        ];
        for case in cases {
            let mut serde = SerdeParser::new();
            let mut strict = StrictParser::new();
            let a = serde.parse(case).map(|f| (f.uid.to_vec(), f.ts));
            let b = strict.parse(case).map(|f| (f.uid.to_vec(), f.ts));
            assert_eq!(a, b, "{}", String::from_utf8_lossy(case));
        }
    }

    #[test]
    fn deep_frames_do_not_overflow() {
        let depth = 100_000;
        let f = format!(r#"{{"x":{}{},"uid":"u","ts":5}}"#, "[".repeat(depth), "]".repeat(depth));
        assert_eq!(SerdeParser::new().parse(f.as_bytes()).map(|f| f.ts), Ok(5));
    }
}
