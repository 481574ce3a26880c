//! Counting-side throughput: uid hashing, the exact uid set, the window engine.
//!
//! The input is the (ts, uid) stream of official-shaped generator frames
//! (`GenConfig` defaults: a 100,000-user pool, 1000 frames per second of
//! event time), taken out of the frames by the strict parser, so the benches
//! see the uids and the time order a real run sees. Parsing is not timed
//! here (`benches/scan.rs` does that).
//!
//! Every bench first checks its answer against a naive oracle
//! (`std::collections::HashSet` of uid bytes, overall or per minute), so a
//! fast wrong answer cannot pass as a result. Run:
//! `cargo bench --bench count` (`-- --quick` for a fast look).

use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;
use std::io::{self, Write};

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kuniq::count::sketch::UidCoupon;
use kuniq::count::{Estimator, UidHasher, UidSet};
use kuniq::frame::FrameParser;
use kuniq::frame::strict::StrictParser;
use kuniq::generator::{GenConfig, generate};
use kuniq::window::Secs;
use kuniq::window::clock::Event;
use kuniq::window::engine::{Engine, EngineConfig, EngineStats};

/// Frames in the stream: 200,000 at the default rate span about 3.3 minutes
/// of event time, so the engine opens, fills and closes several minute
/// windows of ~45,000 users each, as in the official run.
const FRAMES: u64 = 200_000;

/// Events handed to the engine per `observe_batch`: about one 4 MiB input
/// segment of 2 KB frames, the unit the pipeline's merge thread feeds.
const BATCH_EVENTS: usize = 2048;

/// One frame as the counting side sees it: event time and the decoded uid.
struct Pair {
    ts: Secs,
    uid: Box<[u8]>,
}

/// A `Write` sink that cuts the generator's output into lines and keeps
/// only each frame's (ts, uid), so the ~400 MB of frames never sit in
/// memory at once.
struct Extract {
    parser: StrictParser,
    partial: Vec<u8>,
    pairs: Vec<Pair>,
}

impl Extract {
    fn line(&mut self, line: &[u8]) {
        let fields = self.parser.parse(line).expect("generator frames are valid");
        self.pairs.push(Pair { ts: fields.ts as Secs, uid: fields.uid.into() });
    }
}

