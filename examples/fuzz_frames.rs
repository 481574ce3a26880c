//! Differential fuzzer for the frame parsers, on stable Rust.
//!
//! It mutates a seed corpus (generator frames, the hostile cases of the
//! parser tests, FORMAT.md's decoys, and every file already in the corpus
//! directory) with byte-level and JSON-aware mutations, and holds every
//! selected parser to the independent serde_json oracle of the tests
//! (`tests/common/oracle.rs`) on each input:
//!
//! - `parse(input)` must give the oracle's verdict (fields or reject reason);
//! - `parse_line` over a buffer of several lines (the input among other
//!   corpus frames, LF or CRLF, with or without a final newline) must find
//!   every line's end and give each line the oracle's verdict;
//! - no parser may panic (a panic counts as a failure) or overflow its
//!   stack: parsers run on a 2 MiB thread, the smallest stack kuniq runs
//!   them on; the oracle, which recurses per nesting level, runs on a 1 GiB
//!   thread for deep inputs.
//!
//! Failing inputs are shrunk and saved as `fail-<parser>-<hash>.frame`;
//! inputs that show something new (an oracle verdict together with a length
//! bucket, a nesting-depth bucket or a byte feature not seen before) are
//! saved as `new-<verdict>-<hash>.frame`, when at most 4 KiB, so the corpus
//! stays small. `tests/fuzz_corpus.rs` runs every corpus file through every
//! parser in `cargo test`.
//!
//! Runs are deterministic for a seed: the n-th input of a run depends only
//! on the seed and the corpus it starts from (`--runs N` for an exact
//! replay; `--seconds` stops wherever the clock says).
//!
//! Build and run (all three parser features):
//!
//! ```sh
//! cargo build --release --all-features --example fuzz_frames
//! target/release/examples/fuzz_frames --seconds 600 --parser scan-avx2 --seed 7
//! target/release/examples/fuzz_frames --replay tests/fuzz-corpus/fail-*.frame
//! ```
//!
//! Exit status: 0 when no failure was found, 1 otherwise, 2 for usage errors.

#[allow(dead_code)]
#[path = "../tests/common/oracle.rs"]
mod oracle;

use std::collections::{BTreeMap, HashSet};
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use kuniq::frame::FrameParser;
use oracle::Verdict;

/// Stack of the thread the parsers run on: Rust's default for spawned
/// threads, which the Kafka workers get (the file workers get 8 MiB).
const PARSER_STACK_BYTES: usize = 2 << 20;
/// Inputs nesting deeper than this have the oracle run on a big stack.
const ORACLE_INLINE_DEPTH: usize = 256;
/// Interesting inputs longer than this stay in memory, not in the corpus.
const SAVE_MAX_BYTES: usize = 4096;
/// At most this many new files per run (failures are always saved, up to
/// `MAX_FAILURES_SAVED`).
const MAX_INTERESTING_SAVED: usize = 400;
const MAX_FAILURES_SAVED: usize = 50;
/// Inputs kept in memory for mutation.
const POOL_CAP: usize = 8192;
/// Longest input mutations may build (the `--big` inputs excepted) and
/// longest input kept for further mutation. Without a cap, length buckets
/// make every doubling "new": inputs grew without bound and a run was
/// killed for memory.
const MAX_INPUT_BYTES: usize = 1 << 20;
/// Bytes all pool inputs may hold together.
const POOL_MAX_BYTES: usize = 256 << 20;

#[derive(Parser, Debug)]
#[command(
    about = "Differential fuzzer: every frame parser against the serde_json oracle",
    after_help = "Parsers: strict, scan (every SIMD level this CPU has), scan-avx512, scan-avx2, scan-portable, \
                  sonic, serde (those compiled in; build with --all-features), or all."
)]
struct Args {
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Stop after this many inputs (whichever comes first).
    #[arg(long)]
    runs: Option<u64>,
    /// Seed of the mutation sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Parser to check; repeatable. Default: all compiled in.
    #[arg(long = "parser", value_name = "NAME")]
    parsers: Vec<String>,
    /// Corpus directory: read at start, new and failing inputs saved there.
    #[arg(long, default_value = "tests/fuzz-corpus")]
    corpus: PathBuf,
    /// Do not write to the corpus directory.
    #[arg(long)]
    no_save: bool,
    /// Deepest nesting the deep-nesting mutation builds.
    #[arg(long, default_value_t = 100_000)]
    max_depth: usize,
    /// Also build inputs of 64 KiB to 16 MiB, now and then (slow).
    #[arg(long)]
    big: bool,
    /// Check these files once each (as the corpus test does) and exit.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    replay: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let parsers = match select_parsers(&args.parsers) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("fuzz_frames: {e}");
            return ExitCode::from(2);
        }
    };
    // Parser panics are caught and reported as failures; keep their
    // messages short.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("panic: {info}");
    }));
    let run = std::thread::Builder::new()
        .name("fuzz".into())
        .stack_size(PARSER_STACK_BYTES)
        .spawn(move || if args.replay.is_empty() { fuzz(args, parsers) } else { replay(&args.replay, parsers) })
        .expect("spawning the fuzz thread");
    match run.join() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(_) => ExitCode::from(1),
    }
}

