//! A window's state as data: saved, shipped to another process, merged.
//!
//! A [`WindowState`] holds what the input has put into one window so far,
//! split the way the engine's guarantees need it:
//!
//! - by **part**: the frames of a set of input streams (Kafka partitions;
//!   stream 0 for a file), with, per stream, the offset its frames were read
//!   to (`covers`). One process counting every partition keeps one part
//!   covering them all; a scale-out worker keeps one part per partition.
//! - by **stage** within a part: stage 0 holds the frames admitted before
//!   the stream's watermark passed the window's end, stage `s` the late
//!   frames of the `s`-th revision interval after it (see
//!   [`crate::window::engine`]). Revision `r` of the window counts stages
//!   `0..=r` of every part, which is why records do not depend on how
//!   streams interleave.
//! - by **provisional record** for the on-time frames of an open window
//!   not yet counted in a provisional record (`--early-interval`): entry
//!   `k - 1` holds the frames first counted in provisional record `k`.
//! - and **what was emitted**: records sent so far, the last one's values,
//!   the stages and provisional records completed, and whether the closed
//!   window's record went out, so a restart goes on without sending a
//!   record twice or a different record under the same revision.
//!
//! [`WindowState::merge`] gives the state of the union. Parts of different
//! streams are combined; for the same streams the part that read further
//! wins (a part is a function of its streams' frames in offset order, so
//! the one that read further holds the other); emitted bookkeeping takes
//! the furthest. That makes merge commutative, associative and idempotent.
//! Parts whose streams overlap without being the same cannot be combined
//! exactly (a set cannot be subtracted) and are refused.
//!
//! # Encoding (version 2)
//!
//! Little-endian, no padding; equal states encode to equal bytes (parts
//! sorted by their first stream, hashes ascending, sketches canonical):
//!
//! ```text
//! magic    "KUWS"            4 bytes
//! version  u8 = 2
//! kind     u8                0 minute, 1 hour, 2 day, 3 week, 4 month, 5 year
//! start    i64               window start, unix seconds
//! emitted  u32 revisions, u32 stages, u8 has_last, [u64 users, u64 frames],
//!          u32 provisional records completed, u8 closed record sent
//! parts    u32 count, then per part:
//!   covers u32 count, then (u32 stream, u64 read_to) ascending by stream
//!   stages u32 count, then per stage: u64 frames, then its users:
//!          u8 0 (exact), u64 n, n × u64 hash ascending; or
//!          u8 1 (sketch), u32 n, n bytes of the DataSketches HLL sketch
//!          (compact, canonical: UidSketch::canonical_bytes)
//!   early  u32 count, then per provisional record, as a stage
//! ```
//!
//! Version 1 (before sketches) is read too: the same without the users'
//! tag byte, every stage exact.
//!
//! Hashes are the portable uid hash ([`crate::count::UidHasher`]: XXH3-64,
//! seed 0), so a state means the same on every machine and version; a
//! sketch holds DataSketches' hashes of the uids (MurmurHash3, seed 9001).
//! One state holds one estimator's users: exact and sketched parts of a
//! window do not merge.

use std::fmt;

use super::{Secs, WindowKind};
use crate::count::sketch::UidSketch;
use crate::count::{MixedEstimators, UidSet, Users};

/// First bytes of an encoded window state.
pub const MAGIC: &[u8; 4] = b"KUWS";

/// The encoding's version; decoding refuses any other.
pub const VERSION: u8 = 2;

/// One window's state (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowState {
    /// Window kind.
    pub kind: WindowKind,
    /// Window start, unix seconds.
    pub start: Secs,
    /// What the streams put in, per part; disjoint streams, sorted by
    /// their first stream.
    pub parts: Vec<Part>,
    /// What was emitted for the window so far.
    pub emitted: Emitted,
}

/// The frames of some streams in one window.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Part {
    /// Per stream, ascending: the offset below which its frames are in.
    pub covers: Vec<(u32, u64)>,
    /// Per stage, from 0 (on time): the uids and frame count.
    pub stages: Vec<Stage>,
    /// Per provisional record `k` (at `k - 1`): on-time frames first
    /// counted in it, not yet in stage 0.
    pub early: Vec<Stage>,
}

/// The frames of one stage of one part.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// Distinct users: uid hashes, or a sketch.
    pub users: Users,
    /// Frames (every frame, repeats of a uid too).
    pub frames: u64,
}

/// What was emitted for a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Emitted {
    /// Records sent (revisions `0..revisions`).
    pub revisions: u32,
    /// Stages completed.
    pub stages: u32,
    /// (unique users, frames) of the last record, once one was sent.
    pub last: Option<(u64, u64)>,
    /// Provisional records completed.
    pub early: u32,
    /// A record of the closed window was sent.
    pub closed: bool,
}

