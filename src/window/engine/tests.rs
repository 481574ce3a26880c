//! The engine against a naive reference of the documented semantics.

use std::collections::{BTreeMap, HashSet};

use proptest::prelude::*;

use super::*;
use crate::count::sketch::UidCoupon;

const T0: Secs = 1_468_244_384;

/// Every record the semantics prescribe for one stream of (ts, uid), computed
/// the plain way: a running max, each frame's stage (and, on time, its first
/// provisional record), then for each window the sequence of distinct
/// (users, frames) values over its provisional records and its stages.
fn reference(cfg: &EngineConfig, frames: &[(Secs, u64)]) -> Vec<Emission> {
    let lateness = cfg.lateness_secs as Secs;
    let allowed = cfg.allowed_lateness_secs as Secs;
    let interval = cfg.revision_interval_secs as Secs;
    let early = cfg.early_interval_secs as Secs;
    let last_stage = (allowed + interval - 1) / interval;
    let mut out = Vec::new();
    for &kind in &cfg.kinds {
        let mut max = Secs::MIN;
        // window start -> list of (stage, first provisional record, uid)
        let mut staged: BTreeMap<Secs, Vec<(i64, i64, u64)>> = BTreeMap::new();
        for &(ts, uid) in frames {
            max = max.max(ts);
            let wm = max - lateness;
            let start = kind.start(ts);
            let end = kind.end(start);
            let stage = if wm < end {
                0
            } else if wm < end + allowed {
                1 + (wm - end) / interval
            } else {
                continue;
            };
            let first = if early > 0 && wm >= start { (wm - start) / early + 1 } else { 1 };
            staged.entry(start).or_default().push((stage, first, uid));
        }
        for (start, entries) in staged {
            let end = kind.end(start);
            let mut last = None;
            let mut revision = 0;
            let mut closed_sent = false;
            // Provisional records at start + k * early, inside the window.
            let provisional = if early > 0 && end - start > early { (end - start - 1) / early } else { 0 };
            let steps = (1..=provisional).map(|k| (false, 0, k)).chain((0..=last_stage).map(|s| (true, s, i64::MAX)));
            for (closed, stage, k) in steps {
                let upto: Vec<u64> = entries
                    .iter()
                    .filter(|(s, first, _)| *s <= stage && (*s > 0 || *first <= k))
                    .map(|(_, _, u)| *u)
                    .collect();
                let value = (upto.iter().collect::<HashSet<_>>().len() as u64, upto.len() as u64);
                // The close is said even when a provisional record had its
                // count.
                if upto.is_empty() || (last == Some(value) && (closed_sent || !closed)) {
                    continue;
                }
                closed_sent |= closed;
                out.push(Emission {
                    kind,
                    start,
                    end,
                    unique_users: value.0,
                    frames: value.1,
                    revision,
                    closed,
                    estimator: Estimator::Exact,
                    sketch: None,
                });
                revision += 1;
                last = Some(value);
            }
        }
    }
    sorted(out)
}

/// The event of a frame of user number `uid`: its coupon too when `cfg`
/// counts with a sketch.
fn event(cfg: &EngineConfig, ts: Secs, uid: u64, offset: u64) -> Event {
    let coupon = if cfg.estimator.is_sketch() { UidCoupon::of(&uid.to_le_bytes()) } else { None };
    Event { ts, hash: uid, offset, coupon }
}

/// Estimators to test with: exact, and sketches small enough that a few
/// hundred users fill their registers (lg_k 6: 64 registers) or not.
fn estimators() -> impl Strategy<Value = Estimator> {
    prop::sample::select(vec![Estimator::Exact, Estimator::Hll { lg_k: 6 }, Estimator::HLL])
}

fn sorted(mut records: Vec<Emission>) -> Vec<Emission> {
    records.sort_by_key(|e| (e.kind, e.start, e.revision));
    records
}

/// Runs the engine over `streams` (each a list of (ts, uid)), feeding them
/// interleaved by `order` (stream numbers) in batches of `batch`.
fn run(
    cfg: &EngineConfig,
    streams: &[Vec<(Secs, u64)>],
    order: &[usize],
    batch: usize,
) -> (Vec<Emission>, EngineStats) {
    let mut engine = Engine::new(cfg.clone(), streams.len());
    let mut next = vec![0usize; streams.len()];
    let mut pending: Vec<Vec<Event>> = vec![Vec::new(); streams.len()];
    let mut out = Vec::new();
    for &s in order {
        let (ts, uid) = streams[s][next[s]];
        pending[s].push(event(cfg, ts, uid, next[s] as u64));
        next[s] += 1;
        if pending[s].len() >= batch {
            engine.observe_batch(s, &std::mem::take(&mut pending[s]));
            out.append(engine.emissions());
        }
    }
    for (s, events) in pending.into_iter().enumerate() {
        engine.observe_batch(s, &events);
        out.append(engine.emissions());
    }
    engine.flush();
    out.append(engine.emissions());
    (out, engine.stats())
}

/// A stream like the generator's: ts advancing about `rate` frames per
/// second, some frames delayed up to `delay` seconds.
fn stream(len: usize, rate: u64, delay: Secs, delayed_pct: u64, users: u64, seed: u64) -> Vec<(Secs, u64)> {
    let mut rng = crate::generator::Rng::new(seed);
    let mut now = T0;
    (0..len)
        .map(|_| {
            if rng.below(rate) == 0 {
                now += 1;
            }
            let mut ts = now;
            if delay > 0 && rng.below(100) < delayed_pct {
                ts -= 1 + rng.below(delay as u64) as Secs;
            }
            (ts, rng.below(users))
        })
        .collect()
}

