//! The window engine: every window kind, fed from one parse per frame.
//!
//! Frames arrive per stream with their uid hash already computed. The
//! stream's [`Clock`] decides whether a frame is admitted and gives the
//! stream watermark `Wp` at that frame. For each configured window kind the
//! frame's window `[start, end)` then gets it:
//!
//! - **on time** (`Wp < end`): inserted now;
//! - **late** (`end <= Wp < end + allowed_lateness`): held in the window
//!   with its *stage* `s = 1 + (Wp - end) / revision_interval`;
//! - **too late** (`Wp >= end + allowed_lateness`): counted and reported.
//!
//! Emission is driven by the global watermark `W` (minimum over streams
//! that are not idle). Stage `s` of a window is complete once
//! `W >= min(end + s * revision_interval, end + allowed_lateness)`: no stream
//! can still send it frames. Completing stage 0 emits revision 0; each later
//! stage adds its held frames and emits the next revision if the count or
//! the frame total changed; the last stage (at `end + allowed_lateness`)
//! finalizes the window and frees it.
//!
//! Because each revision holds exactly the frames of stages up to its own,
//! and a frame's stage depends only on its own stream's order, the records
//! (key, revision, value) do not depend on how streams interleave or how
//! input is batched: a replay emits the same records. End of input
//! completes every stage in order.
//!
//! **Checkpoints.** [`Engine::stream_state`] tells, for a stream, the
//! earliest offset still needed (the first frame of each open window, and
//! frames the clock holds) together with the clock's state just before it.
//! An engine resumed there ([`Engine::resume_stream`]) with the same
//! configuration re-reads from that offset, skips frames of windows that
//! were already final, and emits the same records again: a restart repeats
//! records, it never invents different ones or loses a window.

use super::clock::{Clock, Decision, Event};
use super::state::WindowState;
use super::{Secs, WindowKind};
use crate::count::{Estimator, MixedEstimators};

mod complete;
mod emission;
mod saved;
mod window;

use complete::{Out, complete, complete_early, force_oldest, has_early};
pub use complete::{Shipped, Slot, saves_window};
use window::{KindWindows, Window};

pub use emission::Emission;
pub use saved::{Checkpoint, EmittedWindow, StreamState};

/// Default watermark bound: 99.9 % of frames arrive within 5 s.
pub const DEFAULT_LATENESS_SECS: u64 = 5;
/// Default time a closed window still accepts late frames.
pub const DEFAULT_ALLOWED_LATENESS_SECS: u64 = 60;
/// Default event time between revisions of a closed window.
pub const DEFAULT_REVISION_INTERVAL_SECS: u64 = 5;
/// Default distance ahead of the watermark beyond which frames are quarantined.
pub const DEFAULT_QUARANTINE_SECS: u64 = 3600;
/// Default event time between provisional records of an open window
/// (`--early-interval`): a minute, so an hour, day, week, month or year
/// says its count so far every minute, like the minute windows.
pub const DEFAULT_EARLY_INTERVAL_SECS: u64 = 60;
/// Default cap on the open windows of one kind. The defaults keep about 63
/// minute windows open (quarantine, lateness and allowed lateness); 4096 is
/// almost three days of minutes, room for streams that lag each other, and
/// bounds the state: 4096 × (about 0.6 KB per window + about 16 bytes per
/// distinct uid in it).
pub const DEFAULT_MAX_OPEN_WINDOWS: usize = 4096;

