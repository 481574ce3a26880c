//! `kuniq count -b ... -t ...`: frames from a Kafka topic, in a consumer
//! group.
//!
//! ```text
//!  partition queues ──▶ worker 0 (core 0): poll a batch, parse borrowed payloads ─┐
//!  (split up front)  ──▶ worker 1 (core 1)                                         ─┼─▶ merge: engine ▶ sink
//!                                                                                  ─┘
//! ```
//!
//! - Every partition of the topic gets its own librdkafka queue, split off
//!   before assigning, so messages never pass through a shared queue and
//!   a partition's messages are always handled by the same worker, in
//!   offset order. Workers are pinned; they parse payloads where librdkafka
//!   holds them (no copy per frame) and send compact events to the merge.
//! - The merge (the calling thread, `crate::pipeline::merge`, with this
//!   source's part in `KafkaFeed`) serves the consumer's own queue
//!   (errors), feeds the window engine with one stream per partition, and
//!   emits records.
//! - Watermarks: a partition's watermark is its highest ts minus the
//!   lateness; the global one is the minimum over partitions that are not
//!   idle. A partition is idle when it has been caught up (at its end)
//!   with no records for the idle timeout. When all are idle the watermark moves on with the wall clock,
//!   so the last minutes of a quiet topic are still emitted.
//! - Checkpoints: every `--commit-interval` (and when the run ends) the
//!   merge saves, per partition, the earliest offset an open window still
//!   needs and its clock there ([`Engine::stream_state`]) to the state topic,
//!   after every record emitted so far was acknowledged, then commits those
//!   offsets for the group. A restart resumes from the saved state and
//!   emits the same records again (at least once, never lost). With
//!   `--exactly-once`, records, state and offsets of each interval are one
//!   Kafka transaction.
//! - Partitions are assigned, not subscribed: a unique count over a topic
//!   cannot be split between group members, so every kuniq reads every
//!   partition. Two runs with the same group both emit the same records.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};

use super::queue::{Message, Messages};
use super::sink::Output;
use super::state::{self, SavedState};

use crate::frame::FrameParser;
use crate::metrics::{Metrics, PartitionSnapshot};
use crate::pipeline::merge::{self, Feed};
use crate::pipeline::worker::{self, Frames, WithParser};
use crate::pipeline::{CountPlan, PipelineError, Progress, emit};
use crate::sink::Sink;
use crate::stats::{InputCounters, Summary};
use crate::window::Secs;
use crate::window::clock::Event;
use crate::window::engine::{Engine, StreamState};

/// Where to start reading partitions that have no committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest retained message.
    Beginning,
    /// Only messages produced from now on.
    End,
    /// The group's committed offset; an error where there is none.
    Stored,
}

impl StartAt {
    /// Parses `beginning`, `end` or `stored`.
    pub fn from_name(name: &str) -> Result<StartAt, String> {
        match name {
            "beginning" | "earliest" => Ok(StartAt::Beginning),
            "end" | "latest" => Ok(StartAt::End),
            "stored" => Ok(StartAt::Stored),
            other => Err(format!("--offset must be beginning, end or stored, not '{other}'")),
        }
    }

    fn reset_policy(self) -> &'static str {
        match self {
            StartAt::Beginning => "earliest",
            StartAt::End => "latest",
            StartAt::Stored => "error",
        }
    }

    fn offset(self) -> Offset {
        match self {
            StartAt::Beginning => Offset::Beginning,
            StartAt::End => Offset::End,
            StartAt::Stored => Offset::Stored,
        }
    }
}