fn config(lateness: u64, allowed: u64, interval: u64, kinds: Vec<WindowKind>) -> EngineConfig {
    EngineConfig {
        kinds,
        lateness_secs: lateness,
        allowed_lateness_secs: allowed,
        revision_interval_secs: interval,
        quarantine_secs: DEFAULT_QUARANTINE_SECS,
        max_open_windows: DEFAULT_MAX_OPEN_WINDOWS,
        early_interval_secs: 0,
        estimator: Estimator::Exact,
        emit_sketch: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn one_stream_matches_the_reference(
        len in 1usize..3000,
        rate in 1u64..40,
        delay in 0i64..90,
        pct in 0u64..40,
        users in 1u64..300,
        seed in any::<u64>(),
        batch in 1usize..700,
        lateness in 0u64..10,
        allowed in 0u64..120,
        interval in 1u64..20,
        hours in any::<bool>(),
        early in prop::sample::select(vec![0u64, 7, 30, 60, 600]),
    ) {
        let kinds = if hours { vec![WindowKind::Minute, WindowKind::Hour] } else { vec![WindowKind::Minute] };
        let mut cfg = config(lateness, allowed, interval, kinds);
        cfg.early_interval_secs = early;
        let frames = stream(len, rate, delay, pct, users, seed);
        let order = vec![0; frames.len()];
        let (got, stats) = run(&cfg, std::slice::from_ref(&frames), &order, batch);
        prop_assert_eq!(sorted(got.clone()), reference(&cfg, &frames));
        prop_assert_eq!(stats.counted + stats.too_late + stats.quarantined, frames.len() as u64);
        // Within one run, each window's records come in revision order.
        let mut seen: BTreeMap<(WindowKind, Secs), u32> = BTreeMap::new();
        for e in &got {
            let next = seen.entry((e.kind, e.start)).or_insert(0);
            prop_assert_eq!(e.revision, *next);
            *next += 1;
        }
    }

    #[test]
    fn records_do_not_depend_on_interleaving_or_batching(
        lens in prop::collection::vec(1usize..800, 1..4),
        seed in any::<u64>(),
        batch_a in 1usize..300,
        batch_b in 1usize..300,
        shuffle_seed in any::<u64>(),
        early in prop::sample::select(vec![0u64, 10, 60]),
        estimator in estimators(),
        emit_sketch in any::<bool>(),
    ) {
        let mut cfg = config(5, 60, 5, vec![WindowKind::Minute, WindowKind::Hour]);
        cfg.early_interval_secs = early;
        cfg.estimator = estimator;
        cfg.emit_sketch = emit_sketch && estimator.is_sketch();
        let streams: Vec<Vec<(Secs, u64)>> =
            lens.iter().enumerate().map(|(i, &n)| stream(n, 10, 20, 10, 200, seed ^ i as u64)).collect();
        let sequential: Vec<usize> = streams.iter().enumerate().flat_map(|(i, s)| vec![i; s.len()]).collect();
        let mut shuffled = sequential.clone();
        shuffle(&mut shuffled, shuffle_seed);
        let (a, _) = run(&cfg, &streams, &sequential, batch_a);
        let (b, _) = run(&cfg, &streams, &shuffled, batch_b);
        prop_assert_eq!(sorted(a), sorted(b));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Windows close frame by frame: one stream fed in batches of random
    /// sizes gives the same records, in the same order, as the stream fed
    /// one frame at a time, for every window kind, on history sparse
    /// enough that a watermark raised once per batch would open many
    /// windows at once, and with a cap on open windows low enough that
    /// some are forced out (which ones must not depend on the batches).
    #[test]
    fn records_are_the_same_whatever_the_batches(
        len in 1usize..1200,
        gap in 1u64..8000,
        delay in 0i64..3000,
        seed in any::<u64>(),
        batches in prop::collection::vec(1usize..300, 1..12),
        cap in 1usize..40,
        early in prop::sample::select(vec![0u64, 60, 3600]),
        estimator in estimators(),
    ) {
        let mut cfg = config(5, 60, 5, WindowKind::ALL.to_vec());
        cfg.max_open_windows = cap;
        cfg.early_interval_secs = early;
        cfg.estimator = estimator;
        cfg.emit_sketch = estimator.is_sketch();
        let frames = sparse_stream(len, gap, delay, seed);
        let (one_by_one, stats_one) = run(&cfg, std::slice::from_ref(&frames), &vec![0; len], 1);
        let (batched, stats_batched) = run_in_batches(&cfg, &frames, &batches);
        prop_assert_eq!(&one_by_one, &batched);
        prop_assert_eq!(stats_one.windows_forced, stats_batched.windows_forced);
        prop_assert_eq!(stats_one.too_late, stats_batched.too_late);
    }
}

/// Two years of one frame every ~4.4 hours (4,000 frames), at the default
/// cap: no window is forced out, and every kind's final counts are the
/// reference's, whatever the batches. (The reference knows no quarantine,
/// so it is set above the largest gap.)
#[test]
fn sparse_history_forces_no_window_out() {
    let mut cfg = config(5, 60, 5, WindowKind::ALL.to_vec());
    cfg.quarantine_secs = 30 * 86_400;
    let frames = sparse_stream(4000, 2 * 158 * 100, 0, 7);
    assert!(frames.last().unwrap().0 - frames[0].0 > 2 * 365 * 86_400 - 40 * 86_400, "spans about two years");
    for batch in [1, 64, 4000] {
        let (got, stats) = run(&cfg, std::slice::from_ref(&frames), &vec![0; frames.len()], batch);
        assert_eq!(stats.windows_forced, 0, "batch {batch}");
        // The warm-up holds 16 frames (16 windows of the short kinds) before
        // counting them at once; after it, a window or two per kind.
        assert!(stats.open_windows_peak <= 64, "batch {batch}: {} windows open at once", stats.open_windows_peak);
        assert_eq!(sorted(got), reference(&cfg, &frames), "batch {batch}");
    }
}

/// One stream whose ts advances by 0 to `gap` seconds a frame (about
/// `gap / 2` on average), some frames up to `delay` seconds late.
fn sparse_stream(len: usize, gap: u64, delay: Secs, seed: u64) -> Vec<(Secs, u64)> {
    let mut rng = crate::generator::Rng::new(seed);
    let mut now = T0;
    (0..len)
        .map(|_| {
            now += rng.below(gap + 1) as Secs;
            let mut ts = now;
            if delay > 0 && rng.below(10) == 0 {
                ts -= rng.below(delay as u64) as Secs;
            }
            (ts, rng.below(500))
        })
        .collect()
}

/// Feeds one stream in batches whose sizes cycle through `sizes`.
fn run_in_batches(cfg: &EngineConfig, frames: &[(Secs, u64)], sizes: &[usize]) -> (Vec<Emission>, EngineStats) {
    let mut engine = Engine::new(cfg.clone(), 1);
    let events: Vec<Event> = frames.iter().enumerate().map(|(i, &(ts, uid))| event(cfg, ts, uid, i as u64)).collect();
    let mut out = Vec::new();
    let mut rest = &events[..];
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        engine.observe_batch(0, batch);
        out.append(engine.emissions());
        rest = tail;
    }
    engine.flush();
    out.append(engine.emissions());
    (out, engine.stats())
}

/// Shuffles `order` in place (Fisher-Yates, seeded).
fn shuffle(order: &mut [usize], seed: u64) {
    let mut rng = crate::generator::Rng::new(seed);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
}

/// What a checkpoint saves: every stream's state, the global watermark,
/// what the open windows emitted, and (when windows are saved) the open
/// windows longer than a minute as data.
type Saved = (Vec<Option<StreamState>>, Option<Secs>, Vec<EmittedWindow>, Vec<WindowState>);

/// Runs the engine over `streams`, restarting it from saved states after
/// each cut: the first run feeds `order` until `cuts[0]` frames; every later
/// run resumes each stream from its checkpoint and feeds the rest in an
/// order shuffled by `resume_seed`, until its own cut (the last run, to the
/// end). With `save_windows`, checkpoints hold the windows longer than a
/// minute as data. Returns the records of every run, in emission order,
/// and the resume offsets of every checkpoint.
fn run_with_restarts(
    cfg: &EngineConfig,
    streams: &[Vec<(Secs, u64)>],
    order: &[usize],
    cuts: &[usize],
    resume_seed: u64,
    save_windows: bool,
    incremental: bool,
) -> (Vec<Vec<Emission>>, Vec<Vec<Option<u64>>>) {
    let event = |s: usize, i: usize| event(cfg, streams[s][i].0, streams[s][i].1, i as u64);
    let mut runs = Vec::new();
    let mut resumes = Vec::new();
    let mut saved: Option<Saved> = None;
    for run in 0..=cuts.len() {
        let mut engine = Engine::new(cfg.clone(), streams.len());
        let mut from = vec![0usize; streams.len()];
        let feed: Vec<usize> = match &saved {
            None => order.to_vec(),
            Some((states, watermark, emitted, windows)) => {
                for (s, state) in states.iter().enumerate() {
                    if let Some(state) = state {
                        engine.resume_stream(s, *state);
                        from[s] = state.resume.offset as usize;
                    }
                }
                engine.resume_windows(emitted);
                engine.resume_saved_windows(windows).unwrap();
                if let Some(wm) = watermark {
                    engine.resume_watermark(*wm);
                }
                let mut rest: Vec<usize> =
                    (0..streams.len()).flat_map(|s| vec![s; streams[s].len() - from[s]]).collect();
                shuffle(&mut rest, resume_seed ^ run as u64);
                rest
            }
        };
        let cut = cuts.get(run).map_or(feed.len(), |&c| c.min(feed.len()));
        let mut out = Vec::new();
        // With `incremental`, a checkpoint halfway saves the windows whole
        // and the one at the cut only what changed since, as a run's
        // checkpoints do on the state topic.
        let mut whole: Option<Vec<WindowState>> = None;
        for (i, &s) in feed[..cut].iter().enumerate() {
            if incremental && save_windows && i == cut / 2 {
                let positions: Vec<(u32, u64)> = (0..streams.len()).map(|s| (s as u32, from[s] as u64)).collect();
                whole = Some(engine.saved_windows(&positions));
                engine.mark_windows_saved();
            }
            engine.observe_batch(s, &[event(s, from[s])]);
            from[s] += 1;
            out.append(engine.emissions());
        }
        if run == cuts.len() {
            engine.flush();
            out.append(engine.emissions());
        } else {
            let states: Vec<Option<StreamState>> = (0..streams.len())
                .map(|s| {
                    let state = engine.stream_state(s, from[s] as u64, save_windows);
                    if let Some(state) = state {
                        assert!(state.resume.offset <= from[s] as u64, "a checkpoint is never ahead of what was read");
                    }
                    state.or_else(|| saved.as_ref().and_then(|(old, _, _, _)| old[s]))
                })
                .collect();
            resumes.push(states.iter().map(|s| s.map(|s| s.resume.offset)).collect());
            let positions: Vec<(u32, u64)> = (0..streams.len()).map(|s| (s as u32, from[s] as u64)).collect();
            // Encoded and decoded, as a checkpoint stores them.
            let windows = if save_windows {
                let roundtrip = |states: Vec<WindowState>| -> Vec<WindowState> {
                    states.iter().map(|w| WindowState::decode(&w.encode()).expect("a state decodes")).collect()
                };
                match whole.take() {
                    Some(whole) => {
                        let changes = roundtrip(engine.saved_window_changes(&positions));
                        crate::window::state::with_saved_windows(changes, &roundtrip(whole)).expect("they unite")
                    }
                    None => roundtrip(engine.saved_windows(&positions)),
                }
            } else {
                Vec::new()
            };
            saved = Some((states, engine.saved_watermark(), engine.emitted_windows(), windows));
        }
        runs.push(out);
    }
    (runs, resumes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// A restart (or two in a row) from saved states loses no record and
    /// sends none twice: every record of any run is a record of the
    /// uninterrupted run (same window, revision and value), each once, and
    /// together they are all of them.
    #[test]
    fn restarts_from_saved_states_lose_no_record_and_send_none_twice(
        lens in prop::collection::vec(1usize..1500, 1..4),
        seed in any::<u64>(),
        delay in 0i64..120,
        allowed in 0u64..120,
        interval in 1u64..20,
        hours in any::<bool>(),
        save_windows in any::<bool>(),
        incremental in any::<bool>(),
        early in prop::sample::select(vec![0u64, 10, 60]),
        cut_per_mille in 0usize..=1000,
        order_seed in any::<u64>(),
        resume_seed in any::<u64>(),
        far in 0u8..3,
        near in prop::option::of(0usize..80),
        second_cut in prop::option::of(0usize..400),
        estimator in estimators(),
    ) {
        let kinds = if hours { vec![WindowKind::Minute, WindowKind::Hour] } else { vec![WindowKind::Minute] };
        let mut cfg = config(5, allowed, interval, kinds);
        cfg.early_interval_secs = early;
        cfg.estimator = estimator;
        cfg.emit_sketch = estimator.is_sketch();
        let mut streams: Vec<Vec<(Secs, u64)>> =
            lens.iter().enumerate().map(|(i, &n)| stream(n, 10, delay, 15, 300, seed ^ i as u64)).collect();
        let s = &mut streams[0];
        let at = s.len() / 2;
        if far == 1 {
            // A burst of far-future frames, shorter than a confirmed jump: the
            // clock holds them, maybe across the cut, then quarantines them.
            for i in 0..(crate::window::clock::JUMP_CONFIRM_FRAMES / 2) {
                s.insert(at, (T0 + 10_000_000 + i as Secs, 7));
            }
        } else if far == 2 {
            // A real jump: the clock holds the first frames after it until it
            // is confirmed, maybe across the cut, then admits them.
            for frame in &mut s[at..] {
                frame.0 += 86_400;
            }
        }
        let mut order: Vec<usize> = streams.iter().enumerate().flat_map(|(i, s)| vec![i; s.len()]).collect();
        shuffle(&mut order, order_seed);
        let (whole, _) = run(&cfg, &streams, &order, 1);
        // Cut anywhere, or `near` frames of stream 0 after its burst or jump.
        let cut = match near {
            Some(k) if far > 0 => order
                .iter()
                .scan(0, |n, &s| {
                    *n += usize::from(s == 0);
                    Some(*n)
                })
                .position(|n| n > at + k)
                .unwrap_or(order.len()),
            _ => order.len() * cut_per_mille / 1000,
        };
        // One restart at the cut, or two: the second `second_cut` frames
        // into the resumed run, maybe before it has read again the windows
        // the first run had emitted.
        let cuts = match second_cut {
            Some(k) => vec![cut, k],
            None => vec![cut],
        };
        let (runs, _) = run_with_restarts(&cfg, &streams, &order, &cuts, resume_seed, save_windows, incremental);

        let reference: BTreeMap<(WindowKind, Secs, u32), Emission> =
            whole.iter().map(|e| ((e.kind, e.start, e.revision), e.clone())).collect();
        let mut seen = BTreeMap::new();
        for e in runs.iter().flatten() {
            let key = (e.kind, e.start, e.revision);
            prop_assert_eq!(reference.get(&key), Some(e), "a record the uninterrupted run does not have");
            // Each checkpoint is taken right at its cut, with every record
            // before it sent: a resumed run sends none of them again.
            prop_assert!(seen.insert(key, e.clone()).is_none(), "a record sent twice: {:?}", e);
        }
        prop_assert_eq!(seen, reference, "every record of the uninterrupted run, after the restarts");
    }
}

/// Saving the windows longer than a minute moves the restart's re-read
/// from the start of the day to the minute windows' frontier: lateness,
/// allowed lateness, a minute and the delayed frames' spread of event time
/// before the cut. The records are the same either way (and the same as an
/// uninterrupted run's: the property test above).
#[test]
fn saved_windows_resume_near_the_minute_frontier() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute, WindowKind::Hour, WindowKind::Day]);
    let delay = 20;
    let frames = stream(30_000, 2, delay, 5, 500, 7);
    let order = vec![0; frames.len()];
    let cut = frames.len() * 9 / 10;
    let (kept, resumes_kept) = run_with_restarts(&cfg, std::slice::from_ref(&frames), &order, &[cut], 1, false, false);
    let (saved, resumes_saved) = run_with_restarts(&cfg, std::slice::from_ref(&frames), &order, &[cut], 1, true, true);
    assert_eq!(resumes_kept[0][0], Some(0), "without saved windows, the day is read again from its first frame");
    let resume = resumes_saved[0][0].expect("a resume point") as usize;
    let back = frames[cut - 1].0 - frames[resume].0;
    assert!(back <= 5 + 60 + 60 + delay, "read again from {back} s of event time before the cut");
    assert!(cut - resume < 1_000, "{} frames read again", cut - resume);
    let records = |runs: Vec<Vec<Emission>>| sorted(runs.into_iter().flatten().collect());
    assert_eq!(records(saved), records(kept));
}

