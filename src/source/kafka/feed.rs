//! The Kafka side of the merge ([`Feed`]): partition batches in, consumer
//! errors and outages, idle partitions, a quiet topic's watermark, and the
//! checkpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::topic_partition_list::Offset;

use super::checkpoint::Checkpoints;
use super::worker::Batch;
use super::{KafkaConsumer, KafkaPlan};
use crate::metrics::{Metrics, PartitionSnapshot};
use crate::pipeline::merge::Feed;
use crate::pipeline::{PipelineError, emit};
use crate::sink::Sink;
use crate::stats::InputCounters;
use crate::window::Secs;
use crate::window::engine::Engine;

/// Per-partition bookkeeping of the merge.
#[derive(Debug, Clone, Copy)]
pub(super) struct PartitionState {
    pub(super) at_end: bool,
    pub(super) idle: bool,
    pub(super) last_record: Instant,
    /// Next offset to read (last processed + 1, or where reading starts).
    pub(super) next_offset: Option<i64>,
    /// Where everything before is read: after the last record, or at the
    /// last end of partition, which can lie past it (transaction markers).
    pub(super) read_to: Option<i64>,
}

impl PartitionState {
    /// A partition about to be read from `start`.
    pub(super) fn starting_at(start: Offset, now: Instant) -> PartitionState {
        PartitionState {
            at_end: false,
            idle: false,
            last_record: now,
            next_offset: match start {
                Offset::Offset(o) => Some(o),
                _ => None,
            },
            read_to: None,
        }
    }
}

/// The Kafka side of the merge: partition batches, consumer errors and
/// outages, idle partitions, a quiet topic's watermark, checkpoints.
pub(super) struct KafkaFeed<'a> {
    pub(super) kafka: &'a KafkaPlan,
    pub(super) consumer: &'a KafkaConsumer,
    pub(super) checkpoints: &'a mut Checkpoints,
    pub(super) rx: &'a mpsc::Receiver<Batch>,
    pub(super) states: &'a mut [PartitionState],
    pub(super) stop: &'a AtomicBool,
    /// Tells the workers to stop polling, once the run ends.
    pub(super) workers_stop: &'a AtomicBool,
    /// Since when every partition is idle, and the leading watermark then.
    pub(super) quiet_since: Option<(Instant, Secs)>,
    pub(super) last_checkpoint: Instant,
    /// Input applied or the watermark moved since the last checkpoint.
    pub(super) changed: bool,
    /// Since when the brokers may be unreachable, and when that was last
    /// checked: no partition counts as idle meanwhile (see `outage_over`).
    pub(super) outage: Option<(Instant, Instant)>,
    /// The workers are gone (they only stop once the run stops).
    pub(super) disconnected: bool,
}