/// How to read the topic.
#[derive(Debug, Clone)]
pub struct KafkaPlan {
    /// Bootstrap brokers.
    pub brokers: String,
    /// Input topic.
    pub topic: String,
    /// Consumer group.
    pub group: String,
    /// librdkafka properties (`-F`, `-X`); their `Debug` hides secrets.
    pub properties: Vec<super::Property>,
    /// Start for partitions without a committed offset.
    pub start: StartAt,
    /// Stop once every assigned partition is read to its end.
    pub exit_at_end: bool,
    /// Caught-up time without records after which a partition is idle.
    pub idle_timeout: Duration,
    /// Longest wait for the brokers' first answer.
    pub connect_timeout: Duration,
    /// Messages per poll of a partition queue.
    pub batch_size: usize,
    /// Topic holding the saved state (one partition).
    pub state_topic: String,
    /// Time between checkpoints.
    pub commit_interval: Duration,
    /// Records, state and offsets in Kafka transactions.
    pub exactly_once: bool,
}

type Queue = super::queue::BatchQueue<PartitionEnds>;
type KafkaConsumer = BaseConsumer<PartitionEnds>;

/// How often librdkafka reports statistics when metrics are served: the
/// consumer-lag metric is at most this old. (Statistics are a JSON document
/// built and parsed on the merge thread's consumer poll, not per message.)
const STATISTICS_INTERVAL_MS: &str = "2000";

/// The consumer's context: each input partition's end (last stable offset,
/// as kuniq reads committed; the high watermark where there is none), from
/// librdkafka's statistics, for the consumer-lag metric. Without
/// `statistics.interval.ms` nothing is reported and the ends stay unknown.
pub struct PartitionEnds {
    topic: String,
    ends: Mutex<Vec<Option<i64>>>,
}

impl PartitionEnds {
    fn new(topic: &str) -> PartitionEnds {
        PartitionEnds { topic: topic.to_string(), ends: Mutex::new(Vec::new()) }
    }

    /// Messages of partition `p` after `next_offset`, when its end is known.
    fn lag(&self, p: usize, next_offset: Option<i64>) -> Option<i64> {
        let end = *self.ends.lock().unwrap_or_else(|e| e.into_inner()).get(p)?;
        Some((end? - next_offset?).max(0))
    }
}

impl ClientContext for PartitionEnds {
    fn stats(&self, statistics: Statistics) {
        let Some(topic) = statistics.topics.get(&self.topic) else {
            return;
        };
        let mut ends = self.ends.lock().unwrap_or_else(|e| e.into_inner());
        for (&p, partition) in &topic.partitions {
            // -1 is librdkafka's internal "unassigned" partition.
            let Ok(p) = usize::try_from(p) else {
                continue;
            };
            let end = [partition.ls_offset, partition.hi_offset].into_iter().find(|&o| o >= 0);
            if ends.len() <= p {
                ends.resize(p + 1, None);
            }
            if end.is_some() {
                ends[p] = end;
            }
        }
    }
}

impl ConsumerContext for PartitionEnds {}

/// Messages fetched before a partition's start offset, to be skipped.
const RESUME_LOOKBACK: i64 = 10_000;

/// A partition's queue, as a worker polls it.
struct Assigned {
    partition: i32,
    queue: Queue,
    /// Messages below this offset were fetched only to reach it: skipped.
    skip_below: i64,
}

/// What a worker made of one poll of one partition.
struct Batch {
    partition: i32,
    events: Vec<Event>,
    counters: InputCounters,
    /// Offset of the last message in the batch, if any.
    last_offset: Option<i64>,
    /// The partition was at its end after this batch: the end of
    /// partition's offset (the next offset to read there).
    end_offset: Option<i64>,
}

/// Per-partition bookkeeping of the merge.
#[derive(Debug, Clone, Copy)]
struct PartitionState {
    at_end: bool,
    idle: bool,
    last_record: Instant,
    /// Next offset to read (last processed + 1, or where reading starts).
    next_offset: Option<i64>,
    /// Where everything before is read: after the last record, or at the
    /// last end of partition, which can lie past it (transaction markers).
    read_to: Option<i64>,
}

