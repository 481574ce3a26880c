//! The file side of the pipeline: workers take chunks in turn and parse
//! every line; the merge ([`FileFeed`]) puts their results back in input
//! order, and a gate keeps workers from running far ahead of it.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use super::FileSource;
use crate::frame::{FrameParser, Reject};
use crate::pipeline::merge::{self, Feed};
use crate::pipeline::worker::{self, Frames, WithParser};
use crate::pipeline::{CountPlan, PipelineError, chunks_ahead};
use crate::sink::Sink;
use crate::source::Chunk;
use crate::stats::{InputCounters, Totals};
use crate::window::clock::Event;
use crate::window::engine::Engine;

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
    mut progress: impl FnMut(&Totals),
) -> Result<Totals, PipelineError> {
    let started = Instant::now();
    let gate = Gate::new(chunks_ahead(plan.workers));
    let mut engine = Engine::new(plan.engine.clone(), 1);
    let cores = worker::cores(plan.pin);
    let (tx, rx) = mpsc::channel::<io::Result<Parsed>>();

    std::thread::scope(|scope| {
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
    })
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
        let mut frames = Frames::new(parser, self.plan.max_frame_bytes, self.plan.engine.estimator);
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
