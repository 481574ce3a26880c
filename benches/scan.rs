//! Frame scanner throughput, per parser, on generator frames.
//!
//! Each parser is first checked on every frame against the strict parser
//! (same uid and ts), so a fast wrong answer cannot pass as a result. Run:
//! `cargo bench --bench scan` (add `--all-features` for sonic and serde).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kuniq::frame::FrameParser;
use kuniq::frame::strict::StrictParser;
use kuniq::generator::{GenConfig, generate};

/// 20,000 official-shaped frames (about 41 MB): more than the L2 cache, as
/// in a real run where frames stream through memory.
fn frames() -> Vec<Vec<u8>> {
    let cfg = GenConfig { count: 20_000, ..GenConfig::default() };
    let mut out = Vec::new();
    generate(&cfg, &mut out, |_| {}).expect("generating into memory");
    out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

fn parsers() -> Vec<(&'static str, Box<dyn FrameParser>)> {
    kuniq::frame::every_parser()
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let bytes: u64 = frames.iter().map(|f| f.len() as u64).sum();
    let mut reference = StrictParser::new();
    let expected: Vec<(Vec<u8>, u64)> = frames
        .iter()
        .map(|f| reference.parse(f).map(|x| (x.uid.to_vec(), x.ts)).expect("generator frames are valid"))
        .collect();
    for (name, mut parser) in parsers() {
        for (frame, want) in frames.iter().zip(&expected) {
            let got = parser.parse(frame).map(|x| (x.uid.to_vec(), x.ts));
            assert_eq!(got.as_ref(), Ok(want), "{name} disagrees before timing");
        }
    }
    for (unit, throughput) in
        [("bytes", Throughput::Bytes(bytes)), ("frames", Throughput::Elements(frames.len() as u64))]
    {
        let mut group = c.benchmark_group(format!("scan_{unit}"));
        group.throughput(throughput);
        // 20,000 frames take milliseconds: 30 samples give tight intervals.
        group.sample_size(30);
        for (name, mut parser) in parsers() {
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter(|| {
                    let mut ts_sum = 0u64;
                    for frame in &frames {
                        if let Ok(f) = parser.parse(black_box(frame)) {
                            ts_sum = ts_sum.wrapping_add(f.ts);
                        }
                    }
                    black_box(ts_sum)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
