//! What a scale-out worker sends the merge for one input partition: the
//! slots its engine shipped ([`crate::window::engine::Shipped`]) as window
//! states, and how far the partition got.
//!
//! A worker runs one shipping engine per partition
//! ([`crate::window::engine::Engine::shipping`]). Whenever the partition's
//! own watermark completes slots, the worker sends one [`Partials`]
//! message: those slots, grouped by window (each a [`WindowState`] with one
//! part covering the partition), and the watermark. Which slots complete at
//! which frame depends only on the partition's frames in offset order, so
//! a worker that reads the partition again from the same point sends the
//! same messages, cut at the same offsets; the merge keeps, per partition,
//! the offset its slots are in up to and skips messages below it.
//!
//! Messages of one partition go to one partition of the partials topic, in
//! order, so the merge has a partition's slots before the watermark that
//! completes them.
//!
//! # Encoding (version 1)
//!
//! Little-endian, no padding:
//!
//! ```text
//! magic      "KUWP"          4 bytes
//! version    u8 = 1
//! topic      u32 n, n bytes  input topic (UTF-8)
//! partition  u32             input partition
//! partitions u32             the input topic's partition count
//! config     u32 n, n bytes  the window settings (kuniq's checkpoint config text)
//! from       u64             the first offset this message's slots hold frames from
//! to         u64             slots hold the partition's frames below this offset
//! watermark  u8 has, i64     the partition's watermark once it has one
//! status     u8              0 active, 1 idle, 2 ended (read to its end, -e)
//! carries    u8              0 progress only, 1 completed slots, 2 a snapshot
//! windows    u32 n, then n × (u32 len, len bytes of an encoded WindowState)
//! ```

use std::collections::{BTreeMap, HashMap};

use super::engine::{Checkpoint, Engine, EngineConfig, Shipped, Slot, StreamState};
use super::state::{Part, Reader, Stage, StateError, WindowState};
use super::{Secs, WindowKind};
use crate::count::MixedEstimators;

/// First bytes of an encoded [`Partials`].
pub const MAGIC: &[u8; 4] = b"KUWP";

/// The encoding's version; decoding refuses any other.
pub const VERSION: u8 = 1;

/// Where a partition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being read.
    Active,
    /// Caught up with nothing new for the idle timeout: it does not hold
    /// the merge's watermark back (its frames so far are shipped).
    Idle,
    /// Read to its end by a worker that stops there (`-e`): every slot is
    /// shipped.
    Ended,
}

/// What a message's windows hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carries {
    /// Nothing: how far the partition was read, its watermark and status.
    Progress,
    /// The slots the frames in `from..to` completed, whole. Cut at the frame
    /// that completed them, so a partition read again gives the same
    /// messages.
    Slots,
    /// A copy of the slots not complete yet, as far as read (the partition
    /// went idle): each slot still comes whole in a later `Slots` message,
    /// and the merge counts only what it adds to the copy.
    Snapshot,
}

/// One message from a worker to the merge (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Partials {
    /// Input topic.
    pub topic: String,
    /// Input partition.
    pub partition: u32,
    /// The input topic's partition count.
    pub partitions: u32,
    /// The worker's window settings; the merge refuses others.
    pub config: String,
    /// Offsets `[from, to)`: the frames whose slots this message ships (or
    /// has no slots for, when none completed).
    pub from: u64,
    /// See `from`.
    pub to: u64,
    /// The partition's watermark after its frames below `to`.
    pub watermark: Option<Secs>,
    /// Active, idle or ended.
    pub status: Status,
    /// What `windows` hold.
    pub carries: Carries,
    /// The shipped slots, one state per window.
    pub windows: Vec<WindowState>,
}

