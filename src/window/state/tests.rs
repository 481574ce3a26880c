//! Window states: encoding round trips, merge laws, and merged counts
//! against an oracle (a HashSet of the uid strings).

use std::collections::HashSet;

use proptest::prelude::*;

use super::*;
use crate::count::UidHasher;

/// One frame of a window: (stream, offset, stage, uid).
type Frame = (u32, u64, u32, String);

/// The part of `streams` holding the frames each read below its offset.
fn part_of(frames: &[Frame], streams: &[(u32, u64)]) -> Part {
    let hasher = UidHasher::new();
    let mut part = Part { covers: streams.to_vec(), stages: Vec::new(), early: Vec::new() };
    part.covers.sort_unstable();
    for (stream, offset, stage, uid) in frames {
        if !streams.iter().any(|&(s, read_to)| s == *stream && *offset < read_to) {
            continue;
        }
        if part.stages.len() <= *stage as usize {
            part.stages.resize_with(*stage as usize + 1, Stage::default);
        }
        let s = &mut part.stages[*stage as usize];
        s.users.insert(hasher.hash(uid.as_bytes()));
        s.frames += 1;
    }
    part
}

fn state(parts: Vec<Part>, emitted: Emitted) -> WindowState {
    let mut parts = parts;
    parts.sort_by_key(|p| p.covers.first().map(|&(s, _)| s));
    WindowState { kind: WindowKind::Hour, start: 1_468_242_000, parts, emitted }
}

fn frames() -> impl Strategy<Value = Vec<Frame>> {
    // Offsets are per stream and increasing; uids from a small pool so
    // streams and stages share users.
    prop::collection::vec((0u32..4, 0u32..3, 0u32..40), 0..120).prop_map(|raw| {
        let mut next = [0u64; 4];
        raw.into_iter()
            .map(|(stream, stage, uid)| {
                next[stream as usize] += 1;
                (stream, next[stream as usize] - 1, stage, format!("user-{uid}"))
            })
            .collect()
    })
}

fn emitted() -> impl Strategy<Value = Emitted> {
    (0u32..4, 0u32..4, prop::option::of((0u64..50, 0u64..200)), 0u32..3, any::<bool>())
        .prop_map(|(revisions, stages, last, early, closed)| Emitted { revisions, stages, last, early, closed })
}

/// A worker's state: per stream, a prefix of its frames (read_to).
fn worker_state(frames: &[Frame], reads: &[(u32, u64)], emitted: Emitted) -> WindowState {
    state(reads.iter().map(|&r| part_of(frames, &[r])).collect(), emitted)
}

fn reads() -> impl Strategy<Value = Vec<(u32, u64)>> {
    prop::collection::btree_map(0u32..4, 0u64..40, 0..4).prop_map(|m| m.into_iter().collect())
}