#[test]
fn a_minute_closes_once_the_watermark_passes_its_end() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let mut engine = Engine::new(cfg, 1);
    let minute = WindowKind::Minute.start(T0);
    let events: Vec<Event> =
        (0..20).map(|i| Event { ts: minute + 50 + i / 4, hash: i as u64, offset: i as u64, coupon: None }).collect();
    engine.observe_batch(0, &events);
    assert!(engine.emissions().is_empty(), "watermark {:?} has not reached the end", engine.watermark());
    // ts = end + 4: watermark end - 1, still open.
    engine.observe_batch(0, &[Event { ts: minute + 64, hash: 100, offset: 20, coupon: None }]);
    assert!(engine.emissions().is_empty());
    // ts = end + 5: watermark reaches the end.
    engine.observe_batch(0, &[Event { ts: minute + 65, hash: 101, offset: 21, coupon: None }]);
    let out: Vec<Emission> = std::mem::take(engine.emissions());
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].start, out[0].end, out[0].unique_users, out[0].frames, out[0].revision),
        (minute, minute + 60, 20, 20, 0)
    );
    let mut json = Vec::new();
    out[0].write_json(&mut json);
    assert_eq!(
        String::from_utf8(json).unwrap(),
        format!(
            r#"{{"window":"minute","start":{minute},"end":{},"unique_users":20,"frames":20,"revision":0,"estimator":"exact","closed":true}}"#,
            minute + 60
        )
    );
    assert_eq!(out[0].key(), format!("minute:{minute}"));
}

