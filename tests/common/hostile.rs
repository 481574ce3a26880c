//! The hostile-frame corpus: one table of frames made to break a parser,
//! each named by what it is, with the verdict README "Accepted input"
//! documents for it.
//!
//! `tests/parsers.rs` holds every parser and the oracle to this table;
//! `tests/hostile.rs` sends each case through the `kuniq` binary between
//! good frames. Usable cases carry the uid [`UID`] or a decoded spelling of
//! it and the ts [`TS`], a time inside the good frames' stream, so a run
//! counts them. The big cases (100,000 levels of nesting, a 16 MiB frame)
//! are built here at run time, never stored.

use super::oracle::Verdict;

/// The ts of every usable case: 2016-07-11 13:40:30 UTC, inside the minute
/// starting at 1468244400.
pub const TS: u64 = 1_468_244_430;

/// The uid of usable cases that do not test the uid's spelling.
pub const UID: &str = "hostile-uid";

/// Nesting depth of the deep cases: far beyond any recursive parser's stack.
pub const DEEP_LEVELS: usize = 100_000;

/// Size of the big-frame case.
pub const BIG_FRAME_BYTES: usize = 16 << 20;

/// One hostile frame and what kuniq must make of it.
pub struct Case {
    /// What the frame is.
    pub name: &'static str,
    /// The frame, without its line ending.
    pub frame: Vec<u8>,
    /// `Ok((uid, ts))` or `Err(reason name)`.
    pub verdict: Verdict,
}

fn ok(uid: &str) -> Verdict {
    Ok((uid.as_bytes().to_vec(), TS))
}

fn no(reason: &str) -> Verdict {
    Err(reason.to_string())
}

/// `{"uid":"hostile-uid","ts":TS}` with `text` put in place of `@uid` and
/// `@ts` (so every case reads like the frame it is).
fn frame(text: &str) -> Vec<u8> {
    text.replace("@uid", &format!("\"{UID}\"")).replace("@ts", &TS.to_string()).into_bytes()
}

/// Like [`frame`], then `bytes` replace the first `@raw`.
fn frame_with(text: &str, bytes: &[u8]) -> Vec<u8> {
    let text = frame(text);
    let at = text.windows(4).position(|w| w == b"@raw").expect("@raw in the case");
    [&text[..at], bytes, &text[at + 4..]].concat()
}