/// Counts frames from Kafka into `sink` until the end (`-e`) or `stop`,
/// saving checkpoints through `output` (which also carries the records
/// when `sink` is the output topic).
pub fn count_kafka(
    plan: &CountPlan,
    kafka: &KafkaPlan,
    sink: &mut dyn Sink,
    output: &Arc<Output>,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let fail = |what: String| PipelineError::Input(std::io::Error::other(what));
    // Statistics always: the status line's lag comes from them too (one
    // small JSON document every 2 s, parsed on the merge thread's poll).
    let config = consumer_config(kafka, true).map_err(fail)?;
    let consumer: Arc<KafkaConsumer> = Arc::new(
        config
            .create_with_context(PartitionEnds::new(&kafka.topic))
            .map_err(|e| fail(format!("cannot create the Kafka consumer: {e}")))?,
    );
    let partitions =
        super::partition_count(consumer.client(), &config, &kafka.topic, kafka.connect_timeout).map_err(fail)?;

    let mut checkpoints = Checkpoints {
        output: Arc::clone(output),
        consumer: Arc::clone(&consumer),
        topic: kafka.topic.clone(),
        state_topic: kafka.state_topic.clone(),
        key: state::state_key(&kafka.group, &kafka.topic),
        config: state::config_text(&plan.engine),
        partitions,
        pending: None,
    };
    state::ensure_topic(consumer.client(), &config, &kafka.state_topic).map_err(fail)?;
    let saved = state::load(&consumer, &kafka.state_topic, &checkpoints.key).map_err(fail)?;
    let mut engine = Engine::new(plan.engine.clone(), partitions as usize);
    let starts = start_offsets(&consumer, kafka, partitions, saved.as_ref(), &checkpoints.config, &mut engine)?;

    let mut queues: Vec<(i32, Queue)> = Vec::new();
    for p in 0..partitions {
        let queue = Queue::split(&consumer, &kafka.topic, p)
            .ok_or_else(|| fail(format!("cannot open a queue for partition {p} of '{}'", kafka.topic)))?;
        queues.push((p, queue));
    }
    // Fetch from a little before each start and skip up to it: some brokers
    // (tansu 0.6) answer a fetch from the middle of a record batch with the
    // next batch, which would silently skip the rest of that batch.
    let mut assignment = TopicPartitionList::new();
    let mut skip_below = vec![0i64; partitions as usize];
    for (p, &start) in starts.iter().enumerate() {
        let fetch_from = match start {
            Offset::Offset(o) => {
                let (low, _) = consumer
                    .fetch_watermarks(&kafka.topic, p as i32, Duration::from_secs(30))
                    .map_err(|e| fail(format!("cannot read the offsets of partition {p} of '{}': {e}", kafka.topic)))?;
                skip_below[p] = o;
                Offset::Offset((o - RESUME_LOOKBACK).max(low))
            }
            other => other,
        };
        assignment.add_partition_offset(&kafka.topic, p as i32, fetch_from).map_err(|e| fail(e.to_string()))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|e| fail(format!("cannot assign the partitions of '{}': {e}", kafka.topic)))?;

    let workers = plan.workers.clamp(1, partitions.max(1) as usize);
    let cores = worker::cores(plan.pin);
    let (tx, rx) = mpsc::sync_channel::<Batch>(workers * 8);
    let workers_stop = AtomicBool::new(false);
    let mut owned: Vec<Vec<Assigned>> = (0..workers).map(|_| Vec::new()).collect();
    for (p, queue) in queues {
        owned[p as usize % workers].push(Assigned { partition: p, queue, skip_below: skip_below[p as usize] });
    }

    let now = Instant::now();
    let mut states: Vec<PartitionState> = starts
        .iter()
        .map(|start| PartitionState {
            at_end: false,
            idle: false,
            last_record: now,
            next_offset: match start {
                Offset::Offset(o) => Some(*o),
                _ => None,
            },
            read_to: None,
        })
        .collect();
    let result = std::thread::scope(|scope| {
        for (w, queues) in owned.into_iter().enumerate() {
            let work = KafkaWorker {
                max_frame_bytes: plan.max_frame_bytes,
                batch_size: kafka.batch_size,
                queues,
                tx: tx.clone(),
                stop: &workers_stop,
            };
            worker::spawn_worker(scope, format!("kuniq-kafka-{w}"), w, &cores, move || {
                worker::run_with_parser(plan.parser, work)
            });
        }
        drop(tx);
        let mut feed = KafkaFeed {
            kafka,
            consumer: &consumer,
            checkpoints: &mut checkpoints,
            rx: &rx,
            states: &mut states,
            stop,
            quiet_since: None,
            last_checkpoint: Instant::now(),
            changed: false,
            outage: None,
            disconnected: false,
        };
        let result = merge::run(&mut feed, &mut engine, sink, plan.metrics.as_deref(), started, &mut progress);
        // Workers stop; what they polled but the merge did not apply is not
        // in any checkpoint, so the next run reads it again.
        workers_stop.store(true, Ordering::Relaxed);
        result
    });
    let result = result.and_then(|input| {
        // The state saved last is the one a next run resumes from: taken
        // before `-e` closes the open windows, so a next run (on a topic
        // that grew) counts them again with their new frames.
        checkpoints.save(&engine, &states, sink)?;
        if kafka.exit_at_end {
            let due = Instant::now();
            engine.flush();
            emit(&mut engine, sink, due)?;
            checkpoints.finish(sink)?;
        }
        if let Some(metrics) = &plan.metrics {
            metrics.publish(&input, &engine);
        }
        Ok(Summary { input, engine: engine.stats(), elapsed: started.elapsed() })
    });
    if result.is_err() {
        output.abort_transaction();
    }
    result
}

