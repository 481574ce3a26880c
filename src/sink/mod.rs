//! Where records go. A sink receives emissions in order and makes them
//! visible on `flush`; the pipeline flushes after every batch so results
//! appear as soon as a window closes.
//!
//! - [`stdout`]: JSON lines on any writer (stdout by default).
//! - [`kafka`]: records on the output topic; its producer also carries
//!   the checkpoints' state records and, with `--exactly-once`, the
//!   transactions.

use std::fmt;
use std::io;
use std::time::Instant;

use crate::window::engine::Emission;

pub mod kafka;
pub mod stdout;

pub use stdout::LineSink;

/// Receives output records.
pub trait Sink {
    /// Queues one record.
    fn emit(&mut self, record: &Emission) -> Result<(), SinkError>;
    /// Makes every queued record visible downstream.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// Says when the records emitted from now on became due: when the merge
    /// applied the batch that completed their windows. Sinks that report
    /// emission latency measure from it; the default ignores it.
    fn set_due(&mut self, _due: Instant) {}
}

/// Why records could not be written: the writer's or the producer's own
/// error, shown as it is (its `source` is the wrapped error's source).
#[derive(Debug)]
#[non_exhaustive]
pub enum SinkError {
    /// Writing to stdout or the output file failed.
    Write(io::Error),
    /// The output topic refused or lost a record.
    Kafka(crate::kafka::Error),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Write(e) => e.fmt(f),
            SinkError::Kafka(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SinkError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SinkError::Write(e) => e.source(),
            SinkError::Kafka(e) => e.source(),
        }
    }
}

impl From<io::Error> for SinkError {
    fn from(e: io::Error) -> SinkError {
        SinkError::Write(e)
    }
}

impl From<crate::kafka::Error> for SinkError {
    fn from(e: crate::kafka::Error) -> SinkError {
        SinkError::Kafka(e)
    }
}
