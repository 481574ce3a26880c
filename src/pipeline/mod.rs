//! Threads: pinned workers parse chunks in parallel, the merge (the calling
//! thread) puts their results back in input order and feeds the window
//! engine, which emits records to the sink.
//!
//! ```text
//!   source ──chunks──▶ worker 0 (core 0) ─┐
//!          ──chunks──▶ worker 1 (core 1) ─┼─results──▶ merge: reorder ▶ engine ▶ sink
//!                             ...         ─┘
//! ```
//!
//! Workers do the expensive part (JSON scan, uid hash) and send compact
//! events (ts, hash, offset: 24 bytes a frame). The merge applies events in
//! input order, so the output is exactly that of a sequential run, byte for
//! byte, whatever the number of workers. Memory stays bounded: a worker may
//! not start a chunk more than [`chunks_ahead`] chunks (two per worker)
//! ahead of the merge, so no worker runs far ahead in event time while
//! results pile up.
//!
//! Every source runs on the same two halves: [`worker`] holds what every
//! worker does whatever its source (parser dispatch, pinned threads, a
//! frame's bookkeeping), and [`merge`] is the one merge loop (apply, emit,
//! metrics, progress). Each source's own part sits behind `merge::Feed`, in
//! the source's folder: for files (`crate::source::file`), putting chunks
//! back in order; for Kafka (`crate::source::kafka`), partitions,
//! idleness, outages and checkpoints.

use std::io;
use std::sync::Arc;
use std::time::Instant;

pub(crate) mod merge;
pub(crate) mod worker;

pub use crate::source::file::count_file;
pub use crate::source::kafka::count_kafka;

use crate::frame::ParserKind;
use crate::kafka;
use crate::metrics::Metrics;
use crate::sink::{Sink, SinkError};
use crate::window::engine::{Engine, EngineConfig};

/// Chunks the workers may start ahead of the merge: two per worker, so
/// every worker has one to parse while its last result waits to be merged
/// (at least 4). Each chunk in flight holds up to a segment (4 MiB) of
/// input and its events.
pub fn chunks_ahead(workers: usize) -> u64 {
    (2 * workers.max(1) as u64).max(4)
}

/// How to count a file or stream.
#[derive(Debug, Clone)]
pub struct CountPlan {
    /// Frame parser.
    pub parser: ParserKind,
    /// Parsing threads.
    pub workers: usize,
    /// Pin workers to cores.
    pub pin: bool,
    /// Window semantics.
    pub engine: EngineConfig,
    /// Lines longer than this are skipped and counted as too large.
    pub max_frame_bytes: usize,
    /// Where the merge publishes the run's totals after each batch
    /// (`--metrics-addr`); `None` publishes nothing.
    pub metrics: Option<Arc<Metrics>>,
}

/// Why a run stopped early. Input and output errors say which side failed
/// and give the error as their `source`; a Kafka error is shown as it is.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading the input file or stdin failed.
    Input(io::Error),
    /// Writing records failed (stdout, the output file or topic).
    Output(SinkError),
    /// Reading the topic, or loading or saving its checkpoints, failed.
    Kafka(kafka::Error),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Input(_) => f.write_str("reading input"),
            PipelineError::Output(_) => f.write_str("writing records"),
            PipelineError::Kafka(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PipelineError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PipelineError::Input(e) => Some(e),
            PipelineError::Output(e) => Some(e),
            // Shown as itself (see Display): its source comes next.
            PipelineError::Kafka(e) => e.source(),
        }
    }
}

impl From<SinkError> for PipelineError {
    fn from(e: SinkError) -> PipelineError {
        PipelineError::Output(e)
    }
}

impl From<kafka::Error> for PipelineError {
    fn from(e: kafka::Error) -> PipelineError {
        PipelineError::Kafka(e)
    }
}

/// Sends the engine's pending records to `sink` and flushes it; `due` is
/// when the merge began applying the input that completed them (emission
/// latency is measured from there). Warns, once a run, when the
/// cap on open windows forced one out.
pub(crate) fn emit(engine: &mut Engine, sink: &mut dyn Sink, due: Instant) -> Result<(), PipelineError> {
    if let Some((kind, start)) = engine.take_first_forced() {
        tracing::warn!(
            max_open_windows = engine.config().max_open_windows,
            window = kind.name(),
            start,
            "{} {} windows were open at once (--max-open-windows), so the oldest, starting at {start}, was emitted \
             early; its later frames count as too late. Windows forced out are counted in the summary \
             (windows_forced).",
            engine.config().max_open_windows,
            kind.name()
        );
    }
    let records = engine.emissions();
    if records.is_empty() {
        return Ok(());
    }
    sink.set_due(due);
    for record in records.drain(..) {
        sink.emit(&record)?;
    }
    Ok(sink.flush()?)
}
