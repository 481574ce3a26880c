//! What JSON costs: kuniq's scan parser on the official JSON frames against
//! reading a refined, fixed-width binary topic made from them once.
//!
//! The refined record is what kuniq keeps of a frame anyway: ts as u32
//! (unix seconds, good until 2106) and the uid's 64-bit hash as u64, little
//! endian, 12 bytes. A refining job (or the producer) would parse each JSON
//! frame once and publish these; every counter downstream then skips JSON.
//!
//! Single thread, frames held in memory (page-cache effects left out), each
//! variant run REPS times; prints the median and the fastest run. Both
//! paths must give the same per-minute counts, checked before printing.
//!
//! Run: cargo run --release --example binary_alternative -- FILE [FRAMES] [REPS]
//! (FILE: JSON lines such as bench-data/frames-200000.jsonl from scripts/bench-kafka.sh
//! or `kuniq gen -c 200000 -o FILE`; FRAMES default 200000, REPS default 5).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use kuniq::count::{UidHasher, UidSet};
use kuniq::frame::ParserKind;

const RECORD: usize = 12;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<T>(reps: usize, mut f: impl FnMut() -> T) -> (f64, f64, T) {
    let mut secs = Vec::new();
    let mut last = None;
    for _ in 0..reps {
        let t = Instant::now();
        let out = f();
        secs.push(t.elapsed().as_secs_f64());
        last = Some(black_box(out));
    }
    let min = secs.iter().copied().fold(f64::INFINITY, f64::min);
    (median(secs), min, last.expect("reps >= 1"))
}

fn per_minute(sets: HashMap<u64, UidSet>) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = sets.into_iter().map(|(m, s)| (m, s.len())).collect();
    v.sort_unstable();
    v
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: binary_alternative FILE [FRAMES] [REPS]");
    let max_frames: usize = args.next().map_or(200_000, |s| s.parse().expect("FRAMES"));
    let reps: usize = args.next().map_or(5, |s| s.parse().expect("REPS"));

    let text = std::fs::read(&path).expect("reading FILE");
    let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).take(max_frames).collect();
    let n = lines.len();
    let json_bytes: usize = lines.iter().map(|l| l.len() + 1).sum();

    let hasher = UidHasher::new();
    let mut parser = ParserKind::from_name("scan").expect("scan parser").build();

    // Refine once: JSON -> 12-byte records.
    let mut binary = Vec::with_capacity(n * RECORD);
    for l in &lines {
        let f = parser.parse(l).expect("official frames are valid");
        binary.extend_from_slice(&u32::try_from(f.ts).expect("ts fits u32").to_le_bytes());
        binary.extend_from_slice(&hasher.hash(f.uid).to_le_bytes());
    }

    // 1. Getting (ts, uid hash) out of each frame.
    let (json_med, json_min, a) = time(reps, || {
        let mut acc = 0u64;
        for l in &lines {
            let f = parser.parse(black_box(l)).expect("valid");
            acc = acc.wrapping_add(f.ts ^ hasher.hash(f.uid));
        }
        acc
    });
    let (bin_med, bin_min, b) = time(reps, || {
        let mut acc = 0u64;
        for r in black_box(&binary).chunks_exact(RECORD) {
            let ts = u64::from(u32::from_le_bytes(r[..4].try_into().unwrap()));
            let h = u64::from_le_bytes(r[4..].try_into().unwrap());
            acc = acc.wrapping_add(ts ^ h);
        }
        acc
    });
    assert_eq!(a, b, "both paths must see the same (ts, hash) pairs");

    // 2. The same plus counting: insert each hash into its minute's exact set.
    let (jc_med, jc_min, jc) = time(reps, || {
        let mut sets: HashMap<u64, UidSet> = HashMap::new();
        for l in &lines {
            let f = parser.parse(black_box(l)).expect("valid");
            sets.entry(f.ts / 60 * 60).or_default().insert(hasher.hash(f.uid));
        }
        per_minute(sets)
    });
    let (bc_med, bc_min, bc) = time(reps, || {
        let mut sets: HashMap<u64, UidSet> = HashMap::new();
        for r in black_box(&binary).chunks_exact(RECORD) {
            let ts = u64::from(u32::from_le_bytes(r[..4].try_into().unwrap()));
            let h = u64::from_le_bytes(r[4..].try_into().unwrap());
            sets.entry(ts / 60 * 60).or_default().insert(h);
        }
        per_minute(sets)
    });
    assert_eq!(jc, bc, "per-minute counts must agree");

    let rate = |secs: f64| n as f64 / secs;
    println!(
        "input: {path}, {n} frames, JSON {json_bytes} bytes ({:.0} B/frame); binary {} bytes ({RECORD} B/frame, {:.1}x smaller)",
        json_bytes as f64 / n as f64,
        binary.len(),
        json_bytes as f64 / binary.len() as f64
    );
    println!("single thread, {reps} runs each: median (fastest)");
    println!("{:<44} {:>9} {:>14} {:>11}", "variant", "ms", "frames/s", "MB/s read");
    for (name, med, min, bytes) in [
        ("JSON scan + uid hash", json_med, json_min, json_bytes),
        ("binary 12 B decode", bin_med, bin_min, binary.len()),
        ("JSON scan + hash + per-minute set insert", jc_med, jc_min, json_bytes),
        ("binary decode + per-minute set insert", bc_med, bc_min, binary.len()),
    ] {
        println!(
            "{name:<44} {:>8.1} ({:.1}) {:>10.2} M {:>10.0}",
            med * 1e3,
            min * 1e3,
            rate(med) / 1e6,
            bytes as f64 / med / 1e6
        );
    }
    println!("speed-up, extraction only: {:.0}x; with counting: {:.1}x", json_med / bin_med, jc_med / bc_med);
    println!("minutes: {} (counts identical both ways)", jc.len());

    // Output records: one JSON line as kuniq prints it vs a fixed binary layout
    // (start u64, end u64, kind u8, unique u64, frames u64, revision u32).
    let (minute, users) = jc[jc.len() / 2];
    let rec = format!(
        "{{\"window\":\"minute\",\"start\":{minute},\"end\":{},\"unique_users\":{users},\"frames\":60012,\"revision\":0,\"estimator\":\"exact\"}}\n",
        minute + 60
    );
    println!(
        "output record: JSON {} bytes (with its newline) vs binary 37 bytes; at one record per minute either is negligible",
        rec.len()
    );
}