/// Window semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Window kinds to count, each from the same frames.
    pub kinds: Vec<WindowKind>,
    /// Watermark bound: `W = max ts - lateness_secs`.
    pub lateness_secs: u64,
    /// How long after closing a window still takes late frames.
    pub allowed_lateness_secs: u64,
    /// Event time between revisions of a closed window (at least 1).
    pub revision_interval_secs: u64,
    /// Frames further than this ahead of their stream's watermark are
    /// quarantined.
    pub quarantine_secs: u64,
    /// Most windows of one kind open at once (at least 1). Opening one more
    /// first *forces* the oldest: it completes all its stages now (emitting
    /// its records as at the end of input) and is freed; frames that come
    /// later for it, or for any earlier window, are too late. Forced
    /// windows are counted ([`EngineStats::windows_forced`]). Default
    /// [`DEFAULT_MAX_OPEN_WINDOWS`].
    pub max_open_windows: usize,
    /// Event time between provisional records of an open window (0: none).
    /// Provisional record `k` of a window counts the frames each stream
    /// admitted before its own watermark reached `start + k * interval`,
    /// and is emitted once the global watermark has; windows no longer
    /// than the interval have none. Default
    /// [`DEFAULT_EARLY_INTERVAL_SECS`].
    pub early_interval_secs: u64,
    /// How windows count distinct users (`--estimator`). Default exact.
    pub estimator: Estimator,
    /// Records of sketch windows carry the sketch (`--emit-sketch`).
    pub emit_sketch: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            kinds: vec![WindowKind::Minute],
            lateness_secs: DEFAULT_LATENESS_SECS,
            allowed_lateness_secs: DEFAULT_ALLOWED_LATENESS_SECS,
            revision_interval_secs: DEFAULT_REVISION_INTERVAL_SECS,
            quarantine_secs: DEFAULT_QUARANTINE_SECS,
            max_open_windows: DEFAULT_MAX_OPEN_WINDOWS,
            early_interval_secs: DEFAULT_EARLY_INTERVAL_SECS,
            estimator: Estimator::Exact,
            emit_sketch: false,
        }
    }
}

/// Counters kept by the engine (all for the first configured kind where a
/// frame's fate differs by kind).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Frames counted into windows (on time or late).
    pub counted: u64,
    /// Frames counted after their window had closed (they caused revisions).
    pub late: u64,
    /// Frames beyond the allowed lateness, or far before their stream's
    /// start: not counted.
    pub too_late: u64,
    /// Frames far ahead of their stream's watermark: not counted.
    pub quarantined: u64,
    /// Records emitted.
    pub emissions: u64,
    /// Records that revise a closed window's record (late frames).
    pub revisions: u64,
    /// Provisional records of open windows (`early_interval_secs`).
    pub provisional: u64,
    /// Windows finalized and freed.
    pub windows_finalized: u64,
    /// Frames read again after a restart for windows that were already
    /// final: skipped (the earlier run counted them).
    pub reread: u64,
    /// Windows finalized early because `max_open_windows` of their kind were
    /// open (also counted in `windows_finalized`).
    pub windows_forced: u64,
    /// Most windows open at once, all kinds together.
    pub open_windows_peak: u64,
    /// Most bytes held by open windows, sampled whenever windows are
    /// finalized (when they are fullest) and at the end of input.
    pub state_bytes_peak: u64,
}

/// Per-stream state.
#[derive(Debug)]
struct Stream {
    clock: Clock,
    idle: bool,
    /// Where this run started reading the stream (set by a resume, or by
    /// the first frame).
    origin: Option<Checkpoint>,
    /// The latest frame before which the clock was warm and held nothing.
    clean: Option<Checkpoint>,
    /// See [`StreamState::final_before`].
    final_before: Secs,
    /// See [`StreamState::read_to`].
    read_to: u64,
    /// The watermark the stream's own engine reported, for a merge of
    /// shipped slots ([`Engine::report_watermark`]), whose clocks see no
    /// frames.
    reported: Option<Secs>,
}

impl Stream {
    fn new(clock: Clock) -> Stream {
        Stream { clock, idle: false, origin: None, clean: None, final_before: Secs::MIN, read_to: 0, reported: None }
    }

    /// The stream's watermark: its clock's, or the one reported for it.
    fn watermark(&self) -> Option<Secs> {
        self.clock.watermark().max(self.reported)
    }

    /// The earliest point replaying the frame at `offset` can start from.
    fn restart_point(&self, offset: u64) -> Checkpoint {
        self.clean.or(self.origin).unwrap_or(Checkpoint { offset, max_ts: None })
    }
}

/// Counts every configured window kind over any number of streams.
#[derive(Debug)]
pub struct Engine {
    cfg: EngineConfig,
    streams: Vec<Stream>,
    kinds: Vec<KindWindows>,
    watermark: Option<Secs>,
    stats: EngineStats,
    out: Out,
    decided: Vec<(Event, Decision)>,
    /// The first window forced out by the cap, until the caller has taken
    /// it (to warn once); `Some(None)` once taken.
    first_forced: Option<Option<(WindowKind, Secs)>>,
    /// The global watermark of the run before a restart, when it was ahead
    /// of every stream (a quiet input, moved on with the wall clock): frames
    /// that run had not read are at least this late (see
    /// [`Engine::resume_watermark`]).
    resumed_watermark: Option<Secs>,
    /// Exact windows that checkpoints save track the hashes they gain
    /// (set by [`Engine::mark_windows_saved`]).
    tracking: bool,
}

