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

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};

mod checkpoint;
mod feed;
pub(crate) use feed::follow_quiet;
mod queue;
pub mod state;
mod worker;

use checkpoint::Checkpoints;
use feed::{KafkaFeed, PartitionState};
use state::SavedState;
use worker::{Assigned, Batch, KafkaWorker};

use crate::kafka::{self, Error};
use crate::pipeline::merge;
use crate::pipeline::worker as workers;
use crate::pipeline::{CountPlan, PipelineError};
use crate::sink::Sink;
use crate::sink::kafka::Output;
use crate::stats::Totals;
use crate::window::engine::Engine;

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
    pub properties: Vec<crate::kafka::Property>,
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

type Queue = queue::BatchQueue<PartitionEnds>;
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

/// Counts frames from Kafka into `sink` until the end (`-e`) or `stop`,
/// saving checkpoints through `output` (which also carries the records
/// when `sink` is the output topic).
pub fn count_kafka(
    plan: &CountPlan,
    kafka: &KafkaPlan,
    sink: &mut dyn Sink,
    output: &Arc<Output>,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Totals),
) -> Result<Totals, PipelineError> {
    let started = Instant::now();
    let Opened { consumer, mut checkpoints, mut engine, queues, mut states } = open(plan, kafka, output)?;
    let workers = plan.workers.clamp(1, queues.len().max(1));
    let cores = workers::cores(plan.pin);
    let (tx, rx) = mpsc::sync_channel::<Batch>(workers * 8);
    let workers_stop = AtomicBool::new(false);
    let mut owned: Vec<Vec<Assigned>> = (0..workers).map(|_| Vec::new()).collect();
    for assigned in queues {
        owned[assigned.partition as usize % workers].push(assigned);
    }
    let result = std::thread::scope(|scope| {
        let mut threads = Vec::with_capacity(workers);
        for (w, queues) in owned.into_iter().enumerate() {
            let work = KafkaWorker {
                max_frame_bytes: plan.max_frame_bytes,
                estimator: plan.engine.estimator,
                batch_size: kafka.batch_size,
                queues,
                tx: tx.clone(),
                stop: &workers_stop,
            };
            let handle = workers::spawn_worker(scope, format!("kuniq-kafka-{w}"), w, &cores, move || {
                workers::run_with_parser(plan.parser, work)
            });
            threads.push(handle.thread().clone());
        }
        drop(tx);
        let mut feed = KafkaFeed {
            kafka,
            consumer: &consumer,
            checkpoints: &mut checkpoints,
            rx: &rx,
            states: &mut states,
            stop,
            workers_stop: &workers_stop,
            quiet_since: None,
            last_checkpoint: Instant::now(),
            changed: false,
            outage: None,
            disconnected: false,
        };
        let result = merge::run(&mut feed, &mut engine, sink, plan.metrics.as_deref(), started, &mut progress);
        workers_stop.store(true, Ordering::Relaxed);
        // A worker with nothing to poll is parked; wake it to see `stop`
        // rather than let the run's end wait out its park timeout.
        for thread in &threads {
            thread.unpark();
        }
        result
    });
    if result.is_err() {
        output.abort_transaction();
    }
    result
}

/// A consumer ready to count: the topic's partitions known, the saved
/// state loaded into the engine, every partition on its own queue and
/// assigned where it starts.
struct Opened {
    consumer: Arc<KafkaConsumer>,
    checkpoints: Checkpoints,
    engine: Engine,
    queues: Vec<Assigned>,
    states: Vec<PartitionState>,
}

fn open(plan: &CountPlan, kafka: &KafkaPlan, output: &Arc<Output>) -> Result<Opened, Error> {
    // Statistics always: the status line's lag comes from them too (one
    // small JSON document every 2 s, parsed on the merge thread's poll).
    let config = consumer_config(kafka, true)?;
    let consumer: Arc<KafkaConsumer> = Arc::new(
        config
            .create_with_context(PartitionEnds::new(&kafka.topic))
            .map_err(|e| Error::client("cannot create the Kafka consumer", e))?,
    );
    let partitions = kafka::partition_count(consumer.client(), &config, &kafka.topic, kafka.connect_timeout)?;
    let key = state::state_key(&kafka.group, &kafka.topic);
    state::ensure_topic(consumer.client(), &config, &kafka.state_topic)?;
    let (saved, refs) = state::load(&consumer, &kafka.state_topic, &key)?.unzip();
    let checkpoints = Checkpoints {
        output: Arc::clone(output),
        consumer: Arc::clone(&consumer),
        topic: kafka.topic.clone(),
        state_topic: kafka.state_topic.clone(),
        key,
        config: state::config_text(&plan.engine),
        partitions,
        // The next saved windows go to the slot the loaded state does not use.
        generation: refs.map_or(0, |r| r.generation() + 1),
        whole: refs.and_then(|r| r.whole),
        whole_saved: false,
        pending: None,
    };
    let mut engine = Engine::new(plan.engine.clone(), partitions as usize);
    let starts = start_offsets(&consumer, kafka, partitions, saved.as_ref(), &checkpoints.config, &mut engine)?;
    let queues = assign(&consumer, kafka, &starts)?;
    let now = Instant::now();
    let states = starts.iter().map(|&start| PartitionState::starting_at(start, now)).collect();
    Ok(Opened { consumer, checkpoints, engine, queues, states })
}

