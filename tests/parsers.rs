//! Every compiled parser against the independent oracle: random valid
//! frames, mutated frames, generator frames, the shared samples, deep
//! nesting and a table of hostile cases.

mod common;

use common::oracle::{Verdict, oracle, with_big_stack};
use kuniq::frame::FrameParser;
use proptest::prelude::*;

fn parsers() -> Vec<(&'static str, Box<dyn FrameParser>)> {
    kuniq::frame::every_parser()
}

fn verdict(parser: &mut dyn FrameParser, frame: &[u8]) -> Verdict {
    parser.parse(frame).map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string())
}

/// Asserts every parser gives the oracle's verdict on `frame`.
fn check(parsers: &mut [(&'static str, Box<dyn FrameParser>)], frame: &[u8]) -> Result<(), TestCaseError> {
    let expect = oracle(frame);
    for (name, parser) in parsers.iter_mut() {
        let got = verdict(parser.as_mut(), frame);
        prop_assert_eq!(&got, &expect, "parser {} on {:?}", name, String::from_utf8_lossy(frame));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_match_the_oracle(frame in common::frames::frame()) {
        check(&mut parsers(), frame.as_bytes())?;
    }

    #[test]
    fn mutated_frames_match_the_oracle(frame in common::frames::mutated_frame()) {
        check(&mut parsers(), &frame)?;
    }

    /// `parse_line` over many lines in one buffer (as the pipeline calls it)
    /// finds each line's end and gives each line the oracle's verdict.
    #[test]
    fn lines_in_a_buffer_match_the_oracle(
        frames in prop::collection::vec(prop_oneof![
            common::frames::frame().prop_map(String::into_bytes),
            common::frames::mutated_frame(),
        ], 1..6),
        crlf in any::<bool>(),
        final_newline in any::<bool>(),
    ) {
        let mut data = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            data.extend_from_slice(frame);
            if i + 1 < frames.len() || final_newline {
                data.extend_from_slice(if crlf { b"\r\n" } else { b"\n" });
            }
        }
        let mut lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
        if data.ends_with(b"\n") {
            lines.pop();
        }
        for (name, parser) in parsers().iter_mut() {
            let mut pos = 0;
            for line in &lines {
                let (len, got) = parser.parse_line(&data[pos..]);
                let got: Verdict = got.map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string());
                prop_assert_eq!(len, line.len(), "parser {} line end at {}", name, pos);
                prop_assert_eq!(&got, &oracle(line), "parser {} on {:?}", name, String::from_utf8_lossy(line));
                pos += len + 1;
            }
            prop_assert!(pos >= data.len(), "parser {} stopped early", name);
        }
    }

    /// Valid and invalid UTF-8 in strings, across block boundaries: the
    /// scanner checks two-byte sequences itself and leaves the rest to a
    /// full validator.
    #[test]
    fn utf8_in_strings_matches_the_oracle(
        bytes in prop::collection::vec(prop::sample::select(vec![
            b'a', b'a', 0xC2, 0xDF, 0xD0, 0xD1, 0x80, 0x90, 0xBF, 0xC0, 0xC1, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0xA0, 0x9F,
        ]), 0..160),
        pad in 0usize..64,
        in_uid in any::<bool>(),
    ) {
        let mut frame = format!("{{\"pad\":\"{}\",", "x".repeat(pad)).into_bytes();
        frame.extend_from_slice(if in_uid { b"\"uid\":\"u" } else { b"\"uid\":\"u\",\"note\":\"" });
        frame.extend_from_slice(&bytes);
        frame.extend_from_slice(b"\",\"ts\":1468244384}");
        check(&mut parsers(), &frame)?;
    }

    #[test]
    fn frames_split_across_blocks_match_the_oracle(pad in 0usize..130, frame in common::frames::frame()) {
        // Shift every token across 64-byte block boundaries.
        let shifted = format!("{{\"pad\":\"{}\",{}", "x".repeat(pad), &frame.trim_start()[1..]);
        check(&mut parsers(), shifted.as_bytes())?;
    }
}

#[test]
fn generator_frames_match_the_oracle_and_the_generator() {
    let cfg = kuniq::generator::GenConfig {
        count: 3000,
        users: 500,
        ts_string_percent: 20.0,
        delay_secs: 30,
        delay_percent: 10.0,
        crlf: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    kuniq::generator::generate(&cfg, &mut out, |_| {}).unwrap();
    let mut parsers = parsers();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        check(&mut parsers, line).unwrap();
        assert!(oracle(line).is_ok(), "generated frames are all usable");
    }
}

#[test]
fn shared_sample_frames_match_the_oracle() {
    let mut parsers = parsers();
    for name in ["s-ordered", "s-delayed"] {
        let path = format!("{}/../shared/data/{name}.jsonl.gz", env!("CARGO_MANIFEST_DIR"));
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()), &mut text)
            .unwrap();
        for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            check(&mut parsers, line).unwrap();
        }
    }
}