#[test]
fn quarantined_frames_do_not_move_the_watermark_or_count() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let mut engine = Engine::new(cfg, 1);
    let mut events: Vec<Event> =
        (0..100).map(|i| Event { ts: T0 + i / 10, hash: i as u64, offset: i as u64, coupon: None }).collect();
    events.insert(50, Event { ts: T0 + 10_000_000, hash: 9999, offset: 1000, coupon: None });
    engine.observe_batch(0, &events);
    engine.flush();
    let stats = engine.stats();
    assert_eq!(stats.quarantined, 1);
    assert_eq!(stats.counted, 100);
    let out = std::mem::take(engine.emissions());
    assert!(out.iter().all(|e| e.start < T0 + 60));
}

// ---------------------------------------------------------------------------
// Hostile timestamps: bit flips in an otherwise ordered stream

/// Where flipped frames go into an ordered stream of `len` frames, and
/// which ts each one gets (from the good ts it replaces).
#[derive(Debug, Clone, Copy)]
enum Placement {
    /// One frame, in the middle.
    Single,
    /// The very first frame of the stream.
    First,
    /// `n` flipped frames in a row, in the middle.
    Burst(usize),
    /// `n` flipped frames, one every 13 good ones.
    Scattered(usize),
    /// `n` flipped frames as the first ones (fewer than half a warm-up).
    FirstFew(usize),
}

