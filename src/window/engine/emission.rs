//! One output record, and its bytes per the output contract.

use std::sync::Arc;

use crate::count::Estimator;
use crate::window::{Secs, WindowKind};

/// One output record: a window's count at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// How `unique_users` was counted.
    pub estimator: Estimator,
    /// With `--emit-sketch`, the window's users as data: for a sketch, its
    /// DataSketches compact serialization (canonical: see
    /// [`crate::count::sketch::UidSketch::canonical_bytes`]), written as
    /// `"sketch"`; for exact users, their uid hashes ascending, each a u64
    /// little-endian, written as `"hashes"`. Base64 in the record.
    pub sketch: Option<Arc<[u8]>>,
}

impl Emission {
    /// The record's value as one line of JSON (no newline), per the output
    /// contract.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            r#"{{"window":"{}","start":{},"end":{},"unique_users":{},"frames":{},"revision":{},"estimator":"{}","closed":{}"#,
            self.kind.name(),
            self.start,
            self.end,
            self.unique_users,
            self.frames,
            self.revision,
            self.estimator,
            self.closed
        );
        if let Some(sketch) = &self.sketch {
            let field: &[u8] = if self.estimator.is_sketch() { br#","sketch":""# } else { br#","hashes":""# };
            out.extend_from_slice(field);
            use base64::Engine as _;
            out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(sketch).as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// The record key identifying the window, e.g. `minute:1468244400`; a
    /// compacted topic keeps the latest revision per key.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.name(), self.start)
    }
}