/// Why two states cannot be merged, or bytes cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The states are of different windows.
    DifferentWindows,
    /// Parts cover overlapping but different streams, or the same streams
    /// with neither read further than the other in every stream.
    Overlap {
        /// A stream both parts cover.
        stream: u32,
    },
    /// The states hold users counted with different estimators (exact and
    /// a sketch).
    MixedEstimators,
    /// The bytes do not start with [`MAGIC`].
    NotAState,
    /// An encoding version this kuniq does not read.
    Version(u8),
    /// The bytes end early, run on, or hold an impossible value.
    Damaged(&'static str),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::DifferentWindows => f.write_str("the states are of different windows"),
            StateError::Overlap { stream } => write!(
                f,
                "the states both cover stream {stream} but neither holds the other (parts must cover the same \
                 streams, the one read further in every stream, or disjoint streams)"
            ),
            StateError::MixedEstimators => MixedEstimators.fmt(f),
            StateError::NotAState => f.write_str("not an encoded kuniq window state (no KUWS magic)"),
            StateError::Version(v) => {
                write!(f, "window state encoding version {v}; this kuniq reads versions 1 to {VERSION}")
            }
            StateError::Damaged(what) => write!(f, "damaged window state: {what}"),
        }
    }
}

impl std::error::Error for StateError {}

impl Part {
    /// The streams this part covers, ascending.
    pub fn streams(&self) -> impl Iterator<Item = u32> + '_ {
        self.covers.iter().map(|&(stream, _)| stream)
    }

    /// Frames in every stage.
    pub fn frames(&self) -> u64 {
        self.stages.iter().map(|s| s.frames).sum()
    }

    /// Frames in every stage and every provisional record's entry.
    pub fn all_frames(&self) -> u64 {
        self.frames() + self.early.iter().map(|s| s.frames).sum::<u64>()
    }

    /// How `self` compares with `other`, a part of the same streams: the
    /// one that read at least as far in every stream holds the other.
    /// `None` when each read further somewhere.
    fn reach(&self, other: &Part) -> Option<std::cmp::Ordering> {
        use std::cmp::Ordering::*;
        let mut order = Equal;
        for (&(_, a), &(_, b)) in self.covers.iter().zip(&other.covers) {
            match (order, a.cmp(&b)) {
                (_, Equal) => {}
                (Equal, o) => order = o,
                (o, p) if o != p => return None,
                _ => {}
            }
        }
        Some(order)
    }
}

impl WindowState {
    /// An empty state of the window `kind` starting at `start`.
    pub fn new(kind: WindowKind, start: Secs) -> WindowState {
        WindowState { kind, start, parts: Vec::new(), emitted: Emitted::default() }
    }

    /// Distinct users and frames of stages `0..=stage` of every part: what
    /// revision `stage` of the window says.
    ///
    /// Errors when parts hold users of different estimators.
    pub fn count_through(&self, stage: u32) -> Result<(u64, u64), StateError> {
        let mut users: Option<Users> = None;
        let mut frames = 0;
        for part in &self.parts {
            for s in part.stages.iter().take(stage as usize + 1) {
                match &mut users {
                    None => users = Some(s.users.clone()),
                    Some(u) => u.union_with(&s.users).map_err(|_| StateError::MixedEstimators)?,
                }
                frames += s.frames;
            }
        }
        Ok((users.map_or(0, |u| u.count()), frames))
    }

    /// The state of the union of `self` and `other`.
    pub fn merge(&self, other: &WindowState) -> Result<WindowState, StateError> {
        if (self.kind, self.start) != (other.kind, other.start) {
            return Err(StateError::DifferentWindows);
        }
        let mut parts: Vec<Part> = self.parts.clone();
        for theirs in &other.parts {
            let overlapping: Vec<usize> =
                (0..parts.len()).filter(|&i| parts[i].streams().any(|s| theirs.streams().any(|t| t == s))).collect();
            match overlapping.as_slice() {
                [] => parts.push(theirs.clone()),
                &[i] if parts[i].streams().eq(theirs.streams()) => {
                    let ours = &parts[i];
                    let stream = ours.covers[0].0;
                    let keep_theirs = match ours.reach(theirs).ok_or(StateError::Overlap { stream })? {
                        std::cmp::Ordering::Less => true,
                        std::cmp::Ordering::Greater => false,
                        // Same reach: the same frames, so the same part,
                        // unless the inputs differ; pick one canonically so
                        // that merge stays commutative even then.
                        std::cmp::Ordering::Equal => encode_part(theirs) > encode_part(ours),
                    };
                    if keep_theirs {
                        parts[i] = theirs.clone();
                    }
                }
                &[i, ..] => {
                    let stream = parts[i].streams().find(|s| theirs.streams().any(|t| t == *s)).unwrap_or(0);
                    return Err(StateError::Overlap { stream });
                }
            }
        }
        parts.sort_by_key(|p| p.covers.first().map(|&(s, _)| s));
        Ok(WindowState { kind: self.kind, start: self.start, parts, emitted: self.emitted.max(other.emitted) })
    }

