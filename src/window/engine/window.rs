//! One open window as the engine holds it, and the open windows of one
//! kind.

use super::complete::{Shipped, Slot};
use super::{Checkpoint, EmittedWindow};
use crate::count::sketch::{UidCoupon, UidSketch};
use crate::count::{Estimator, MixedEstimators, UidKey, Users};
use crate::window::state::{self, Part, WindowState};
use crate::window::{Secs, WindowKind};

#[derive(Debug)]
pub(super) struct Window {
    pub(super) start: Secs,
    pub(super) end: Secs,
    pub(super) users: Users,
    pub(super) frames: u64,
    /// Late frames not yet released, by stage, ascending.
    pub(super) held: Vec<(u32, Held)>,
    /// Next stage to complete.
    pub(super) next_stage: u32,
    /// Values of the last emission.
    pub(super) emitted: Option<(u64, u64)>,
    /// Emissions so far.
    pub(super) revisions: u32,
    /// Stages below this complete without a record: a run before a restart
    /// completed them and sent what they had (see [`EmittedWindow`]).
    pub(super) silent_below: u32,
    /// Per stream that sent frames here: the checkpoint before its first.
    pub(super) firsts: Vec<(u32, Checkpoint)>,
    /// A window restored from saved state: per stream, the offset below
    /// which its frames are already in (read again, they are skipped).
    pub(super) covered: Vec<(u32, u64)>,
    /// On-time frames waiting for their provisional record, by `k`,
    /// ascending: a frame admitted while its stream's watermark was before
    /// `start + k * early_interval` goes into record `k` and later.
    pub(super) early: Vec<(u32, Held)>,
    /// Provisional records completed (emitted, or skipped as unchanged).
    pub(super) next_early: u32,
    /// Provisional records at or below this complete without a record: a
    /// run before a restart sent them.
    pub(super) early_silent_through: u32,
    /// A record of the closed window was sent (later ones are revisions).
    pub(super) closed_sent: bool,
    /// Uid hashes this exact window gained since its state was last saved
    /// whole ([`super::Engine::mark_windows_saved`]), so a checkpoint can
    /// save only those; `None` while nothing is tracked (no checkpoint yet,
    /// windows that are not saved, sketch windows).
    pub(super) unsaved: Option<Vec<u64>>,
}

/// Frames held for a later record (a provisional record, or a stage of
/// late frames): their uids, and how many.
#[derive(Debug)]
pub(super) enum Held {
    /// An exact window's: each frame's uid hash, counted into the window's
    /// set when released.
    Hashes(Vec<u64>),
    /// A sketch window's: each frame's coupon (none for an empty uid),
    /// added to the window's sketch when released. A few bytes a frame,
    /// where a sketch per provisional record or stage would cost a union
    /// of the window's registers at each release.
    Coupons {
        /// The held frames' coupons.
        coupons: Vec<UidCoupon>,
        /// Frames held.
        frames: u64,
    },
    /// An exact window's held frames restored from saved or shipped state,
    /// where they were kept as a set of users and a frame count: united with
    /// the window's set when released.
    Set {
        /// The held frames' uids (boxed: the set's shard headers would make
        /// every held entry large).
        users: Box<crate::count::UidSet>,
        /// Frames held.
        frames: u64,
    },
    /// A sketch window's held frames restored from a checkpoint, where they
    /// were saved as a sketch: merged into the window's when released.
    Sketch {
        /// The held frames' uids.
        users: UidSketch,
        /// Frames held.
        frames: u64,
    },
}

impl Held {
    /// Nothing held yet, for windows counted with `estimator`.
    fn new(estimator: Estimator) -> Held {
        match estimator.users() {
            Users::Exact(_) => Held::Hashes(Vec::new()),
            Users::Sketch(_) => Held::Coupons { coupons: Vec::new(), frames: 0 },
        }
    }

    #[inline]
    fn add(&mut self, key: UidKey) {
        match self {
            Held::Hashes(hashes) => hashes.push(key.hash),
            Held::Coupons { coupons, frames } => {
                coupons.extend(key.coupon);
                *frames += 1;
            }
            Held::Set { users, frames } => {
                users.insert(key.hash);
                *frames += 1;
            }
            Held::Sketch { users, frames } => {
                if let Some(coupon) = key.coupon {
                    users.update_coupon(coupon);
                }
                *frames += 1;
            }
        }
    }