impl Engine {
    /// An engine with `streams` input streams (numbered from 0).
    pub fn new(cfg: EngineConfig, streams: usize) -> Engine {
        let kinds = cfg
            .kinds
            .iter()
            .map(|&kind| KindWindows {
                kind,
                windows: Vec::new(),
                forced_until: Secs::MIN,
                resumed: Default::default(),
            })
            .collect();
        let mut engine = Engine {
            cfg,
            streams: Vec::new(),
            kinds,
            watermark: None,
            stats: EngineStats::default(),
            out: Out::default(),
            decided: Vec::new(),
            first_forced: None,
            resumed_watermark: None,
            tracking: false,
        };
        for _ in 0..streams {
            engine.add_stream();
        }
        engine
    }

    /// An engine for one stream of a scale-out worker: instead of records,
    /// it ships the frames of each slot of each window (the frames of a
    /// provisional record, a window's on-time frames, a late stage) once
    /// the stream's own watermark completes it ([`Engine::take_shipped`]).
    /// A merge engine given every stream's slots ([`Engine::absorb`]) and
    /// watermarks ([`Engine::report_watermark`]) emits the records one
    /// engine reading every stream would: a frame's slot depends only on
    /// its own stream's order, and a slot is complete once its stream's
    /// watermark passed it.
    pub fn shipping(cfg: EngineConfig) -> Engine {
        let mut engine = Engine::new(cfg, 1);
        engine.out.shipped = Some(Vec::new());
        engine
    }

    /// True when slots were shipped since the last [`Engine::take_shipped`].
    #[inline]
    pub fn has_shipped(&self) -> bool {
        self.out.shipped.as_ref().is_some_and(|s| !s.is_empty())
    }