impl Partials {
    /// The message key on the partials topic: `TOPIC/PARTITION`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.topic, self.partition)
    }

    /// Frames in the shipped slots.
    pub fn frames(&self) -> u64 {
        self.windows.iter().flat_map(|w| &w.parts).map(Part::all_frames).sum()
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let windows: Vec<Vec<u8>> = self.windows.iter().map(WindowState::encode).collect();
        let mut out = Vec::with_capacity(64 + windows.iter().map(|w| w.len() + 4).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        put_text(&mut out, &self.topic);
        out.extend_from_slice(&self.partition.to_le_bytes());
        out.extend_from_slice(&self.partitions.to_le_bytes());
        put_text(&mut out, &self.config);
        out.extend_from_slice(&self.from.to_le_bytes());
        out.extend_from_slice(&self.to.to_le_bytes());
        match self.watermark {
            Some(wm) => {
                out.push(1);
                out.extend_from_slice(&wm.to_le_bytes());
            }
            None => out.push(0),
        }
        out.push(match self.status {
            Status::Active => 0,
            Status::Idle => 1,
            Status::Ended => 2,
        });
        out.push(match self.carries {
            Carries::Progress => 0,
            Carries::Slots => 1,
            Carries::Snapshot => 2,
        });
        out.extend_from_slice(&(windows.len() as u32).to_le_bytes());
        for w in &windows {
            out.extend_from_slice(&(w.len() as u32).to_le_bytes());
            out.extend_from_slice(w);
        }
        out
    }

    /// A message from its bytes; damaged bytes give an error, never a
    /// panic.
    pub fn decode(bytes: &[u8]) -> Result<Partials, StateError> {
        let mut r = Reader(bytes);
        if r.take(4)? != &MAGIC[..] {
            return Err(StateError::NotAState);
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(StateError::Version(version));
        }
        let topic = r.text()?;
        let partition = r.u32()?;
        let partitions = r.u32()?;
        if partition >= partitions {
            return Err(StateError::Damaged("a partition beyond the partition count"));
        }
        let config = r.text()?;
        let from = r.u64()?;
        let to = r.u64()?;
        if to < from {
            return Err(StateError::Damaged("offsets out of order"));
        }
        let watermark = match r.u8()? {
            0 => None,
            1 => Some(r.u64()? as Secs),
            _ => return Err(StateError::Damaged("bad watermark flag")),
        };
        let status = match r.u8()? {
            0 => Status::Active,
            1 => Status::Idle,
            2 => Status::Ended,
            _ => return Err(StateError::Damaged("unknown partition status")),
        };
        let carries = match r.u8()? {
            0 => Carries::Progress,
            1 => Carries::Slots,
            2 => Carries::Snapshot,
            _ => return Err(StateError::Damaged("unknown message content")),
        };
        let n = r.u32()?;
        if n as usize > r.0.len() / 4 {
            return Err(StateError::Damaged("a count larger than the bytes left"));
        }
        let mut windows = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = r.u32()? as usize;
            let state = WindowState::decode(r.take(len)?)?;
            if state.parts.iter().any(|p| p.covers.iter().any(|&(s, _)| s != partition)) {
                return Err(StateError::Damaged("a window of another partition"));
            }
            windows.push(state);
        }
        if !r.0.is_empty() {
            return Err(StateError::Damaged("bytes after the end"));
        }
        Ok(Partials { topic, partition, partitions, config, from, to, watermark, status, carries, windows })
    }
}

/// What the merge knows of one input partition, and how it applies the
/// partition's messages to its engine.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Input {
    /// Completed slots are absorbed for the frames below this offset.
    pub absorbed_to: Option<u64>,
    /// How far the partition's messages say it was read.
    pub read_to: u64,
    /// The status last reported, once one was.
    pub status: Option<Status>,
    /// Frames of slots absorbed from snapshots, not yet shipped whole.
    tentative: HashMap<(WindowKind, Secs, Slot), u64>,
}

/// What applying a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Its slots (if any) were absorbed.
    Absorbed,
    /// Its slots were absorbed before (the partition was read again).
    Repeat,
}