/// A named bit flip: the flipped ts as a function of the good one.
type Flip = (&'static str, fn(Secs) -> Secs);

/// Flips that land far ahead of the stream (quarantined) and far behind it
/// (too late).
const FLIPS_AHEAD: [Flip; 4] = [
    ("bit 33 set", |t| t | (1 << 33)),
    ("bit 31 flipped (2084)", |t| t ^ (1 << 31)),
    ("year 2106 (u32::MAX)", |_| u32::MAX as Secs),
    ("bit 22 flipped (48 days ahead)", |t| t ^ (1 << 22)),
];
const FLIPS_BEHIND: [Flip; 3] = [
    ("zero", |_| 0),
    ("bit 30 cleared (1982)", |t| t & !(1 << 30)),
    ("bit 28 flipped (8 years back)", |t| t ^ (1 << 28)),
];

/// An ordered stream: about 5 frames a second over `len / 5` seconds, 50
/// users.
fn ordered(len: usize) -> Vec<(Secs, u64)> {
    (0..len).map(|i| (T0 + i as Secs / 5, i as u64 % 50)).collect()
}

/// `good` with flipped frames put in by `placement` (uids 10_000 and up, so
/// they would show in any count they got into); returns the stream and the
/// number of flipped frames.
fn with_flips(good: &[(Secs, u64)], placement: Placement, flip: fn(Secs) -> Secs) -> (Vec<(Secs, u64)>, usize) {
    let mut out = good.to_vec();
    let mid = good.len() / 2;
    let positions: Vec<usize> = match placement {
        Placement::Single => vec![mid],
        Placement::First => vec![0],
        Placement::Burst(n) => vec![mid; n],
        Placement::Scattered(n) => (0..n).map(|k| 40 + 14 * k).rev().collect(),
        Placement::FirstFew(n) => vec![0; n],
    };
    for (k, &at) in positions.iter().enumerate() {
        out.insert(at, (flip(good[at.min(good.len() - 1)].0), 10_000 + k as u64));
    }
    (out, positions.len())
}

fn placements() -> [Placement; 6] {
    [
        Placement::Single,
        Placement::First,
        Placement::Burst(10),
        Placement::Burst(50),
        Placement::Scattered(30),
        Placement::FirstFew(WARMUP_FRAMES / 2 - 1),
    ]
}

use crate::window::clock::{JUMP_CONFIRM_FRAMES, WARMUP_FRAMES};

#[test]
fn bit_flipped_timestamps_leave_the_stream_as_it_was() {
    assert!(placements().iter().all(|p| match p {
        Placement::Burst(n) | Placement::Scattered(n) => *n < JUMP_CONFIRM_FRAMES,
        _ => true,
    }));
    let cfg = config(5, 60, 5, vec![WindowKind::Minute, WindowKind::Hour]);
    let good = ordered(3000);
    let want = reference(&cfg, &good);
    let ahead = FLIPS_AHEAD.iter().map(|f| (f, true));
    let behind = FLIPS_BEHIND.iter().map(|f| (f, false));
    for ((name, flip), is_ahead) in ahead.chain(behind) {
        for placement in placements() {
            let (frames, flipped) = with_flips(&good, placement, *flip);
            for batch in [1, 64, 5000] {
                let what = format!("{name}, {placement:?}, batches of {batch}");
                let (got, stats) = run(&cfg, std::slice::from_ref(&frames), &vec![0; frames.len()], batch);
                assert_eq!(sorted(got), want, "{what}: the records of the stream without the flips");
                assert_eq!(stats.counted, good.len() as u64, "{what}");
                assert_eq!(stats.late, 0, "{what}: nothing made late");
                let (quarantined, too_late) = if is_ahead { (flipped, 0) } else { (0, flipped) };
                assert_eq!((stats.quarantined, stats.too_late), (quarantined as u64, too_late as u64), "{what}");
            }
        }
    }
}

#[test]
fn a_flip_does_not_move_the_watermark_while_it_is_held_or_after() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let mut engine = Engine::new(cfg, 1);
    let good = ordered(200);
    let events: Vec<Event> = good
        .iter()
        .enumerate()
        .map(|(i, &(ts, uid))| Event { ts, hash: uid, offset: i as u64, coupon: None })
        .collect();
    engine.observe_batch(0, &events[..100]);
    let before = (engine.watermark(), engine.clock(0).max_ts());
    for (k, ts) in [u32::MAX as Secs, T0 | (1 << 33), 0].into_iter().enumerate() {
        engine.observe_batch(0, &[Event { ts, hash: 99_999, offset: 1000 + k as u64, coupon: None }]);
        assert_eq!((engine.watermark(), engine.clock(0).max_ts()), before, "after ts {ts}");
        assert!(engine.emissions().is_empty(), "ts {ts} closed no window");
    }
    engine.observe_batch(0, &events[100..]);
    assert_eq!(engine.clock(0).max_ts(), Some(good.last().unwrap().0));
    assert_eq!((engine.stats().quarantined, engine.stats().too_late, engine.stats().late), (2, 1, 0));
}