    /// The slots shipped since the last call, in the order they completed.
    pub fn take_shipped(&mut self) -> Vec<Shipped> {
        self.out.shipped.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// A copy of every frame read so far that no slot has shipped yet, by
    /// slot, without completing or taking anything: what a stream that goes
    /// idle sends, since it no longer holds the merge's watermark back. The
    /// slots still ship whole when they complete; the merge counts only
    /// what they add to the copy ([`crate::window::partials::Input`]).
    pub fn snapshot_pending(&self) -> Vec<Shipped> {
        let mut out = Vec::new();
        for k in &self.kinds {
            for w in &k.windows {
                w.snapshot_pending(k.kind, self.cfg.estimator, &mut out);
            }
        }
        out
    }

    /// The merge side: adds `state`, the frames a stream's engine shipped
    /// for one window (its slots as the stages and provisional records of
    /// one part), to that window. Frames of a window already final are too
    /// late. Errors when they were counted with another estimator.
    pub fn absorb(&mut self, state: &WindowState) -> Result<(), MixedEstimators> {
        let allowed = self.cfg.allowed_lateness_secs as Secs;
        let frames: u64 = state.parts.iter().map(|p| p.all_frames()).sum();
        let first = self.kinds.first().is_some_and(|k| k.kind == state.kind);
        let Some(kind) = self.kinds.iter_mut().find(|k| k.kind == state.kind) else { return Ok(()) };
        let end = kind.kind.end(state.start);
        if self.watermark.is_some_and(|wm| wm >= end + allowed) {
            if first {
                self.stats.too_late += frames;
            }
            return Ok(());
        }
        let estimator = self.cfg.estimator;
        let at = match kind.window(state.start, self.cfg.max_open_windows, estimator, false) {
            Some(at) => Some(at),
            None if end > kind.forced_until => {
                force_oldest(&self.cfg, kind, &mut self.out, &mut self.stats, &mut self.first_forced);
                kind.window(state.start, self.cfg.max_open_windows, estimator, false)
            }
            None => None,
        };
        let Some(at) = at else {
            if first {
                self.stats.too_late += frames;
            }
            return Ok(());
        };
        let w = &mut kind.windows[at];
        for part in &state.parts {
            for (s, stage) in part.stages.iter().enumerate() {
                w.absorb(Slot::Stage(s as u32), stage)?;
            }
            for (k, stage) in part.early.iter().enumerate() {
                w.absorb(Slot::Early(k as u32 + 1), stage)?;
            }
        }
        if first {
            self.stats.counted += frames;
        }
        Ok(())
    }

    /// Every open window as data, every kind (minutes too): what a merge of
    /// shipped slots saves, since it cannot read frames again.
    pub fn all_windows(&self) -> Vec<WindowState> {
        let covers = [(0, 0)];
        self.kinds
            .iter()
            .flat_map(|k| k.windows.iter().map(|w| w.to_state(k.kind, &covers, self.cfg.estimator, false)))
            .collect()
    }

    /// The merge side, restoring a checkpoint: stream `stream`'s reported
    /// watermark and whether it was idle, without completing anything.
    pub fn restore_stream(&mut self, stream: usize, reported: Option<Secs>, idle: bool) {
        let s = &mut self.streams[stream];
        s.reported = reported;
        s.idle = idle;
    }

    /// The merge side, restoring a checkpoint: the global watermark it had
    /// (a quiet input's may be ahead of every stream's). Windows restored
    /// with their completed stages emit nothing again.
    pub fn restore_watermark(&mut self, wm: Secs) {
        self.raise(wm);
    }

    /// Stream `stream`'s reported watermark and whether it is idle (see
    /// [`Engine::restore_stream`]).
    pub fn stream_report(&self, stream: usize) -> (Option<Secs>, bool) {
        let s = &self.streams[stream];
        (s.reported, s.idle)
    }

    /// The merge side: `stream`'s own engine reached watermark `wm` and
    /// shipped every slot that completes; completes what the global
    /// watermark now reaches.
    pub fn report_watermark(&mut self, stream: usize, wm: Secs) {
        let s = &mut self.streams[stream];
        s.reported = s.reported.max(Some(wm));
        self.advance();
    }

    /// Adds a stream; returns its number.
    pub fn add_stream(&mut self) -> usize {
        let clock = Clock::new(self.cfg.lateness_secs as Secs, self.cfg.quarantine_secs as Secs);
        self.streams.push(Stream::new(clock));
        self.streams.len() - 1
    }

    /// Restarts `stream` from a state saved by [`Engine::stream_state`]
    /// (by this or an earlier run with the same configuration); the caller
    /// then feeds it from `state.resume.offset`. Call before feeding it.
    pub fn resume_stream(&mut self, stream: usize, state: StreamState) {
        let (lateness, quarantine) = (self.cfg.lateness_secs as Secs, self.cfg.quarantine_secs as Secs);
        let clock = match state.resume.max_ts {
            Some(max_ts) => Clock::resumed(lateness, quarantine, max_ts),
            None => Clock::new(lateness, quarantine),
        };
        let s = &mut self.streams[stream];
        *s = Stream {
            origin: Some(state.resume),
            final_before: state.final_before.unwrap_or(Secs::MIN),
            read_to: state.read_to,
            idle: s.idle,
            ..Stream::new(clock)
        };
    }

    /// What each window that is not final has emitted, for a checkpoint:
    /// the open windows that sent a record, and the windows resumed from an
    /// earlier checkpoint that this run has not reopened yet (so a second
    /// restart still knows what the first run sent).
    pub fn emitted_windows(&self) -> Vec<EmittedWindow> {
        let mut out = Vec::new();
        for k in &self.kinds {
            out.extend(k.windows.iter().filter(|w| w.revisions > 0).map(|w| EmittedWindow {
                kind: k.kind,
                start: w.start,
                revisions: w.revisions,
                last: w.emitted,
                // A resumed window replaying its stages has sent up to
                // `silent_below` already.
                stages: w.next_stage.max(w.silent_below),
                early: w.next_early.max(w.early_silent_through),
            }));
            out.extend(k.resumed.values().copied());
        }
        out.sort_by_key(|e| (e.kind, e.start));
        out
    }

    /// Restores what windows had emitted before a restart
    /// ([`Engine::emitted_windows`] of that run). Each reopens with it when
    /// its frames are read again: the records it sent are not sent again,
    /// and frames read after the restart go into its next revision. Call
    /// before feeding any stream; windows of kinds not counted are ignored.
    pub fn resume_windows(&mut self, windows: &[EmittedWindow]) {
        for emitted in windows {
            if let Some(k) = self.kinds.iter_mut().find(|k| k.kind == emitted.kind) {
                k.resumed.insert(emitted.start, *emitted);
            }
        }
    }

    /// Restores the global watermark of the run before a restart: a frame
    /// that run had not read (at or after its stream's `read_to`) is decided
    /// as if the watermark were at least `wm`, as it would have been had the
    /// run gone on. This matters when that watermark had moved past every
    /// stream's own (a quiet input), so frames arriving after the restart
    /// revise the windows it closed instead of counting as on time.
    pub fn resume_watermark(&mut self, wm: Secs) {
        self.resumed_watermark = Some(wm);
    }

    /// The global watermark to save with a checkpoint: this run's, or the
    /// one it resumed from when that is ahead.
    pub fn saved_watermark(&self) -> Option<Secs> {
        self.watermark.max(self.resumed_watermark)
    }

    /// The open windows a checkpoint saves as data ([`saves_window`]
    /// kinds), each covering every stream's frames below its offset in
    /// `positions` (the stream's next offset to read). Pair it with
    /// [`Engine::stream_state`] with `windows_saved` set.
    pub fn saved_windows(&self, positions: &[(u32, u64)]) -> Vec<WindowState> {
        self.windows_as_data(positions, false)
    }

    fn windows_as_data(&self, positions: &[(u32, u64)], changes: bool) -> Vec<WindowState> {
        // Frames the clock still holds (a warm-up, or a jump waiting for
        // confirmation) are read but in no window yet. The clock holds only
        // a stream's latest frames, in a row, so a window covers the stream
        // up to the first of them.
        let decided: Vec<(u32, u64)> = positions
            .iter()
            .map(|&(stream, position)| {
                let held =
                    self.streams.get(stream as usize).and_then(|s| s.clock.held().iter().map(|e| e.offset).min());
                (stream, held.map_or(position, |h| h.min(position)))
            })
            .collect();
        self.kinds
            .iter()
            .filter(|k| saves_window(k.kind))
            .flat_map(|k| k.windows.iter().map(|w| w.to_state(k.kind, &decided, self.cfg.estimator, changes)))
            .collect()
    }

    /// Marks the windows just saved whole by [`Engine::saved_windows`]: from
    /// now on exact windows track the hashes they gain, and
    /// [`Engine::saved_window_changes`] gives states holding only those.
    pub fn mark_windows_saved(&mut self) {
        self.tracking = true;
        for k in self.kinds.iter_mut().filter(|k| saves_window(k.kind)) {
            for w in &mut k.windows {
                w.unsaved = match w.users {
                    crate::count::Users::Exact(_) => Some(Vec::new()),
                    crate::count::Users::Sketch(_) => None,
                };
            }
        }
    }

    /// [`Engine::saved_windows`], but an exact window's stage 0 holds only
    /// the hashes it gained since [`Engine::mark_windows_saved`] (everything
    /// else whole): what a checkpoint writes when the last whole save is
    /// still on the state topic. [`WindowState::with_saved`] unites the two
    /// again. Before any mark, the same as [`Engine::saved_windows`].
    pub fn saved_window_changes(&self, positions: &[(u32, u64)]) -> Vec<WindowState> {
        self.windows_as_data(positions, true)
    }

    /// Hashes gained by exact saved windows since the last
    /// [`Engine::mark_windows_saved`] (8 bytes each in
    /// [`Engine::saved_window_changes`]).
    pub fn unsaved_users(&self) -> u64 {
        self.kinds.iter().flat_map(|k| &k.windows).filter_map(|w| w.unsaved.as_ref()).map(|u| u.len() as u64).sum()
    }

    /// Reopens windows saved by [`Engine::saved_windows`] (of this or an
    /// earlier run with the same configuration), with their frames, held
    /// late frames, completed stages and records sent. Frames read again
    /// below what a window covers are skipped for it. Call after
    /// [`Engine::resume_windows`] and before feeding any stream; windows of
    /// kinds not counted are ignored.
    ///
    /// Errors, restoring nothing more, when a state was counted with
    /// another estimator than this engine's.
    pub fn resume_saved_windows(&mut self, saved: &[WindowState]) -> Result<(), MixedEstimators> {
        for state in saved {
            let Some(k) = self.kinds.iter_mut().find(|k| k.kind == state.kind) else {
                continue;
            };
            k.resumed.remove(&state.start);
            let at = k.windows.partition_point(|w| w.start < state.start);
            if k.windows.get(at).is_some_and(|w| w.start == state.start) {
                continue;
            }
            k.windows.insert(at, Window::from_state(state, k.kind.end(state.start), self.cfg.estimator)?);
        }
        Ok(())
    }

    /// Where `stream` can be read again so that a resumed engine emits the
    /// same records, given that every frame before `position` was fed; `None`
    /// when the stream has had no frame (nothing to save). With
    /// `windows_saved` (the checkpoint holds [`Engine::saved_windows`]), only
    /// the windows not saved hold the resume point back: a restart reads
    /// again from near the minute windows' frontier, not from the start of
    /// the day or year.
    pub fn stream_state(&self, stream: usize, position: u64, windows_saved: bool) -> Option<StreamState> {
        let s = &self.streams[stream];
        s.origin?;
        let mut resume = match s.clock.max_ts() {
            Some(max_ts) if s.clock.held().is_empty() => Checkpoint { offset: position, max_ts: Some(max_ts) },
            _ => s.restart_point(position),
        };
        let kept = self.kinds.iter().filter(|k| !(windows_saved && saves_window(k.kind)));
        for w in kept.flat_map(|k| &k.windows) {
            if let Some(&(_, first)) = w.firsts.iter().find(|f| f.0 == stream as u32)
                && first.offset < resume.offset
            {
                resume = first;
            }
        }
        // Windows the cap forced out are final too, for a kind that forced
        // any; with several kinds only as far as every kind forced (the
        // state holds one bound for all kinds), so a restart may emit again
        // a window of one kind that the cap forced out early. A window is
        // final for the resumed run when `end + allowed <= final_before`, so
        // the bound for windows ending at or before `forced_until` is
        // `forced_until + allowed`.
        let allowed = self.cfg.allowed_lateness_secs as Secs;
        let forced = self.kinds.iter().map(|k| k.forced_until).min().filter(|&f| f != Secs::MIN).map(|f| f + allowed);
        let final_before = self.watermark.max((s.final_before != Secs::MIN).then_some(s.final_before)).max(forced);
        Some(StreamState { resume, final_before, read_to: position.max(s.read_to) })
    }

    /// The configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> EngineStats {
        self.stats
    }

