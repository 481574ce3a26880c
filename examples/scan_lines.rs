//! Parser-only throughput on a JSON-lines file, per parser and classifier.
//!
//! Replays every line of the file through `FrameParser::parse_line` on the
//! current thread (no pipeline, no window state), so it times exactly what
//! the `scan` parser and its AVX-512, AVX2 and portable classifiers cost per
//! frame. It checks what it timed: every parser must give the same verdicts,
//! uids and ts as the strict parser (a checksum of them), or the example
//! exits with an error after printing its time. Times are this thread's CPU
//! time (the best of `--rounds` passes), so other processes on the core do
//! not count.
//!
//! ```text
//! cargo build --release --example scan_lines
//! taskset -c 0 target/release/examples/scan_lines FILE [PARSER...] [--rounds N]
//! ```
//! PARSER: strict, scan (the classifier this CPU picks: AVX-512 when it has
//! it), scan-avx2 (on an AVX-512 CPU), scan-portable, and sonic and serde in
//! builds with those features (default: every one, strict first).

use kuniq::frame::{FrameParser, Reject, every_parser};

/// What a pass over the file saw; equal across parsers when they agree.
#[derive(Debug, Default, PartialEq, Eq, Clone, Copy)]
struct Tally {
    frames: u64,
    ok: u64,
    rejected: [u64; Reject::ALL.len()],
    /// Wrapping sum of ts and of every uid byte times its position.
    checksum: u64,
}

fn pass(parser: &mut dyn FrameParser, data: &[u8]) -> Tally {
    let mut tally = Tally::default();
    let mut at = 0;
    while at < data.len() {
        let (len, verdict) = parser.parse_line(&data[at..]);
        tally.frames += 1;
        match verdict {
            Ok(fields) => {
                tally.ok += 1;
                let mut sum = fields.ts;
                for (i, &b) in fields.uid.iter().enumerate() {
                    sum = sum.wrapping_add((i as u64 + 1).wrapping_mul(u64::from(b)));
                }
                tally.checksum = tally.checksum.wrapping_mul(31).wrapping_add(sum);
            }
            Err(reason) => tally.rejected[reason.index()] += 1,
        }
        at += len + 1;
    }
    tally
}

/// CPU time of this thread: unlike wall time, it leaves out the time
/// other processes on the same core take (the bench machine is shared).
fn thread_cpu_secs() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write to; the clock id is a
    // constant every Linux has.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    assert_eq!(rc, 0, "clock_gettime");
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 3;
    if let Some(i) = args.iter().position(|a| a == "--rounds") {
        rounds = args.get(i + 1).and_then(|n| n.parse().ok()).expect("--rounds N");
        args.drain(i..i + 2);
    }
    let Some(path) = args.first().cloned() else {
        eprintln!("usage: scan_lines FILE [PARSER...] [--rounds N]");
        std::process::exit(2);
    };
    let wanted = &args[1..];
    let data = std::fs::read(&path).expect("reading the input file");
    let mut reference: Option<Tally> = None;
    for (name, mut parser) in every_parser() {
        if name != "strict" && !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        let mut best = f64::INFINITY;
        let mut tally = Tally::default();
        let strict_once = name == "strict" && !wanted.iter().any(|w| w == "strict");
        for _ in 0..if strict_once { 1 } else { rounds } {
            let start = thread_cpu_secs();
            tally = pass(parser.as_mut(), &data);
            best = best.min(thread_cpu_secs() - start);
        }
        if !strict_once {
            println!(
                "{name:<14} best of {rounds}: {best:.3} s, {:.0} ns/frame, {:.2} GB/s ({} frames, {} ok)",
                best * 1e9 / tally.frames as f64,
                data.len() as f64 / best / 1e9,
                tally.frames,
                tally.ok
            );
        }
        match reference {
            None => reference = Some(tally),
            Some(r) if r != tally => {
                eprintln!("{name} disagrees with strict: {tally:?} vs {r:?}");
                std::process::exit(1);
            }
            Some(_) => {}
        }
    }
}