type Parsers = Vec<(&'static str, Box<dyn FrameParser>)>;

/// Every parser this build and CPU can run, under the names `--parser` takes.
fn compiled_parsers() -> Parsers {
    let mut all: Parsers = vec![("strict", Box::new(kuniq::frame::strict::StrictParser::new()))];
    #[cfg(feature = "scan")]
    {
        use kuniq::frame::scan::{Isa, ScanParser};
        for (name, isa) in [("scan-avx512", Isa::Avx512), ("scan-avx2", Isa::Avx2), ("scan-portable", Isa::Portable)] {
            if isa.supported() {
                all.push((name, Box::new(ScanParser::with_isa(isa))));
            }
        }
    }
    #[cfg(feature = "sonic")]
    all.push(("sonic", Box::new(kuniq::frame::sonic::SonicParser::new())));
    #[cfg(feature = "serde")]
    all.push(("serde", Box::new(kuniq::frame::serdejson::SerdeParser::new())));
    all
}

fn select_parsers(names: &[String]) -> Result<Parsers, String> {
    let all = compiled_parsers();
    if names.is_empty() || names.iter().any(|n| n == "all") {
        return Ok(all);
    }
    let have: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    for name in names {
        let known = have.iter().any(|h| h == name || (name == "scan" && h.starts_with("scan-")));
        if !known {
            return Err(format!("parser '{name}' is not in this build or CPU (have: {})", have.join(", ")));
        }
    }
    Ok(all
        .into_iter()
        .filter(|(n, _)| names.iter().any(|w| w == n || (w == "scan" && n.starts_with("scan-"))))
        .collect())
}

// ---------------------------------------------------------------- checks

fn verdict_of(parser: &mut dyn FrameParser, frame: &[u8]) -> Verdict {
    parser.parse(frame).map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string())
}

/// An upper bound of the nesting depth (brackets in strings count too).
fn max_depth(bytes: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for &b in bytes {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The oracle's verdict; on a 1 GiB stack when the input nests deeply.
/// An oracle panic is a verdict of its own, which no parser gives.
fn oracle_verdict(frame: &[u8]) -> Verdict {
    oracle_verdict_at(frame, max_depth(frame))
}

/// [`oracle_verdict`] for a frame whose [`max_depth`] is known.
fn oracle_verdict_at(frame: &[u8], depth: usize) -> Verdict {
    let run = |f: &[u8]| catch_unwind(|| oracle::oracle(f)).unwrap_or_else(|_| Err("oracle panicked".into()));
    if depth <= ORACLE_INLINE_DEPTH {
        return run(frame);
    }
    let owned = frame.to_vec();
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn_scoped(s, move || run(&owned))
            .expect("spawning the oracle thread")
            .join()
            .unwrap_or_else(|_| Err("oracle panicked".into()))
    })
}

/// One disagreement with the oracle.
#[derive(Debug, Clone)]
struct Failure {
    parser: &'static str,
    /// `parse` or `parse_line`.
    call: &'static str,
    detail: String,
}

fn show(v: &Verdict) -> String {
    match v {
        Ok((uid, ts)) => format!("ok(uid {:?}, ts {ts})", String::from_utf8_lossy(uid)),
        Err(r) => r.clone(),
    }
}