    /// The global watermark, once every active stream has one.
    pub fn watermark(&self) -> Option<Secs> {
        self.watermark
    }

    /// Stream `stream`'s clock.
    pub fn clock(&self, stream: usize) -> &Clock {
        &self.streams[stream].clock
    }

    /// Open windows of all kinds.
    pub fn open_windows(&self) -> usize {
        self.kinds.iter().map(|k| k.windows.len()).sum()
    }

    /// The first window the cap forced out, once: (kind, start); `None`
    /// before any was forced and after the first call that returned it.
    pub fn take_first_forced(&mut self) -> Option<(WindowKind, Secs)> {
        match self.first_forced {
            Some(Some(first)) => {
                self.first_forced = Some(None);
                Some(first)
            }
            _ => None,
        }
    }

    /// Bytes held by the open windows' uid sets and late-frame buffers.
    pub fn state_bytes(&self) -> usize {
        self.kinds.iter().flat_map(|k| &k.windows).map(|w| w.state_bytes()).sum()
    }

    /// Records ready to send, in emission order; the caller drains them.
    pub fn emissions(&mut self) -> &mut Vec<Emission> {
        &mut self.out.records
    }

    /// Feeds one frame of `stream`, and completes the windows its admission
    /// completes: the global watermark moves frame by frame, so which
    /// windows close (and which get forced out by the cap) never depends on
    /// where batches or chunks happen to end.
    #[inline]
    pub fn observe(&mut self, stream: usize, ev: Event) {
        let mut decided = std::mem::take(&mut self.decided);
        let s = &mut self.streams[stream];
        let before = s.clock.watermark();
        if s.origin.is_none() {
            s.origin = Some(Checkpoint { offset: ev.offset, max_ts: None });
        }
        if let Some(max_ts) = s.clock.max_ts()
            && s.clock.held().is_empty()
        {
            s.clean = Some(Checkpoint { offset: ev.offset, max_ts: Some(max_ts) });
        }
        s.clock.admit(ev, &mut |e, d| decided.push((e, d)));
        self.apply(stream, &mut decided);
        self.decided = decided;
        // The global watermark (the minimum over active streams) can only
        // rise when this stream's did and it was not ahead of the global one.
        let after = self.streams[stream].clock.watermark();
        if after > before && before.is_none_or(|b| self.watermark.is_none_or(|g| b <= g)) {
            self.advance();
        }
    }