/// Where each partition starts: its saved state (then the engine resumes
/// it there), else the group's committed offset, else `--offset`.
fn start_offsets(
    consumer: &KafkaConsumer,
    kafka: &KafkaPlan,
    partitions: i32,
    saved: Option<&SavedState>,
    config: &str,
    engine: &mut Engine,
) -> Result<Vec<Offset>, PipelineError> {
    let fail = |what: String| PipelineError::Input(std::io::Error::other(what));
    let mut starts = vec![kafka.start.offset(); partitions as usize];
    if let Some(saved) = saved {
        if saved.config != config {
            tracing::warn!(
                group = kafka.group,
                saved = saved.config,
                now = config,
                "the saved state of group '{}' was written with {}, this run uses {}: records of windows open at the \
                 restart may differ from those already emitted",
                kafka.group,
                saved.config,
                config
            );
        }
        for &(p, stream) in &saved.streams {
            if p >= 0 && p < partitions {
                engine.resume_stream(p as usize, stream);
                starts[p as usize] = Offset::Offset(stream.resume.offset as i64);
            }
        }
        // Windows go on from what they sent before the restart: no record
        // is sent twice, and frames read from now on revise them.
        engine.resume_windows(&saved.emitted);
        if let Some(wm) = saved.watermark {
            engine.resume_watermark(wm);
        }
        if saved.emitted.iter().any(|w| w.last.is_none()) {
            tracing::warn!(
                group = kafka.group,
                "the saved state of group '{}' was written by an older kuniq that did not keep each window's last \
                 record: a window open at the restart sends its count again as a new revision",
                kafka.group
            );
        }
    }
    // Partitions without a saved state: the group's committed offset.
    let mut list = TopicPartitionList::new();
    for p in (0..partitions).filter(|&p| starts[p as usize] == kafka.start.offset()) {
        list.add_partition(&kafka.topic, p);
    }
    if list.count() == 0 {
        return Ok(starts);
    }
    let committed = consumer.committed_offsets(list, Duration::from_secs(30)).map_err(|e| {
        let refused = super::group_refusal(consumer, &kafka.group);
        fail(refused.unwrap_or_else(|| format!("cannot read the committed offsets of group '{}': {e}", kafka.group)))
    })?;
    for e in committed.elements() {
        match e.offset() {
            Offset::Offset(o) => starts[e.partition() as usize] = Offset::Offset(o),
            _ if kafka.start == StartAt::Stored => {
                return Err(fail(format!(
                    "partition {} of '{}' has no saved state or committed offset for group '{}': pass --offset \
                     beginning or --offset end to say where to start",
                    e.partition(),
                    kafka.topic,
                    kafka.group
                )));
            }
            _ => {}
        }
    }
    Ok(starts)
}

