//! Random and adversarial frames for property tests.

use proptest::prelude::*;

/// JSON whitespace between tokens: usually none, sometimes some.
fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "", "", "", "", " ", "\t", " \r\n ", "\n"])
}

/// A string body, JSON-escaped, mixing plain text, every escape, UTF-8 and
/// (when `surrogates`) lone surrogate escapes.
fn string_body(surrogates: bool) -> impl Strategy<Value = String> {
    let mut pieces = vec![
        "a",
        "uid",
        "ts",
        "example",
        " ",
        "/",
        "\\\"",
        "\\\\",
        "\\/",
        "\\b",
        "\\f",
        "\\n",
        "\\r",
        "\\t",
        "\\u0041",
        "\\u00e9",
        "\\u4e2d",
        "\\ud83d\\ude00",
        "é",
        "Ветер",
        "😀",
        "0",
        "1468244384",
        ":",
        ",",
        "{",
        "}",
        "[",
        "]",
    ];
    if surrogates {
        pieces.extend(["\\ud800", "\\udfff", "\\ud800\\u0041"]);
    }
    prop::collection::vec(prop::sample::select(pieces), 0..6).prop_map(|p| p.concat())
}

fn json_string(surrogates: bool) -> impl Strategy<Value = String> {
    string_body(surrogates).prop_map(|b| format!("\"{b}\""))
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..300).prop_map(|n| n.to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        (any::<i32>(), 0u32..1000).prop_map(|(i, f)| format!("{i}.{f}")),
        (any::<i16>(), any::<i8>()).prop_map(|(m, e)| format!("{m}e{e}")),
        (0u32..100).prop_map(|m| format!("{m}E+2")),
        Just("-0".to_string()),
        Just("0.5".to_string()),
    ]
}

/// Any JSON value, nested a few levels, with random whitespace.
pub fn value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        3 => json_string(true),
        2 => number(),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec((ws(), inner.clone(), ws()), 0..5).prop_map(|items| {
                let body: Vec<String> = items.into_iter().map(|(a, v, b)| format!("{a}{v}{b}")).collect();
                format!("[{}]", body.join(","))
            }),
            prop::collection::vec((key(), ws(), inner, ws()), 0..5).prop_map(|members| {
                let body: Vec<String> = members.into_iter().map(|(k, a, v, b)| format!("{k}{a}:{b}{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

/// Object keys: the real ones, escaped spellings of them, and near misses.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "\"uid\"", "\"ts\"", "\"\\u0075id\"", "\"t\\u0073\"", "\"u\\u0069d\"", "\"UID\"", "\"uid \"", "\"tsx\"",
            "\"\"", "\"a\"", "\"dolor\"", "\"elit,\"", "\"aliqua.\"", "\"ключ\"", "\"u\\\"id\"",
        ]).prop_map(String::from),
        1 => json_string(false),
    ]
}

/// Values a top-level uid may hold.
fn uid_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[0-9a-f]{19}".prop_map(|s| format!("\"{s}\"")),
        2 => json_string(true),
        1 => Just("\"\"".to_string()),
        1 => value(),
    ]
}

/// Values a top-level ts may hold.
fn ts_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (1_468_244_384u64..1_468_250_000).prop_map(|t| t.to_string()),
        3 => (1_468_244_384u64..1_468_250_000).prop_map(|t| format!("\"{t}\"")),
        1 => Just("\"\\u00314\"".to_string()),
        1 => prop::sample::select(vec![
            "0", "-0", "-1", "253402300799", "253402300800", "1e300", "1.5", "1468244384.0",
            "99999999999999999999999", "\"\"", "\"+1\"", "\" 1\"", "\"1 \"", "\"abc\"", "\"-5\"",
            "\"000123\"", "true", "null", "{}", "[1]",
        ]).prop_map(String::from),
        1 => value(),
    ]
}

/// A top-level object: members before, uid and ts (each maybe absent or
/// repeated, under various spellings), members after.
pub fn frame() -> impl Strategy<Value = String> {
    let member = || (key(), ws(), value(), ws()).prop_map(|(k, a, v, b)| format!("{k}{a}:{b}{v}"));
    let uid_key = prop::sample::select(vec!["\"uid\"", "\"uid\"", "\"uid\"", "\"\\u0075id\""]);
    let ts_key = prop::sample::select(vec!["\"ts\"", "\"ts\"", "\"ts\"", "\"t\\u0073\""]);
    (
        prop::collection::vec(member(), 0..4),
        prop::collection::vec((uid_key, ws(), uid_value()), 0..3),
        prop::collection::vec((ts_key, ws(), ts_value()), 0..3),
        prop::collection::vec(member(), 0..6),
        ws(),
        ws(),
        any::<bool>(),
    )
        .prop_map(|(before, uids, tss, after, lead, trail, ts_first)| {
            let uids: Vec<String> = uids.into_iter().map(|(k, w, v)| format!("{k}{w}:{w}{v}")).collect();
            let tss: Vec<String> = tss.into_iter().map(|(k, w, v)| format!("{k}:{w}{v}")).collect();
            let mut members = before;
            if ts_first {
                members.extend(tss);
                members.extend(uids);
            } else {
                members.extend(uids);
                members.extend(tss);
            }
            members.extend(after);
            format!("{lead}{{{}}}{trail}", members.join(","))
        })
}

/// Bytes that break JSON in interesting ways when inserted or substituted.
const NASTY: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b' ', b'\n', b'\r', b'\t', 0x00, 0x1F, 0x7F, 0x80, 0xBF, 0xC3,
    0xE2, 0xF0, 0xFF, b'u', b'0', b'9', b'e', b'.', b'-', b'+', b't', b'x',
];

/// A frame with one to three random edits: deletions, insertions,
/// substitutions, truncation.
pub fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (frame(), prop::collection::vec((0u8..4, any::<prop::sample::Index>(), prop::sample::select(NASTY)), 1..4))
        .prop_map(|(frame, edits)| {
            let mut bytes = frame.into_bytes();
            for (kind, at, byte) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let i = at.index(bytes.len());
                match kind {
                    0 => {
                        bytes.remove(i);
                    }
                    1 => bytes.insert(i, byte),
                    2 => bytes[i] = byte,
                    _ => bytes.truncate(i),
                }
            }
            bytes
        })
}