    /// Feeds a batch of frames of `stream`, frame by frame, exactly as
    /// [`Engine::observe`] on each. Whether the stream is idle is the
    /// caller's to say ([`Engine::set_idle`]): a batch, even an empty one,
    /// does not change it.
    pub fn observe_batch(&mut self, stream: usize, events: &[Event]) {
        for &ev in events {
            self.observe(stream, ev);
        }
        self.advance();
    }

    /// Marks `stream` idle (excluded from the global watermark) or active.
    pub fn set_idle(&mut self, stream: usize, idle: bool) {
        let s = &mut self.streams[stream];
        s.idle = idle;
        if idle {
            let mut decided = std::mem::take(&mut self.decided);
            s.clock.end_warmup(&mut |e, d| decided.push((e, d)));
            self.apply(stream, &mut decided);
            self.decided = decided;
        }
        self.advance();
    }

    /// Input of `stream` ended: its held frames are decided and it no longer
    /// holds the watermark back.
    pub fn finish_stream(&mut self, stream: usize) {
        let mut decided = std::mem::take(&mut self.decided);
        self.streams[stream].clock.finish(&mut |e, d| decided.push((e, d)));
        self.apply(stream, &mut decided);
        self.decided = decided;
        self.streams[stream].idle = true;
        self.advance();
    }

