//! One open window as the engine holds it, and the open windows of one
//! kind.

use super::{Checkpoint, EmittedWindow};
use crate::count::UidSet;
use crate::window::state::{self, Part, WindowState};
use crate::window::{Secs, WindowKind};

#[derive(Debug)]
pub(super) struct Window {
    pub(super) start: Secs,
    pub(super) end: Secs,
    pub(super) set: UidSet,
    pub(super) frames: u64,
    /// Late frames not yet released: (stage, uid hash).
    pub(super) held: Vec<(u32, u64)>,
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
    /// On-time frames waiting for their provisional record: (k, uid
    /// hashes), ascending k; frame admitted while its stream's watermark was
    /// before `start + k * early_interval` go into record `k` and later.
    pub(super) early: Vec<(u32, Vec<u64>)>,
    /// Provisional records completed (emitted, or skipped as unchanged).
    pub(super) next_early: u32,
    /// Provisional records at or below this complete without a record: a
    /// run before a restart sent them.
    pub(super) early_silent_through: u32,
    /// A record of the closed window was sent (later ones are revisions).
    pub(super) closed_sent: bool,
}

impl Window {
    pub(super) fn new(start: Secs, end: Secs) -> Window {
        Window {
            start,
            end,
            set: UidSet::new(),
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
        }
    }

    /// Holds an on-time frame for provisional record `k` (and later ones).
    pub(super) fn hold_early(&mut self, k: u32, hash: u64) {
        let k = k.max(self.next_early + 1);
        match self.early.iter_mut().rev().find(|(e, _)| *e <= k) {
            Some((e, hashes)) if *e == k => hashes.push(hash),
            _ => {
                let at = self.early.partition_point(|(e, _)| *e < k);
                self.early.insert(at, (k, vec![hash]));
            }
        }
    }

    /// Counts the held on-time frames of provisional records up to `k`.
    pub(super) fn release_early(&mut self, k: u32) {
        while self.early.first().is_some_and(|(e, _)| *e <= k) {
            let (_, hashes) = self.early.remove(0);
            self.frames += hashes.len() as u64;
            for hash in hashes {
                self.set.insert(hash);
            }
        }
    }

    /// The window's state as data, covering each stream's frames below its
    /// offset in `positions`. Stages completed so far are folded into stage
    /// 0 (the set holds them together); stage `s` above holds the late
    /// frames still waiting for it.
    pub(super) fn to_state(&self, kind: WindowKind, positions: &[(u32, u64)]) -> WindowState {
        let mut stages = vec![state::Stage { users: self.set.clone(), frames: self.frames }];
        let mut early: Vec<state::Stage> = Vec::new();
        for (k, hashes) in &self.early {
            if early.len() < *k as usize {
                early.resize_with(*k as usize, state::Stage::default);
            }
            let s = &mut early[*k as usize - 1];
            s.users.extend(hashes.iter().copied());
            s.frames += hashes.len() as u64;
        }
        for &(stage, hash) in &self.held {
            if stages.len() <= stage as usize {
                stages.resize_with(stage as usize + 1, state::Stage::default);
            }
            let s = &mut stages[stage as usize];
            s.users.insert(hash);
            s.frames += 1;
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
    pub(super) fn from_state(saved: &WindowState, end: Secs) -> Window {
        let mut w = Window::new(saved.start, end);
        for part in &saved.parts {
            for (stage, s) in part.stages.iter().enumerate() {
                if stage == 0 {
                    w.set.union_with(&s.users);
                    w.frames += s.frames;
                    continue;
                }
                // Held late frames are one entry per frame: each user once,
                // and the stage's other frames as repeats of one of them.
                let mut hashes = s.users.sorted().into_iter();
                let first = hashes.next();
                w.held.extend(first.into_iter().chain(hashes).map(|h| (stage as u32, h)));
                let repeats = s.frames.saturating_sub(s.users.len());
                w.held.extend(first.into_iter().cycle().take(repeats as usize).map(|h| (stage as u32, h)));
            }
            for (k, s) in part.early.iter().enumerate() {
                // As for held late frames: each user once, then repeats.
                let mut hashes = s.users.sorted();
                let repeats = s.frames.saturating_sub(s.users.len()) as usize;
                if let Some(&first) = hashes.first() {
                    hashes.extend(std::iter::repeat_n(first, repeats));
                }
                if !hashes.is_empty() {
                    w.early.push((k as u32 + 1, hashes));
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
        w
    }

    /// A window that goes on from what it had emitted before a restart.
    pub(super) fn resumed(start: Secs, end: Secs, emitted: &EmittedWindow) -> Window {
        Window {
            emitted: emitted.last,
            revisions: emitted.revisions,
            silent_below: emitted.stages,
            early_silent_through: emitted.early,
            closed_sent: emitted.stages > 0,
            ..Window::new(start, end)
        }
    }
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
    pub(super) fn window(&mut self, start: Secs, cap: usize) -> Option<usize> {
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
        let window = match resumed {
            Some(emitted) => Window::resumed(start, end, &emitted),
            None => Window::new(start, end),
        };
        self.windows.insert(at, window);
        Some(at)
    }
}