/// The small cases: every one is a line of at most a few hundred bytes.
pub fn cases() -> Vec<Case> {
    let case = |name, frame, verdict| Case { name, frame, verdict };
    vec![
        case("plain", frame(r#"{"uid":@uid,"ts":@ts}"#), ok(UID)),
        case("crlf line ending", frame("{\"uid\":@uid,\"ts\":@ts}\r"), ok(UID)),
        case("spaces around every token", frame(" { \"uid\" : @uid , \"ts\" : @ts } "), ok(UID)),
        case("empty line", b"".to_vec(), no("empty")),
        case("whitespace only", b" \t\r".to_vec(), no("empty")),
        case("bom", frame_with(r#"@raw{"uid":@uid,"ts":@ts}"#, b"\xEF\xBB\xBF"), no("malformed")),
        case("truncated object", frame(r#"{"uid":@uid,"ts":@ts"#), no("malformed")),
        case("truncated after a comma", frame(r#"{"uid":@uid,"ts":@ts,"#), no("malformed")),
        case("unterminated string", frame(r#"{"uid":@uid,"ts":@ts,"x":"abc}"#), no("malformed")),
        case(
            "invalid utf-8 inside a string",
            frame_with(r#"{"uid":@uid,"ts":@ts,"x":"@raw"}"#, b"\xff"),
            no("malformed"),
        ),
        case("invalid utf-8 in the uid", frame_with(r#"{"uid":"a@raw","ts":@ts}"#, b"\xc3\x28"), no("malformed")),
        case("invalid utf-8 outside strings", frame_with(r#"{"uid":@uid,"ts":@ts,@raw}"#, b"\xff"), no("malformed")),
        case("top-level array", frame(r#"[{"uid":@uid,"ts":@ts}]"#), no("not_object")),
        case("top-level number", b"1468244430".to_vec(), no("not_object")),
        case("top-level string", br#""hostile-uid""#.to_vec(), no("not_object")),
        case("top-level null", b"null".to_vec(), no("not_object")),
        case("missing uid", frame(r#"{"ts":@ts}"#), no("missing_uid")),
        case("missing ts", frame(r#"{"uid":@uid}"#), no("missing_ts")),
        case("empty object", b"{}".to_vec(), no("missing_uid")),
        case("uid a number", frame(r#"{"uid":7,"ts":@ts}"#), no("uid_not_string")),
        case("uid null", frame(r#"{"uid":null,"ts":@ts}"#), no("uid_not_string")),
        case("uid an object", frame(r#"{"uid":{"uid":@uid},"ts":@ts}"#), no("uid_not_string")),
        case("uid empty", frame(r#"{"uid":"","ts":@ts}"#), no("uid_empty")),
        case("ts negative", frame(r#"{"uid":@uid,"ts":-1}"#), no("ts_out_of_range")),
        case("ts float", frame(r#"{"uid":@uid,"ts":1468244430.5}"#), no("ts_not_integer")),
        case("ts integral float", frame(r#"{"uid":@uid,"ts":1468244430.0}"#), no("ts_not_integer")),
        case("ts 1e300", frame(r#"{"uid":@uid,"ts":1e300}"#), no("ts_not_integer")),
        case("ts beyond i64", frame(r#"{"uid":@uid,"ts":99999999999999999999}"#), no("ts_out_of_range")),
        case("ts beyond year 9999", frame(r#"{"uid":@uid,"ts":253402300800}"#), no("ts_out_of_range")),
        case("ts leading zero", frame(r#"{"uid":@uid,"ts":01468244430}"#), no("malformed")),
        case("ts non-numeric string", frame(r#"{"uid":@uid,"ts":"soon"}"#), no("ts_not_integer")),
        case("ts empty string", frame(r#"{"uid":@uid,"ts":""}"#), no("ts_not_integer")),
        case("ts leading plus", frame(r#"{"uid":@uid,"ts":"+1468244430"}"#), no("ts_not_integer")),
        case("ts leading space", frame(r#"{"uid":@uid,"ts":" 1468244430"}"#), no("ts_not_integer")),
        case("ts trailing space", frame(r#"{"uid":@uid,"ts":"1468244430 "}"#), no("ts_not_integer")),
        case("ts negative string", frame(r#"{"uid":@uid,"ts":"-1468244430"}"#), no("ts_not_integer")),
        case("ts true", frame(r#"{"uid":@uid,"ts":true}"#), no("ts_not_integer")),
        case("ts null", frame(r#"{"uid":@uid,"ts":null}"#), no("ts_not_integer")),
        case("ts string", frame(r#"{"uid":@uid,"ts":"1468244430"}"#), ok(UID)),
        case("ts string with an escaped digit", frame(r#"{"uid":@uid,"ts":"\u0031468244430"}"#), ok(UID)),
        case("duplicate uid", frame(r#"{"uid":@uid,"uid":"other","ts":@ts}"#), no("duplicate_field")),
        case("duplicate uid, same value", frame(r#"{"uid":@uid,"ts":@ts,"uid":@uid}"#), no("duplicate_field")),
        case("duplicate ts", frame(r#"{"uid":@uid,"ts":@ts,"ts":@ts}"#), no("duplicate_field")),
        case(
            "duplicate uid through an escaped key",
            frame(r#"{"uid":@uid,"\u0075id":"x","ts":@ts}"#),
            no("duplicate_field"),
        ),
        case("escaped uid key", frame(r#"{"\u0075id":@uid,"ts":@ts}"#), ok(UID)),
        case("escaped ts key", frame(r#"{"uid":@uid,"t\u0073":@ts}"#), ok(UID)),
        case("uid with escapes", frame(r#"{"uid":"a\"b\\c\u00e9\n","ts":@ts}"#), ok("a\"b\\c\u{e9}\n")),
        case("uid in Cyrillic", frame(r#"{"uid":"Ветер","ts":@ts}"#), ok("Ветер")),
        case("only decoys", frame(r#"{"x":{"uid":@uid,"ts":@ts},"y":[{"uid":"b","ts":1}]}"#), no("missing_uid")),
        case(
            "decoys around the real fields",
            frame(r#"{"x":{"uid":"d","ts":1},"uid":@uid,"y":[{"ts":"e"}],"ts":@ts}"#),
            ok(UID),
        ),
        case(
            "decoy key text inside a string",
            frame(r#"{"note":"\"uid\":\"d\",\"ts\":1","uid":@uid,"ts":@ts}"#),
            ok(UID),
        ),
        case("nul byte after the object", frame_with(r#"{"uid":@uid,"ts":@ts}@raw"#, b"\0"), no("malformed")),
        case("nul byte inside a string", frame_with(r#"{"uid":"a@raw","ts":@ts}"#, b"\0"), no("malformed")),
        case("nul byte between tokens", frame_with(r#"{"uid":@uid,@raw"ts":@ts}"#, b"\0"), no("malformed")),
        case("escaped nul in the uid", frame(r#"{"uid":"a\u0000","ts":@ts}"#), ok("a\0")),
        case("lone surrogate elsewhere", frame(r#"{"uid":@uid,"ts":@ts,"x":"\ud800"}"#), ok(UID)),
        case("lone surrogate in the uid", frame(r#"{"uid":"\ud800","ts":@ts}"#), no("malformed")),
        case("trailing comma", frame(r#"{"uid":@uid,"ts":@ts,}"#), no("malformed")),
        case("two objects on a line", frame(r#"{"uid":@uid,"ts":@ts}{}"#), no("malformed")),
        case("mismatched brackets", frame(r#"{"uid":@uid,"ts":@ts,"x":[}"#), no("malformed")),
        case("single quotes", frame(r#"{'uid':@uid,'ts':@ts}"#), no("malformed")),
        case("unquoted key", frame(r#"{uid:@uid,"ts":@ts}"#), no("malformed")),
        case("control character in a string", frame_with(r#"{"uid":"a@raw","ts":@ts}"#, b"\t"), no("malformed")),
    ]
}

/// `{"x":` + `levels` nested `[{"a":` ... `}]` around `1`, then the fields.
pub fn deeply_nested(levels: usize) -> Vec<u8> {
    frame(&format!(r#"{{"x":{}1{},"uid":@uid,"ts":@ts}}"#, "[{\"a\":".repeat(levels), "}]".repeat(levels)))
}

/// `levels` opening brackets that are never closed, then the fields.
pub fn unclosed_nesting(levels: usize) -> Vec<u8> {
    frame(&format!(r#"{{"x":{}1,"uid":@uid,"ts":@ts}}"#, "[".repeat(levels)))
}

/// A usable frame of exactly `len` bytes (a padding string first, so the
/// fields come last and a parser must cross all of it).
pub fn padded_frame(uid: &str, ts: u64, len: usize) -> Vec<u8> {
    let bare = format!(r#"{{"pad":"","uid":"{uid}","ts":{ts}}}"#);
    assert!(len >= bare.len(), "a {len}-byte frame cannot hold {bare}");
    let mut frame = Vec::with_capacity(len);
    frame.extend_from_slice(br#"{"pad":""#);
    frame.resize(frame.len() + len - bare.len(), b'p');
    frame.extend_from_slice(format!(r#"","uid":"{uid}","ts":{ts}}}"#).as_bytes());
    debug_assert_eq!(frame.len(), len);
    frame
}

/// The big cases, built at run time: deep nesting both ways and a 16 MiB
/// frame. The oracle needs a big stack for the deep ones
/// ([`super::oracle::with_big_stack`]).
pub fn big_cases() -> Vec<Case> {
    vec![
        Case { name: "100,000 levels of nesting", frame: deeply_nested(DEEP_LEVELS), verdict: ok(UID) },
        Case { name: "100,000 unclosed brackets", frame: unclosed_nesting(DEEP_LEVELS), verdict: no("malformed") },
        Case { name: "16 MiB frame", frame: padded_frame(UID, TS, BIG_FRAME_BYTES), verdict: ok(UID) },
    ]
}

/// Cases whose frame is valid JSON (RFC 8259) yet rejected as `malformed`,
/// and why: everywhere else a frame is `malformed` or `empty` exactly when
/// a strict JSON parser refuses it.
pub const VALID_JSON_BUT_MALFORMED: &[(&str, &str)] = &[(
    "lone surrogate in the uid",
    "the grammar allows a lone surrogate escape, but the uid must decode to text (UTF-8) to be a user",
)];

/// True when a strict JSON parser (serde_json, UTF-8 checked by std)
/// accepts `frame` as one JSON value. Recurses per nesting level: run deep
/// frames with [`super::oracle::with_big_stack`].
pub fn strict_json_valid(frame: &[u8]) -> bool {
    if std::str::from_utf8(frame).is_err() {
        return false;
    }
    let mut de = serde_json::Deserializer::from_slice(frame);
    de.disable_recursion_limit();
    serde::Deserialize::deserialize(&mut de).map(|_: serde::de::IgnoredAny| ()).and_then(|_| de.end()).is_ok()
}