/// Several streams (Kafka partitions): flips in some of them change no
/// record and make no frame of any stream late.
#[test]
fn bit_flips_in_one_stream_of_several_change_no_record() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let good: Vec<Vec<(Secs, u64)>> = (0..3).map(|_| ordered(2000)).collect();
    let mut hostile = good.clone();
    let mut flipped = 0;
    for (s, placement, flip) in [
        (0, Placement::First, FLIPS_AHEAD[2].1),
        (1, Placement::Burst(50), FLIPS_AHEAD[0].1),
        (1, Placement::Scattered(30), FLIPS_AHEAD[1].1),
        (2, Placement::Single, FLIPS_AHEAD[3].1),
    ] {
        let (frames, n) = with_flips(&hostile[s], placement, flip);
        hostile[s] = frames;
        flipped += n;
    }
    for seed in 0..4 {
        let order_of = |streams: &[Vec<(Secs, u64)>]| {
            let mut order: Vec<usize> = streams.iter().enumerate().flat_map(|(i, s)| vec![i; s.len()]).collect();
            shuffle(&mut order, seed);
            order
        };
        let (want, base) = run(&cfg, &good, &order_of(&good), 50);
        let (got, stats) = run(&cfg, &hostile, &order_of(&hostile), 50);
        assert_eq!(sorted(got), sorted(want), "order seed {seed}");
        assert_eq!(stats.counted, base.counted);
        assert_eq!((stats.late, stats.too_late), (base.late, 0), "order seed {seed}");
        assert_eq!(stats.quarantined, flipped as u64);
    }
}

// ---------------------------------------------------------------------------
// The cap on open windows

#[test]
fn the_oldest_window_is_forced_out_at_the_cap() {
    let mut cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    cfg.max_open_windows = 4;
    // Two streams; stream 0 stays at T0 and holds the global watermark back
    // (a lagging partition) while stream 1 opens a window a minute.
    let mut engine = Engine::new(cfg, 2);
    let lagging: Vec<Event> = (0..20).map(|i| Event { ts: T0, hash: i, offset: i, coupon: None }).collect();
    engine.observe_batch(0, &lagging);
    let minute = WindowKind::Minute.start(T0);
    let mut offset = 100;
    let mut feed = |engine: &mut Engine, stream: usize, ts: Secs, hash: u64| {
        engine.observe_batch(stream, &[Event { ts, hash, offset, coupon: None }]);
        offset += 1;
    };
    for m in 0..10 {
        for u in 0..(m + 1) {
            feed(&mut engine, 1, minute + 60 * m + 30, u as u64);
        }
        assert!(engine.open_windows() <= 4, "at most 4 open: {}", engine.open_windows());
    }
    let stats = engine.stats();
    assert_eq!(stats.windows_forced, 6, "minutes 0 to 5 forced out by minutes 4 to 9");
    assert!(stats.open_windows_peak <= 4);
    let forced: Vec<Emission> = std::mem::take(engine.emissions());
    let counts: Vec<(Secs, u64, u64)> = forced.iter().map(|e| (e.start, e.unique_users, e.frames)).collect();
    // Minute 0 has the lagging stream's 20 frames (users 0..20) and user 0.
    let mut want = vec![(minute, 20, 21)];
    want.extend((1..6).map(|m| (minute + 60 * m, m as u64 + 1, m as u64 + 1)));
    assert_eq!(counts, want, "forced windows carry their frames");
    assert_eq!(engine.take_first_forced(), Some((WindowKind::Minute, minute)));
    assert_eq!(engine.take_first_forced(), None, "reported once");

    // Frames of the lagging stream for forced windows would be on time
    // (minute 2) and late (minute 0) by the watermark; they are too late.
    feed(&mut engine, 0, minute + 60 * 2 + 1, 77);
    feed(&mut engine, 0, minute + 1, 78);
    assert_eq!((engine.stats().too_late, engine.stats().late), (2, 0));
    assert_eq!(engine.stats().windows_forced, 6, "no window opened or forced for them");
    engine.flush();
    let rest: Vec<(Secs, u64)> = engine.emissions().iter().map(|e| (e.start, e.frames)).collect();
    assert_eq!(rest, (6..10).map(|m| (minute + 60 * m, m as u64 + 1)).collect::<Vec<_>>());
    assert_eq!(engine.stats().windows_forced, 6, "the end of input forces nothing");
}

#[test]
fn a_cap_the_stream_does_not_reach_changes_nothing() {
    let mut cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let frames = stream(5000, 10, 40, 10, 300, 7);
    let order = vec![0; frames.len()];
    let (base, base_stats) = run(&cfg, std::slice::from_ref(&frames), &order, 100);
    assert_eq!(base_stats.windows_forced, 0);
    // The most windows this stream ever has open, as the cap.
    cfg.max_open_windows = base_stats.open_windows_peak as usize;
    let (capped, stats) = run(&cfg, std::slice::from_ref(&frames), &order, 100);
    assert_eq!((stats.windows_forced, capped), (0, base), "a cap the stream never reaches changes nothing");
    cfg.max_open_windows -= 1;
    let (_, stats) = run(&cfg, std::slice::from_ref(&frames), &order, 100);
    assert!(stats.windows_forced > 0, "one less is reached: the peak is exact");
}

