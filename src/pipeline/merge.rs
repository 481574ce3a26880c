//! The merge: one thread applies the workers' events to the window engine
//! in input order, emits the records that completes, and reports progress
//! and metrics. The loop is the same for every source; what a source adds
//! (putting file chunks back in order; Kafka's partitions, idleness,
//! outages and checkpoints) comes in through [`Feed`].

use std::time::Instant;

use super::{PipelineError, emit};
use crate::metrics::Metrics;
use crate::sink::Sink;
use crate::stats::{InputCounters, Totals};
use crate::window::engine::Engine;

/// A source's side of the merge.
pub(crate) trait Feed {
    /// Waits (at most briefly, or until input ends) for the workers' next
    /// results and applies them to `engine` in input order, adding their
    /// counters to `input`. Returns when the applied input arrived (the
    /// records it completes are due from then), or None when nothing was
    /// applied.
    fn step(&mut self, engine: &mut Engine, input: &mut InputCounters) -> Result<Option<Instant>, PipelineError>;

    /// Housekeeping after each step, before records are emitted (Kafka:
    /// outages, idle partitions, a quiet topic's watermark).
    fn tend(&mut self, _engine: &mut Engine, _now: Instant) {}

    /// Messages behind the end of the input, when known.
    fn lag(&self) -> Option<i64> {
        None
    }

    /// Publishes the source's own metrics (Kafka: per partition).
    fn publish(&self, _metrics: &Metrics, _engine: &Engine) {}

    /// True once the run is to end: the input ended or a stop was asked.
    fn done(&self) -> bool;

    /// Applies what the workers sent and the merge has not taken yet, at
    /// the end of the run.
    fn drain(&mut self, _engine: &mut Engine, _input: &mut InputCounters) {}

    /// Ends the run once everything is applied and its records are out.
    /// By default the input is complete: every open window is emitted
    /// (Kafka: the state is saved first, and windows are closed only at
    /// the end of a `-e` run).
    fn finish(&mut self, engine: &mut Engine, sink: &mut dyn Sink) -> Result<(), PipelineError> {
        let due = Instant::now();
        engine.flush();
        emit(engine, sink, due)
    }

    /// After a step's records are out, unless the run ends (Kafka:
    /// checkpoints).
    fn after_step(&mut self, _engine: &mut Engine, _sink: &mut dyn Sink) -> Result<(), PipelineError> {
        Ok(())
    }
}

/// Runs the merge over `feed` until it is done and finished; returns the
/// run's totals. The totals are put together here and nowhere else: after
/// every step for `progress` and the metrics, and once more at the end.
pub(crate) fn run(
    feed: &mut impl Feed,
    engine: &mut Engine,
    sink: &mut dyn Sink,
    metrics: Option<&Metrics>,
    started: Instant,
    progress: &mut impl FnMut(&Totals),
) -> Result<Totals, PipelineError> {
    let mut input = InputCounters::default();
    loop {
        let applied = feed.step(engine, &mut input)?;
        let now = Instant::now();
        feed.tend(engine, now);
        emit(engine, sink, applied.unwrap_or(now))?;
        let totals = Totals::of(&input, engine, feed.lag(), started.elapsed());
        if let Some(metrics) = metrics {
            metrics.publish(&totals, engine);
            feed.publish(metrics, engine);
        }
        // Every step, not only those with input: a quiet or stalled source
        // still gets its status line (the reporter keeps the pace).
        progress(&totals);
        if feed.done() {
            let due = Instant::now();
            feed.drain(engine, &mut input);
            emit(engine, sink, due)?;
            feed.finish(engine, sink)?;
            let totals = Totals::of(&input, engine, feed.lag(), started.elapsed());
            if let Some(metrics) = metrics {
                metrics.publish(&totals, engine);
            }
            return Ok(totals);
        }
        feed.after_step(engine, sink)?;
    }
}
