//! Where records go. A sink receives emissions in order and makes them
//! visible on `flush`; the pipeline flushes after every batch so results
//! appear as soon as a window closes.
//!
//! - [`LineSink`]: JSON lines on any writer (stdout by default).
//!
//! The Kafka sink lives beside it.

use std::io::{self, Write};

use crate::window::engine::Emission;

/// Receives output records.
pub trait Sink {
    /// Queues one record.
    fn emit(&mut self, record: &Emission) -> io::Result<()>;
    /// Makes every queued record visible downstream.
    fn flush(&mut self) -> io::Result<()>;
}

/// Writes one JSON object per line.
#[derive(Debug)]
pub struct LineSink<W: Write> {
    out: W,
    line: Vec<u8>,
}

impl<W: Write> LineSink<W> {
    /// A sink writing to `out` (buffer it: records are written one by one).
    pub fn new(out: W) -> LineSink<W> {
        LineSink { out, line: Vec::with_capacity(256) }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write> Sink for LineSink<W> {
    fn emit(&mut self, record: &Emission) -> io::Result<()> {
        self.line.clear();
        record.write_json(&mut self.line);
        self.line.push(b'\n');
        self.out.write_all(&self.line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