/// Saves checkpoints: state record, then group offsets.
struct Checkpoints {
    output: Arc<Output>,
    consumer: Arc<KafkaConsumer>,
    topic: String,
    state_topic: String,
    key: String,
    config: String,
    partitions: i32,
    /// A checkpoint taken but not written yet (at least once mode).
    pending: Option<Pending>,
}

/// A checkpoint on its way: its state record is written once the records
/// emitted before it are acknowledged, its offsets committed once the state
/// record is.
struct Pending {
    value: String,
    offsets: TopicPartitionList,
    /// Records sent before the checkpoint.
    records: usize,
    /// Records sent up to and including the state record, once sent.
    written: Option<usize>,
}

impl Checkpoints {
    /// The state of every partition that has one, and the matching offsets.
    fn snapshot(
        &self,
        engine: &Engine,
        states: &[PartitionState],
    ) -> Result<Option<(String, TopicPartitionList)>, PipelineError> {
        let streams: Vec<(i32, StreamState)> = (0..self.partitions)
            .filter_map(|p| {
                let position = states[p as usize].next_offset?;
                engine.stream_state(p as usize, position as u64).map(|s| (p, s))
            })
            .collect();
        if streams.is_empty() {
            return Ok(None);
        }
        let saved = SavedState {
            partitions: self.partitions,
            config: self.config.clone(),
            streams,
            watermark: engine.saved_watermark(),
            emitted: engine.emitted_windows(),
        };
        let offsets =
            saved.offsets(&self.topic).map_err(|e| PipelineError::Output(std::io::Error::other(e.to_string())))?;
        Ok(Some((saved.encode(), offsets)))
    }

    fn state_error(&self, e: std::io::Error) -> PipelineError {
        PipelineError::Output(std::io::Error::other(format!("state topic '{}': {e}", self.state_topic)))
    }

    /// Takes a checkpoint without waiting for the broker: the merge goes on
    /// and [`Checkpoints::progress`] writes it once it is safe. In a
    /// transaction, commits it now (records, state and offsets at once).
    /// False when the previous checkpoint is still on its way (none taken).
    fn begin(
        &mut self,
        engine: &Engine,
        states: &[PartitionState],
        sink: &mut dyn Sink,
    ) -> Result<bool, PipelineError> {
        if self.output.transactional() {
            return self.save(engine, states, sink).map(|()| true);
        }
        if self.pending.is_some() {
            return Ok(false);
        }
        if let Some((value, offsets)) = self.snapshot(engine, states)? {
            sink.flush().map_err(PipelineError::Output)?;
            self.pending = Some(Pending { value, offsets, records: self.output.sent(), written: None });
            self.progress()?;
        }
        Ok(true)
    }

    /// Serves the producer's acknowledgements (a record's emission latency
    /// ends at its callback; failures surface here), and moves a pending
    /// checkpoint on, without waiting.
    fn progress(&mut self) -> Result<(), PipelineError> {
        self.output.check_deliveries().map_err(PipelineError::Output)?;
        let Some(pending) = &mut self.pending else {
            return Ok(());
        };
        let out = PipelineError::Output;
        match pending.written {
            None => {
                if self.output.acknowledged(pending.records).map_err(out)? {
                    self.output
                        .send(&self.state_topic, self.key.as_bytes(), pending.value.as_bytes())
                        .map_err(|e| PipelineError::Output(std::io::Error::other(format!("state topic: {e}"))))?;
                    pending.written = Some(self.output.sent());
                }
            }
            Some(written) => {
                if self.output.acknowledged(written).map_err(out)? {
                    // For monitoring (lag); the state topic is what a restart reads.
                    if let Err(e) = self.consumer.commit(&pending.offsets, CommitMode::Async) {
                        tracing::warn!(error = %e, "committing offsets for group monitoring: {e}");
                    }
                    self.pending = None;
                }
            }
        }
        Ok(())
    }