    fn frames(&self) -> u64 {
        match self {
            Held::Hashes(hashes) => hashes.len() as u64,
            Held::Coupons { frames, .. } | Held::Set { frames, .. } | Held::Sketch { frames, .. } => *frames,
        }
    }

    /// Counts the held frames into `users` and `frames`; hashes new to
    /// the set go to `unsaved` too when it tracks them.
    fn release(self, users: &mut Users, frames: &mut u64, unsaved: &mut Option<Vec<u64>>) {
        *frames += self.frames();
        match (self, users) {
            (Held::Hashes(hashes), Users::Exact(set)) => match unsaved {
                Some(unsaved) => unsaved.extend(hashes.into_iter().filter(|&h| set.insert(h))),
                None => set.extend(hashes),
            },
            (Held::Set { users: held, .. }, Users::Exact(set)) => match unsaved {
                Some(unsaved) => unsaved.extend(held.iter().filter(|&h| set.insert(h))),
                None => set.union_with(&held),
            },
            (Held::Coupons { coupons, .. }, Users::Sketch(sketch)) => {
                coupons.into_iter().for_each(|c| sketch.update_coupon(c));
            }
            (Held::Sketch { users: held, .. }, Users::Sketch(sketch)) => sketch.merge(&held),
            // A window and its held frames share the engine's estimator.
            (held, users) => unreachable!("held {held:?} released into {users:?}"),
        }
    }

    /// The held frames as a stage of a [`WindowState`] (held coupons as a
    /// sketch of `estimator`'s size).
    fn to_stage(&self, estimator: Estimator) -> state::Stage {
        match self {
            Held::Coupons { coupons, frames } => {
                let mut users = estimator.users();
                if let Users::Sketch(sketch) = &mut users {
                    coupons.iter().for_each(|&c| sketch.update_coupon(c));
                }
                state::Stage { users, frames: *frames }
            }
            Held::Hashes(hashes) => {
                state::Stage { users: Users::Exact(hashes.iter().copied().collect()), frames: hashes.len() as u64 }
            }
            Held::Set { users, frames } => state::Stage { users: Users::Exact((**users).clone()), frames: *frames },
            Held::Sketch { users, frames } => state::Stage { users: Users::Sketch(users.clone()), frames: *frames },
        }
    }

    /// [`Held::to_stage`], emptying the held frames (for shipping).
    fn take_stage(&mut self, estimator: Estimator) -> state::Stage {
        let stage = if let Held::Set { users, frames } = self {
            state::Stage { users: Users::Exact(std::mem::take(&mut **users)), frames: std::mem::take(frames) }
        } else {
            self.to_stage(estimator)
        };
        *self = Held::new(estimator);
        stage
    }

    /// Held frames restored from a saved or shipped stage.
    fn from_stage(stage: &state::Stage) -> Held {
        match &stage.users {
            Users::Exact(set) => Held::Set { users: Box::new(set.clone()), frames: stage.frames },
            Users::Sketch(users) => Held::Sketch { users: users.clone(), frames: stage.frames },
        }
    }

    /// Adds `other`'s frames to these (both of one window's estimator).
    fn absorb(&mut self, other: Held) -> Result<(), MixedEstimators> {
        match (self, other) {
            (Held::Hashes(a), Held::Hashes(b)) => a.extend(b),
            (Held::Coupons { coupons: a, frames: fa }, Held::Coupons { coupons: b, frames: fb }) => {
                a.extend(b);
                *fa += fb;
            }
            (Held::Set { users: a, frames: fa }, Held::Set { users: b, frames: fb }) => {
                a.union_with(&b);
                *fa += fb;
            }
            (Held::Sketch { users: a, frames: fa }, Held::Sketch { users: b, frames: fb }) => {
                a.merge(&b);
                *fa += fb;
            }
            (this @ Held::Hashes(_), Held::Set { users, frames }) => {
                let Held::Hashes(hashes) = std::mem::replace(this, Held::Set { users, frames }) else { unreachable!() };
                if let Held::Set { users, frames } = this {
                    *frames += hashes.len() as u64;
                    users.extend(hashes);
                }
            }
            (Held::Set { users, frames }, Held::Hashes(hashes)) => {
                *frames += hashes.len() as u64;
                users.extend(hashes);
            }
            (this @ Held::Coupons { .. }, Held::Sketch { users, frames }) => {
                let Held::Coupons { coupons, frames: held } = std::mem::replace(this, Held::Sketch { users, frames })
                else {
                    unreachable!()
                };
                if let Held::Sketch { users, frames } = this {
                    coupons.into_iter().for_each(|c| users.update_coupon(c));
                    *frames += held;
                }
            }
            (Held::Sketch { users, frames }, Held::Coupons { coupons, frames: held }) => {
                coupons.into_iter().for_each(|c| users.update_coupon(c));
                *frames += held;
            }
            _ => return Err(MixedEstimators),
        }
        Ok(())
    }
}