impl KafkaFeed<'_> {
    /// During an outage, no partition is idle: one read to its end before
    /// the brokers went away is not known to be quiet now, and an outage
    /// must not pass for a quiet topic and close minutes whose frames wait
    /// on the broker. Asks now and then whether the brokers answer again.
    fn watch_outage(&mut self, engine: &mut Engine, now: Instant) {
        let Some((since, checked)) = self.outage else {
            return;
        };
        for (p, s) in self.states.iter_mut().enumerate() {
            if s.idle {
                s.idle = false;
                engine.set_idle(p, false);
            }
        }
        if now.duration_since(checked) < OUTAGE_CHECK_INTERVAL {
            return;
        }
        self.outage = if outage_over(self.consumer, &self.kafka.topic) {
            let outage_secs = since.elapsed().as_secs_f64();
            tracing::info!(outage_secs, "the brokers answer again ({outage_secs:.1} s after the first error)");
            // Idle again only after a full idle timeout of reading.
            for s in self.states.iter_mut() {
                s.last_record = now;
            }
            None
        } else {
            Some((since, now))
        };
    }

    /// Marks partitions idle that are caught up and quiet for the idle
    /// timeout, once the broker confirms nothing more is there (after a
    /// reconnect, records can wait on the broker while the end of partition
    /// seen before still stands).
    fn find_idle(&mut self, engine: &mut Engine, now: Instant) {
        let (kafka, consumer) = (self.kafka, self.consumer);
        for (p, s) in self.states.iter_mut().enumerate() {
            if s.idle || !s.at_end || now.duration_since(s.last_record) < kafka.idle_timeout {
                continue;
            }
            match read_to_end(consumer, &kafka.topic, p as i32, s.read_to) {
                Some(true) => {
                    s.idle = true;
                    engine.set_idle(p, true);
                }
                // Records are waiting: not at the end until they are read.
                Some(false) => {
                    s.at_end = false;
                    s.last_record = now;
                }
                // No answer: ask again after another idle timeout.
                None => s.last_record = now,
            }
        }
    }

    /// When every partition is idle, the watermark follows the wall clock
    /// from where the leading partition left it; once the topic has been
    /// quiet for the lateness too, it passes the end of the shortest window
    /// holding the last frame, so the last minute is emitted within idle
    /// timeout + lateness of the input going quiet.
    fn follow_quiet_topic(&mut self, engine: &mut Engine, now: Instant) {
        follow_quiet(engine, self.states.iter().all(|s| s.idle), &mut self.quiet_since, now);
    }
}

/// When every partition is idle (`all_idle`), the watermark follows the
/// wall clock from where the leading partition left it; once the topic has
/// been quiet for the lateness too, it passes the end of the shortest window
/// holding the last frame, so the last minute is emitted within idle
/// timeout + lateness of the input going quiet. `quiet_since` keeps when
/// the quiet began and the leading watermark then.
pub(crate) fn follow_quiet(
    engine: &mut Engine,
    all_idle: bool,
    quiet_since: &mut Option<(Instant, Secs)>,
    now: Instant,
) {
    if !all_idle {
        *quiet_since = None;
        return;
    }
    let Some(lead) = engine.leading_watermark() else {
        return;
    };
    let (since, base) = *quiet_since.get_or_insert((now, lead));
    let quiet = now.duration_since(since);
    let mut wm = base + quiet.as_secs() as Secs;
    let cfg = engine.config();
    if quiet.as_secs() >= cfg.lateness_secs
        && let Some(&kind) = cfg.kinds.iter().min()
    {
        let last_ts = lead + cfg.lateness_secs as Secs;
        wm = wm.max(kind.end(kind.start(last_ts)));
    }
    engine.advance_quiet(wm);
}