    /// The state that `self`, a window's changes since its last whole save
    /// ([`crate::window::engine::Engine::saved_window_changes`]: every part
    /// whole but stage 0's users, which hold only the users gained since),
    /// and `whole`, that save, describe together: `whole`'s stage 0 users
    /// added to `self`'s. Users only ever join stage 0, so nothing else of
    /// `whole` is needed.
    pub fn with_saved(mut self, whole: &WindowState) -> Result<WindowState, StateError> {
        if (self.kind, self.start) != (whole.kind, whole.start) {
            return Err(StateError::DifferentWindows);
        }
        for saved in &whole.parts {
            let Some(first) = saved.covers.first().map(|c| c.0) else { continue };
            let part = self
                .parts
                .iter_mut()
                .find(|p| p.streams().any(|s| s == first))
                .ok_or(StateError::Overlap { stream: first })?;
            let (Some(stage), Some(saved_stage)) = (part.stages.first_mut(), saved.stages.first()) else {
                continue;
            };
            stage.users.union_with(&saved_stage.users).map_err(|_| StateError::MixedEstimators)?;
        }
        Ok(self)
    }

    /// The state's bytes (see the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let users: usize = self.parts.iter().flat_map(|p| &p.stages).map(|s| s.users.state_bytes() / 2).sum();
        let mut out = Vec::with_capacity(64 + users);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(kind_code(self.kind));
        out.extend_from_slice(&self.start.to_le_bytes());
        let e = &self.emitted;
        out.extend_from_slice(&e.revisions.to_le_bytes());
        out.extend_from_slice(&e.stages.to_le_bytes());
        match e.last {
            Some((users, frames)) => {
                out.push(1);
                out.extend_from_slice(&users.to_le_bytes());
                out.extend_from_slice(&frames.to_le_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&e.early.to_le_bytes());
        out.push(u8::from(e.closed));
        out.extend_from_slice(&(self.parts.len() as u32).to_le_bytes());
        for part in &self.parts {
            out.extend_from_slice(&encode_part(part));
        }
        out
    }

    /// A state from its bytes; every length and order is checked, so
    /// damaged bytes give an error, never a panic or a wrong state.
    pub fn decode(bytes: &[u8]) -> Result<WindowState, StateError> {
        let mut r = Reader(bytes);
        if r.take(4).ok() != Some(&MAGIC[..]) {
            return Err(StateError::NotAState);
        }
        let version = r.u8()?;
        if !(1..=VERSION).contains(&version) {
            return Err(StateError::Version(version));
        }
        let kind = kind_from_code(r.u8()?).ok_or(StateError::Damaged("unknown window kind"))?;
        let start = r.u64()? as Secs;
        let revisions = r.u32()?;
        let stages = r.u32()?;
        let last = match r.u8()? {
            0 => None,
            1 => Some((r.u64()?, r.u64()?)),
            _ => return Err(StateError::Damaged("bad last-record flag")),
        };
        let early = r.u32()?;
        let closed = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(StateError::Damaged("bad closed flag")),
        };
        let mut parts = Vec::new();
        for _ in 0..r.count(12)? {
            parts.push(decode_part(&mut r, version)?);
        }
        if !r.0.is_empty() {
            return Err(StateError::Damaged("bytes after the end"));
        }
        if !parts.windows(2).all(|w| w[0].covers.first() < w[1].covers.first()) {
            return Err(StateError::Damaged("parts out of order"));
        }
        Ok(WindowState { kind, start, parts, emitted: Emitted { revisions, stages, last, early, closed } })
    }
}

/// The windows that `changes` (one checkpoint's
/// [`crate::window::engine::Engine::saved_window_changes`]) and `whole`
/// (the last whole save before it) describe: each window of `changes`
/// united with its state in `whole` ([`WindowState::with_saved`]). Windows
/// only in `whole` had closed: they are left out.
pub fn with_saved_windows(changes: Vec<WindowState>, whole: &[WindowState]) -> Result<Vec<WindowState>, StateError> {
    changes
        .into_iter()
        .map(|w| match whole.iter().find(|s| (s.kind, s.start) == (w.kind, w.start)) {
            Some(saved) => w.with_saved(saved),
            None => Ok(w),
        })
        .collect()
}

