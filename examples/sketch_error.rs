//! Sizing `--estimator hll`: the relative error of [`UidSketch`] per window,
//! single and merged, for several `lg_k`, window sizes and repeat shapes; the
//! bytes a sketch holds and serializes to; and the cost per update against
//! the exact [`UidSet`].
//!
//! ```text
//! cargo run --release --example sketch_error -- error   # the error table
//! cargo run --release --example sketch_error -- cost    # ns per update, bytes
//! cargo run --release --example sketch_error -- focus 200000 4000 16 17
//!                                 # users, windows, lg_k...: a finer p99
//! ```
//!
//! Error: every window draws its own uids (distinct 19-character hex strings,
//! as `kuniq gen` writes, from a per-window seed), so windows are independent
//! samples of the sketch's error. Each occurrence updates a whole-window
//! sketch (the in-order HIP estimate a window counted by one sketch gives)
//! and one of two part sketches picked at random, as two partitions would
//! see it; the two parts' union is the merged estimate (composite estimator,
//! as every union of sketches gives, e.g. an hour of minute sketches: a
//! union's registers are the registerwise maximum, whatever the number of
//! parts). Truth is the exact number of distinct uids drawn.
//!
//! Shapes of a window of n users:
//! - `once`: each user once.
//! - `uniform`: 4n occurrences drawn uniformly from n users (about 98 % of
//!   them appear; the truth counts those that do).
//! - `skewed`: each user once, plus 3n occurrences drawn with density
//!   proportional to x^(-2/3) over the users (the first 1 % of users draw
//!   22 % of them), all shuffled.
//!
//! Repeats never change a sketch's registers or its HIP estimate (a repeat
//! raises no register); they change only the order in which users first
//! appear, which is what these shapes vary.

use std::time::Instant;

use datasketches::hll::{HllSketch, HllType};
use kuniq::count::sketch::{UidCoupon, UidSketch};
use kuniq::count::{UidHasher, UidSet};

/// The `lg_k` values measured.
const LG_KS: [u8; 5] = [12, 14, 16, 17, 18];

/// Window sizes (distinct users) and how many windows each is measured on.
/// Fewer windows for the large sizes keep the run to minutes; with 100
/// windows p99 is the second-largest error, with 20 it is the largest.
const SIZES: [(u32, u32); 5] = [(100, 2000), (10_000, 1000), (45_000, 500), (1_000_000, 100), (10_000_000, 20)];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Once,
    Uniform,
    Skewed,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Once => "once",
            Shape::Uniform => "uniform x4",
            Shape::Skewed => "skewed x4",
        }
    }
}

/// splitmix64: a bijection of the state, so distinct inputs give distinct uids.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small deterministic generator for draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(1);
        mix(self.0.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
    fn below(&mut self, n: u32) -> u32 {
        (((self.next() >> 32) * u64::from(n)) >> 32) as u32
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The 19-byte uid of user `i` in the window of seed `seed`: 3 hex digits of
/// the window, 16 of a bijective mix of `seed + i`.
fn uid(seed: u64, i: u32) -> [u8; 19] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 19];
    let w = seed >> 52;
    let v = mix(seed.wrapping_add(u64::from(i)));
    for (k, b) in out.iter_mut().enumerate() {
        let nibble = if k < 3 { (w >> (8 - 4 * k)) & 15 } else { (v >> (60 - 4 * (k - 3))) & 15 };
        *b = HEX[nibble as usize];
    }
    out
}

/// The occurrence stream of one window: user indexes in arrival order.
fn stream(shape: Shape, n: u32, rng: &mut Rng) -> Vec<u32> {
    let mut s: Vec<u32> = match shape {
        Shape::Once => (0..n).collect(),
        Shape::Uniform => (0..4 * u64::from(n)).map(|_| rng.below(n)).collect(),
        Shape::Skewed => {
            let mut s: Vec<u32> = (0..n).collect();
            s.extend((0..3 * u64::from(n)).map(|_| ((rng.unit().powi(3) * f64::from(n)) as u32).min(n - 1)));
            s
        }
    };
    if shape != Shape::Uniform {
        for i in (1..s.len()).rev() {
            let j = rng.below(i as u32 + 1) as usize;
            s.swap(i, j);
        }
    }
    s
}

