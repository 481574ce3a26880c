//! One output record, and its bytes per the output contract.

use crate::window::{Secs, WindowKind};

/// One output record: a window's count at one revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emission {
    /// Window kind.
    pub kind: WindowKind,
    /// Window start, unix seconds.
    pub start: Secs,
    /// Window end (exclusive), unix seconds.
    pub end: Secs,
    /// Distinct uids.
    pub unique_users: u64,
    /// Frames counted into the window.
    pub frames: u64,
    /// 0 for the first emission, +1 for each one after it (provisional
    /// records of an open window included).
    pub revision: u32,
    /// False for a provisional record of a window still open
    /// (`--early-interval`); true from the record at its close on.
    pub closed: bool,
}

impl Emission {
    /// The record's value as one line of JSON (no newline), per the output
    /// contract.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"window":"{}","start":{},"end":{},"unique_users":{},"frames":{},"revision":{},"estimator":"exact","closed":{}}}"#,
            self.kind.name(),
            self.start,
            self.end,
            self.unique_users,
            self.frames,
            self.revision,
            self.closed
        );
    }

    /// The record key identifying the window, e.g. `minute:1468244400`; a
    /// compacted topic keeps the latest revision per key.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.name(), self.start)
    }
}
