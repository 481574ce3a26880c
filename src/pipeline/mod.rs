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
//! The same two halves serve Kafka (`crate::kafka::source`): `worker`
//! holds what every worker does whatever its source (parser dispatch,
//! pinned threads, a frame's bookkeeping), and `merge` is the one merge
//! loop (apply, emit, metrics, progress), with each source's own part
//! behind `merge::Feed`: here, putting chunks back in order; for Kafka,
//! partitions, idleness, outages and checkpoints.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

pub(crate) mod merge;
pub(crate) mod worker;

use crate::frame::{FrameParser, ParserKind, Reject};
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::source::Chunk;
use crate::source::file::FileSource;
use crate::stats::{InputCounters, Summary};
use crate::window::Secs;
use crate::window::clock::Event;
use crate::window::engine::{Engine, EngineConfig};
use merge::Feed;
use worker::{Frames, WithParser};

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

/// Progress as the merge sees it.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Input read so far.
    pub input: InputCounters,
    /// Global watermark, once known.
    pub watermark: Option<Secs>,
    /// Open windows.
    pub open_windows: usize,
    /// Messages behind the end of the input, over all Kafka partitions,
    /// once librdkafka has reported every partition's end; None for files.
    pub lag: Option<i64>,
    /// Time since the start.
    pub elapsed: Duration,
}

/// Why a run stopped early.
#[derive(Debug)]
#[non_exhaustive]
pub enum PipelineError {
    /// Reading the input failed.
    Input(io::Error),
    /// Writing records failed.
    Output(io::Error),
}

impl std::fmt::Display for PipelineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PipelineError::Input(e) => write!(f, "reading input: {e}"),
            PipelineError::Output(e) => write!(f, "writing records: {e}"),
        }
    }
}

impl std::error::Error for PipelineError {}

/// Keeps workers from starting chunks far ahead of the merge.
struct Gate {
    ahead: u64,
    merged: Mutex<u64>,
    moved: Condvar,
    stop: AtomicBool,
}

impl Gate {
    fn new(ahead: u64) -> Gate {
        Gate { ahead, merged: Mutex::new(0), moved: Condvar::new(), stop: AtomicBool::new(false) }
    }

    /// Waits until chunk `seq` may start; false when the run is stopping.
    fn wait_turn(&self, seq: u64) -> bool {
        let mut merged = self.merged.lock().unwrap_or_else(|p| p.into_inner());
        while seq >= *merged + self.ahead && !self.stop.load(Ordering::Relaxed) {
            merged = self.moved.wait(merged).unwrap_or_else(|p| p.into_inner());
        }
        !self.stop.load(Ordering::Relaxed)
    }

    fn merged(&self, next: u64) {
        *self.merged.lock().unwrap_or_else(|p| p.into_inner()) = next;
        self.moved.notify_all();
    }

    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _guard = self.merged.lock().unwrap_or_else(|p| p.into_inner());
        self.moved.notify_all();
    }
}

/// What a worker made of one chunk.
struct Parsed {
    seq: u64,
    events: Vec<Event>,
    counters: InputCounters,
}

/// Counts `source` into `sink`; `progress` is called after each chunk.
pub fn count_file(
    plan: &CountPlan,
    source: &FileSource,
    sink: &mut dyn Sink,
    mut progress: impl FnMut(&Progress),
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let gate = Gate::new(chunks_ahead(plan.workers));
    let mut engine = Engine::new(plan.engine.clone(), 1);
    let cores = worker::cores(plan.pin);
    let (tx, rx) = mpsc::channel::<io::Result<Parsed>>();

    let outcome = std::thread::scope(|scope| {
        for w in 0..plan.workers.max(1) {
            let work = FileWorker { plan, source, gate: &gate, tx: tx.clone() };
            worker::spawn_worker(scope, format!("kuniq-worker-{w}"), w, &cores, move || {
                worker::run_with_parser(plan.parser, work)
            });
        }
        drop(tx);
        let mut feed = FileFeed { rx: &rx, gate: &gate, waiting: BTreeMap::new(), next: 0, ended: false };
        let result = merge::run(&mut feed, &mut engine, sink, plan.metrics.as_deref(), started, &mut progress);
        if result.is_err() {
            gate.stop();
        }
        result
    });
    let input = outcome?;
    let due = Instant::now();
    engine.flush();
    emit(&mut engine, sink, due)?;
    if let Some(metrics) = &plan.metrics {
        metrics.publish(&input, &engine);
    }
    Ok(Summary { input, engine: engine.stats(), elapsed: started.elapsed() })
}

/// The file side of the merge: puts the workers' chunks back in input
/// order and lets the workers move on as chunks are merged.
struct FileFeed<'a> {
    rx: &'a mpsc::Receiver<io::Result<Parsed>>,
    gate: &'a Gate,
    waiting: BTreeMap<u64, Parsed>,
    next: u64,
    ended: bool,
}

impl Feed for FileFeed<'_> {
    fn step(&mut self, engine: &mut Engine, input: &mut InputCounters) -> Result<Option<Instant>, PipelineError> {
        loop {
            if let Some(parsed) = self.waiting.remove(&self.next) {
                let due = Instant::now();
                input.add(&parsed.counters);
                engine.observe_batch(0, &parsed.events);
                self.next += 1;
                self.gate.merged(self.next);
                return Ok(Some(due));
            }
            match self.rx.recv() {
                Ok(result) => {
                    let parsed = result.map_err(PipelineError::Input)?;
                    self.waiting.insert(parsed.seq, parsed);
                }
                Err(_) => {
                    self.ended = true;
                    return Ok(None);
                }
            }
        }
    }

    fn done(&self) -> bool {
        self.ended
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
        sink.emit(&record).map_err(PipelineError::Output)?;
    }
    sink.flush().map_err(PipelineError::Output)
}

/// A file worker: takes chunks in turn, parses every line, sends the
/// events to the merge.
struct FileWorker<'a> {
    plan: &'a CountPlan,
    source: &'a FileSource,
    gate: &'a Gate,
    tx: mpsc::Sender<io::Result<Parsed>>,
}

impl WithParser for FileWorker<'_> {
    type Output = ();

    fn run<P: FrameParser>(self, parser: P) {
        let mut frames = Frames::new(parser, self.plan.max_frame_bytes);
        loop {
            let chunk = match self.source.next_chunk_gated(|seq| self.gate.wait_turn(seq)) {
                None => return,
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => {
                    let _ = self.tx.send(Err(e));
                    return;
                }
            };
            if self.tx.send(Ok(parse_chunk(&mut frames, &chunk))).is_err() {
                return;
            }
        }
    }
}

/// Parses every line of a chunk.
fn parse_chunk<P: FrameParser>(frames: &mut Frames<P>, chunk: &Chunk) -> Parsed {
    let data: &[u8] = &chunk.data;
    let mut counters = InputCounters {
        frames: chunk.too_large,
        bytes: data.len() as u64 + chunk.skipped_bytes,
        ..InputCounters::default()
    };
    counters.rejected[Reject::TooLarge.index()] += chunk.too_large;
    let mut events = Vec::with_capacity(data.len() / 1024 + 16);
    let mut pos = 0;
    while pos < data.len() {
        pos += frames.line(&data[pos..], chunk.base + pos as u64, &mut counters, &mut events) + 1;
    }
    Parsed { seq: chunk.seq, events, counters }
}
