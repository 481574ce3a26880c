//! Records as JSON lines on any writer: stdout by default, or `-o FILE`.

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use super::{Sink, SinkError};
use crate::metrics::Metrics;
use crate::window::engine::Emission;

/// Writes one JSON object per line.
#[derive(Debug)]
pub struct LineSink<W: Write> {
    out: W,
    line: Vec<u8>,
    /// Emission latency: records written since the last flush, and since
    /// when they were due.
    metrics: Option<Arc<Metrics>>,
    due: Option<Instant>,
    unflushed: u32,
}

impl<W: Write> LineSink<W> {
    /// A sink writing to `out` (buffer it: records are written one by one).
    pub fn new(out: W) -> LineSink<W> {
        LineSink { out, line: Vec::with_capacity(256), metrics: None, due: None, unflushed: 0 }
    }

    /// A sink that also records each record's emission latency (due to
    /// written and flushed) in `metrics`.
    pub fn with_metrics(out: W, metrics: Option<Arc<Metrics>>) -> LineSink<W> {
        LineSink { metrics, ..LineSink::new(out) }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for LineSink<W> {
    fn emit(&mut self, record: &Emission) -> Result<(), SinkError> {
        self.line.clear();
        record.write_json(&mut self.line);
        self.line.push(b'\n');
        self.unflushed += 1;
        Ok(self.out.write_all(&self.line)?)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush()?;
        if let (Some(metrics), Some(due)) = (&self.metrics, self.due) {
            let latency = due.elapsed();
            for _ in 0..self.unflushed {
                metrics.observe_latency(latency);
            }
        }
        self.unflushed = 0;
        Ok(())
    }

    fn set_due(&mut self, due: Instant) {
        self.due = Some(due);
    }
}
