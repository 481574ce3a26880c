//! Completing a window: its provisional records while open, then its
//! close and revision stages, and forcing the oldest out at the cap.

use super::window::{KindWindows, Window};
use super::{Emission, EngineConfig, EngineStats};
use crate::count::Users;
use crate::window::state;
use crate::window::{Secs, WindowKind};

/// Where completed windows go: records, or, for an engine that ships its
/// stream's slots to a merge ([`super::Engine::shipping`]), the frames of
/// each completed slot.
#[derive(Debug, Default)]
pub(super) struct Out {
    pub(super) records: Vec<Emission>,
    pub(super) shipped: Option<Vec<Shipped>>,
}

/// Where a shipped slot's frames go in the merge's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Slot {
    /// On-time frames first counted in provisional record `k` (1-based);
    /// `k` past the window's end: counted at its close.
    Early(u32),
    /// Stage `s`: 0 the on-time frames of a window without provisional
    /// records, `s > 0` the late frames of revision stage `s`.
    Stage(u32),
}

/// The frames of one slot of one window of one stream, completed by that
/// stream's own watermark (or shipped early, as far as read, when the
/// stream went idle or ended).
#[derive(Debug, Clone, PartialEq)]
pub struct Shipped {
    /// Window kind.
    pub kind: WindowKind,
    /// Window start.
    pub start: Secs,
    /// Which of the window's slots.
    pub slot: Slot,
    /// The slot's users and frames.
    pub stage: state::Stage,
}

/// True when windows of `kind` get provisional records: an early interval
/// shorter than the window.
pub(super) fn has_early(cfg: &EngineConfig, kind: WindowKind) -> bool {
    cfg.early_interval_secs > 0 && kind.longest_secs() > cfg.early_interval_secs as Secs
}

/// Emits the provisional records of the open window `w` whose boundaries
/// (`start + k * early_interval`, inside the window) watermark `wm` has
/// reached: record `k` counts the on-time frames held for it or earlier,
/// sent when that changed the window.
pub(super) fn complete_early(
    cfg: &EngineConfig,
    kind: WindowKind,
    w: &mut Window,
    wm: Secs,
    out: &mut Out,
    stats: &mut EngineStats,
) {
    let early = cfg.early_interval_secs as Secs;
    if early == 0 || w.next_stage > 0 {
        return;
    }
    loop {
        let k = w.next_early + 1;
        let boundary = w.start + Secs::from(k) * early;
        if boundary >= w.end || wm < boundary {
            return;
        }
        if let Some(shipped) = &mut out.shipped {
            w.ship_early(kind, k, cfg.estimator, shipped);
            w.next_early = k;
            continue;
        }
        w.release_early(k);
        let now = w.counts();
        if k > w.early_silent_through && w.emitted != Some(now) && now.1 > 0 {
            send(cfg, kind, w, now, false, out, stats);
        }
        w.next_early = k;
    }
}

/// True for the kinds whose open windows checkpoints save as data
/// ([`Engine::saved_windows`]): every kind longer than a minute. Minute
/// windows are read again after a restart instead (a few minutes of input).
pub fn saves_window(kind: WindowKind) -> bool {
    kind != WindowKind::Minute
}

/// Frees the oldest open window of `kind` after completing all its stages
/// (as at the end of input), because the cap on open windows is reached;
/// its frames and those of earlier windows are too late from now on.
#[cold]
pub(super) fn force_oldest(
    cfg: &EngineConfig,
    kind: &mut KindWindows,
    out: &mut Out,
    stats: &mut EngineStats,
    first_forced: &mut Option<Option<(WindowKind, Secs)>>,
) {
    if kind.windows.is_empty() {
        return;
    }
    let mut oldest = kind.windows.remove(0);
    complete(cfg, kind.kind, &mut oldest, Secs::MAX, out, stats);
    kind.forced_until = kind.forced_until.max(oldest.end);
    stats.windows_forced += 1;
    first_forced.get_or_insert(Some((kind.kind, oldest.start)));
}

/// Completes the stages of `w` that watermark `wm` reached, emitting a
/// record for each that changed the window. Returns true when the window is
/// final (its last stage completed).
pub(super) fn complete(
    cfg: &EngineConfig,
    kind: WindowKind,
    w: &mut Window,
    wm: Secs,
    out: &mut Out,
    stats: &mut EngineStats,
) -> bool {
    let allowed = cfg.allowed_lateness_secs as Secs;
    let interval = cfg.revision_interval_secs.max(1) as Secs;
    let last_stage = (allowed + interval - 1) / interval;
    let final_at = w.end + allowed;
    complete_early(cfg, kind, w, wm, out, stats);
    loop {
        let stage = w.next_stage;
        if i64::from(stage) > last_stage {
            return true;
        }
        let due = (w.end + i64::from(stage) * interval).min(final_at);
        if wm < due {
            return false;
        }
        if let Some(shipped) = &mut out.shipped {
            if stage == 0 {
                w.ship_early(kind, u32::MAX, cfg.estimator, shipped);
                w.ship_users(kind, cfg.estimator, shipped);
            }
            w.ship_late(kind, stage, cfg.estimator, shipped);
            w.next_stage += 1;
            if i64::from(stage) == last_stage {
                stats.windows_finalized += 1;
                return true;
            }
            continue;
        }
        if stage == 0 {
            // The close: every on-time frame, the last provisional
            // interval's too.
            w.release_early(u32::MAX);
        }
        w.release_late(stage);
        let now = w.counts();
        // A window whose first frames were late has nothing to say before
        // the stage that releases them; a resumed window sent its records
        // for the stages below `silent_below` before the restart.
        // The close is always said (even when a provisional record already
        // had its count); later stages only when they changed the window.
        let changed = w.emitted != Some(now) || !w.closed_sent;
        if stage >= w.silent_below && changed && now.1 > 0 {
            send(cfg, kind, w, now, true, out, stats);
        }
        w.next_stage += 1;
        if i64::from(stage) == last_stage {
            stats.windows_finalized += 1;
            return true;
        }
    }
}

/// Emits the record of `w` saying `now` (users, frames) as its next
/// revision: provisional while the window is open, else its close or a
/// revision of it.
fn send(
    cfg: &EngineConfig,
    kind: WindowKind,
    w: &mut Window,
    now: (u64, u64),
    closed: bool,
    out: &mut Out,
    stats: &mut EngineStats,
) {
    out.records.push(Emission {
        kind,
        start: w.start,
        end: w.end,
        unique_users: now.0,
        frames: now.1,
        revision: w.revisions,
        closed,
        estimator: cfg.estimator,
        sketch: match &w.users {
            _ if !cfg.emit_sketch => None,
            Users::Sketch(sketch) => Some(sketch.canonical_bytes().into()),
            Users::Exact(set) => Some(set.sorted().iter().flat_map(|h| h.to_le_bytes()).collect()),
        },
    });
    stats.emissions += 1;
    if !closed {
        stats.provisional += 1;
    } else if w.closed_sent {
        stats.revisions += 1;
    }
    w.closed_sent |= closed;
    w.revisions += 1;
    w.emitted = Some(now);
}