    /// Saves where every partition can be read again, waiting until it is
    /// written. Records emitted so far are acknowledged first (or, in a
    /// transaction, committed with the state), so a saved state never skips
    /// a record that was lost.
    fn save(&mut self, engine: &Engine, states: &[PartitionState], sink: &mut dyn Sink) -> Result<(), PipelineError> {
        let out = PipelineError::Output;
        self.pending = None;
        let Some((value, offsets)) = self.snapshot(engine, states)? else {
            return Ok(());
        };
        sink.flush().map_err(out)?;
        if self.output.transactional() {
            self.output
                .send(&self.state_topic, self.key.as_bytes(), value.as_bytes())
                .map_err(|e| self.state_error(e))?;
            let group =
                self.consumer.group_metadata().ok_or_else(|| out(std::io::Error::other("no group metadata")))?;
            self.output.commit_transaction(&offsets, &group).map_err(out)?;
        } else {
            self.output.flush().map_err(out)?;
            self.output
                .send(&self.state_topic, self.key.as_bytes(), value.as_bytes())
                .map_err(|e| self.state_error(e))?;
            self.output.flush().map_err(|e| self.state_error(e))?;
            // For monitoring (lag); the state topic is what a restart reads.
            if let Err(e) = self.consumer.commit(&offsets, CommitMode::Sync) {
                tracing::warn!(error = %e, "committing offsets for group monitoring: {e}");
            }
        }
        Ok(())
    }

    /// Makes the records emitted after the last checkpoint visible (end of
    /// a `-e` run).
    fn finish(&self, sink: &mut dyn Sink) -> Result<(), PipelineError> {
        let out = PipelineError::Output;
        sink.flush().map_err(out)?;
        if self.output.transactional() {
            let group =
                self.consumer.group_metadata().ok_or_else(|| out(std::io::Error::other("no group metadata")))?;
            self.output.commit_transaction(&TopicPartitionList::new(), &group).map_err(out)
        } else {
            self.output.flush().map_err(out)
        }
    }
}

/// The consumer's configuration; `statistics` turns on librdkafka's
/// statistics (for the consumer-lag metric) unless `-X` sets them.
fn consumer_config(kafka: &KafkaPlan, statistics: bool) -> Result<ClientConfig, String> {
    let stats: &[(&str, &str)] = if statistics { &[("statistics.interval.ms", STATISTICS_INTERVAL_MS)] } else { &[] };
    super::client_config(
        &kafka.brokers,
        &[
            stats,
            &[
                ("group.id", kafka.group.as_str()),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                // Transactional input (and kuniq's own state) is read as committed.
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", kafka.start.reset_policy()),
                ("fetch.wait.max.ms", super::DEFAULT_FETCH_WAIT_MAX_MS),
                ("fetch.queue.backoff.ms", super::DEFAULT_FETCH_QUEUE_BACKOFF_MS),
                ("queued.max.messages.kbytes", super::DEFAULT_QUEUED_MAX_KBYTES),
            ],
        ]
        .concat(),
        &super::properties_for(&kafka.properties, true),
    )
}

/// A Kafka worker: polls its partitions' queues in turn, parses each
/// batch where librdkafka holds it, sends the events to the merge.
struct KafkaWorker<'a> {
    max_frame_bytes: usize,
    batch_size: usize,
    queues: Vec<Assigned>,
    tx: mpsc::SyncSender<Batch>,
    stop: &'a AtomicBool,
}