/// Adds `key` to the held frames of `at` in `held` (sorted by their first
/// element), creating them if need be.
#[inline]
fn hold(held: &mut Vec<(u32, Held)>, at: u32, key: UidKey, estimator: Estimator) {
    match held.iter_mut().rev().find(|(e, _)| *e <= at) {
        Some((e, frames)) if *e == at => frames.add(key),
        _ => {
            let i = held.partition_point(|(e, _)| *e < at);
            let mut frames = Held::new(estimator);
            frames.add(key);
            held.insert(i, (at, frames));
        }
    }
}

impl Window {
    pub(super) fn new(start: Secs, end: Secs, estimator: Estimator) -> Window {
        Window {
            start,
            end,
            users: estimator.users(),
            frames: 0,
            held: Vec::new(),
            next_stage: 0,
            emitted: None,
            revisions: 0,
            silent_below: 0,
            firsts: Vec::new(),
            covered: Vec::new(),
            early: Vec::new(),
            next_early: 0,
            early_silent_through: 0,
            closed_sent: false,
            unsaved: None,
        }
    }

    /// Counts an on-time frame now.
    #[inline]
    pub(super) fn add(&mut self, key: UidKey) {
        if self.users.add(key)
            && let Some(unsaved) = &mut self.unsaved
        {
            unsaved.push(key.hash);
        }
        self.frames += 1;
    }

    /// Holds an on-time frame for provisional record `k` (and later ones).
    #[inline]
    pub(super) fn hold_early(&mut self, k: u32, key: UidKey, estimator: Estimator) {
        let k = k.max(self.next_early + 1);
        hold(&mut self.early, k, key, estimator);
    }

    /// Holds a late frame for revision stage `stage`.
    #[inline]
    pub(super) fn hold_late(&mut self, stage: u32, key: UidKey, estimator: Estimator) {
        hold(&mut self.held, stage, key, estimator);
    }

    /// Counts the held on-time frames of provisional records up to `k`.
    pub(super) fn release_early(&mut self, k: u32) {
        let n = self.early.partition_point(|(e, _)| *e <= k);
        for (_, held) in self.early.drain(..n) {
            held.release(&mut self.users, &mut self.frames, &mut self.unsaved);
        }
    }

    /// Counts the held late frames of stages up to `stage`.
    pub(super) fn release_late(&mut self, stage: u32) {
        let n = self.held.partition_point(|(s, _)| *s <= stage);
        for (_, held) in self.held.drain(..n) {
            held.release(&mut self.users, &mut self.frames, &mut self.unsaved);
        }
    }

    /// Ships the held on-time frames of provisional records up to `k`.
    pub(super) fn ship_early(&mut self, kind: WindowKind, k: u32, estimator: Estimator, out: &mut Vec<Shipped>) {
        let n = self.early.partition_point(|(e, _)| *e <= k);
        for (e, mut held) in self.early.drain(..n) {
            out.push(Shipped { kind, start: self.start, slot: Slot::Early(e), stage: held.take_stage(estimator) });
        }
    }

    /// Ships the held late frames of stages up to `stage`.
    pub(super) fn ship_late(&mut self, kind: WindowKind, stage: u32, estimator: Estimator, out: &mut Vec<Shipped>) {
        let n = self.held.partition_point(|(s, _)| *s <= stage);
        for (s, mut held) in self.held.drain(..n) {
            out.push(Shipped { kind, start: self.start, slot: Slot::Stage(s), stage: held.take_stage(estimator) });
        }
    }

    /// Ships the frames counted straight into the window (on time, no
    /// provisional records) as stage 0, leaving it empty.
    pub(super) fn ship_users(&mut self, kind: WindowKind, estimator: Estimator, out: &mut Vec<Shipped>) {
        if self.frames > 0 {
            let users = std::mem::replace(&mut self.users, estimator.users());
            let stage = state::Stage { users, frames: std::mem::take(&mut self.frames) };
            out.push(Shipped { kind, start: self.start, slot: Slot::Stage(0), stage });
        }
    }

