//! Records are a pure function of the input: the file pipeline gives the
//! same bytes whatever the chunk size, the number of workers, or whether
//! the input is mapped or streamed (gzip), on dense, delayed and sparse
//! event time, with every window kind and a cap on open windows low enough
//! that some windows are forced out.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use kuniq::frame::ParserKind;
use kuniq::generator::{GenConfig, generate};
use kuniq::pipeline::{CountPlan, count_file};
use kuniq::sink::LineSink;
use kuniq::source::file::FileSource;
use kuniq::window::WindowKind;
use kuniq::window::engine::EngineConfig;
use proptest::prelude::*;
use tempfile::TempDir;

/// Counts `path` with `workers` workers in chunks of about `segment` bytes;
/// returns stdout's bytes and the number of windows forced out.
fn count(path: &std::path::Path, segment: usize, workers: usize, cap: usize) -> (Vec<u8>, u64) {
    let plan = CountPlan {
        parser: ParserKind::available()[0],
        workers,
        pin: false,
        engine: EngineConfig { kinds: WindowKind::ALL.to_vec(), max_open_windows: cap, ..EngineConfig::default() },
        max_frame_bytes: 1 << 20,
        metrics: None,
    };
    let source = FileSource::open(path.to_str().unwrap(), segment, 1 << 20).unwrap();
    let mut sink = LineSink::new(Vec::new());
    let summary = count_file(&plan, &source, &mut sink, |_| {}).unwrap();
    (sink.into_inner(), summary.engine.windows_forced)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn records_do_not_depend_on_chunks_workers_or_compression(
        spacing in prop::sample::select(vec![0u64, 40, 900]),
        delay in prop::sample::select(vec![0u64, 30, 400]),
        seed in 1u64..1000,
        segment in 4096usize..60_000,
        workers in 1usize..4,
        cap in prop::sample::select(vec![3usize, 50, 4096]),
    ) {
        let dir = TempDir::new().unwrap();
        let cfg = GenConfig {
            count: 1500,
            rate: 5,
            spacing_secs: spacing,
            users: 200,
            delay_secs: delay,
            delay_percent: if delay > 0 { 20.0 } else { 0.0 },
            seed,
            size_limit: 200,
            ..GenConfig::default()
        };
        let mut bytes = Vec::new();
        generate(&cfg, &mut bytes, |_| {}).unwrap();
        let plain = dir.path().join("frames.jsonl");
        std::fs::write(&plain, &bytes).unwrap();
        let gz = dir.path().join("frames.jsonl.gz");
        let mut enc = GzEncoder::new(std::fs::File::create(&gz).unwrap(), Compression::fast());
        enc.write_all(&bytes).unwrap();
        enc.finish().unwrap();

        // One worker, one chunk for the whole input: the reference.
        let (want, forced) = count(&plain, 1 << 30, 1, cap);
        prop_assert!(!want.is_empty());
        let (mapped, mapped_forced) = count(&plain, segment, workers, cap);
        prop_assert_eq!(String::from_utf8_lossy(&mapped), String::from_utf8_lossy(&want), "mapped, {} bytes a chunk, {} workers", segment, workers);
        prop_assert_eq!(mapped_forced, forced);
        let (streamed, _) = count(&gz, segment, workers, cap);
        prop_assert_eq!(String::from_utf8_lossy(&streamed), String::from_utf8_lossy(&want), "gzip, {} bytes a chunk, {} workers", segment, workers);
    }
}