impl Input {
    /// Applies `m`, a message of stream `stream` of `engine` (its input
    /// partition): completed slots not absorbed yet (each counting only the
    /// frames a snapshot did not already bring), snapshots (what they add to
    /// the last one), then the watermark and status.
    pub fn apply(&mut self, engine: &mut Engine, stream: usize, m: &Partials) -> Result<Applied, MixedEstimators> {
        // Slots cut at the same frame repeat an absorbed message, except the
        // end's (every window completed at the end of the partition). A
        // snapshot at the last cut holds slots not complete there: new.
        let ends = m.status == Status::Ended && self.status != Some(Status::Ended);
        let repeat = self.absorbed_to.is_some_and(|done| match m.carries {
            Carries::Progress => false,
            // After the end's slots, a snapshot at the end holds nothing new.
            Carries::Snapshot => m.to < done || (m.to == done && self.status == Some(Status::Ended)),
            Carries::Slots => m.to < done || (m.to == done && !ends),
        });
        if !repeat {
            for window in &m.windows {
                let mut window = window.clone();
                for part in &mut window.parts {
                    let slots = part.stages.iter_mut().enumerate().map(|(s, st)| (Slot::Stage(s as u32), st));
                    let early = part.early.iter_mut().enumerate().map(|(k, st)| (Slot::Early(k as u32 + 1), st));
                    for (slot, stage) in slots.chain(early) {
                        let key = (window.kind, window.start, slot);
                        match m.carries {
                            Carries::Slots => {
                                let before = self.tentative.remove(&key).unwrap_or(0);
                                stage.frames = stage.frames.saturating_sub(before);
                            }
                            Carries::Snapshot if stage.frames > 0 => {
                                let before = self.tentative.entry(key).or_insert(0);
                                let total = stage.frames;
                                stage.frames = total.saturating_sub(*before);
                                *before = (*before).max(total);
                            }
                            _ => {}
                        }
                    }
                }
                engine.absorb(&window)?;
            }
            if m.carries == Carries::Slots {
                self.absorbed_to = Some(m.to.max(self.absorbed_to.unwrap_or(0)));
            }
        }
        self.read_to = self.read_to.max(m.to);
        if let Some(wm) = m.watermark {
            engine.report_watermark(stream, wm);
        }
        if self.status != Some(m.status) {
            match m.status {
                Status::Active => engine.set_idle(stream, false),
                Status::Idle => engine.set_idle(stream, true),
                Status::Ended => engine.finish_stream(stream),
            }
            self.status = Some(m.status);
        }
        Ok(if repeat { Applied::Repeat } else { Applied::Absorbed })
    }
}

/// First bytes of an encoded [`PartitionCheckpoint`].
pub const CHECKPOINT_MAGIC: &[u8; 4] = b"KUWC";

/// What a worker saves of one partition, so that the next owner of the
/// partition (after a rebalance or a crash) resumes it instead of reading
/// it from its start. Resumed there, the partition's engine cuts the same
/// messages as the one that saved it: re-read frames go into windows
/// whose slots the merge already has (skipped), later ones as before.
///
/// Encoding (version 1), little-endian: magic `KUWC`, u8 version 1, u64
/// position, u64 cut_from, the stream state (u64 resume offset, u8 has +
/// i64 max ts, u8 has + i64 final before, u64 read to), u32 n and n ×
/// (u32 len, an encoded [`WindowState`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionCheckpoint {
    /// The next offset the saving worker would have read.
    pub position: u64,
    /// The first offset of the next slots message.
    pub cut_from: u64,
    /// Where to read again, and the clock there
    /// ([`Engine::stream_state`] with saved windows).
    pub stream: StreamState,
    /// The open windows longer than a minute ([`Engine::saved_windows`]).
    pub windows: Vec<WindowState>,
}