    /// A copy of everything read into the window so far that no slot has
    /// shipped (the stream went idle): the frames of each provisional
    /// record, the window's own, and each late stage. Nothing is taken: the
    /// slots still ship whole when they complete.
    pub(super) fn snapshot_pending(&self, kind: WindowKind, estimator: Estimator, out: &mut Vec<Shipped>) {
        let start = self.start;
        for (e, held) in &self.early {
            out.push(Shipped { kind, start, slot: Slot::Early(*e), stage: held.to_stage(estimator) });
        }
        if self.frames > 0 {
            let stage = state::Stage { users: self.users.clone(), frames: self.frames };
            out.push(Shipped { kind, start, slot: Slot::Stage(0), stage });
        }
        for (s, held) in &self.held {
            out.push(Shipped { kind, start, slot: Slot::Stage(*s), stage: held.to_stage(estimator) });
        }
    }

    /// Adds a slot shipped by one stream to the window (the merge side):
    /// it is held for the provisional record or stage it belongs to, or,
    /// when that has already completed (the stream was idle and lagged),
    /// for the next one.
    pub(super) fn absorb(&mut self, slot: Slot, stage: &state::Stage) -> Result<(), MixedEstimators> {
        if stage.frames == 0 {
            return Ok(());
        }
        match slot {
            Slot::Early(k) if self.next_stage == 0 => {
                restore_held(&mut self.early, k.max(self.next_early + 1), stage, &mut self.users)
            }
            Slot::Early(_) => restore_held(&mut self.held, self.next_stage, stage, &mut self.users),
            Slot::Stage(s) => restore_held(&mut self.held, s.max(self.next_stage), stage, &mut self.users),
        }
    }

    /// The number of distinct users counted so far, and of frames.
    #[inline]
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.users.count(), self.frames)
    }

    /// Bytes held by the window's users and held frames.
    pub(super) fn state_bytes(&self) -> usize {
        let held = |h: &Held| match h {
            Held::Hashes(hashes) => hashes.capacity() * 8,
            Held::Coupons { coupons, .. } => coupons.capacity() * 4,
            Held::Set { users, .. } => users.state_bytes(),
            Held::Sketch { users, .. } => users.state_bytes(),
        };
        self.users.state_bytes()
            + self.unsaved.as_ref().map_or(0, |u| u.capacity() * 8)
            + self.held.iter().chain(&self.early).map(|(_, h)| held(h)).sum::<usize>()
            + std::mem::size_of::<Window>()
    }

    /// The window's state as data, covering each stream's frames below its
    /// offset in `positions`. Stages completed so far are folded into stage
    /// 0 (the set holds them together); stage `s` above holds the late
    /// frames still waiting for it.
    ///
    /// With `changes`, an exact window that tracks its unsaved hashes gives
    /// only those as stage 0's users (its frames still whole): the state
    /// to unite with the one last saved whole ([`state::WindowState::with_saved`]).
    pub(super) fn to_state(
        &self,
        kind: WindowKind,
        positions: &[(u32, u64)],
        estimator: Estimator,
        changes: bool,
    ) -> WindowState {
        let empty = || state::Stage { users: estimator.users(), frames: 0 };
        let users = match (&self.unsaved, &self.users) {
            (Some(unsaved), Users::Exact(_)) if changes => Users::Exact(unsaved.iter().copied().collect()),
            _ => self.users.clone(),
        };
        let mut stages = vec![state::Stage { users, frames: self.frames }];
        for (stage, held) in &self.held {
            let held = held.to_stage(estimator);
            if *stage == 0 {
                // A merge's on-time slots waiting for the close: counted
                // with the window's own (the same record says both).
                let _ = stages[0].users.union_with(&held.users);
                stages[0].frames += held.frames;
                continue;
            }
            stages.resize_with((*stage as usize).max(stages.len()), empty);
            stages.push(held);
        }
        let mut early: Vec<state::Stage> = Vec::new();
        for (k, held) in &self.early {
            early.resize_with(*k as usize - 1, empty);
            early.push(held.to_stage(estimator));
        }
        // A stream read again after a restore has its frames in up to where
        // the saved state said, even before this run has read that far.
        let covers = positions
            .iter()
            .map(|&(stream, position)| {
                let before = self.covered.iter().find(|c| c.0 == stream).map_or(0, |c| c.1);
                (stream, position.max(before))
            })
            .collect();
        WindowState {
            kind,
            start: self.start,
            parts: vec![Part { covers, stages, early }],
            emitted: state::Emitted {
                revisions: self.revisions,
                stages: self.next_stage.max(self.silent_below),
                last: self.emitted,
                early: self.next_early.max(self.early_silent_through),
                closed: self.closed_sent,
            },
        }
    }

    /// A window restored from `saved` (one process's part, as
    /// [`Window::to_state`] writes it).
    /// Errors when the saved state was counted with another estimator.
    pub(super) fn from_state(saved: &WindowState, end: Secs, estimator: Estimator) -> Result<Window, MixedEstimators> {
        let mut w = Window::new(saved.start, end, estimator);
        for part in &saved.parts {
            for (stage, s) in part.stages.iter().enumerate() {
                if stage == 0 {
                    w.users.union_with(&s.users)?;
                    w.frames += s.frames;
                } else if s.frames > 0 {
                    restore_held(&mut w.held, stage as u32, s, &mut w.users)?;
                }
            }
            for (k, s) in part.early.iter().enumerate() {
                if s.frames > 0 {
                    restore_held(&mut w.early, k as u32 + 1, s, &mut w.users)?;
                }
            }
            for &(stream, to) in &part.covers {
                match w.covered.iter_mut().find(|c| c.0 == stream) {
                    Some(c) => c.1 = c.1.max(to),
                    None => w.covered.push((stream, to)),
                }
            }
        }
        w.next_stage = saved.emitted.stages;
        w.revisions = saved.emitted.revisions;
        w.emitted = saved.emitted.last;
        w.next_early = saved.emitted.early;
        w.closed_sent = saved.emitted.closed;
        Ok(w)
    }

    /// A window that goes on from what it had emitted before a restart.
    pub(super) fn resumed(start: Secs, end: Secs, emitted: &EmittedWindow, estimator: Estimator) -> Window {
        Window {
            emitted: emitted.last,
            revisions: emitted.revisions,
            silent_below: emitted.stages,
            early_silent_through: emitted.early,
            closed_sent: emitted.stages > 0,
            ..Window::new(start, end, estimator)
        }
    }
}