fn encode_part(part: &Part) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(part.covers.len() as u32).to_le_bytes());
    for &(stream, read_to) in &part.covers {
        out.extend_from_slice(&stream.to_le_bytes());
        out.extend_from_slice(&read_to.to_le_bytes());
    }
    for stages in [&part.stages, &part.early] {
        out.extend_from_slice(&(stages.len() as u32).to_le_bytes());
        for stage in stages {
            out.extend_from_slice(&stage.frames.to_le_bytes());
            match &stage.users {
                Users::Exact(set) => {
                    out.push(0);
                    out.extend_from_slice(&set.len().to_le_bytes());
                    for hash in set.sorted() {
                        out.extend_from_slice(&hash.to_le_bytes());
                    }
                }
                Users::Sketch(sketch) => {
                    let bytes = sketch.canonical_bytes();
                    out.push(1);
                    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                    out.extend_from_slice(&bytes);
                }
            }
        }
    }
    out
}

fn decode_part(r: &mut Reader<'_>, version: u8) -> Result<Part, StateError> {
    let mut covers = Vec::new();
    for _ in 0..r.count(12)? {
        covers.push((r.u32()?, r.u64()?));
    }
    if covers.is_empty() || !covers.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(StateError::Damaged("a part's streams are missing or out of order"));
    }
    let stages = decode_stages(r, version)?;
    let early = decode_stages(r, version)?;
    let mut all = stages.iter().chain(&early).map(|s| std::mem::discriminant(&s.users));
    if let Some(first) = all.next()
        && all.any(|d| d != first)
    {
        return Err(StateError::MixedEstimators);
    }
    Ok(Part { covers, stages, early })
}

fn decode_stages(r: &mut Reader<'_>, version: u8) -> Result<Vec<Stage>, StateError> {
    let mut stages = Vec::new();
    for _ in 0..r.count(16)? {
        let frames = r.u64()?;
        // Version 1 has no tag: every stage is exact.
        let tag = if version == 1 { 0 } else { r.u8()? };
        match tag {
            0 => {}
            1 => {
                let n = r.count(1)? as usize;
                let bytes = r.take(n)?;
                let sketch =
                    UidSketch::from_bytes(bytes).map_err(|_| StateError::Damaged("a sketch that does not decode"))?;
                if sketch.canonical_bytes() != bytes {
                    // Canonical bytes only: one state, one encoding.
                    return Err(StateError::Damaged("a sketch not in canonical form"));
                }
                if frames == 0 && !sketch.is_empty() {
                    return Err(StateError::Damaged("a sketch of users without frames"));
                }
                stages.push(Stage { users: Users::Sketch(sketch), frames });
                continue;
            }
            _ => return Err(StateError::Damaged("unknown users tag")),
        }
        let n = r.u64()?;
        if n > (r.0.len() / 8) as u64 {
            return Err(StateError::Damaged("more hashes than bytes"));
        }
        let mut users = UidSet::new();
        let mut previous = None;
        for _ in 0..n {
            let hash = r.u64()?;
            if previous.is_some_and(|p| p >= hash) {
                return Err(StateError::Damaged("hashes out of order"));
            }
            previous = Some(hash);
            users.insert(hash);
        }
        if frames < n {
            return Err(StateError::Damaged("fewer frames than users"));
        }
        stages.push(Stage { users: Users::Exact(users), frames });
    }
    Ok(stages)
}

fn kind_code(kind: WindowKind) -> u8 {
    WindowKind::ALL.iter().position(|&k| k == kind).unwrap_or(0) as u8
}

fn kind_from_code(code: u8) -> Option<WindowKind> {
    WindowKind::ALL.get(code as usize).copied()
}

/// Reads little-endian values off the front of a byte slice (window
/// states here; the scale-out messages and checkpoints of
/// [`super::partials`] too).
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], StateError> {
        if self.0.len() < n {
            return Err(StateError::Damaged("ends early"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, StateError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, StateError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| StateError::Damaged("ends early"))?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, StateError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| StateError::Damaged("ends early"))?))
    }

    /// A u32 count of items of at least `min_bytes` each, refused when the
    /// bytes left cannot hold that many (no huge allocation from a damaged
    /// count).
    pub(crate) fn count(&mut self, min_bytes: usize) -> Result<u32, StateError> {
        let n = self.u32()?;
        if n as usize > self.0.len() / min_bytes.max(1) {
            return Err(StateError::Damaged("a count larger than the bytes left"));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