#[test]
fn a_restart_after_forced_windows_skips_them() {
    let mut cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    cfg.max_open_windows = 3;
    let mut engine = Engine::new(cfg.clone(), 2);
    engine.observe_batch(0, &(0..20).map(|i| Event { ts: T0, hash: i, offset: i, coupon: None }).collect::<Vec<_>>());
    let minute = WindowKind::Minute.start(T0);
    // Three frames a minute for 8 minutes: past the warm-up, 5 forced out.
    let later: Vec<Event> = (0..24)
        .map(|i| Event { ts: minute + 60 * (i / 3) + 1, hash: 100 + i as u64, offset: i as u64, coupon: None })
        .collect();
    engine.observe_batch(1, &later);
    assert_eq!(engine.stats().windows_forced, 5);
    let state = engine.stream_state(1, later.len() as u64, false).unwrap();
    let forced_end = minute + 60 * 5;
    // A window is final for a resumed run when end + allowed <= final_before.
    assert!(forced_end + 60 <= state.final_before.unwrap(), "forced windows are final in the saved state: {state:?}");

    // Resumed: a late frame for the last forced window, read after the
    // restart, must not reopen it (it would emit a record the first run
    // never had, or another value for a revision it had).
    let mut resumed = Engine::new(cfg, 2);
    resumed.resume_stream(1, state);
    let from = state.resume.offset as usize;
    resumed.observe_batch(1, &later[from..]);
    let late = Event { ts: forced_end - 30, hash: 999, offset: later.len() as u64, coupon: None };
    resumed.observe_batch(1, &[late]);
    resumed.flush();
    let reopened: Vec<_> = resumed.emissions().iter().filter(|e| e.end <= forced_end).cloned().collect();
    assert!(reopened.is_empty(), "a forced window came back after the restart: {reopened:?}");
}

/// Idleness belongs to the caller (`set_idle`): a batch with no frames, such
/// as a Kafka end of partition read again, must not make an idle stream
/// active behind the caller's back, where its old watermark would hold the
/// global one back.
#[test]
fn an_empty_batch_leaves_an_idle_stream_idle() {
    let cfg = config(5, 60, 5, vec![WindowKind::Minute]);
    let mut engine = Engine::new(cfg, 2);
    let minute = WindowKind::Minute.start(T0);
    engine.observe_batch(1, &[Event { ts: minute + 1, hash: 1, offset: 0, coupon: None }]);
    engine.set_idle(1, true);
    engine.observe_batch(1, &[]);
    // Past stream 0's warm-up, then a frame that takes it past the minute.
    let events: Vec<Event> =
        (0..20u64).map(|i| Event { ts: minute + 3 * i as Secs, hash: 10 + i, offset: i, coupon: None }).collect();
    engine.observe_batch(0, &events);
    engine.observe_batch(0, &[Event { ts: minute + 120, hash: 99, offset: 20, coupon: None }]);
    assert_eq!(engine.watermark(), Some(minute + 115), "stream 0 alone moves the watermark");
    let out = std::mem::take(engine.emissions());
    assert_eq!(out.iter().map(|e| (e.start, e.unique_users)).collect::<Vec<_>>(), [(minute, 21)]);
}

/// Positions in the interleaving (indexes into `order`) where something
/// happens to a scale-out run (see [`run_shipped`]).
struct Mishaps {
    snapshots: Vec<usize>,
    crashes: Vec<usize>,
    saves: Vec<usize>,
    merge_restarts: Vec<usize>,
}

/// A scale-out worker of one stream in a test: its shipping engine and
/// where its next message starts.
struct TestWorker {
    engine: Engine,
    next: usize,
    cut_from: u64,
}

impl TestWorker {
    fn new(cfg: &EngineConfig) -> TestWorker {
        TestWorker { engine: Engine::shipping(cfg.clone()), next: 0, cut_from: 0 }
    }

    /// A worker resumed from a saved checkpoint (through its bytes); feed
    /// it from the returned offset.
    fn resumed(cfg: &EngineConfig, saved: &[u8]) -> (TestWorker, usize) {
        let checkpoint = crate::window::partials::PartitionCheckpoint::decode(saved).unwrap();
        let engine = checkpoint.resume(cfg.clone()).unwrap();
        let from = checkpoint.stream.resume.offset as usize;
        (TestWorker { engine, next: from, cut_from: checkpoint.cut_from.min(from as u64) }, from)
    }

    /// Feeds `events` frame by frame, cutting a slots message at each frame
    /// that completes slots, then a progress message.
    fn feed(&mut self, s: usize, events: &[Event], out: &mut Vec<crate::window::partials::Partials>) {
        for &ev in events {
            self.engine.observe(0, ev);
            self.next = ev.offset as usize + 1;
            if self.engine.has_shipped() {
                out.push(self.message(s, crate::window::partials::Carries::Slots, false));
            }
        }
        out.push(self.message(s, crate::window::partials::Carries::Progress, false));
    }

    fn message(
        &mut self,
        s: usize,
        carries: crate::window::partials::Carries,
        end: bool,
    ) -> crate::window::partials::Partials {
        use crate::window::partials::{Carries, Partials, Status, ship_states};
        let to = self.next as u64;
        let shipped = match carries {
            Carries::Slots => self.engine.take_shipped(),
            Carries::Snapshot => self.engine.snapshot_pending(),
            Carries::Progress => Vec::new(),
        };
        let from = self.cut_from;
        if carries == Carries::Slots {
            self.cut_from = to;
        }
        let message = Partials {
            topic: "t".into(),
            partition: s as u32,
            partitions: 8,
            config: String::new(),
            from,
            to,
            watermark: self.engine.watermark(),
            status: if end { Status::Ended } else { Status::Active },
            carries,
            windows: ship_states(shipped, s as u32, to).unwrap(),
        };
        // Every message goes through its bytes, as on the partials topic.
        crate::window::partials::Partials::decode(&message.encode()).unwrap()
    }
}

