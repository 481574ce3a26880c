//! Every compiled parser against the independent oracle: random valid
//! frames, mutated frames, generator frames, deep
//! nesting and the shared table of hostile cases (tests/common/hostile.rs).

mod common;

use common::hostile;
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
    // The parsers run on this ordinary test thread: none may recurse per level.
    let mut parsers = parsers();
    for case in hostile::big_cases().into_iter().filter(|c| c.name.contains("100,000")) {
        for (name, parser) in parsers.iter_mut() {
            assert_eq!(verdict(parser.as_mut(), &case.frame), case.verdict, "{name} on {}", case.name);
        }
        let (frame, expect) = (case.frame, case.verdict);
        let (oracle_verdict, valid) = with_big_stack(move || (oracle(&frame), hostile::strict_json_valid(&frame)));
        assert_eq!(oracle_verdict, expect, "oracle on {}", case.name);
        assert_eq!(valid, expect.is_ok(), "strict JSON parser on {}", case.name);
    }
}

/// The shared hostile table (tests/common/hostile.rs): every parser and the
/// oracle give each case its documented verdict, and JSON validity decides
/// `malformed` as a strict JSON parser does, with the listed exceptions.
#[test]
fn hostile_cases_have_the_documented_verdicts() {
    let mut parsers = parsers();
    let cases = hostile::cases();
    for case in &cases {
        let (name, frame, expect) = (case.name, &case.frame, &case.verdict);
        assert_eq!(&oracle(frame), expect, "oracle on {name}");
        for (parser_name, parser) in parsers.iter_mut() {
            assert_eq!(&verdict(parser.as_mut(), frame), expect, "{parser_name} on {name}");
        }
        let rejected_as_invalid = matches!(expect.as_ref().map_err(String::as_str), Err("malformed" | "empty"));
        let exception = hostile::VALID_JSON_BUT_MALFORMED.iter().any(|(n, _)| *n == name);
        assert_eq!(
            hostile::strict_json_valid(frame),
            !rejected_as_invalid || exception,
            "{name}: kuniq's verdict {expect:?} vs a strict JSON parser"
        );
    }
    for (name, _) in hostile::VALID_JSON_BUT_MALFORMED {
        assert!(cases.iter().any(|c| c.name == *name), "the exception '{name}' is a case of the table");
    }
    let names: std::collections::HashSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "every case has its own name");
}

#[test]
fn a_16_mib_frame_is_parsed() {
    let case = hostile::big_cases().into_iter().find(|c| c.name == "16 MiB frame").unwrap();
    assert!(case.frame.len() >= 16 << 20);
    for (name, parser) in parsers().iter_mut() {
        assert_eq!(verdict(parser.as_mut(), &case.frame), case.verdict, "{name}");
    }
    assert_eq!(oracle(&case.frame), case.verdict);
}