    /// All input ended: completes every stage of every window, in order, and
    /// frees them.
    pub fn flush(&mut self) {
        self.stats.open_windows_peak = self.stats.open_windows_peak.max(self.open_windows() as u64);
        self.stats.state_bytes_peak = self.stats.state_bytes_peak.max(self.state_bytes() as u64);
        for stream in 0..self.streams.len() {
            let mut decided = std::mem::take(&mut self.decided);
            self.streams[stream].clock.finish(&mut |e, d| decided.push((e, d)));
            self.apply(stream, &mut decided);
            self.decided = decided;
        }
        for k in 0..self.kinds.len() {
            let kind = &mut self.kinds[k];
            kind.resumed.clear();
            for mut w in std::mem::take(&mut kind.windows) {
                complete(&self.cfg, kind.kind, &mut w, Secs::MAX, &mut self.out, &mut self.stats);
            }
        }
    }

    fn apply(&mut self, stream: usize, decided: &mut Vec<(Event, Decision)>) {
        for (ev, decision) in decided.drain(..) {
            match decision {
                Decision::Admit { watermark } => self.count(stream, ev, watermark),
                Decision::Quarantine => self.stats.quarantined += 1,
                Decision::BeforeStart => self.stats.too_late += 1,
            }
        }
    }

    /// Puts an admitted frame into its window of every kind.
    #[inline]
    fn count(&mut self, stream: usize, ev: Event, stream_watermark: Secs) {
        // A window the global watermark already finalized stays final even
        // for a stream that was idle and lags behind.
        let s = &self.streams[stream];
        let mut wm = self.watermark.map_or(stream_watermark, |g| g.max(stream_watermark));
        if let Some(resumed) = self.resumed_watermark
            && ev.offset >= s.read_to
        {
            wm = wm.max(resumed);
        }
        let allowed = self.cfg.allowed_lateness_secs as Secs;
        let interval = self.cfg.revision_interval_secs.max(1) as Secs;
        let early = self.cfg.early_interval_secs as Secs;
        let (final_before, read_to) = (s.final_before, s.read_to);
        let restart = s.restart_point(ev.offset);
        for (k, kind) in self.kinds.iter_mut().enumerate() {
            let start = kind.kind.start(ev.ts);
            let end = kind.kind.end(start);
            let first = k == 0;
            if end + allowed <= final_before {
                // Final before a restart: an earlier run counted this
                // frame (or found it too late).
                if first {
                    if ev.offset < read_to { self.stats.reread += 1 } else { self.stats.too_late += 1 }
                }
                continue;
            }
            if wm >= end + allowed {
                if first {
                    self.stats.too_late += 1;
                }
                continue;
            }
            let estimator = self.cfg.estimator;
            let track = self.tracking && !estimator.is_sketch() && saves_window(kind.kind);
            let at = match kind.window(start, self.cfg.max_open_windows, estimator, track) {
                Some(at) => at,
                None => {
                    if end > kind.forced_until {
                        force_oldest(&self.cfg, kind, &mut self.out, &mut self.stats, &mut self.first_forced);
                    }
                    match kind.window(start, self.cfg.max_open_windows, estimator, track) {
                        Some(at) => at,
                        None => {
                            // Its window, or a later one, was forced out.
                            if first {
                                self.stats.too_late += 1;
                            }
                            continue;
                        }
                    }
                }
            };
            let w = &mut kind.windows[at];
            if !w.covered.is_empty() && w.covered.iter().any(|&(s, to)| s == stream as u32 && ev.offset < to) {
                // Restored with this frame already in.
                continue;
            }
            if wm < end {
                if early > 0 && end - start > early {
                    // Its first provisional record: the first whose
                    // boundary this stream's own watermark has not reached.
                    let k = if stream_watermark < start { 1 } else { ((stream_watermark - start) / early) as u32 + 1 };
                    w.hold_early(k, ev.key(), self.cfg.estimator);
                } else {
                    w.add(ev.key());
                }
            } else {
                let stage = 1 + ((wm - end) / interval) as u32;
                w.hold_late(stage, ev.key(), self.cfg.estimator);
                if first {
                    self.stats.late += 1;
                }
            }
            if !w.firsts.iter().any(|f| f.0 == stream as u32) {
                w.firsts.push((stream as u32, restart));
            }
            if first {
                self.stats.counted += 1;
            }
        }
    }