impl Feed for KafkaFeed<'_> {
    fn step(&mut self, engine: &mut Engine, input: &mut InputCounters) -> Result<Option<Instant>, PipelineError> {
        // Serve errors (messages all go to partition queues).
        if let Some(Err(e)) = self.consumer.poll(Duration::ZERO) {
            tracing::warn!(error = %e, "Kafka consumer: {e}");
            if self.outage.is_none() {
                let now = Instant::now();
                self.outage = Some((now, now));
            }
        }
        // When this step's first batch arrived: the records it completes are
        // due from then (emission latency).
        match self.rx.recv_timeout(Duration::from_millis(20)) {
            Ok(batch) => {
                let due = Instant::now();
                apply(batch, engine, self.states, input);
                let mut got = 1;
                while got < 64 {
                    match self.rx.try_recv() {
                        Ok(batch) => {
                            apply(batch, engine, self.states, input);
                            got += 1;
                        }
                        Err(_) => break,
                    }
                }
                self.changed = true;
                Ok(Some(due))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Ok(None),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.disconnected = true;
                Ok(None)
            }
        }
    }

    fn tend(&mut self, engine: &mut Engine, now: Instant) {
        let watermark = engine.watermark();
        self.watch_outage(engine, now);
        if self.outage.is_none() {
            self.find_idle(engine, now);
        }
        self.follow_quiet_topic(engine, now);
        self.changed |= engine.watermark() != watermark;
    }

    fn lag(&self) -> Option<i64> {
        let ends = self.consumer.context();
        self.states.iter().enumerate().map(|(p, s)| ends.lag(p, s.next_offset)).sum()
    }

    fn publish(&self, metrics: &Metrics, engine: &Engine) {
        let ends = self.consumer.context();
        metrics.publish_partitions(self.states.iter().enumerate().map(|(p, s)| PartitionSnapshot {
            watermark: engine.clock(p).watermark(),
            lag: ends.lag(p, s.next_offset),
        }));
    }

    fn done(&self) -> bool {
        let at_end = self.kafka.exit_at_end && self.states.iter().all(|s| s.at_end);
        at_end || self.disconnected || self.stop.load(Ordering::Relaxed)
    }

    fn drain(&mut self, engine: &mut Engine, input: &mut InputCounters) {
        // Workers stop; take what they already sent. What they polled but
        // the merge did not apply is in no checkpoint: the next run reads it.
        self.workers_stop.store(true, Ordering::Relaxed);
        while let Ok(batch) = self.rx.try_recv() {
            apply(batch, engine, self.states, input);
        }
    }

    fn finish(&mut self, engine: &mut Engine, sink: &mut dyn Sink) -> Result<(), PipelineError> {
        // The state saved last is the one a next run resumes from: taken
        // before `-e` closes the open windows, so a next run (on a topic
        // that grew) counts them again with their new frames.
        self.checkpoints.save(engine, self.states, sink)?;
        if self.kafka.exit_at_end {
            let due = Instant::now();
            engine.flush();
            emit(engine, sink, due)?;
            self.checkpoints.finish(sink)?;
        }
        Ok(())
    }

    fn after_step(&mut self, engine: &mut Engine, sink: &mut dyn Sink) -> Result<(), PipelineError> {
        self.checkpoints.progress()?;
        if self.changed
            && self.last_checkpoint.elapsed() >= self.kafka.commit_interval
            && self.checkpoints.begin(engine, self.states, sink)?
        {
            (self.last_checkpoint, self.changed) = (Instant::now(), false);
        }
        Ok(())
    }
}

/// How often, after a consumer error, kuniq asks the brokers whether they
/// answer again.
const OUTAGE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// True when a broker answers a metadata request for `topic` (within
/// 500 ms, the longest the merge thread waits on it).
fn outage_over(consumer: &KafkaConsumer, topic: &str) -> bool {
    consumer.client().fetch_metadata(Some(topic), Duration::from_millis(500)).is_ok()
}

/// Whether partition `p` of `topic` is read to the end the broker reports
/// (the high watermark; the last stable offset for read_committed): the
/// partition is read to there (`read_to`, from the records and ends of
/// partition the workers saw). None when the broker does not answer within
/// 500 ms. A partition without an end of partition yet is taken as read to
/// its end (there is nothing else to go by; the merge asks only after one).
fn read_to_end(consumer: &KafkaConsumer, topic: &str, p: i32, read_to: Option<i64>) -> Option<bool> {
    let (_, high) = consumer.fetch_watermarks(topic, p, Duration::from_millis(500)).ok()?;
    Some(read_to.is_none_or(|read_to| read_to >= high))
}

fn apply(batch: Batch, engine: &mut Engine, states: &mut [PartitionState], input: &mut InputCounters) {
    let s = &mut states[batch.partition as usize];
    input.add(&batch.counters);
    if let Some(last) = batch.last_offset {
        s.last_record = Instant::now();
        s.next_offset = Some(last + 1);
        s.read_to = s.read_to.max(Some(last + 1));
        if s.idle {
            s.idle = false;
            engine.set_idle(batch.partition as usize, false);
        }
    }
    s.read_to = s.read_to.max(batch.end_offset);
    s.at_end = batch.end_offset.is_some();
    engine.observe_batch(batch.partition as usize, &batch.events);
}