impl WithParser for KafkaWorker<'_> {
    type Output = ();

    fn run<P: FrameParser>(mut self, parser: P) {
        let mut frames = Frames::new(parser, self.max_frame_bytes);
        let me = std::thread::current();
        for assigned in self.queues.iter_mut() {
            assigned.queue.wake_on_nonempty(me.clone());
        }
        let mut messages = Messages::default();
        while !self.stop.load(Ordering::Relaxed) {
            let mut polled = false;
            for assigned in self.queues.iter_mut() {
                if assigned.queue.poll_into(&mut messages, self.batch_size) == 0 {
                    continue;
                }
                // The queue may hold more: poll again before parking.
                polled = true;
                let batch = parse_batch(&mut frames, assigned, &messages);
                // Back to librdkafka before the merge may wait on the channel.
                messages.clear();
                if (batch.last_offset.is_some() || batch.end_offset.is_some()) && !send(&self.tx, batch, self.stop) {
                    return;
                }
            }
            if !polled {
                // Woken by a queue becoming non-empty, or to check `stop`.
                std::thread::park_timeout(Duration::from_millis(100));
            }
        }
    }
}

/// Parses one poll of one partition's queue.
fn parse_batch<P: FrameParser>(frames: &mut Frames<P>, assigned: &mut Assigned, messages: &Messages) -> Batch {
    let Assigned { partition, skip_below, .. } = assigned;
    let mut batch = Batch {
        partition: *partition,
        events: Vec::with_capacity(messages.len()),
        counters: InputCounters::default(),
        last_offset: None,
        end_offset: None,
    };
    for message in messages.iter() {
        let (offset, payload) = match message {
            Message::Record { offset, .. } if offset < *skip_below => continue,
            Message::Record { offset, payload } => (offset, payload),
            Message::End { offset } => {
                batch.end_offset = Some(offset);
                continue;
            }
            Message::Error(code) => {
                // Fetch errors are retried by librdkafka; report them.
                let e = KafkaError::MessageConsumption(code);
                tracing::warn!(partition, error = %e, "partition {partition}: {e}");
                continue;
            }
        };
        // A record after an end (it arrived meanwhile) clears it.
        batch.end_offset = None;
        if *skip_below > 0 {
            if offset > *skip_below {
                tracing::warn!(
                    partition,
                    offset = *skip_below,
                    first = offset,
                    "partition {partition}: asked to start at offset {skip_below}, the first record is at {offset}: \
                     the records between are gone from the broker (retention or compaction)"
                );
            }
            *skip_below = 0;
        }
        batch.last_offset = Some(offset);
        frames.frame(payload, offset as u64, &mut batch.counters, &mut batch.events);
    }
    batch
}

