//! Where records go. A sink receives emissions in order and makes them
//! visible on `flush`; the pipeline flushes after every batch so results
//! appear as soon as a window closes.
//!
//! - [`stdout`]: JSON lines on any writer (stdout by default).
//! - [`kafka`]: records on the output topic; its producer also carries
//!   the checkpoints' state records and, with `--exactly-once`, the
//!   transactions.

use std::io;
use std::time::Instant;

use crate::window::engine::Emission;

pub mod kafka;
pub mod stdout;

pub use stdout::LineSink;

/// Receives output records.
pub trait Sink {
    /// Queues one record.
    fn emit(&mut self, record: &Emission) -> io::Result<()>;
    /// Makes every queued record visible downstream.
    fn flush(&mut self) -> io::Result<()>;
    /// Says when the records emitted from now on became due: when the merge
    /// applied the batch that completed their windows. Sinks that report
    /// emission latency measure from it; the default ignores it.
    fn set_due(&mut self, _due: Instant) {}
}