impl Write for Extract {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if self.partial.is_empty() {
                self.line(&rest[..nl]);
            } else {
                let mut line = std::mem::take(&mut self.partial);
                line.extend_from_slice(&rest[..nl]);
                self.line(&line);
            }
            rest = &rest[nl + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The (ts, uid) stream of `cfg`'s frames.
fn stream(cfg: &GenConfig) -> Vec<Pair> {
    let mut sink = Extract { parser: StrictParser::new(), partial: Vec::new(), pairs: Vec::new() };
    generate(cfg, &mut sink, |_| {}).expect("generating into memory");
    assert!(sink.partial.is_empty(), "the generator ends every frame with a newline");
    sink.pairs
}

/// The in-order official stream and an out-of-order one (10 % of frames
/// moved back by up to 10 s: later than the 5 s watermark bound, within the
/// 60 s allowed lateness, so they arrive after their minute closed and make
/// revisions).
fn streams() -> Vec<(&'static str, Vec<Pair>)> {
    let ordered = GenConfig { count: FRAMES, ..GenConfig::default() };
    let late = GenConfig { delay_secs: 10, delay_percent: 10.0, ..ordered.clone() };
    vec![("ordered", stream(&ordered)), ("late_10pct", stream(&late))]
}

/// Oracle: distinct uids per minute start, from the uid bytes.
fn oracle_minutes(pairs: &[Pair]) -> BTreeMap<Secs, u64> {
    let mut minutes: BTreeMap<Secs, HashSet<&[u8]>> = BTreeMap::new();
    for p in pairs {
        minutes.entry(p.ts.div_euclid(60) * 60).or_default().insert(&p.uid);
    }
    minutes.into_iter().map(|(start, users)| (start, users.len() as u64)).collect()
}

/// Feeds `events` through a fresh default engine (minute windows, 5 s
/// lateness, 60 s allowed lateness) in pipeline-sized batches, ends the
/// input; returns the engine, whose final records are left undrained.
fn run_engine(events: &[Event]) -> Engine {
    let mut engine = Engine::new(EngineConfig::default(), 1);
    for batch in events.chunks(BATCH_EVENTS) {
        engine.observe_batch(0, batch);
        // The pipeline drains records after each batch; so does the bench.
        engine.emissions().clear();
    }
    engine.flush();
    engine
}

/// The last revision's count of every minute the engine emitted.
fn final_counts(events: &[Event]) -> (BTreeMap<Secs, u64>, EngineStats) {
    let mut engine = Engine::new(EngineConfig::default(), 1);
    let mut last = BTreeMap::new();
    for batch in events.chunks(BATCH_EVENTS) {
        engine.observe_batch(0, batch);
        for e in engine.emissions().drain(..) {
            last.insert(e.start, e.unique_users);
        }
    }
    engine.flush();
    for e in engine.emissions().drain(..) {
        last.insert(e.start, e.unique_users);
    }
    (last, engine.stats())
}

fn bench(c: &mut Criterion) {
    let hasher = UidHasher::new();
    let streams = streams();
    let (_, ordered) = &streams[0];
    let uids: Vec<&[u8]> = ordered.iter().map(|p| &*p.uid).collect();
    let hashes: Vec<u64> = uids.iter().map(|u| hasher.hash(u)).collect();

    // Answers first: no two distinct uids share a hash, and the set counts
    // what a HashSet of the uid bytes counts.
    let distinct_uids = uids.iter().collect::<HashSet<_>>().len() as u64;
    assert_eq!(hashes.iter().collect::<HashSet<_>>().len() as u64, distinct_uids, "hash collision");
    let mut set = UidSet::new();
    hashes.iter().for_each(|&h| {
        set.insert(h);
    });
    assert_eq!(set.len(), distinct_uids, "UidSet disagrees with HashSet<uid>");

    {
        let mut group = c.benchmark_group("uid_hash");
        // Per uid: one call per frame in a real run.
        group.throughput(Throughput::Elements(uids.len() as u64));
        group.bench_function("xxh3_19_byte_uids", |b| {
            b.iter(|| {
                let mut acc = 0u64;
                for uid in &uids {
                    acc ^= hasher.hash(black_box(uid));
                }
                acc
            })
        });
        group.finish();
    }

    {
        let mut group = c.benchmark_group("uid_set_insert");
        // Per inserted hash: 200,000 inserts of ~86,000 distinct users drawn
        // from the 100,000-user pool, into a set that starts empty and grows,
        // as a window's set does.
        group.throughput(Throughput::Elements(hashes.len() as u64));
        group.bench_function("uid_set", |b| {
            b.iter(|| {
                let mut set = UidSet::new();
                for &h in &hashes {
                    set.insert(black_box(h));
                }
                set.len()
            })
        });
        // All hits: the steady state of a window whose users are already in.
        group.bench_function("uid_set_all_present", |b| {
            b.iter_batched_ref(
                || set.clone(),
                |set| {
                    let mut new = 0u64;
                    for &h in &hashes {
                        new += u64::from(set.insert(black_box(h)));
                    }
                    new
                },
                BatchSize::LargeInput,
            )
        });
        // The naive way, for scale: std's HashSet hashes the hash again with SipHash.
        group.bench_function("std_hashset_u64", |b| {
            b.iter(|| {
                let mut set = HashSet::new();
                for &h in &hashes {
                    set.insert(black_box(h));
                }
                set.len()
            })
        });
        group.finish();
    }

    let mut group = c.benchmark_group("engine_minute");
    for (name, pairs) in &streams {
        let events: Vec<Event> = pairs
            .iter()
            .enumerate()
            .map(|(i, p)| Event { ts: p.ts, hash: hasher.hash(&p.uid), offset: i as u64, coupon: None })
            .collect();
        let (counts, stats) = final_counts(&events);
        assert_eq!(counts, oracle_minutes(pairs), "{name}: engine counts differ from the per-minute HashSet");
        assert_eq!(
            (stats.counted, stats.too_late, stats.quarantined),
            (events.len() as u64, 0, 0),
            "{name}: every frame should be counted"
        );
        if *name == "late_10pct" {
            assert!(stats.late > 0 && stats.revisions > 0, "{name}: the stream should make revisions");
        }
        assert!(counts.len() >= 3, "{name}: several minutes, got {}", counts.len());

        // Per frame fed: window lookup, set insert, watermark and emission
        // bookkeeping, from an empty engine to the flush at end of input.
        group.throughput(Throughput::Elements(events.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &events, |b, events| {
            b.iter(|| run_engine(black_box(events)).stats())
        });
    }
    group.finish();

    checkpoint_day(c, &hasher, Estimator::Exact);
    checkpoint_day(c, &hasher, Estimator::HLL);
}

/// A checkpoint of a day window holding 1,000,000 distinct users (the
/// issue's sizing case): taking the window as data (`Engine::saved_windows`:
/// a copy of the set), and encoding and chunking it for the state topic
/// (`window_chunks`: sorting the hashes). The answer is checked by decoding
/// the chunks back. Exact (the set, 8 bytes a user) and sketched (one HLL
/// sketch, whatever the users).
fn checkpoint_day(c: &mut Criterion, hasher: &UidHasher, estimator: Estimator) {
    use kuniq::source::kafka::state::{Section, window_chunks, windows_from_chunks};
    use kuniq::window::WindowKind;
    const USERS: u64 = 1_000_000;
    // 2016-07-11 01:00 UTC on, 40 frames a second: all in one day.
    let day_start: Secs = 1_468_195_200;
    let cfg = EngineConfig { kinds: vec![WindowKind::Minute, WindowKind::Day], estimator, ..EngineConfig::default() };
    let mut engine = Engine::new(cfg, 1);
    // Frame `i`: user `i`, at offset `i`.
    let event = |i: u64| {
        let uid = format!("user-{i}");
        Event {
            ts: day_start + 3600 + (i / 40) as Secs,
            hash: hasher.hash(uid.as_bytes()),
            offset: i,
            coupon: if estimator.is_sketch() { UidCoupon::of(uid.as_bytes()) } else { None },
        }
    };
    let events: Vec<Event> = (0..USERS).map(event).collect();
    for batch in events.chunks(BATCH_EVENTS) {
        engine.observe_batch(0, batch);
        engine.emissions().clear();
    }
    let positions = [(0u32, USERS)];
    let windows = engine.saved_windows(&positions);
    let day = windows.iter().find(|w| w.kind == WindowKind::Day).expect("the day is open");
    // Every user is in stage 0 or waits for a provisional record.
    let mut users = estimator.users();
    for part in &day.parts {
        for stage in part.stages.iter().chain(&part.early) {
            users.union_with(&stage.users).expect("one estimator");
        }
    }
    let saved_users = users.count();
    match estimator {
        Estimator::Exact => assert_eq!(saved_users, USERS, "the saved day holds every user"),
        _ => assert!(saved_users.abs_diff(USERS) < USERS / 100, "the saved day's sketch: {saved_users}"),
    }
    let (chunks, reference) = window_chunks("group/topic", Section::Windows, 1, &windows);
    let bytes: usize = chunks.iter().map(|(k, v)| k.len() + v.len()).sum();
    let values: Vec<Vec<u8>> = chunks.into_iter().map(|(_, v)| v).collect();
    assert_eq!(windows_from_chunks(&reference, &values).expect("chunks decode"), windows);
    let _ = writeln!(
        io::stderr(),
        "checkpoint_day ({estimator}): {} windows, {} chunks, {:.3} MB on the state topic for {USERS} users",
        windows.len(),
        values.len(),
        bytes as f64 / 1e6
    );

    let mut group = c.benchmark_group(format!("checkpoint_day_1m_users/{estimator}"));
    group.sample_size(10);
    group.bench_function("saved_windows", |b| b.iter(|| engine.saved_windows(black_box(&positions)).len()));
    group.bench_function("encode_and_chunk", |b| {
        b.iter(|| window_chunks("group/topic", Section::Windows, 1, black_box(&windows)).1)
    });

    // An incremental checkpoint: after the whole save above, a commit
    // interval (5 s) of frames at 40 a second, each a new user, and the
    // changes the next checkpoint writes.
    engine.mark_windows_saved();
    let more: Vec<Event> = (USERS..USERS + 200).map(event).collect();
    engine.observe_batch(0, &more);
    engine.emissions().clear();
    let positions = [(0u32, USERS + 200)];
    let changes = engine.saved_window_changes(&positions);
    let (chunks, _) = window_chunks("group/topic", Section::Windows, 2, &changes);
    let bytes: usize = chunks.iter().map(|(k, v)| k.len() + v.len()).sum();
    let _ = writeln!(
        io::stderr(),
        "checkpoint_day ({estimator}): the next checkpoint's changes, 5 s later: {} chunks, {:.3} MB",
        chunks.len(),
        bytes as f64 / 1e6
    );
    group.bench_function("changes_5s_later", |b| {
        b.iter(|| window_chunks("group/topic", Section::Windows, 2, &engine.saved_window_changes(&positions)).1)
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // Each iteration is milliseconds over 200,000 items: 30 samples give
    // tight intervals without minutes of run time.
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