    /// Recomputes the global watermark and completes the stages it reached.
    pub fn advance(&mut self) {
        // Before windows are freed: the most open at once.
        self.stats.open_windows_peak = self.stats.open_windows_peak.max(self.open_windows() as u64);
        let active = self.streams.iter().filter(|s| !s.idle);
        let Some(wm) = active
            .map(|s| s.watermark())
            .try_fold(None::<Secs>, |acc, w| w.map(|w| Some(acc.map_or(w, |a: Secs| a.min(w)))))
        else {
            // A stream still warming up holds the watermark.
            return;
        };
        let Some(wm) = wm else {
            // Every stream is idle: nothing moves the watermark.
            return;
        };
        self.raise(wm);
    }

    /// Highest stream watermark (`max ts - lateness` of the stream that is
    /// furthest ahead), once any stream has one.
    pub fn leading_watermark(&self) -> Option<Secs> {
        self.streams.iter().filter_map(|s| s.watermark()).max()
    }

    /// When every stream is idle, moves the global watermark to `wm` (if it
    /// is later): a quiet input's last windows still close, as the wall
    /// clock runs on. Does nothing while any stream is active.
    pub fn advance_quiet(&mut self, wm: Secs) {
        if self.streams.iter().all(|s| s.idle) {
            self.raise(wm);
        }
    }

    /// Moves the global watermark to `wm` and completes what it reached.
    fn raise(&mut self, wm: Secs) {
        if self.watermark.is_some_and(|g| wm <= g) {
            return;
        }
        self.watermark = Some(wm);
        let allowed = self.cfg.allowed_lateness_secs as Secs;
        if self.kinds.iter().any(|k| k.windows.first().is_some_and(|w| w.end + allowed <= wm)) {
            // Windows are about to be freed, at their fullest.
            self.stats.state_bytes_peak = self.stats.state_bytes_peak.max(self.state_bytes() as u64);
        }
        for kind in &mut self.kinds {
            if !kind.resumed.is_empty() {
                // Final now without being read again (retention deleted its
                // frames, or they were all too late): nothing more to send.
                let k = kind.kind;
                kind.resumed.retain(|&start, _| k.end(start) + allowed > wm);
            }
            let mut finalized = 0;
            let early = has_early(&self.cfg, kind.kind);
            for w in kind.windows.iter_mut() {
                if w.end > wm {
                    if !early {
                        break;
                    }
                    // Still open: its provisional records up to `wm`.
                    complete_early(&self.cfg, kind.kind, w, wm, &mut self.out, &mut self.stats);
                    continue;
                }
                if complete(&self.cfg, kind.kind, w, wm, &mut self.out, &mut self.stats) {
                    finalized += 1;
                }
            }
            if finalized > 0 {
                kind.windows.retain(|w| w.end + allowed > wm);
            }
        }
    }
}

#[cfg(test)]
mod tests;