proptest! {
    #[test]
    fn encoding_round_trips(frames in frames(), reads in reads(), emitted in emitted(), whole in any::<bool>()) {
        let s = if whole && !reads.is_empty() {
            state(vec![part_of(&frames, &reads)], emitted)
        } else {
            worker_state(&frames, &reads, emitted)
        };
        let bytes = s.encode();
        prop_assert_eq!(WindowState::decode(&bytes).unwrap(), s.clone());
        // Canonical: the same state always gives the same bytes.
        prop_assert_eq!(WindowState::decode(&bytes).unwrap().encode(), bytes);
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(
        frames in frames(),
        (ra, rb, rc) in (reads(), reads(), reads()),
        (ea, eb, ec) in (emitted(), emitted(), emitted()),
    ) {
        let a = worker_state(&frames, &ra, ea);
        let b = worker_state(&frames, &rb, eb);
        let c = worker_state(&frames, &rc, ec);
        prop_assert_eq!(a.merge(&b).unwrap(), b.merge(&a).unwrap());
        prop_assert_eq!(a.merge(&b).unwrap().merge(&c).unwrap(), a.merge(&b.merge(&c).unwrap()).unwrap());
        prop_assert_eq!(a.merge(&a).unwrap(), a.clone());
        // The merge holds each stream as read furthest.
        let merged = a.merge(&b).unwrap();
        for part in &merged.parts {
            let (stream, read_to) = part.covers[0];
            let furthest = ra.iter().chain(&rb).filter(|r| r.0 == stream).map(|r| r.1).max();
            prop_assert_eq!(Some(read_to), furthest);
        }
    }

    /// Every stream read to the end, in any number of workers' states: the
    /// merge counts exactly what a HashSet of the uids does, stage by stage.
    #[test]
    fn exact_merge_equals_the_oracle(frames in frames(), split in prop::collection::vec(0usize..3, 4)) {
        let ends: Vec<(u32, u64)> = (0..4).map(|s| (s, u64::MAX)).collect();
        let workers: Vec<WindowState> = (0..3)
            .map(|w| {
                let mine: Vec<(u32, u64)> = ends.iter().copied().filter(|&(s, _)| split[s as usize] == w).collect();
                worker_state(&frames, &mine, Emitted::default())
            })
            .collect();
        let merged = workers.iter().skip(1).try_fold(workers[0].clone(), |acc, w| acc.merge(w)).unwrap();
        // One process holding every stream in one part says the same.
        let whole = state(vec![part_of(&frames, &ends)], Emitted::default());
        for stage in 0..3 {
            let upto: Vec<&Frame> = frames.iter().filter(|f| f.2 <= stage).collect();
            let users: HashSet<&str> = upto.iter().map(|f| f.3.as_str()).collect();
            let expected = (users.len() as u64, upto.len() as u64);
            prop_assert_eq!(merged.count_through(stage), expected);
            prop_assert_eq!(whole.count_through(stage), expected);
        }
    }

    /// Damaged bytes are refused, never a panic or a different state.
    #[test]
    fn damaged_bytes_are_refused(frames in frames(), reads in reads(), cut in any::<prop::sample::Index>(), flip in any::<u8>()) {
        let s = worker_state(&frames, &reads, Emitted::default());
        let bytes = s.encode();
        let at = cut.index(bytes.len());
        prop_assert!(WindowState::decode(&bytes[..at]).is_err());
        let mut changed = bytes.clone();
        changed[at] ^= flip.max(1);
        if let Ok(decoded) = WindowState::decode(&changed) {
            // A flip in a count or a hash can still decode; it must then
            // decode to what the bytes say, not to the original.
            prop_assert_eq!(decoded.encode(), changed);
        }
    }
}

#[test]
fn overlapping_parts_are_refused() {
    let frames: Vec<Frame> = vec![(0, 0, 0, "a".into()), (1, 0, 0, "b".into())];
    let both = state(vec![part_of(&frames, &[(0, 1), (1, 1)])], Emitted::default());
    let one = state(vec![part_of(&frames, &[(1, 1)])], Emitted::default());
    assert_eq!(both.merge(&one), Err(StateError::Overlap { stream: 1 }));
    // Same streams, each read further in one of them: neither holds the other.
    let x = state(vec![part_of(&frames, &[(0, 1), (1, 0)])], Emitted::default());
    let y = state(vec![part_of(&frames, &[(0, 0), (1, 1)])], Emitted::default());
    assert_eq!(x.merge(&y), Err(StateError::Overlap { stream: 0 }));
    let other = WindowState { start: 0, ..one.clone() };
    assert_eq!(one.merge(&other), Err(StateError::DifferentWindows));
}

#[test]
fn foreign_and_future_bytes_are_refused_with_a_reason() {
    assert_eq!(WindowState::decode(b"{\"window\":\"hour\"}"), Err(StateError::NotAState));
    let mut bytes = WindowState::new(WindowKind::Day, 0).encode();
    bytes[4] = 2;
    assert_eq!(WindowState::decode(&bytes), Err(StateError::Version(2)));
    assert!(StateError::Version(2).to_string().contains("reads 1"));
}