/// Runs one shipping engine per stream and a merge engine fed with their
/// messages (through [`crate::window::partials::Input`], as `kuniq merge`
/// does), the streams interleaved by `order`, each worker fed in batches of
/// `batch`. Before the frames at the positions in `snapshots` the stream's
/// worker sends a snapshot of what it read (as when idle); at the positions
/// in `crashes` it is replaced by a new worker that resumes from the
/// worker's last checkpoint (taken before the frames at the positions in
/// `saves`) or, with none, reads the stream again from its start (as after
/// a rebalance or a crash); at the positions in `merge_restarts` the merge
/// is replaced by one restored from its checkpoint. Returns the merge's
/// records.
fn run_shipped(
    cfg: &EngineConfig,
    streams: &[Vec<(Secs, u64)>],
    order: &[usize],
    batch: usize,
    mishaps: &Mishaps,
) -> Vec<Emission> {
    let Mishaps { snapshots, crashes, saves, merge_restarts } = mishaps;
    use crate::window::partials::{Carries, Input};
    let mut workers: Vec<TestWorker> = streams.iter().map(|_| TestWorker::new(cfg)).collect();
    let mut merge = Engine::new(cfg.clone(), streams.len());
    let mut inputs = vec![Input::default(); streams.len()];
    let mut pending: Vec<Vec<Event>> = vec![Vec::new(); streams.len()];
    let mut read = vec![0usize; streams.len()];
    let mut saved: Vec<Option<Vec<u8>>> = vec![None; streams.len()];
    let mut out = Vec::new();
    let mut messages = Vec::new();
    let deliver =
        |s: usize, messages: &mut Vec<_>, merge: &mut Engine, inputs: &mut Vec<Input>, out: &mut Vec<Emission>| {
            for m in messages.drain(..) {
                inputs[s].apply(merge, s, &m).unwrap();
            }
            out.append(merge.emissions());
        };
    let events = |s: usize, range: std::ops::Range<usize>| -> Vec<Event> {
        range.map(|i| event(cfg, streams[s][i].0, streams[s][i].1, i as u64)).collect()
    };
    for (i, &s) in order.iter().enumerate() {
        if merge_restarts.contains(&i) {
            use crate::window::partials::MergeCheckpoint;
            let bytes = MergeCheckpoint::of(&merge, &inputs, "t", Vec::new()).encode();
            (merge, inputs) = MergeCheckpoint::decode(&bytes).unwrap().restore(cfg.clone()).unwrap();
            assert!(merge.emissions().is_empty(), "a restored merge sends nothing again");
        }
        if saves.contains(&i) {
            workers[s].feed(s, &std::mem::take(&mut pending[s]), &mut messages);
            deliver(s, &mut messages, &mut merge, &mut inputs, &mut out);
            let w = &workers[s];
            saved[s] = crate::window::partials::PartitionCheckpoint::of(&w.engine, read[s] as u64, w.cut_from)
                .map(|c| c.encode());
        }
        if snapshots.contains(&i) || crashes.contains(&i) {
            workers[s].feed(s, &std::mem::take(&mut pending[s]), &mut messages);
            messages.push(workers[s].message(s, Carries::Snapshot, false));
            deliver(s, &mut messages, &mut merge, &mut inputs, &mut out);
        }
        if crashes.contains(&i) {
            // What the crashed worker had not sent is lost; the new one
            // resumes from the last checkpoint, or reads everything again,
            // in its own batches.
            let from;
            (workers[s], from) = match &saved[s] {
                Some(bytes) => TestWorker::resumed(cfg, bytes),
                None => (TestWorker::new(cfg), 0),
            };
            for chunk in events(s, from..read[s]).chunks(batch.max(7) / 2 + 1) {
                workers[s].feed(s, chunk, &mut messages);
            }
            deliver(s, &mut messages, &mut merge, &mut inputs, &mut out);
        }
        pending[s].extend(events(s, read[s]..read[s] + 1));
        read[s] += 1;
        if pending[s].len() >= batch {
            workers[s].feed(s, &std::mem::take(&mut pending[s]), &mut messages);
            deliver(s, &mut messages, &mut merge, &mut inputs, &mut out);
        }
    }
    for (s, events) in pending.into_iter().enumerate() {
        workers[s].feed(s, &events, &mut messages);
        workers[s].engine.flush();
        messages.push(workers[s].message(s, Carries::Slots, true));
        deliver(s, &mut messages, &mut merge, &mut inputs, &mut out);
        assert!(workers[s].engine.emissions().is_empty(), "a shipping engine emits no record");
    }
    merge.flush();
    out.append(merge.emissions());
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Scale-out: engines that each read one stream and ship their slots,
    /// merged, emit exactly the records of one engine reading every
    /// stream, for every kind, estimator and early interval, whatever the
    /// interleaving, the workers' batches, their snapshots (idle) and
    /// workers replaced by others that resume from a saved checkpoint or
    /// read their stream again, and merges restored from their checkpoint.
    #[test]
    fn shipped_slots_merge_into_the_records_of_one_engine(
        lens in prop::collection::vec(1usize..700, 1..5),
        seed in any::<u64>(),
        batch_a in 1usize..300,
        batch_b in 1usize..300,
        shuffle_seed in any::<u64>(),
        early in prop::sample::select(vec![0u64, 10, 60]),
        allowed in prop::sample::select(vec![0u64, 7, 60]),
        estimator in estimators(),
        emit_sketch in any::<bool>(),
        snapshots in prop::collection::vec(0usize..2800, 0..6),
        crashes in prop::collection::vec(0usize..2800, 0..3),
        saves in prop::collection::vec(0usize..2800, 0..4),
        merge_restarts in prop::collection::vec(0usize..2800, 0..3),
    ) {
        let mut cfg = config(5, allowed, 5, vec![WindowKind::Minute, WindowKind::Hour, WindowKind::Day]);
        cfg.early_interval_secs = early;
        cfg.estimator = estimator;
        cfg.emit_sketch = emit_sketch;
        let streams: Vec<Vec<(Secs, u64)>> =
            lens.iter().enumerate().map(|(i, &n)| stream(n, 3, 40, 15, 200, seed ^ i as u64)).collect();
        let sequential: Vec<usize> = streams.iter().enumerate().flat_map(|(i, s)| vec![i; s.len()]).collect();
        let mut shuffled = sequential.clone();
        shuffle(&mut shuffled, shuffle_seed);
        let (single, _) = run(&cfg, &streams, &sequential, batch_a);
        let merged = run_shipped(&cfg, &streams, &shuffled, batch_b, &Mishaps { snapshots, crashes, saves, merge_restarts });
        prop_assert_eq!(sorted(single), sorted(merged));
    }
}