#[test]
fn every_prefix_of_a_frame_matches_the_oracle() {
    let frame =
        br#"{"a":[1,{"uid":"d","ts":2}],"uid":"ab\"c\u00e9","ts":"1468244384","z":{"k":[true,false,null,-1.5e3]}}"#;
    let mut parsers = parsers();
    for end in 0..=frame.len() {
        check(&mut parsers, &frame[..end]).unwrap();
    }
}

#[test]
fn deep_nesting_does_not_overflow_any_parser() {
    let depth = 100_000;
    let valid = format!(r#"{{"x":{}1{},"uid":"u","ts":5}}"#, "[{\"a\":".repeat(depth), "}]".repeat(depth));
    let unbalanced = format!(r#"{{"x":{}1,"uid":"u","ts":5}}"#, "[".repeat(depth));
    // The parsers run on this ordinary test thread: none may recurse per level.
    let mut parsers = parsers();
    for (name, parser) in parsers.iter_mut() {
        assert_eq!(verdict(parser.as_mut(), valid.as_bytes()), Ok((b"u".to_vec(), 5)), "{name}");
        assert_eq!(verdict(parser.as_mut(), unbalanced.as_bytes()), Err("malformed".into()), "{name}");
    }
    let expect = with_big_stack(move || (oracle(valid.as_bytes()), oracle(unbalanced.as_bytes())));
    assert_eq!(expect, (Ok((b"u".to_vec(), 5)), Err("malformed".into())));
}

#[test]
fn hostile_cases_have_the_documented_verdicts() {
    let ok = |uid: &str, ts: u64| -> Verdict { Ok((uid.as_bytes().to_vec(), ts)) };
    let no = |reason: &str| -> Verdict { Err(reason.to_string()) };
    let cases: Vec<(&str, Vec<u8>, Verdict)> = vec![
        ("plain", br#"{"uid":"a","ts":1468244384}"#.to_vec(), ok("a", 1_468_244_384)),
        ("crlf", b"{\"uid\":\"a\",\"ts\":1}\r".to_vec(), ok("a", 1)),
        ("empty line", b"".to_vec(), no("empty")),
        ("whitespace only", b" \t\r".to_vec(), no("empty")),
        ("bom", b"\xEF\xBB\xBF{\"uid\":\"a\",\"ts\":1}".to_vec(), no("malformed")),
        ("truncated", br#"{"uid":"a","ts":1"#.to_vec(), no("malformed")),
        ("unterminated string", br#"{"uid":"a,"ts":1}"#.to_vec(), no("malformed")),
        ("invalid utf-8 in string", b"{\"uid\":\"a\",\"ts\":1,\"x\":\"\xff\"}".to_vec(), no("malformed")),
        ("invalid utf-8 outside", b"{\"uid\":\"a\",\"ts\":1,\xff}".to_vec(), no("malformed")),
        ("top-level array", br#"[{"uid":"a","ts":1}]"#.to_vec(), no("not_object")),
        ("top-level number", b"42".to_vec(), no("not_object")),
        ("top-level string", br#""uid""#.to_vec(), no("not_object")),
        ("missing uid", br#"{"ts":1}"#.to_vec(), no("missing_uid")),
        ("missing ts", br#"{"uid":"a"}"#.to_vec(), no("missing_ts")),
        ("uid number", br#"{"uid":7,"ts":1}"#.to_vec(), no("uid_not_string")),
        ("uid empty", br#"{"uid":"","ts":1}"#.to_vec(), no("uid_empty")),
        ("ts negative", br#"{"uid":"a","ts":-1}"#.to_vec(), no("ts_out_of_range")),
        ("ts float", br#"{"uid":"a","ts":1.5}"#.to_vec(), no("ts_not_integer")),
        ("ts 1e300", br#"{"uid":"a","ts":1e300}"#.to_vec(), no("ts_not_integer")),
        ("ts beyond i64", br#"{"uid":"a","ts":99999999999999999999}"#.to_vec(), no("ts_out_of_range")),
        ("ts non-numeric string", br#"{"uid":"a","ts":"soon"}"#.to_vec(), no("ts_not_integer")),
        ("ts empty string", br#"{"uid":"a","ts":""}"#.to_vec(), no("ts_not_integer")),
        ("ts leading plus", br#"{"uid":"a","ts":"+1"}"#.to_vec(), no("ts_not_integer")),
        ("ts spaces", br#"{"uid":"a","ts":" 1"}"#.to_vec(), no("ts_not_integer")),
        ("ts string", br#"{"uid":"a","ts":"1468244384"}"#.to_vec(), ok("a", 1_468_244_384)),
        ("duplicate uid", br#"{"uid":"a","uid":"b","ts":1}"#.to_vec(), no("duplicate_field")),
        ("duplicate ts", br#"{"uid":"a","ts":1,"ts":1}"#.to_vec(), no("duplicate_field")),
        ("escaped key", br#"{"\u0075id":"a","ts":1}"#.to_vec(), ok("a", 1)),
        ("uid with escapes", br#"{"uid":"a\"b\\c\u00e9","ts":1}"#.to_vec(), ok("a\"b\\cé", 1)),
        ("only decoys", br#"{"x":{"uid":"a","ts":1},"y":[{"uid":"b"}]}"#.to_vec(), no("missing_uid")),
        ("nul outside", b"{\"uid\":\"a\",\"ts\":1}\0".to_vec(), no("malformed")),
        ("nul in string", b"{\"uid\":\"a\0\",\"ts\":1}".to_vec(), no("malformed")),
        ("escaped nul", br#"{"uid":"a\u0000","ts":1}"#.to_vec(), ok("a\0", 1)),
        ("lone surrogate elsewhere", br#"{"uid":"a","ts":1,"x":"\ud800"}"#.to_vec(), ok("a", 1)),
        ("lone surrogate in uid", br#"{"uid":"\ud800","ts":1}"#.to_vec(), no("malformed")),
        ("trailing comma", br#"{"uid":"a","ts":1,}"#.to_vec(), no("malformed")),
        ("two objects", br#"{"uid":"a","ts":1}{}"#.to_vec(), no("malformed")),
        ("mismatched brackets", br#"{"uid":"a","ts":1,"x":[}"#.to_vec(), no("malformed")),
        ("spaced", b" { \"uid\" : \"a\" , \"ts\" : 1 } ".to_vec(), ok("a", 1)),
    ];
    let mut parsers = parsers();
    for (name, frame, expect) in cases {
        assert_eq!(oracle(&frame), expect, "oracle on {name}");
        for (parser_name, parser) in parsers.iter_mut() {
            assert_eq!(verdict(parser.as_mut(), &frame), expect, "{parser_name} on {name}");
        }
    }
}

#[test]
fn a_16_mib_frame_is_parsed() {
    let filler = "x".repeat(16 << 20);
    let frame = format!(r#"{{"pad":"{filler}","uid":"big","ts":7}}"#);
    for (name, parser) in parsers().iter_mut() {
        assert_eq!(verdict(parser.as_mut(), frame.as_bytes()), Ok((b"big".to_vec(), 7)), "{name}");
    }
}
