//! The fuzz corpus as a regression suite: every file of `tests/fuzz-corpus/`
//! (inputs `examples/fuzz_frames.rs` found new or failing) through every
//! compiled parser, against the serde_json oracle, whole (`parse`) and line
//! by line (`parse_line`); plus the large inputs the fuzzer builds with
//! `--big`, generated here rather than committed.

mod common;

use std::path::PathBuf;

use common::oracle::{Verdict, oracle, with_big_stack};
use kuniq::frame::FrameParser;

fn verdict(parser: &mut dyn FrameParser, frame: &[u8]) -> Verdict {
    parser.parse(frame).map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string())
}

/// The lines of `buf` as (start, end), without their LF.
fn split_lines(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, &b) in buf.iter().enumerate() {
        if b == b'\n' {
            lines.push((start, i));
            start = i + 1;
        }
    }
    if start < buf.len() || lines.is_empty() {
        lines.push((start, buf.len()));
    }
    lines
}

/// The oracle's verdicts on `buf` whole and on each of its lines, computed
/// on a big stack (the oracle recurses per nesting level; the parsers run
/// on the test thread's ordinary stack).
fn oracle_verdicts(buf: Vec<u8>) -> (Verdict, Vec<Verdict>) {
    with_big_stack(move || {
        let lines = split_lines(&buf).iter().map(|&(s, e)| oracle(&buf[s..e])).collect();
        (oracle(&buf), lines)
    })
}

/// Every parser gives the oracle's verdict on `buf` and on each of its lines.
fn check(name: &str, buf: &[u8]) -> Verdict {
    let (whole, per_line) = oracle_verdicts(buf.to_vec());
    let lines = split_lines(buf);
    for (parser_name, parser) in kuniq::frame::every_parser().iter_mut() {
        assert_eq!(verdict(parser.as_mut(), buf), whole, "{parser_name} parse on {name}");
        let mut pos = 0;
        for (i, (&(start, end), expect)) in lines.iter().zip(&per_line).enumerate() {
            assert_eq!(pos, start, "{parser_name} parse_line on {name}: line {i} start");
            let (len, got) = parser.parse_line(&buf[pos..]);
            let got: Verdict = got.map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string());
            assert_eq!(len, end - start, "{parser_name} parse_line on {name}: line {i} length");
            assert_eq!(&got, expect, "{parser_name} parse_line on {name}: line {i}");
            pos = end + 1;
        }
    }
    whole
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-corpus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/fuzz-corpus exists")
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

#[test]
fn every_corpus_file_matches_the_oracle_in_every_parser() {
    let files = corpus();
    assert!(files.len() >= 100, "the corpus holds {} files", files.len());
    let mut reasons = std::collections::BTreeSet::new();
    for (name, bytes) in &files {
        let whole = check(name, bytes);
        reasons.insert(whole.err().unwrap_or_else(|| "ok".into()));
    }
    // The corpus reaches every verdict a frame's content can get (too_large
    // is decided by the source before any parser runs).
    for reason in kuniq::frame::Reject::ALL.iter().filter(|r| r.name() != "too_large") {
        assert!(reasons.contains(reason.name()), "no corpus file is {reason}");
    }
    assert!(reasons.contains("ok"), "no corpus file is usable");
}

#[test]
fn the_whole_corpus_as_one_buffer_of_lines_matches_the_oracle() {
    // Each file a line (or several, when it holds line feeds), as a file
    // source would hand them to parse_line, CRLF and LF alternating.
    let mut buf = Vec::new();
    for (i, (_, bytes)) in corpus().iter().enumerate() {
        buf.extend_from_slice(bytes);
        buf.extend_from_slice(if i % 2 == 0 { b"\n" } else { b"\r\n" });
    }
    let _whole_buffer_is_malformed = check("the whole corpus", &buf);
}

#[test]
fn large_generated_inputs_match_the_oracle() {
    let pad = |len: usize, body: &str| format!(r#"{{"pad":"{}",{body}}}"#, "x".repeat(len)).into_bytes();
    let sixteen = 16 << 20;
    let valid = pad(sixteen, r#""uid":"big","ts":7"#);
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("16 MiB, fields at the end", valid.clone()),
        ("16 MiB, truncated", valid[..valid.len() - 1].to_vec()),
        ("1 MiB, duplicate uid at the end", pad(1 << 20, r#""uid":"a","ts":7,"uid":"b""#)),
        ("1 MiB - 1, escaped key at the end", pad((1 << 20) - 1, r#""\u0075id":"big","ts":"7""#)),
        ("1 MiB + 1, invalid UTF-8 at the end", pad((1 << 20) + 1, "\"uid\":\"a\",\"ts\":7,\"x\":\"\u{FFFD}\"")),
    ];
    // Invalid UTF-8 far from any other non-ASCII byte.
    let last = cases.len() - 1;
    let at = cases[last].1.len() - 5;
    cases[last].1.splice(at..at + 3, [0xFF, b'a', b'a']);
    // A backslash run across many blocks, odd then even.
    let mut run = br#"{"uid":"a","ts":7,"x":""#.to_vec();
    run.extend(std::iter::repeat_n(b'\\', 100_001));
    run.extend_from_slice(b"\"}");
    cases.push(("100,001 backslashes", run.clone()));
    run.insert(30, b'\\');
    cases.push(("100,002 backslashes", run));
    let expected = [Ok((b"big".to_vec(), 7)), Err("malformed".to_string()), Err("duplicate_field".to_string())];
    for (i, (name, bytes)) in cases.iter().enumerate() {
        let got = check(name, bytes);
        if let Some(expect) = expected.get(i) {
            assert_eq!(&got, expect, "{name}");
        }
    }
}