/// `parse` on the whole input.
fn check_parse(parser: &mut (&'static str, Box<dyn FrameParser>), frame: &[u8], expect: &Verdict) -> Option<Failure> {
    let got = catch_unwind(AssertUnwindSafe(|| verdict_of(parser.1.as_mut(), frame)));
    let detail = match got {
        Ok(got) if &got == expect => return None,
        Ok(got) => format!("gave {}, oracle {}", show(&got), show(expect)),
        Err(_) => format!("panicked, oracle {}", show(expect)),
    };
    Some(Failure { parser: parser.0, call: "parse", detail })
}

/// `parse_line` over `buf`, line by line; `verdicts` are the oracle's for
/// the lines of `buf` split at LF (a final LF ends the last line).
fn check_lines(
    parser: &mut (&'static str, Box<dyn FrameParser>),
    buf: &[u8],
    lines: &[(usize, usize)],
    verdicts: &[Verdict],
) -> Option<Failure> {
    let name = parser.0;
    let fail = |detail: String| Some(Failure { parser: name, call: "parse_line", detail });
    let mut pos = 0;
    for (i, &(start, end)) in lines.iter().enumerate() {
        if pos != start {
            return fail(format!("line {i} expected at byte {start}, parser went to {pos}"));
        }
        let got = catch_unwind(AssertUnwindSafe(|| {
            let (len, v) = parser.1.parse_line(&buf[pos..]);
            (len, v.map(|f| (f.uid.to_vec(), f.ts)).map_err(|r| r.name().to_string()))
        }));
        let Ok((len, got)) = got else {
            return fail(format!("panicked on line {i}"));
        };
        if len != end - start {
            return fail(format!("line {i} at byte {start}: length {len}, expected {}", end - start));
        }
        if got != verdicts[i] {
            return fail(format!("line {i} at byte {start}: gave {}, oracle {}", show(&got), show(&verdicts[i])));
        }
        pos = end + 1;
    }
    None
}

/// The lines of `buf` as (start, end) ranges, without their LF.
fn split_lines(buf: &[u8]) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    for at in memchr::memchr_iter(b'\n', buf) {
        lines.push((start, at));
        start = at + 1;
    }
    if start < buf.len() || lines.is_empty() {
        lines.push((start, buf.len()));
    }
    lines
}

/// Checks a whole file as the corpus test does: `parse` on all of it, and
/// `parse_line` over its lines.
fn check_file(parsers: &mut Parsers, bytes: &[u8]) -> Vec<Failure> {
    let expect = oracle_verdict(bytes);
    let lines = split_lines(bytes);
    let verdicts: Vec<Verdict> = lines.iter().map(|&(s, e)| oracle_verdict(&bytes[s..e])).collect();
    let mut failures = Vec::new();
    for parser in parsers.iter_mut() {
        failures.extend(check_parse(parser, bytes, &expect));
        failures.extend(check_lines(parser, bytes, &lines, &verdicts));
    }
    failures
}

fn replay(files: &[PathBuf], mut parsers: Parsers) -> bool {
    let mut ok = true;
    for file in files {
        match std::fs::read(file) {
            Ok(bytes) => {
                let failures = check_file(&mut parsers, &bytes);
                for f in &failures {
                    println!("{}: {} {} {}", file.display(), f.parser, f.call, f.detail);
                }
                if failures.is_empty() {
                    println!(
                        "{}: {} every parser agrees ({})",
                        file.display(),
                        bytes.len(),
                        show(&oracle_verdict(&bytes))
                    );
                }
                ok &= failures.is_empty();
            }
            Err(e) => {
                eprintln!("fuzz_frames: cannot read {}: {e}", file.display());
                ok = false;
            }
        }
    }
    ok
}

// ---------------------------------------------------------------- random

/// xoshiro256** seeded by SplitMix64: small, fast, and the same on every
/// platform, so a seed replays a run.
struct Rng([u64; 4]);

impl Rng {
    fn new(seed: u64) -> Rng {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng([next(), next(), next(), next()])
    }

    fn next(&mut self) -> u64 {
        let s = &mut self.0;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in `0..n` (n > 0; the tiny modulo bias does not matter here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// One of `items`, by value.
    fn pick_bytes(&mut self, items: &[&'static [u8]]) -> &'static [u8] {
        items[self.below(items.len())]
    }

    /// Log-uniform in `1..=max`: small values often, large ones sometimes.
    fn log_size(&mut self, max: usize) -> usize {
        let bits = usize::BITS - max.max(1).leading_zeros();
        let cap = 1usize << self.below(bits as usize + 1);
        (1 + self.below(cap)).min(max.max(1))
    }
}

// ---------------------------------------------------------------- seeds

/// Hostile cases of `tests/parsers.rs` and FORMAT.md's decoys.
const HOSTILE: &[&[u8]] = &[
    br#"{"uid":"a","ts":1468244384}"#,
    b"{\"uid\":\"a\",\"ts\":1}\r",
    b"",
    b" \t\r",
    b"\xEF\xBB\xBF{\"uid\":\"a\",\"ts\":1}",
    br#"{"uid":"a","ts":1"#,
    br#"{"uid":"a,"ts":1}"#,
    b"{\"uid\":\"a\",\"ts\":1,\"x\":\"\xff\"}",
    b"{\"uid\":\"a\",\"ts\":1,\xff}",
    br#"[{"uid":"a","ts":1}]"#,
    b"42",
    br#""uid""#,
    br#"{"ts":1}"#,
    br#"{"uid":"a"}"#,
    br#"{"uid":7,"ts":1}"#,
    br#"{"uid":"","ts":1}"#,
    br#"{"uid":"a","ts":-1}"#,
    br#"{"uid":"a","ts":1.5}"#,
    br#"{"uid":"a","ts":1e300}"#,
    br#"{"uid":"a","ts":99999999999999999999}"#,
    br#"{"uid":"a","ts":"soon"}"#,
    br#"{"uid":"a","ts":""}"#,
    br#"{"uid":"a","ts":"+1"}"#,
    br#"{"uid":"a","ts":" 1"}"#,
    br#"{"uid":"a","ts":"1468244384"}"#,
    br#"{"uid":"a","uid":"b","ts":1}"#,
    br#"{"uid":"a","ts":1,"ts":1}"#,
    br#"{"\u0075id":"a","ts":1}"#,
    br#"{"uid":"a\"b\\c\u00e9","ts":1}"#,
    br#"{"x":{"uid":"a","ts":1},"y":[{"uid":"b"}]}"#,
    b"{\"uid\":\"a\",\"ts\":1}\0",
    b"{\"uid\":\"a\0\",\"ts\":1}",
    br#"{"uid":"a\u0000","ts":1}"#,
    br#"{"uid":"a","ts":1,"x":"\ud800"}"#,
    br#"{"uid":"\ud800","ts":1}"#,
    br#"{"uid":"a","ts":1,}"#,
    br#"{"uid":"a","ts":1}{}"#,
    br#"{"uid":"a","ts":1,"x":[}"#,
    b" { \"uid\" : \"a\" , \"ts\" : 1 } ",
    br#"{"a":[1,{"uid":"d","ts":2}],"uid":"ab\"c\u00e9","ts":"1468244384","z":{"k":[true,false,null,-1.5e3]}}"#,
    // FORMAT.md: decoys in nested objects, punctuation in keys, repeated
    // keys, Cyrillic text, escapes joining words.
    br#"{"elit,":{"ts":true,"uid":"example"},"aliqua.":0.423298,"aliqua.":[{"ts":0.30288}],"uid":"62a4c731b0630387913","ts":1468244384}"#,
    "{\"dolor\":\"Ветер в поле\",\"ts\":\"1468244384\",\"sed\":[[],{}],\"uid\":\"62a4c731b0630387913\",\"do\":255}".as_bytes(),
    br#"{"ut":"a\"b\\c/d\be\ff\ng\rh\ti","uid":"0000000000000000000","ts":0}"#,
    br#"{"t\u0073":1,"u\u0069d":"x"}"#,
    br#"{"uid":"x","ts":253402300799}"#,
    br#"{"uid":"x","ts":253402300800}"#,
    br#"{"uid":"x","ts":"0000000000000000000253402300799"}"#,
    br#"{"uid":"x","ts":-0}"#,
];

/// Generator frames of several sizes and options.
fn generator_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for (i, size_limit) in [2048usize, 64, 300, 700, 5000].into_iter().enumerate() {
        let cfg = kuniq::generator::GenConfig {
            count: 40,
            users: 30,
            seed: 11 + i as u64,
            size_limit,
            ts_string_percent: 30.0,
            crlf: i % 2 == 1,
            ..Default::default()
        };
        let mut out = Vec::new();
        kuniq::generator::generate(&cfg, &mut out, |_| {}).expect("writing to memory");
        seeds.extend(out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
    }
    seeds
}

// ---------------------------------------------------------------- mutations

/// Bytes that break JSON in interesting ways.
const NASTY: &[u8] = &[
    b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b' ', b'\n', b'\r', b'\t', 0x00, 0x01, 0x1F, 0x7F, 0x80, 0xBF,
    0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF, b'u', b'0', b'9', b'e', b'E', b'.', b'-', b'+', b't', b'n',
    b'f', b'/', b'x',
];

/// Byte sequences: encodings (valid and not), escapes, line ends.
const SEQUENCES: &[&[u8]] = &[
    b"\xEF\xBB\xBF",
    b"\0",
    b"\r",
    b"\r\n",
    b"\n",
    b"\xC3\xA9",
    "Ж".as_bytes(),
    "中".as_bytes(),
    "😀".as_bytes(),
    b"\xC0\x80",
    b"\xC1\xBF",
    b"\xE0\x80\x80",
    b"\xED\xA0\x80",
    b"\xF4\x90\x80\x80",
    b"\xF0\x9F\x98",
    b"\xE2\x82",
    b"\xC3",
    b"\x80",
    b"\\u",
    b"\\u00",
    b"\\u0041",
    b"\\ud800",
    b"\\udc00",
    b"\\ud83d\\ude00",
    b"\\uD800\\u0041",
    b"\\uGGGG",
    b"\\x",
    b"\\",
    b"\\\\",
    b"\\\"",
    b"\"",
    b"\"\"",
    b"{}",
    b"[]",
    b"true",
    b"nul",
    b"1e",
    b"-",
    b"0.",
    b"\"uid\"",
    b"\"ts\"",
    b"\"uid\":",
    b"\"ts\":",
    b"\t",
    b"\x7F",
    b"\x0B",
    b"\x0C",
];

/// Keys the structural mutations insert.
const KEYS: &[&[u8]] = &[
    b"\"uid\"",
    b"\"ts\"",
    b"\"\\u0075id\"",
    b"\"t\\u0073\"",
    b"\"u\\u0069\\u0064\"",
    b"\"\\u0055ID\"",
    b"\"UID\"",
    b"\"uid \"",
    b"\"tsx\"",
    b"\"t\"",
    b"\"u\"",
    b"\"ui\"",
    b"\"\"",
    b"\"elit,\"",
    b"\"aliqua.\"",
    b"\"\xD0\xBA\xD0\xBB\xD1\x8E\xD1\x87\"",
    b"\"u\\\"id\"",
    b"\"uid\\u0000\"",
    b"\"\\ud800\"",
    b"\"u\\/id\"",
];

/// Values the structural mutations insert or swap in.
const VALUES: &[&[u8]] = &[
    b"\"62a4c731b0630387913\"",
    b"\"a\"",
    b"\"\"",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"\\ud83d\\ude00\"",
    b"\"a\\\\\"",
    b"\"\\\"\"",
    b"\"1468244384\"",
    b"\"0001468244384\"",
    b"\"\\u0031468244384\"",
    b"\"253402300800\"",
    b"\"-1\"",
    b"\"1.0\"",
    b"\"1e3\"",
    b"\"\xD9\xA3\"",
    b"1468244384",
    b"0",
    b"-0",
    b"-1",
    b"253402300799",
    b"253402300800",
    b"99999999999999999999999",
    b"18446744073709551616",
    b"1.5",
    b"1e3",
    b"1E+2",
    b"-0.0",
    b"0.423298",
    b"true",
    b"false",
    b"null",
    b"{}",
    b"[]",
    b"[1,[2,{\"uid\":\"d\"}]]",
    b"{\"uid\":\"decoy\",\"ts\":1}",
    b"\"\xD0\x92\xD0\xB5\xD1\x82\xD0\xB5\xD1\x80\"",
    b"01",
    b"1.",
    b".5",
    b"+1",
    b"NaN",
    b"tru",
    b"\"unterminated",
];

/// Index after the JSON-ish value starting at or after `p` (whitespace
/// skipped), found leniently; None when there is none.
fn value_span(buf: &[u8], mut p: usize) -> Option<(usize, usize)> {
    while p < buf.len() && matches!(buf[p], b' ' | b'\t' | b'\n' | b'\r') {
        p += 1;
    }
    let start = p;
    match buf.get(p)? {
        b'"' => {
            p += 1;
            while p < buf.len() && buf[p] != b'"' {
                p += if buf[p] == b'\\' { 2 } else { 1 };
            }
            Some((start, (p + 1).min(buf.len())))
        }
        b'[' | b'{' => {
            let mut depth = 0usize;
            let mut in_string = false;
            while p < buf.len() {
                let b = buf[p];
                if in_string {
                    if b == b'\\' {
                        p += 1;
                    } else if b == b'"' {
                        in_string = false;
                    }
                } else {
                    match b {
                        b'"' => in_string = true,
                        b'[' | b'{' => depth += 1,
                        b']' | b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some((start, p + 1));
                            }
                        }
                        _ => {}
                    }
                }
                p += 1;
            }
            Some((start, buf.len()))
        }
        _ => {
            while p < buf.len() && !matches!(buf[p], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                p += 1;
            }
            (p > start).then_some((start, p))
        }
    }
}

/// Positions of bytes in `set`, or of the pattern `pat`.
fn positions_of(buf: &[u8], set: &[u8]) -> Vec<usize> {
    buf.iter().enumerate().filter(|(_, b)| set.contains(b)).map(|(i, _)| i).collect()
}

fn find_all(buf: &[u8], pat: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(buf, pat).collect()
}

/// A random value: from the table, or nested to some depth.
fn random_value(rng: &mut Rng, max_depth: usize) -> Vec<u8> {
    if rng.chance(6) { deep_value(rng, max_depth) } else { rng.pick(VALUES).to_vec() }
}

/// A value nested up to `max_depth` levels, balanced or (sometimes) not.
/// Mostly around the depths where parsers change strategy (64 levels in a
/// register, 1024 brackets for the recursive parsers); deeper now and then,
/// as those inputs are slow to check.
fn deep_value(rng: &mut Rng, max_depth: usize) -> Vec<u8> {
    let cap = if rng.chance(10) { max_depth } else { max_depth.min(1100) };
    let depth = rng.log_size(cap);
    let kind = rng.below(4);
    let mut out = Vec::with_capacity(depth * 6 + 8);
    let mut closers = Vec::with_capacity(depth);
    for i in 0..depth {
        let array = match kind {
            0 => true,
            1 => false,
            2 => i % 2 == 0,
            _ => rng.chance(2),
        };
        if array {
            out.push(b'[');
            closers.push(b']');
        } else {
            out.extend_from_slice(if rng.chance(8) { b"{\"uid\":" } else { b"{\"a\":" });
            closers.push(b'}');
        }
    }
    out.extend_from_slice(rng.pick_bytes(&[b"1", b"\"x\"", b"[]", b"{}", b"null"]));
    match rng.below(8) {
        0 => {
            closers.pop();
        }
        1 => {
            if let Some(c) = closers.first_mut() {
                *c = if *c == b']' { b'}' } else { b']' };
            }
        }
        2 => closers.insert(0, b']'),
        _ => {}
    }
    out.extend(closers.iter().rev());
    out
}

/// Applies one to four mutations to `input`.
fn mutate(rng: &mut Rng, input: &mut Vec<u8>, pool: &[Entry], args: &Args) {
    let count = 1 + rng.below(4);
    for _ in 0..count {
        mutate_once(rng, input, pool, args);
        input.truncate(MAX_INPUT_BYTES);
    }
    if args.big && rng.chance(4000) {
        // A long string member after the first `{`: 64 KiB to 16 MiB.
        let len = 1 << (16 + rng.below(9));
        let at = input.iter().position(|&b| b == b'{').map_or(0, |p| p + 1);
        let mut pad = b"\"pad\":\"".to_vec();
        pad.resize(pad.len() + len, b'x');
        pad.extend_from_slice(b"\",");
        input.splice(at..at, pad);
    }
}

fn mutate_once(rng: &mut Rng, buf: &mut Vec<u8>, pool: &[Entry], args: &Args) {
    let len = buf.len();
    let at = rng.below(len + 1);
    match rng.below(22) {
        // Byte level.
        0 => buf.insert(at, *rng.pick(NASTY)),
        1 => buf.insert(at, rng.next() as u8),
        2 if len > 0 => {
            let i = rng.below(len);
            buf[i] = *rng.pick(NASTY);
        }
        3 if len > 0 => {
            let i = rng.below(len);
            buf[i] ^= 1 << rng.below(8);
        }
        4 if len > 0 => {
            let n = rng.log_size(len - at.min(len - 1));
            let from = at.min(len - 1);
            buf.drain(from..(from + n).min(len));
        }
        5 => buf.truncate(at),
        6 => {
            let seq = rng.pick(SEQUENCES);
            buf.splice(at..at, seq.iter().copied());
        }
        7 if len > 1 => {
            let (i, j) = (rng.below(len), rng.below(len));
            buf.swap(i, j);
        }
        8 if len > 0 => {
            // Duplicate a range elsewhere.
            let from = rng.below(len);
            let n = rng.log_size(len - from);
            let piece = buf[from..from + n].to_vec();
            let to = rng.below(len + 1);
            buf.splice(to..to, piece);
        }
        9 => {
            // Splice with another input: our head, its tail (or the reverse).
            let other = &rng.pick(pool).bytes;
            let cut = rng.below(other.len() + 1);
            if rng.chance(2) {
                buf.truncate(at);
                buf.extend_from_slice(&other[cut..]);
            } else {
                let tail = buf[at..].to_vec();
                *buf = other[..cut].to_vec();
                buf.extend_from_slice(&tail);
            }
        }
        // JSON aware.
        10 | 11 => {
            // Insert a member after `{` or `,`.
            let spots = positions_of(buf, b"{,");
            if let Some(&p) = (!spots.is_empty()).then(|| rng.pick(&spots)) {
                let mut member = rng.pick(KEYS).to_vec();
                member.push(b':');
                member.extend(random_value(rng, args.max_depth));
                // `{}` becomes `{"k":v}`; elsewhere the member is followed
                // by the one that was there.
                if buf[p] != b'{' || buf.get(p + 1) != Some(&b'}') {
                    member.push(b',');
                }
                buf.splice(p + 1..p + 1, member);
            }
        }
        12 => {
            // Insert a value after `:` (pushing the old one to a new key)
            // or after `[`.
            let spots = positions_of(buf, b":[");
            if let Some(&p) = (!spots.is_empty()).then(|| rng.pick(&spots)) {
                let mut piece = random_value(rng, args.max_depth);
                if buf[p] == b':' {
                    piece.push(b',');
                    piece.extend_from_slice(rng.pick_bytes(KEYS));
                    piece.push(b':');
                } else {
                    piece.push(b',');
                }
                buf.splice(p + 1..p + 1, piece);
            }
        }
        13 | 14 => {
            // Swap the value of a top-level-looking uid/ts (or any member)
            // for another type.
            let mut spots = find_all(buf, b"\"uid\":");
            spots.extend(find_all(buf, b"\"ts\":"));
            let colon = if spots.is_empty() || rng.chance(4) {
                let colons = positions_of(buf, b":");
                (!colons.is_empty()).then(|| *rng.pick(&colons))
            } else {
                let s = *rng.pick(&spots);
                buf[s + 1..].iter().position(|&b| b == b':').map(|c| s + 1 + c)
            };
            if let Some(colon) = colon
                && let Some((from, to)) = value_span(buf, colon + 1)
            {
                let value = random_value(rng, args.max_depth);
                buf.splice(from..to, value);
            }
        }
        15 => {
            // Escape a key or a letter in a string.
            let spots = find_all(buf, b"\"uid\"");
            let ts_spots = find_all(buf, b"\"ts\"");
            if !spots.is_empty() && rng.chance(2) {
                let s = *rng.pick(&spots);
                let spelled = rng.pick_bytes(&[
                    &b"\"\\u0075id\""[..],
                    b"\"u\\u0069d\"",
                    b"\"ui\\u0064\"",
                    b"\"\\u0075\\u0069\\u0064\"",
                ]);
                buf.splice(s..s + 5, spelled.iter().copied());
            } else if !ts_spots.is_empty() && rng.chance(2) {
                let s = *rng.pick(&ts_spots);
                let spelled = rng.pick_bytes(&[&b"\"t\\u0073\""[..], b"\"\\u0074s\"", b"\"\\u0074\\u0073\""]);
                buf.splice(s..s + 4, spelled.iter().copied());
            } else if len > 0 {
                let i = rng.below(len);
                if buf[i].is_ascii_alphanumeric() {
                    let esc = format!("\\u{:04x}", buf[i]);
                    buf.splice(i..i + 1, esc.into_bytes());
                }
            }
        }
        16 => {
            // Duplicate a uid/ts member (the first one found).
            let key: &[u8] = if rng.chance(2) { b"\"uid\":" } else { b"\"ts\":" };
            if let Some(s) = memchr::memmem::find(buf, key)
                && let Some((_, to)) = value_span(buf, s + key.len())
            {
                let mut member = b",".to_vec();
                member.extend_from_slice(&buf[s..to]);
                let to_at = to;
                buf.splice(to_at..to_at, member);
            }
        }
        17 => {
            // Nest deeply at a value position.
            let spots = positions_of(buf, b":[,");
            if let Some(&p) = (!spots.is_empty()).then(|| rng.pick(&spots)) {
                let mut piece = deep_value(rng, args.max_depth);
                if buf[p] == b':' {
                    piece.push(b',');
                    piece.extend_from_slice(b"\"k\":");
                } else if buf[p] == b'[' {
                    piece.push(b',');
                } else {
                    piece.splice(0..0, b"\"deep\":".iter().copied());
                    piece.push(b',');
                }
                buf.splice(p + 1..p + 1, piece);
            }
        }
        18 => {
            // Whitespace between (or inside) tokens.
            let ws = rng.pick_bytes(&[&b" "[..], b"\t", b"\r\n", b"\n", b"  \t ", b"\r"]);
            let spots = positions_of(buf, b"{}[]:,\"");
            let p = if spots.is_empty() || rng.chance(4) { at } else { rng.pick(&spots) + usize::from(rng.chance(2)) };
            buf.splice(p.min(buf.len())..p.min(buf.len()), ws.iter().copied());
        }
        19 => {
            // Shift everything across 64-byte block boundaries.
            if let Some(p) = buf.iter().position(|&b| b == b'{') {
                let mut pad = b"\"pad\":\"".to_vec();
                pad.resize(pad.len() + rng.below(130), b'x');
                pad.extend_from_slice(b"\",");
                buf.splice(p + 1..p + 1, pad);
            } else {
                buf.splice(0..0, std::iter::repeat_n(b' ', rng.below(130)));
            }
        }
        20 => {
            // A run of backslashes, odd or even, maybe across a block end.
            let n = 1 + rng.below(70);
            buf.splice(at..at, std::iter::repeat_n(b'\\', n));
        }
        _ => {
            // Rewrite a number.
            let digits = buf.iter().position(|b| b.is_ascii_digit());
            let start = if rng.chance(2) {
                digits
            } else {
                let all = positions_of(buf, b"0123456789");
                (!all.is_empty()).then(|| *rng.pick(&all))
            };
            if let Some(s) = start {
                let end = s + buf[s..].iter().take_while(|b| b.is_ascii_digit()).count();
                let new = rng.pick_bytes(&[
                    &b"0"[..],
                    b"01",
                    b"1.",
                    b"1.5e",
                    b"99999999999999999999",
                    b"253402300800",
                    b"253402300799",
                    b"1e2",
                    b"-",
                    b"0x1",
                    b"1468244384",
                    b"1234567890123456",
                    b"12345678901234567",
                ]);
                buf.splice(s..end, new.iter().copied());
            }
        }
    }
}

// ---------------------------------------------------------------- corpus

/// An input kept for mutation, with its oracle verdict.
struct Entry {
    bytes: Vec<u8>,
    verdict: Verdict,
}

/// Name of a verdict, for file names and the summary.
fn verdict_name(v: &Verdict) -> &str {
    match v {
        Ok(_) => "ok",
        Err(r) => r,
    }
}

/// Small number of a verdict: 0 for fields, 1 + the reason's index, or 15.
fn verdict_code(v: &Verdict) -> u32 {
    match v {
        Ok(_) => 0,
        Err(r) => kuniq::frame::Reject::ALL.iter().position(|x| x.name() == r).map_or(15, |i| i as u32 + 1),
    }
}

/// What makes an input interesting: the oracle verdict paired with its
/// length bucket (powers of two), its nesting bucket, and each byte feature
/// it has. Each pair is one number: verdict code << 8 | feature.
fn features(bytes: &[u8], depth: usize, verdict: &Verdict) -> Vec<u32> {
    let v = verdict_code(verdict) << 8;
    let len_bucket = usize::BITS - bytes.len().leading_zeros();
    let depth_bucket = match depth {
        0 => 0,
        1..=2 => 1,
        3..=8 => 2,
        9..=64 => 3,
        65..=1024 => 4,
        _ => 5,
    };
    let mut out = vec![v | len_bucket, v | (64 + depth_bucket)];
    let (mut non_ascii, mut control, mut cr, mut lf) = (false, false, false, false);
    let (mut run, mut longest_run) = (0usize, 0usize);
    for &b in bytes {
        non_ascii |= b >= 0x80;
        control |= b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t');
        cr |= b == b'\r';
        lf |= b == b'\n';
        run = if b == b'\\' { run + 1 } else { 0 };
        longest_run = longest_run.max(run);
    }
    let flags: [bool; 9] = [
        memchr::memmem::find(bytes, b"\\u").is_some(),
        non_ascii,
        control,
        cr,
        lf,
        bytes.first().is_some_and(|b| b.is_ascii_whitespace()),
        memchr::memmem::find(bytes, b"\"ts\":\"").is_some(),
        memchr::memmem::find(bytes, b"\"\\u").is_some(),
        longest_run >= 8,
    ];
    out.extend(flags.iter().enumerate().filter(|(_, on)| **on).map(|(i, _)| v | (80 + i as u32)));
    out
}

fn hash_of(bytes: &[u8]) -> u64 {
    // FNV-1a: stable across runs and Rust versions, for file names.
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn save(dir: &Path, name: &str, bytes: &[u8]) -> Option<PathBuf> {
    std::fs::create_dir_all(dir).ok()?;
    let path = dir.join(name);
    if path.exists() {
        return Some(path);
    }
    std::fs::write(&path, bytes).ok()?;
    Some(path)
}

/// Shrinks a failing input while `still_fails` holds: removes chunks of
/// halving size, then bytes.
fn shrink(mut input: Vec<u8>, mut still_fails: impl FnMut(&[u8]) -> bool) -> Vec<u8> {
    let mut chunk = input.len() / 2;
    let mut tries = 0;
    while chunk > 0 && tries < 20_000 {
        let mut at = 0;
        while at < input.len() && tries < 20_000 {
            let end = (at + chunk).min(input.len());
            let mut candidate = input.clone();
            candidate.drain(at..end);
            tries += 1;
            if still_fails(&candidate) {
                input = candidate;
            } else {
                at += chunk;
            }
        }
        chunk /= 2;
    }
    input
}

// ---------------------------------------------------------------- the loop

#[derive(Default)]
struct Stats {
    execs: u64,
    lines: u64,
    failures: u64,
    saved: usize,
    failures_saved: usize,
    verdicts: BTreeMap<String, u64>,
    failure_kinds: HashSet<(String, &'static str, String)>,
}

fn fuzz(args: Args, mut parsers: Parsers) -> bool {
    let names: Vec<&str> = parsers.iter().map(|(n, _)| *n).collect();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.seconds);
    let mut rng = Rng::new(args.seed);
    let mut stats = Stats::default();
    let mut seen: HashSet<u32> = HashSet::new();

    // Seeds: corpus files (sorted, so runs are reproducible), then the
    // built-in ones.
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.corpus)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    files.sort();
    let mut seeds: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    let from_corpus = seeds.len();
    seeds.extend(HOSTILE.iter().map(|s| s.to_vec()));
    seeds.extend(generator_seeds());
    let mut pool: Vec<Entry> = Vec::with_capacity(POOL_CAP);
    for bytes in seeds {
        for f in check_file(&mut parsers, &bytes) {
            stats.failures += 1;
            eprintln!("seed failure: {} {} {} on {:?}", f.parser, f.call, f.detail, String::from_utf8_lossy(&bytes));
        }
        let depth = max_depth(&bytes);
        let verdict = oracle_verdict_at(&bytes, depth);
        seen.extend(features(&bytes, depth, &verdict));
        pool.push(Entry { bytes, verdict });
    }
    eprintln!(
        "fuzz_frames: seed {}, parsers {}, {} corpus files in {}, {} inputs in the pool; {} s",
        args.seed,
        names.join(" "),
        from_corpus,
        args.corpus.display(),
        pool.len(),
        args.seconds
    );

    let mut pool_bytes: usize = pool.iter().map(|e| e.bytes.len()).sum();
    let mut last_progress = Instant::now();
    let mut input = Vec::new();
    let mut buf = Vec::new();
    loop {
        if args.runs.is_some_and(|n| stats.execs >= n) || (stats.execs % 64 == 0 && Instant::now() >= deadline) {
            break;
        }
        input.clear();
        input.extend_from_slice(&rng.pick(&pool).bytes);
        mutate(&mut rng, &mut input, &pool, &args);
        stats.execs += 1;

        let depth = max_depth(&input);
        let expect = oracle_verdict_at(&input, depth);
        *stats.verdicts.entry(verdict_name(&expect).to_string()).or_default() += 1;
        let mut failures: Vec<(Failure, Vec<u8>)> = Vec::new();
        for parser in parsers.iter_mut() {
            if let Some(f) = check_parse(parser, &input, &expect) {
                failures.push((f, input.clone()));
            }
        }

        // The input among other lines, as a file or a Kafka batch holds it.
        buf.clear();
        let before = rng.below(3);
        let after = rng.below(3);
        let crlf = rng.chance(3);
        let end = if crlf { &b"\r\n"[..] } else { b"\n" };
        // Lines whose verdict is known: (start, end, verdict).
        let mut known: Vec<(usize, usize, &Verdict)> = Vec::new();
        let push_neighbour = |rng: &mut Rng, buf: &mut Vec<u8>, known: &mut Vec<_>| {
            let entry = rng.pick(&pool);
            if !crlf && !entry.bytes.contains(&b'\n') {
                known.push((buf.len(), buf.len() + entry.bytes.len(), &entry.verdict));
            }
            buf.extend_from_slice(&entry.bytes);
        };
        for _ in 0..before {
            push_neighbour(&mut rng, &mut buf, &mut known);
            buf.extend_from_slice(end);
        }
        if !input.contains(&b'\n') && !crlf {
            known.push((buf.len(), buf.len() + input.len(), &expect));
        }
        buf.extend_from_slice(&input);
        for i in 0..after {
            buf.extend_from_slice(end);
            push_neighbour(&mut rng, &mut buf, &mut known);
            if i + 1 == after && rng.chance(2) {
                buf.extend_from_slice(end);
            }
        }
        let lines = split_lines(&buf);
        let verdicts: Vec<Verdict> = lines
            .iter()
            .map(|&(s, e)| match known.iter().find(|k| k.0 == s && k.1 == e) {
                Some(k) => k.2.clone(),
                None => oracle_verdict(&buf[s..e]),
            })
            .collect();
        stats.lines += lines.len() as u64;
        for parser in parsers.iter_mut() {
            if let Some(f) = check_lines(parser, &buf, &lines, &verdicts) {
                failures.push((f, buf.clone()));
            }
        }

        for (failure, bytes) in failures {
            stats.failures += 1;
            let kind = (failure.parser.to_string(), failure.call, verdict_name(&expect).to_string());
            let first_of_kind = stats.failure_kinds.insert(kind);
            eprintln!(
                "FAILURE #{}: {} {} {} on {:?}",
                stats.failures,
                failure.parser,
                failure.call,
                failure.detail,
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            if first_of_kind && !args.no_save && stats.failures_saved < MAX_FAILURES_SAVED {
                let index = parsers.iter().position(|(n, _)| *n == failure.parser).expect("a selected parser");
                let parser = &mut parsers[index];
                let small = shrink(bytes, |candidate| {
                    let lines = split_lines(candidate);
                    let verdicts: Vec<Verdict> = lines.iter().map(|&(s, e)| oracle_verdict(&candidate[s..e])).collect();
                    check_parse(parser, candidate, &oracle_verdict(candidate)).is_some()
                        || check_lines(parser, candidate, &lines, &verdicts).is_some()
                });
                let name = format!("fail-{}-{:016x}.frame", failure.parser, hash_of(&small));
                if let Some(path) = save(&args.corpus, &name, &small) {
                    stats.failures_saved += 1;
                    eprintln!("  shrunk to {} bytes: {}", small.len(), path.display());
                }
            }
        }

        // Keep what shows something new.
        let new: Vec<u32> = features(&input, depth, &expect).into_iter().filter(|f| !seen.contains(f)).collect();
        if !new.is_empty() {
            seen.extend(new.iter().copied());
            if !args.no_save && input.len() <= SAVE_MAX_BYTES && stats.saved < MAX_INTERESTING_SAVED {
                let name = format!("new-{}-{:016x}.frame", verdict_name(&expect), hash_of(&input));
                if save(&args.corpus, &name, &input).is_some() {
                    stats.saved += 1;
                }
            }
            // `--big` inputs are checked once, not mutated further.
            if input.len() <= MAX_INPUT_BYTES && pool_bytes + input.len() <= POOL_MAX_BYTES {
                pool_bytes += input.len();
                let entry = Entry { bytes: input.clone(), verdict: expect };
                if pool.len() < POOL_CAP {
                    pool.push(entry);
                } else {
                    let i = rng.below(POOL_CAP);
                    pool_bytes -= pool[i].bytes.len();
                    pool[i] = entry;
                }
            }
        } else if pool.len() < POOL_CAP && input.len() <= 1 << 12 && rng.chance(64) {
            // Mutants of mutants reach deeper; a few plain ones join too.
            pool_bytes += input.len();
            pool.push(Entry { bytes: input.clone(), verdict: expect });
        }

        if last_progress.elapsed() >= Duration::from_secs(10) {
            last_progress = Instant::now();
            progress(&stats, started, pool.len(), pool_bytes, seen.len());
        }
    }
    progress(&stats, started, pool.len(), pool_bytes, seen.len());
    summary(&args, &names, &stats, started);
    stats.failures == 0
}

fn progress(stats: &Stats, started: Instant, pool: usize, pool_bytes: usize, features: usize) {
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "[{secs:>6.0} s] execs {} ({:.0}/s), lines {}, pool {pool} ({} KiB), features {features}, saved {}, failures {}",
        stats.execs,
        stats.execs as f64 / secs.max(1e-9),
        stats.lines,
        pool_bytes >> 10,
        stats.saved,
        stats.failures
    );
}

fn summary(args: &Args, names: &[&str], stats: &Stats, started: Instant) {
    let secs = started.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "fuzz_frames summary");
    let _ = writeln!(out, "  parsers:   {}", names.join(" "));
    let _ = writeln!(out, "  seed:      {}", args.seed);
    let _ = writeln!(out, "  duration:  {secs:.1} s");
    let _ = writeln!(out, "  execs:     {} ({:.0}/s)", stats.execs, stats.execs as f64 / secs.max(1e-9));
    let _ = writeln!(out, "  lines:     {} checked with parse_line", stats.lines);
    let verdicts: Vec<String> = stats.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
    let _ = writeln!(out, "  verdicts:  {} distinct: {}", stats.verdicts.len(), verdicts.join(", "));
    let _ = writeln!(out, "  saved:     {} new inputs, {} failing inputs", stats.saved, stats.failures_saved);
    let _ = writeln!(out, "  failures:  {}", stats.failures);
}