impl PartitionCheckpoint {
    /// The state of `engine` (a shipping engine) having read up to
    /// `position`; `None` before its first frame.
    pub fn of(engine: &Engine, position: u64, cut_from: u64) -> Option<PartitionCheckpoint> {
        let stream = engine.stream_state(0, position, true)?;
        Some(PartitionCheckpoint { position, cut_from, stream, windows: engine.saved_windows(&[(0, position)]) })
    }

    /// A shipping engine resumed from this checkpoint; read the partition
    /// from `self.stream.resume.offset` into it.
    pub fn resume(&self, cfg: EngineConfig) -> Result<Engine, MixedEstimators> {
        let mut engine = Engine::shipping(cfg);
        engine.resume_stream(0, self.stream);
        engine.resume_saved_windows(&self.windows)?;
        Ok(engine)
    }

    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(CHECKPOINT_MAGIC);
        out.push(1);
        out.extend_from_slice(&self.position.to_le_bytes());
        out.extend_from_slice(&self.cut_from.to_le_bytes());
        out.extend_from_slice(&self.stream.resume.offset.to_le_bytes());
        for value in [self.stream.resume.max_ts, self.stream.final_before] {
            match value {
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        out.extend_from_slice(&self.stream.read_to.to_le_bytes());
        put_windows(&mut out, &self.windows);
        out
    }

    /// A checkpoint from its bytes; damaged bytes give an error.
    pub fn decode(bytes: &[u8]) -> Result<PartitionCheckpoint, StateError> {
        let mut r = Reader(bytes);
        if r.take(4)? != &CHECKPOINT_MAGIC[..] {
            return Err(StateError::NotAState);
        }
        let version = r.u8()?;
        if version != 1 {
            return Err(StateError::Version(version));
        }
        let position = r.u64()?;
        let cut_from = r.u64()?;
        let offset = r.u64()?;
        let mut optional = || -> Result<Option<Secs>, StateError> {
            match r.u8()? {
                0 => Ok(None),
                1 => Ok(Some(r.u64()? as Secs)),
                _ => Err(StateError::Damaged("bad flag")),
            }
        };
        let (max_ts, final_before) = (optional()?, optional()?);
        let read_to = r.u64()?;
        let windows = r.windows()?;
        if !r.0.is_empty() {
            return Err(StateError::Damaged("bytes after the end"));
        }
        let stream = StreamState { resume: Checkpoint { offset, max_ts }, final_before, read_to };
        Ok(PartitionCheckpoint { position, cut_from, stream, windows })
    }
}

/// First bytes of an encoded [`MergeCheckpoint`].
pub const MERGE_MAGIC: &[u8; 4] = b"KUWM";

/// What `kuniq merge` saves, so that a restart goes on from there: where it
/// was in each partials partition, what it knows of each input partition,
/// its engine's open windows (every kind), streams and watermark.
///
/// Encoding (version 1), little-endian: magic `KUWM`, u8 version 1, the
/// input topic (u32 n, n bytes) and its partition count u32; u32 n × (i32
/// partials partition, i64 next offset); per input partition (as many as
/// the count): u8 has + u64 absorbed to, u64 read to, u8 status (0 none,
/// 1 active, 2 idle, 3 ended), u8 has + i64 reported watermark, u8 idle,
/// u32 n × (u8 kind, i64 start, u8 slot kind (0 early, 1 stage), u32 slot,
/// u64 frames) of snapshot frames; u8 has + i64 global watermark; u32 n ×
/// (u32 len, an encoded [`WindowState`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MergeCheckpoint {
    /// The input topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: u32,
    /// Per partials partition, the next offset to read.
    pub offsets: Vec<(i32, i64)>,
    /// Per input partition.
    pub inputs: Vec<Input>,
    /// Per input partition: the watermark it reported, and whether idle.
    pub streams: Vec<(Option<Secs>, bool)>,
    /// The global watermark.
    pub watermark: Option<Secs>,
    /// Every open window.
    pub windows: Vec<WindowState>,
}