/// Adds a saved stage's frames to the held frames of `at` (parts of one
/// window are merged stage by stage). `users` is the window's, to check the
/// stage was counted with the same estimator.
fn restore_held(
    held: &mut Vec<(u32, Held)>,
    at: u32,
    stage: &state::Stage,
    users: &mut Users,
) -> Result<(), MixedEstimators> {
    if std::mem::discriminant(users) != std::mem::discriminant(&stage.users) {
        return Err(MixedEstimators);
    }
    let restored = Held::from_stage(stage);
    let i = held.partition_point(|(e, _)| *e < at);
    match held.get_mut(i) {
        Some((e, existing)) if *e == at => existing.absorb(restored)?,
        _ => held.insert(i, (at, restored)),
    }
    Ok(())
}

#[derive(Debug)]
pub(super) struct KindWindows {
    pub(super) kind: WindowKind,
    /// Open windows, sorted by start; new windows are usually last.
    pub(super) windows: Vec<Window>,
    /// Windows ending at or before this were forced out by the cap: final.
    pub(super) forced_until: Secs,
    /// Windows that had emitted before a restart and are not open again
    /// yet, by start: they reopen with that state.
    pub(super) resumed: std::collections::HashMap<Secs, EmittedWindow>,
}

impl KindWindows {
    /// The index of the window starting at `start`, opened if need be;
    /// `None` when it is not open and may not be opened: it was forced out
    /// (`end <= forced_until`), or `cap` windows are open. The checks cost
    /// nothing for frames of open windows.
    #[inline]
    /// New windows track their unsaved hashes with `track`.
    pub(super) fn window(&mut self, start: Secs, cap: usize, estimator: Estimator, track: bool) -> Option<usize> {
        let at = match self.windows.iter().rposition(|w| w.start <= start) {
            Some(i) if self.windows[i].start == start => return Some(i),
            Some(i) => i + 1,
            None => 0,
        };
        let end = self.kind.end(start);
        if end <= self.forced_until || self.windows.len() >= cap {
            return None;
        }
        // Empty except after a restart: no hashing for new windows then.
        let resumed = if self.resumed.is_empty() { None } else { self.resumed.remove(&start) };
        let mut window = match resumed {
            Some(emitted) => Window::resumed(start, end, &emitted, estimator),
            None => Window::new(start, end, estimator),
        };
        if track {
            window.unsaved = Some(Vec::new());
        }
        self.windows.insert(at, window);
        Some(at)
    }
}