/// Splits every partition's queue off the consumer, then assigns the
/// partitions at `starts`.
///
/// Each is fetched from a little before its start and read up to it:
/// some brokers (tansu 0.6) answer a fetch from the middle of a record
/// batch with the next batch, which would silently skip the rest of that
/// batch.
fn assign(consumer: &Arc<KafkaConsumer>, kafka: &KafkaPlan, starts: &[Offset]) -> Result<Vec<Assigned>, Error> {
    let topic = &kafka.topic;
    let mut queues = Vec::with_capacity(starts.len());
    let mut assignment = TopicPartitionList::new();
    for (p, &start) in (0i32..).zip(starts) {
        let queue = Queue::split(consumer, topic, p).ok_or_else(|| {
            Error::Topic(format!("cannot open a queue for partition {p} of '{topic}': librdkafka does not know it"))
        })?;
        let (fetch_from, skip_below) = match start {
            Offset::Offset(o) => {
                let (low, _) = consumer
                    .fetch_watermarks(topic, p, Duration::from_secs(30))
                    .map_err(|e| Error::client(format!("cannot read the offsets of partition {p} of '{topic}'"), e))?;
                (Offset::Offset((o - RESUME_LOOKBACK).max(low)), o)
            }
            other => (other, 0),
        };
        assignment
            .add_partition_offset(topic, p, fetch_from)
            .map_err(|e| Error::client(format!("cannot assign partition {p} of '{topic}'"), e))?;
        queues.push(Assigned { partition: p, queue, skip_below });
    }
    consumer.assign(&assignment).map_err(|e| Error::client(format!("cannot assign the partitions of '{topic}'"), e))?;
    Ok(queues)
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
) -> Result<Vec<Offset>, Error> {
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
        engine.resume_saved_windows(&saved.windows).map_err(|e| Error::SavedState {
            topic: kafka.state_topic.clone(),
            key: state::state_key(&kafka.group, &kafka.topic),
            reason: format!(
                "{e}: its open windows were saved as {}, this run counts with --estimator {}; restart with the \
                 estimator the group was counted with, or count under a new --group",
                saved.config,
                engine.config().estimator
            ),
        })?;
        if let Some(wm) = saved.watermark {
            engine.resume_watermark(wm);
        }
        if saved.version < 3 {
            tracing::warn!(
                group = kafka.group,
                version = saved.version,
                "the saved state of group '{}' was written by an older kuniq (state version {}), whose records had \
                 no \"closed\" field and no provisional records: records this run sends again for windows open at \
                 the restart differ in bytes from those sent before it (same counts, a new field), and windows \
                 longer than a minute send provisional records from now on",
                kafka.group,
                saved.version
            );
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
        kafka::group_refusal(consumer, &kafka.group).unwrap_or_else(|| {
            Error::client(format!("cannot read the committed offsets of group '{}'", kafka.group), e)
        })
    })?;
    for e in committed.elements() {
        match e.offset() {
            Offset::Offset(o) => starts[e.partition() as usize] = Offset::Offset(o),
            _ if kafka.start == StartAt::Stored => {
                return Err(Error::Start(format!(
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

/// The consumer's configuration; `statistics` turns on librdkafka's
/// statistics (for the consumer-lag metric) unless `-X` sets them.
fn consumer_config(kafka: &KafkaPlan, statistics: bool) -> Result<ClientConfig, Error> {
    let stats: &[(&str, &str)] = if statistics { &[("statistics.interval.ms", STATISTICS_INTERVAL_MS)] } else { &[] };
    kafka::client_config(
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
                ("fetch.wait.max.ms", kafka::DEFAULT_FETCH_WAIT_MAX_MS),
                ("fetch.queue.backoff.ms", kafka::DEFAULT_FETCH_QUEUE_BACKOFF_MS),
                ("queued.max.messages.kbytes", kafka::DEFAULT_QUEUED_MAX_KBYTES),
            ],
        ]
        .concat(),
        &kafka::properties_for(&kafka.properties, true),
    )
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