impl MergeCheckpoint {
    /// The merge's state: `engine` with one stream per input partition,
    /// `inputs`, and where it is in the partials topic.
    pub fn of(engine: &Engine, inputs: &[Input], topic: &str, offsets: Vec<(i32, i64)>) -> MergeCheckpoint {
        MergeCheckpoint {
            topic: topic.to_string(),
            partitions: inputs.len() as u32,
            offsets,
            inputs: inputs.to_vec(),
            streams: (0..inputs.len()).map(|p| engine.stream_report(p)).collect(),
            watermark: engine.watermark(),
            windows: engine.all_windows(),
        }
    }

    /// The engine and inputs to go on with.
    pub fn restore(&self, cfg: EngineConfig) -> Result<(Engine, Vec<Input>), MixedEstimators> {
        let mut engine = Engine::new(cfg, self.partitions as usize);
        engine.resume_saved_windows(&self.windows)?;
        for (p, &(reported, idle)) in self.streams.iter().enumerate() {
            engine.restore_stream(p, reported, idle);
        }
        if let Some(wm) = self.watermark {
            engine.restore_watermark(wm);
        }
        Ok((engine, self.inputs.clone()))
    }

    /// The checkpoint's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(MERGE_MAGIC);
        out.push(1);
        put_text(&mut out, &self.topic);
        out.extend_from_slice(&self.partitions.to_le_bytes());
        out.extend_from_slice(&(self.offsets.len() as u32).to_le_bytes());
        for &(p, offset) in &self.offsets {
            out.extend_from_slice(&p.to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
        }
        let put_opt = |out: &mut Vec<u8>, v: Option<u64>| match v {
            Some(v) => {
                out.push(1);
                out.extend_from_slice(&v.to_le_bytes());
            }
            None => out.push(0),
        };
        for (input, &(reported, idle)) in self.inputs.iter().zip(&self.streams) {
            put_opt(&mut out, input.absorbed_to);
            out.extend_from_slice(&input.read_to.to_le_bytes());
            out.push(match input.status {
                None => 0,
                Some(Status::Active) => 1,
                Some(Status::Idle) => 2,
                Some(Status::Ended) => 3,
            });
            put_opt(&mut out, reported.map(|w| w as u64));
            out.push(u8::from(idle));
            let mut tentative: Vec<_> = input.tentative.iter().collect();
            tentative.sort();
            out.extend_from_slice(&(tentative.len() as u32).to_le_bytes());
            for (&(kind, start, slot), &frames) in tentative {
                out.push(WindowKind::ALL.iter().position(|&k| k == kind).unwrap_or(0) as u8);
                out.extend_from_slice(&start.to_le_bytes());
                let (tag, i) = match slot {
                    Slot::Early(k) => (0u8, k),
                    Slot::Stage(s) => (1u8, s),
                };
                out.push(tag);
                out.extend_from_slice(&i.to_le_bytes());
                out.extend_from_slice(&frames.to_le_bytes());
            }
        }
        put_opt(&mut out, self.watermark.map(|w| w as u64));
        put_windows(&mut out, &self.windows);
        out
    }

