//! What a checkpoint keeps of the engine: per stream, where to read again
//! and what was final; per open window, what it had emitted.

use crate::window::{Secs, WindowKind};

/// A point to re-read a stream from, with its clock's state there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// First offset to read again.
    pub offset: u64,
    /// The stream's highest admitted ts before `offset`; `None` when the
    /// stream had not finished its warm-up (it warms up again).
    pub max_ts: Option<Secs>,
}

/// What a restart needs to know about one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamState {
    /// Where to read again.
    pub resume: Checkpoint,
    /// Windows with `end + allowed_lateness <= final_before` were final:
    /// their frames are skipped on re-reading.
    pub final_before: Option<Secs>,
    /// Offsets below this were read before; of those, frames of final
    /// windows are skipped silently (counted as `reread`), later ones are
    /// too late.
    pub read_to: u64,
}

/// What an open window had emitted when a checkpoint was taken. A run
/// resumed from that checkpoint goes on from there: the window's frames are
/// read again, but the records it already sent are not, and its next record
/// is revision `revisions`, sent only if its count differs from `last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmittedWindow {
    /// Window kind.
    pub kind: WindowKind,
    /// Window start, unix seconds.
    pub start: Secs,
    /// Records sent so far (revisions 0 to `revisions - 1`).
    pub revisions: u32,
    /// (unique_users, frames) of the last record sent; `None` when unknown
    /// (a state saved by kuniq 0.1 before this was kept).
    pub last: Option<(u64, u64)>,
    /// Stages completed; a resumed window completes them again without a
    /// record.
    pub stages: u32,
    /// Provisional records completed (`early_interval_secs`); a resumed
    /// window completes them again without a record.
    pub early: u32,
}