/// One window's absolute relative errors, per lg_k: (single, merged), and
/// the bytes of its whole sketch: (in memory, serialized).
fn window(shape: Shape, n: u32, index: u32, lg_ks: &[u8]) -> Vec<(f64, f64, usize, usize)> {
    let seed = mix((u64::from(n) << 40) ^ (u64::from(index) << 8) ^ shape as u64);
    let mut rng = Rng(seed);
    let coupons: Vec<UidCoupon> = (0..n).map(|i| UidCoupon::of(&uid(seed, i)).expect("uids are not empty")).collect();
    let mut seen = vec![false; n as usize];
    let mut truth = 0u64;
    let mut whole: Vec<UidSketch> = lg_ks.iter().map(|&k| UidSketch::new(k).expect("lg_k in range")).collect();
    let mut parts: [Vec<UidSketch>; 2] = [whole.clone(), whole.clone()];
    for user in stream(shape, n, &mut rng) {
        if !seen[user as usize] {
            seen[user as usize] = true;
            truth += 1;
        }
        let c = coupons[user as usize];
        let part = &mut parts[(rng.next() & 1) as usize];
        for (w, p) in whole.iter_mut().zip(part.iter_mut()) {
            w.update_coupon(c);
            p.update_coupon(c);
        }
    }
    let truth = truth as f64;
    lg_ks
        .iter()
        .enumerate()
        .map(|(k, &lg_k)| {
            let merged = UidSketch::union_of(lg_k, [&parts[0][k], &parts[1][k]]);
            let w = &whole[k];
            (
                (w.estimate() - truth).abs() / truth,
                (merged.estimate() - truth).abs() / truth,
                w.state_bytes(),
                w.to_bytes().len(),
            )
        })
        .collect()
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn pct(x: f64) -> String {
    format!("{:.3}", 100.0 * x)
}

/// `windows` windows of `shape` and `n` users, on every core.
fn windows_in_parallel(shape: Shape, n: u32, windows: u32, lg_ks: &[u8]) -> Vec<Vec<(f64, f64, usize, usize)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads as u32)
            .map(|t| {
                s.spawn(move || (t..windows).step_by(threads).map(|i| window(shape, n, i, lg_ks)).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a window panicked")).collect()
    })
}