/// Sends a batch, waiting while the merge is behind; false once the run is
/// stopping (the merge no longer takes batches, so waiting could hang).
fn send(tx: &mpsc::SyncSender<Batch>, mut batch: Batch, stop: &AtomicBool) -> bool {
    loop {
        match tx.try_send(batch) {
            Ok(()) => return true,
            Err(mpsc::TrySendError::Full(back)) => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                batch = back;
                std::thread::park_timeout(Duration::from_millis(1));
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// The Kafka side of the merge: partition batches, consumer errors and
/// outages, idle partitions, a quiet topic's watermark, checkpoints.
struct KafkaFeed<'a> {
    kafka: &'a KafkaPlan,
    consumer: &'a KafkaConsumer,
    checkpoints: &'a mut Checkpoints,
    rx: &'a mpsc::Receiver<Batch>,
    states: &'a mut [PartitionState],
    stop: &'a AtomicBool,
    /// Since when every partition is idle, and the leading watermark then.
    quiet_since: Option<(Instant, Secs)>,
    last_checkpoint: Instant,
    /// Input applied or the watermark moved since the last checkpoint.
    changed: bool,
    /// Since when the brokers may be unreachable, and when that was last
    /// checked: no partition counts as idle meanwhile (see `outage_over`).
    outage: Option<(Instant, Instant)>,
    /// The workers are gone (they only stop once the run stops).
    disconnected: bool,
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
        let (kafka, consumer, states) = (self.kafka, self.consumer, &mut *self.states);
        if let Some((since, checked)) = self.outage {
            // A partition read to its end before the brokers went away is
            // not known to be quiet now: an outage must not pass for a quiet
            // topic and close minutes whose frames are waiting on the broker.
            for (p, s) in states.iter_mut().enumerate() {
                if s.idle {
                    s.idle = false;
                    engine.set_idle(p, false);
                }
            }
            if now.duration_since(checked) >= OUTAGE_CHECK_INTERVAL {
                self.outage = if outage_over(consumer, &kafka.topic) {
                    let outage_secs = since.elapsed().as_secs_f64();
                    tracing::info!(outage_secs, "the brokers answer again ({outage_secs:.1} s after the first error)");
                    // Idle again only after a full idle timeout of reading.
                    for s in states.iter_mut() {
                        s.last_record = now;
                    }
                    None
                } else {
                    Some((since, now))
                };
            }
        }

        // Idle partitions: caught up and quiet for the idle timeout, and the
        // broker confirms nothing more is there (after a reconnect, records
        // can wait on the broker while the end of partition seen before
        // still stands).
        for (p, s) in states.iter_mut().enumerate() {
            if self.outage.is_none() && !s.idle && s.at_end && now.duration_since(s.last_record) >= kafka.idle_timeout {
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
        let watermark = engine.watermark();
        if states.iter().all(|s| s.idle) {
            // All quiet: the watermark follows the wall clock from where the
            // leading partition left it, and once the topic has been quiet
            // for the lateness too, it passes the end of the shortest window
            // holding the last frame, so the last minute is emitted within
            // idle timeout + lateness of the input going quiet.
            if let Some(lead) = engine.leading_watermark() {
                let (since, base) = *self.quiet_since.get_or_insert((now, lead));
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
        } else {
            self.quiet_since = None;
        }
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
        // Take what the workers already sent.
        while let Ok(batch) = self.rx.try_recv() {
            apply(batch, engine, self.states, input);
        }
    }

    fn after_step(&mut self, engine: &Engine, sink: &mut dyn Sink) -> Result<(), PipelineError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(StartAt::from_name("beginning"), Ok(StartAt::Beginning));
        assert_eq!(StartAt::from_name("end"), Ok(StartAt::End));
        assert_eq!(StartAt::from_name("stored"), Ok(StartAt::Stored));
        assert!(StartAt::from_name("middle").unwrap_err().contains("beginning, end or stored"));
    }

    fn plan(properties: &[&str]) -> KafkaPlan {
        KafkaPlan {
            brokers: "b:9092".into(),
            topic: "frames".into(),
            group: "g".into(),
            properties: properties.iter().map(|p| (*p).into()).collect(),
            start: StartAt::Beginning,
            exit_at_end: true,
            idle_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            batch_size: 1024,
            state_topic: "state".into(),
            commit_interval: Duration::from_secs(1),
            exactly_once: false,
        }
    }

    /// A full prefetch queue must not stop a partition's fetches for
    /// librdkafka's default second, and the queue is bounded below
    /// librdkafka's default; `-X` still wins.
    #[test]
    fn consumer_prefetch_defaults_and_overrides() {
        let config = consumer_config(&plan(&[]), false).unwrap();
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some(crate::kafka::DEFAULT_FETCH_QUEUE_BACKOFF_MS));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some(crate::kafka::DEFAULT_QUEUED_MAX_KBYTES));
        assert_eq!(config.get("fetch.wait.max.ms"), Some(crate::kafka::DEFAULT_FETCH_WAIT_MAX_MS));
        let config =
            consumer_config(&plan(&["fetch.queue.backoff.ms=250", "queued.max.messages.kbytes=4096"]), false).unwrap();
        assert_eq!(config.get("fetch.queue.backoff.ms"), Some("250"));
        assert_eq!(config.get("queued.max.messages.kbytes"), Some("4096"));
    }
}