    /// A checkpoint from its bytes; damaged bytes give an error.
    pub fn decode(bytes: &[u8]) -> Result<MergeCheckpoint, StateError> {
        let mut r = Reader(bytes);
        if r.take(4)? != &MERGE_MAGIC[..] {
            return Err(StateError::NotAState);
        }
        let version = r.u8()?;
        if version != 1 {
            return Err(StateError::Version(version));
        }
        let topic = r.text()?;
        let partitions = r.u32()?;
        let n = r.u32()?;
        if n as usize > r.0.len() / 12 {
            return Err(StateError::Damaged("a count larger than the bytes left"));
        }
        let mut offsets = Vec::new();
        for _ in 0..n {
            offsets.push((r.u32()? as i32, r.u64()? as i64));
        }
        if partitions as usize > r.0.len() / 12 {
            return Err(StateError::Damaged("a count larger than the bytes left"));
        }
        let (mut inputs, mut streams) = (Vec::new(), Vec::new());
        for _ in 0..partitions {
            let absorbed_to = r.option()?;
            let read_to = r.u64()?;
            let status = match r.u8()? {
                0 => None,
                1 => Some(Status::Active),
                2 => Some(Status::Idle),
                3 => Some(Status::Ended),
                _ => return Err(StateError::Damaged("unknown partition status")),
            };
            let reported = r.option()?.map(|w| w as Secs);
            let idle = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(StateError::Damaged("bad idle flag")),
            };
            let n = r.u32()?;
            if n as usize > r.0.len() / 26 {
                return Err(StateError::Damaged("a count larger than the bytes left"));
            }
            let mut tentative = HashMap::new();
            for _ in 0..n {
                let kind = *WindowKind::ALL.get(r.u8()? as usize).ok_or(StateError::Damaged("unknown window kind"))?;
                let start = r.u64()? as Secs;
                let slot = match (r.u8()?, r.u32()?) {
                    (0, k) => Slot::Early(k),
                    (1, s) => Slot::Stage(s),
                    _ => return Err(StateError::Damaged("unknown slot kind")),
                };
                tentative.insert((kind, start, slot), r.u64()?);
            }
            inputs.push(Input { absorbed_to, read_to, status, tentative });
            streams.push((reported, idle));
        }
        let watermark = r.option()?.map(|w| w as Secs);
        let windows = r.windows()?;
        if !r.0.is_empty() {
            return Err(StateError::Damaged("bytes after the end"));
        }
        Ok(MergeCheckpoint { topic, partitions, offsets, inputs, streams, watermark, windows })
    }
}

/// Groups `shipped` slots by window into states of one part covering
/// `partition` below `to` (slots of the same window and kind united).
pub fn ship_states(shipped: Vec<Shipped>, partition: u32, to: u64) -> Result<Vec<WindowState>, StateError> {
    let mut windows: BTreeMap<(WindowKind, Secs), Part> = BTreeMap::new();
    for s in shipped {
        let part = windows
            .entry((s.kind, s.start))
            .or_insert_with(|| Part { covers: vec![(partition, to)], ..Part::default() });
        let (list, at) = match s.slot {
            Slot::Stage(i) => (&mut part.stages, i as usize),
            Slot::Early(k) => (&mut part.early, k.saturating_sub(1) as usize),
        };
        if list.len() <= at {
            let empty = || Stage { users: s.stage.users.empty_like(), frames: 0 };
            list.resize_with(at + 1, empty);
        }
        let into = &mut list[at];
        into.users.union_with(&s.stage.users).map_err(|_| StateError::MixedEstimators)?;
        into.frames += s.stage.frames;
    }
    Ok(windows
        .into_iter()
        .map(|((kind, start), part)| WindowState { parts: vec![part], ..WindowState::new(kind, start) })
        .collect())
}

fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

impl Reader<'_> {
    fn option(&mut self) -> Result<Option<u64>, StateError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            _ => Err(StateError::Damaged("bad flag")),
        }
    }

    fn text(&mut self) -> Result<String, StateError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| StateError::Damaged("text that is not UTF-8"))
    }

    /// `u32 n`, then n × (u32 len, an encoded window state).
    fn windows(&mut self) -> Result<Vec<WindowState>, StateError> {
        let n = self.count(4)?;
        let mut windows = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let len = self.u32()? as usize;
            windows.push(WindowState::decode(self.take(len)?)?);
        }
        Ok(windows)
    }
}