/// More windows of one size for a few `lg_k`, `once` shape: a p99 from
/// thousands of windows where the full table has a hundred.
fn focus(n: u32, windows: u32, lg_ks: &[u8]) {
    println!(
        "| users | windows | lg_k | single p50 | single p99 | single max | single > 1 % | merged p50 | merged p99 | merged max | merged > 1 % |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let results = windows_in_parallel(Shape::Once, n, windows, lg_ks);
    for (k, lg_k) in lg_ks.iter().enumerate() {
        let mut single: Vec<f64> = results.iter().map(|r| r[k].0).collect();
        let mut merged: Vec<f64> = results.iter().map(|r| r[k].1).collect();
        single.sort_by(f64::total_cmp);
        merged.sort_by(f64::total_cmp);
        println!(
            "| {n} | {windows} | {lg_k} | {} | {} | {} | {} | {} | {} | {} | {} |",
            pct(quantile(&single, 0.5)),
            pct(quantile(&single, 0.99)),
            pct(single[single.len() - 1]),
            single.iter().filter(|&&e| e > 0.01).count(),
            pct(quantile(&merged, 0.5)),
            pct(quantile(&merged, 0.99)),
            pct(merged[merged.len() - 1]),
            merged.iter().filter(|&&e| e > 0.01).count(),
        );
    }
}

fn error_table() {
    println!("Relative error in % of the exact count (|estimate - truth| / truth), per window.");
    println!("single: one sketch per window (HIP); merged: union of two part sketches (composite).\n");
    println!(
        "| shape | users | windows | lg_k | single p50 | single p99 | single max | merged p50 | merged p99 | merged max | state bytes | serialized bytes |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut worst = vec![(0.0f64, 0.0f64); LG_KS.len()];
    for (n, windows) in SIZES {
        for shape in [Shape::Once, Shape::Uniform, Shape::Skewed] {
            if n >= 10_000_000 && shape != Shape::Once {
                continue;
            }
            let started = Instant::now();
            let results = windows_in_parallel(shape, n, windows, &LG_KS);
            for (k, lg_k) in LG_KS.iter().enumerate() {
                let mut single: Vec<f64> = results.iter().map(|r| r[k].0).collect();
                let mut merged: Vec<f64> = results.iter().map(|r| r[k].1).collect();
                single.sort_by(f64::total_cmp);
                merged.sort_by(f64::total_cmp);
                let state = results.iter().map(|r| r[k].2).max().unwrap_or(0);
                let serialized = results.iter().map(|r| r[k].3).max().unwrap_or(0);
                worst[k].0 = worst[k].0.max(quantile(&single, 0.99));
                worst[k].1 = worst[k].1.max(quantile(&merged, 0.99));
                println!(
                    "| {} | {n} | {windows} | {lg_k} | {} | {} | {} | {} | {} | {} | {state} | {serialized} |",
                    shape.name(),
                    pct(quantile(&single, 0.5)),
                    pct(quantile(&single, 0.99)),
                    pct(single[single.len() - 1]),
                    pct(quantile(&merged, 0.5)),
                    pct(quantile(&merged, 0.99)),
                    pct(merged[merged.len() - 1]),
                );
            }
            eprintln!("{} {n}: {:.1} s", shape.name(), started.elapsed().as_secs_f64());
        }
    }
    println!("\nWorst p99 over all shapes and sizes, in %:\n");
    println!("| lg_k | single | merged | within 1 % |");
    println!("|---:|---:|---:|---|");
    for (k, lg_k) in LG_KS.iter().enumerate() {
        let ok = worst[k].0 <= 0.01 && worst[k].1 <= 0.01;
        println!("| {lg_k} | {} | {} | {} |", pct(worst[k].0), pct(worst[k].1), if ok { "yes" } else { "no" });
    }
}

/// The fastest of `runs` timings of `f`, in ns per occurrence: the machine
/// is shared, and the minimum is the run least disturbed by others.
fn time_ns(occurrences: usize, runs: usize, mut f: impl FnMut() -> u64) -> (f64, u64) {
    let mut ns = Vec::with_capacity(runs);
    let mut answer = 0;
    for _ in 0..runs {
        let t = Instant::now();
        answer = std::hint::black_box(f());
        ns.push(t.elapsed().as_nanos() as f64 / occurrences as f64);
    }
    ns.sort_by(f64::total_cmp);
    (ns[0], answer)
}

fn cost_table() {
    const RUNS: usize = 15;
    const LG_K: u8 = kuniq::count::sketch::DEFAULT_LG_K;
    println!("ns per occurrence, fastest of {RUNS} runs, one thread; 4,000,000 occurrences");
    println!("drawn uniformly from the window's users (19-byte uids, pre-built).\n");
    println!(
        "| window users | exact: hash + UidSet insert | coupon (Murmur3) only | HLL_4 lg_k {LG_K}: coupon + update | HLL_8 lg_k {LG_K}: coupon + update | HLL_4: hash + coupon + update | exact count | HLL_4 estimate |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let hasher = UidHasher::new();
    for n in [45_000u32, 1_000_000] {
        let seed = mix(u64::from(n));
        let users: Vec<[u8; 19]> = (0..n).map(|i| uid(seed, i)).collect();
        let mut rng = Rng(seed);
        let occ: Vec<[u8; 19]> = (0..4_000_000).map(|_| users[rng.below(n) as usize]).collect();
        let len = occ.len();
        let (exact_ns, exact) = time_ns(len, RUNS, || {
            let mut set = UidSet::new();
            for u in &occ {
                set.insert(hasher.hash(u));
            }
            set.len()
        });
        let (coupon_ns, _) = time_ns(len, RUNS, || {
            for u in &occ {
                std::hint::black_box(UidCoupon::of(u));
            }
            0
        });
        let (hll4_ns, est4) = time_ns(len, RUNS, || {
            let mut s = UidSketch::new(LG_K).expect("lg_k in range");
            for u in &occ {
                s.update(u);
            }
            s.count()
        });
        let (hll8_ns, est8) = time_ns(len, RUNS, || {
            let mut s = HllSketch::new(LG_K, HllType::Hll8).expect("lg_k in range");
            for u in &occ {
                s.update(datasketches::hash::value::raw_bytes::from_slice(u));
            }
            s.estimate().round() as u64
        });
        assert_eq!(est4, est8, "HLL_4 and HLL_8 give the same estimate");
        let (twice_ns, _) = time_ns(len, RUNS, || {
            let mut s = UidSketch::new(LG_K).expect("lg_k in range");
            for u in &occ {
                std::hint::black_box(hasher.hash(u));
                s.update(u);
            }
            s.count()
        });
        println!(
            "| {n} | {exact_ns:.1} | {coupon_ns:.1} | {hll4_ns:.1} | {hll8_ns:.1} | {twice_ns:.1} | {exact} | {est4} |"
        );
    }

    println!(
        "\nBytes per sketch at 1,000,000 users (registers; `state` is what the sketch holds, `serialized` what to_bytes writes):\n"
    );
    println!(
        "| lg_k | HLL_4 state | HLL_4 serialized | HLL_6 state | HLL_6 serialized | HLL_8 state | HLL_8 serialized |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let seed = mix(7);
    for lg_k in LG_KS {
        let mut row = format!("| {lg_k} |");
        for t in [HllType::Hll4, HllType::Hll6, HllType::Hll8] {
            let mut s = HllSketch::new(lg_k, t).expect("lg_k in range");
            for i in 0..1_000_000 {
                s.update(datasketches::hash::value::raw_bytes::from_slice(&uid(seed, i)));
            }
            row.push_str(&format!(" {} | {} |", s.estimated_size(), s.serialize().len()));
        }
        println!("{row}");
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("error") => error_table(),
        Some("cost") => cost_table(),
        Some("focus") => {
            let args: Vec<u32> = std::env::args().skip(2).filter_map(|a| a.parse().ok()).collect();
            match args.as_slice() {
                [n, windows, lg_ks @ ..] if *n > 0 && *windows > 0 && !lg_ks.is_empty() => {
                    let lg_ks: Vec<u8> = lg_ks.iter().map(|&k| k.clamp(4, 21) as u8).collect();
                    focus(*n, *windows, &lg_ks);
                }
                _ => {
                    eprintln!("usage: sketch_error focus USERS WINDOWS LG_K...");
                    std::process::exit(2);
                }
            }
        }
        _ => {
            eprintln!("usage: sketch_error error|cost|focus USERS WINDOWS LG_K...");
            std::process::exit(2);
        }
    }
}