/// Writes `u32 n`, then n × (u32 len, an encoded window state).
fn put_windows(out: &mut Vec<u8>, windows: &[WindowState]) {
    out.extend_from_slice(&(windows.len() as u32).to_le_bytes());
    for w in windows {
        let bytes = w.encode();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::count::{Estimator, Users};

    fn stage(estimator: Estimator, uids: &[u64]) -> Stage {
        let mut users = estimator.users();
        for &u in uids {
            let coupon = crate::count::sketch::UidCoupon::of(&u.to_le_bytes());
            users.add(crate::count::UidKey { hash: u, coupon });
        }
        Stage { users, frames: uids.len() as u64 }
    }

    #[test]
    fn messages_survive_encoding_and_damage_is_refused() {
        for estimator in [Estimator::Exact, Estimator::Hll { lg_k: 6 }] {
            let shipped = vec![
                Shipped { kind: WindowKind::Minute, start: 60, slot: Slot::Stage(0), stage: stage(estimator, &[1, 2]) },
                Shipped { kind: WindowKind::Hour, start: 0, slot: Slot::Early(2), stage: stage(estimator, &[3]) },
                Shipped { kind: WindowKind::Minute, start: 60, slot: Slot::Stage(2), stage: stage(estimator, &[2, 4]) },
                Shipped { kind: WindowKind::Minute, start: 60, slot: Slot::Stage(2), stage: stage(estimator, &[5]) },
            ];
            let windows = ship_states(shipped, 3, 1000).unwrap();
            assert_eq!(windows.len(), 2);
            let minute = windows.iter().find(|w| w.kind == WindowKind::Minute).unwrap();
            assert_eq!(minute.parts[0].stages.len(), 3);
            assert_eq!(minute.parts[0].stages[1].frames, 0);
            assert_eq!(minute.parts[0].stages[2].frames, 3, "two shipments of one slot add up");
            let hour = windows.iter().find(|w| w.kind == WindowKind::Hour).unwrap();
            assert_eq!((hour.parts[0].early.len(), hour.parts[0].stages.len()), (2, 0));
            let message = Partials {
                topic: "frames".into(),
                partition: 3,
                partitions: 6,
                config: "lateness:5".into(),
                from: 900,
                to: 1000,
                watermark: Some(1_468_244_400),
                status: Status::Idle,
                carries: Carries::Snapshot,
                windows,
            };
            let bytes = message.encode();
            assert_eq!(Partials::decode(&bytes).unwrap(), message);
            assert_eq!(message.frames(), 6);
            for cut in 0..bytes.len() {
                assert!(Partials::decode(&bytes[..cut]).is_err(), "cut at {cut}");
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(Partials::decode(&longer).is_err());
            let mut other = message.clone();
            other.partition = 4;
            assert!(Partials::decode(&other.encode()).is_err(), "windows of partition 3 in a message of 4");
            assert!(matches!(Users::Exact(Default::default()).empty_like(), Users::Exact(_)));
        }
    }

    #[test]
    fn partition_checkpoints_survive_encoding_and_damage_is_refused() {
        use crate::window::clock::Event;
        let cfg = EngineConfig { kinds: vec![WindowKind::Minute, WindowKind::Hour], ..EngineConfig::default() };
        let mut engine = Engine::shipping(cfg.clone());
        assert_eq!(PartitionCheckpoint::of(&engine, 0, 0), None, "nothing to save before the first frame");
        for i in 0..200u64 {
            engine.observe(0, Event { ts: 1_468_244_400 + i as Secs / 3, hash: i % 37, offset: i, coupon: None });
        }
        let checkpoint = PartitionCheckpoint::of(&engine, 200, 180).unwrap();
        assert!(!checkpoint.windows.is_empty(), "the open hour is saved");
        assert!(checkpoint.stream.resume.offset < 200, "open minutes are read again");
        let bytes = checkpoint.encode();
        assert_eq!(PartitionCheckpoint::decode(&bytes).unwrap(), checkpoint);
        for cut in 0..bytes.len() {
            assert!(PartitionCheckpoint::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(checkpoint.resume(cfg).is_ok());
    }
}
