//! `kuniq count -b B -t TOPIC -G GROUP --partials-topic T`: a scale-out
//! worker. It joins consumer group GROUP (cooperative rebalancing), counts
//! only the partitions the group assigns it, one shipping engine each, and
//! sends each partition's completed slots and watermark to T (see
//! [`super`]).
//!
//! For each assigned partition:
//! - frames are parsed and fed to the partition's engine in offset order;
//!   when a frame's watermark completes slots, a message with them is sent,
//!   cut at that frame (`from`..`to` offsets), so a worker that reads the
//!   partition again cuts the same messages;
//! - every `--commit-interval` a progress message says how far the
//!   partition was read and its watermark;
//! - once the partition has been at its end for `--idle-timeout`, a snapshot
//!   of the slots read so far is sent and the partition is reported idle
//!   (it no longer holds the merge's watermark back); the slots still ship
//!   whole when they complete, so the messages of a partition read again
//!   do not depend on when it was idle;
//! - with `-e`, once every assigned partition is read to its end, each
//!   engine completes every window (as at the end of input), ships it,
//!   reports the partition ended, and the worker exits.
//!
//! Every `--commit-interval`, once every message sent is acknowledged, the
//! worker saves a [`PartitionCheckpoint`] of each partition to the state
//! topic (`PARTIALS-state`, keyed `GROUP/TOPIC/PARTITION`). A partition the
//! group assigns is resumed from its newest checkpoint (read again from its
//! resume offset; the merge skips the messages it already has), or, with
//! none, read from its earliest retained offset. No offsets are committed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::Offset;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{ClientContext, TopicPartitionList};

use crate::frame::FrameParser;
use crate::kafka::{self, Error};
use crate::pipeline::worker::{Frames, WithParser, run_with_parser};
use crate::pipeline::{CountPlan, PipelineError};
use crate::sink::kafka::Output;
use crate::source::kafka::KafkaPlan;
use crate::source::kafka::state::config_text;
use crate::stats::InputCounters;
use crate::window::clock::Event;
use crate::window::engine::{Engine, EngineConfig, EngineStats};
use crate::window::partials::{Carries, Partials, PartitionCheckpoint, Status, ship_states};

/// What a worker did, for its summary.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// The partitions the group assigns this worker at the end of the run.
    pub partitions: BTreeSet<u32>,
    /// Partitions taken away from this worker by a rebalance during the run.
    pub moved_away: u64,
    /// Frames read, bytes and rejects.
    pub input: InputCounters,
    /// The partitions' engines' counters, summed.
    pub engine: EngineStats,
    /// Messages sent to the partials topic, and their bytes.
    pub messages: u64,
    /// See `messages`.
    pub message_bytes: u64,
    /// Run time.
    pub elapsed: Duration,
}

impl WorkerSummary {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        let partitions: Vec<String> = self.partitions.iter().map(u32::to_string).collect();
        format!(
            r#"{{"role":"worker","partitions":[{}],"moved_away":{},"frames":{},"bytes":{},"rejected":{},"counted":{},"late":{},"too_late":{},"quarantined":{},"partials_messages":{},"partials_bytes":{},"elapsed_secs":{:.3}}}"#,
            partitions.join(","),
            self.moved_away,
            self.input.frames,
            self.input.bytes,
            self.input.rejected_total(),
            self.engine.counted,
            self.engine.late,
            self.engine.too_late,
            self.engine.quarantined,
            self.messages,
            self.message_bytes,
            self.elapsed.as_secs_f64()
        )
    }
}

impl std::fmt::Display for WorkerSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let partitions: Vec<String> = self.partitions.iter().map(u32::to_string).collect();
        write!(
            f,
            "kuniq worker: partitions [{}] ({} moved away): {} frames, counted {}, rejected {}, late {}, too late {}, \
             quarantined {}; {} partials messages ({:.1} MB) in {:.2} s",
            partitions.join(","),
            self.moved_away,
            self.input.frames,
            self.engine.counted,
            self.input.rejected_total(),
            self.engine.late,
            self.engine.too_late,
            self.engine.quarantined,
            self.messages,
            self.message_bytes as f64 / 1e6,
            self.elapsed.as_secs_f64()
        )
    }
}

fn add_stats(into: &mut EngineStats, s: EngineStats) {
    into.counted += s.counted;
    into.late += s.late;
    into.too_late += s.too_late;
    into.quarantined += s.quarantined;
}

/// Assignment changes the group made, for the poll loop to apply.
#[derive(Default)]
struct Changes {
    /// Newly assigned partitions, each ready to read from where the group
    /// was told to start it.
    assigned: Vec<(i32, Partition)>,
    revoked: Vec<i32>,
}

/// The consumer's context: applies the group's assignments itself, so that
/// each partition it is given starts where its saved checkpoint says.
struct GroupContext {
    topic: String,
    engine: EngineConfig,
    /// Reads the workers' state topic (a consumer of its own: the group's
    /// consumer cannot be assigned other partitions).
    loader: Mutex<BaseConsumer>,
    state_topic: String,
    /// Prefix of this group's checkpoint keys (`GROUP/TOPIC/`).
    key_prefix: String,
    changes: Mutex<Changes>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, err: RDKafkaRespErr, tpl: &mut TopicPartitionList) {
        let cooperative = matches!(consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let mut assigned = Vec::new();
                for p in partitions_of(tpl, &self.topic) {
                    let (part, start) = self.open(p);
                    if let Err(e) = tpl.set_partition_offset(&self.topic, p, start) {
                        tracing::warn!(partition = p, error = %e, "partition {p}: cannot set its start: {e}");
                    }
                    assigned.push((p, part));
                }
                self.changes.lock().unwrap_or_else(|e| e.into_inner()).assigned.extend(assigned);
                if cooperative { consumer.incremental_assign(tpl) } else { consumer.assign(tpl) }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                let revoked = partitions_of(tpl, &self.topic);
                self.changes.lock().unwrap_or_else(|e| e.into_inner()).revoked.extend(revoked);
                if cooperative { consumer.incremental_unassign(tpl) } else { consumer.unassign() }
            }
            other => {
                tracing::warn!("the consumer group reported a rebalance error: {other:?}");
                Ok(())
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "applying the consumer group's assignment: {e}");
        }
    }
}

impl GroupContext {
    /// Partition `p`, resumed from its newest checkpoint, or new and read
    /// from its earliest offset; and where to start reading it.
    fn open(&self, p: i32) -> (Partition, Offset) {
        let key = format!("{}{p}", self.key_prefix);
        let loaded = {
            let loader = self.loader.lock().unwrap_or_else(|e| e.into_inner());
            crate::source::kafka::state::newest_value(&loader, &self.state_topic, &key)
        };
        let topic = &self.topic;
        let checkpoint = match loaded {
            Ok(Some(bytes)) => match PartitionCheckpoint::decode(&bytes) {
                Ok(checkpoint) => Some(checkpoint),
                Err(e) => {
                    tracing::warn!(
                        partition = p,
                        "partition {p}: its saved checkpoint does not decode ({e}); \
                        reading it from its earliest offset"
                    );
                    None
                }
            },
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(partition = p, error = %e, "partition {p}: cannot read its saved checkpoint ({e}); \
                    reading it from its earliest offset");
                None
            }
        };
        if let Some(checkpoint) = checkpoint {
            match checkpoint.resume(self.engine.clone()) {
                Ok(engine) => {
                    let from = checkpoint.stream.resume.offset;
                    tracing::info!(
                        partition = p,
                        offset = from,
                        "counting partition {p} of '{topic}', resumed from its saved checkpoint (read to {}; \
                         reading again from offset {from})",
                        checkpoint.position
                    );
                    let part = Partition::new(engine, from, checkpoint.cut_from.min(from), checkpoint.position);
                    return (part, Offset::Offset(from as i64));
                }
                Err(_) => tracing::warn!(
                    partition = p,
                    "partition {p}: its saved checkpoint was counted with another --estimator; reading it from its \
                     earliest offset"
                ),
            }
        }
        tracing::info!(
            partition = p,
            "counting partition {p} of '{topic}' from its earliest offset (no saved checkpoint)"
        );
        (Partition::new(Engine::shipping(self.engine.clone()), 0, 0, 0), Offset::Beginning)
    }
}

fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements().iter().filter(|e| e.topic() == topic).map(|e| e.partition()).collect()
}

/// One assigned partition.
struct Partition {
    engine: Engine,
    /// The first offset the next slots message covers.
    cut_from: u64,
    /// The next offset to read.
    next: u64,
    /// Offsets reported so far (slots or progress).
    reported_to: u64,
    /// The position of the last checkpoint saved.
    saved_to: u64,
    /// The status last reported.
    status: Status,
    /// At its end (librdkafka said so and no record came since).
    at_end: bool,
    last_record: Instant,
}

impl Partition {
    fn new(engine: Engine, next: u64, cut_from: u64, saved_to: u64) -> Partition {
        Partition {
            engine,
            cut_from,
            next,
            reported_to: 0,
            saved_to,
            status: Status::Active,
            at_end: false,
            last_record: Instant::now(),
        }
    }
}

/// Runs a worker until a stop is asked or, with `-e`, every assigned
/// partition is read to its end.
pub fn run(
    plan: &CountPlan,
    kafka: &KafkaPlan,
    partials_topic: &str,
    stop: &AtomicBool,
) -> Result<WorkerSummary, PipelineError> {
    run_with_parser(plan.parser, Loop { plan, kafka, partials_topic, stop })
}

struct Loop<'a> {
    plan: &'a CountPlan,
    kafka: &'a KafkaPlan,
    partials_topic: &'a str,
    stop: &'a AtomicBool,
}

impl WithParser for Loop<'_> {
    type Output = Result<WorkerSummary, PipelineError>;

    fn run<P: FrameParser>(self, parser: P) -> Self::Output {
        let Loop { plan, kafka, partials_topic, stop } = self;
        let started = Instant::now();
        let config = kafka::client_config(
            &kafka.brokers,
            &[
                ("group.id", kafka.group.as_str()),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "true"),
                ("isolation.level", "read_committed"),
                ("auto.offset.reset", "earliest"),
                ("partition.assignment.strategy", "cooperative-sticky"),
                ("fetch.wait.max.ms", kafka::DEFAULT_FETCH_WAIT_MAX_MS),
                // As kuniq count: a full prefetch queue must not stop a
                // partition's fetches for a second (README "librdkafka
                // settings").
                ("fetch.queue.backoff.ms", kafka::DEFAULT_FETCH_QUEUE_BACKOFF_MS),
                ("queued.max.messages.kbytes", kafka::DEFAULT_QUEUED_MAX_KBYTES),
            ],
            &kafka::properties_for(&kafka.properties, true),
        )?;
        let state_topic = super::state_topic(partials_topic);
        let mut loader_config = config.clone();
        loader_config.set("group.id", format!("{}-state-reader", kafka.group));
        let loader: BaseConsumer =
            loader_config.create().map_err(|e| Error::client("cannot create the Kafka consumer", e))?;
        let partitions = kafka::partition_count(loader.client(), &config, &kafka.topic, kafka.connect_timeout)?;
        super::ensure_partials_topic(loader.client(), &config, partials_topic, partitions)?;
        super::ensure_state_topic(loader.client(), &config, &state_topic)?;
        let context = GroupContext {
            topic: kafka.topic.clone(),
            engine: plan.engine.clone(),
            loader: Mutex::new(loader),
            state_topic: state_topic.clone(),
            key_prefix: format!("{}/{}/", kafka.group, kafka.topic),
            changes: Mutex::default(),
        };
        let consumer: BaseConsumer<GroupContext> =
            config.create_with_context(context).map_err(|e| Error::client("cannot create the Kafka consumer", e))?;
        let producer_config = kafka::client_config(
            &kafka.brokers,
            &[("linger.ms", "5"), ("enable.idempotence", "true"), ("message.max.bytes", super::MAX_MESSAGE_BYTES)],
            &kafka::properties_for(&kafka.properties, false),
        )?;
        // With --exactly-once, partials and checkpoints go out in a Kafka
        // transaction per --commit-interval: a read_committed merge sees
        // none of what a killed worker sent after its last checkpoint.
        let transactional_id = kafka.exactly_once.then(|| {
            let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            format!("kuniq-worker-{}-{}-{}-{}", kafka.group, kafka.topic, std::process::id(), nanos.as_nanos())
        });
        // A killed worker's open transaction holds back what read_committed
        // readers see of the partials until the broker aborts it: keep that
        // short (three commit intervals, at least 10 s).
        let mut producer_config = producer_config;
        if transactional_id.is_some() {
            let timeout_ms = (kafka.commit_interval.as_millis() * 3).max(10_000);
            producer_config.set("transaction.timeout.ms", timeout_ms.to_string());
        }
        let output: Arc<Output> = Output::new(&producer_config, transactional_id.as_deref(), None)?;
        consumer
            .subscribe(&[kafka.topic.as_str()])
            .map_err(|e| Error::client(format!("cannot subscribe to '{}'", kafka.topic), e))?;
        tracing::info!(
            group = kafka.group,
            topic = kafka.topic,
            partials_topic,
            "joined group '{}' on '{}' ({partitions} partitions); partials go to '{partials_topic}'",
            kafka.group,
            kafka.topic
        );

        let mut w = Worker {
            kafka,
            partials_topic,
            state_topic,
            partitions: partitions as u32,
            config: config_text(&plan.engine),
            output,
            owned: BTreeMap::new(),
            summary: WorkerSummary::default(),
        };
        let mut frames = Frames::new(parser, plan.max_frame_bytes, plan.engine.estimator);
        let mut events: Vec<Event> = Vec::new();
        let mut last_progress = Instant::now();
        let mut result = Ok(());
        while !stop.load(Ordering::Relaxed) {
            w.apply_changes(&consumer.context().changes);
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let p = message.partition();
                    if let Some(part) = w.owned.get_mut(&p) {
                        let offset = message.offset() as u64;
                        if offset >= part.next {
                            frames.frame(
                                message.payload().unwrap_or_default(),
                                offset,
                                &mut w.summary.input,
                                &mut events,
                            );
                            part.next = offset + 1;
                            part.at_end = false;
                            part.last_record = Instant::now();
                            if let Err(e) = w.feed(p, &mut events) {
                                result = Err(e);
                                break;
                            }
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    if let Some(part) = w.owned.get_mut(&p) {
                        part.at_end = true;
                    }
                }
                Some(Err(e)) => tracing::warn!(error = %e, "reading '{}': {e}", kafka.topic),
                None => {}
            }
            let now = Instant::now();
            if let Err(e) = w.find_idle(now) {
                result = Err(e);
                break;
            }
            if now.duration_since(last_progress) >= kafka.commit_interval {
                last_progress = now;
                if let Err(e) = w.commit() {
                    result = Err(e);
                    break;
                }
            }
            if kafka.exit_at_end && !w.owned.is_empty() && w.owned.values().all(|p| p.at_end) {
                result = w.end_all();
                break;
            }
        }
        if result.is_ok() && !kafka.exit_at_end {
            result = w.commit();
        } else if result.is_ok() && w.output.transactional() {
            result = w.output.commit().map_err(PipelineError::from);
        }
        if result.is_err() {
            w.output.abort_transaction();
        }
        let flushed = w.output.flush();
        result?;
        flushed?;
        for (&p, part) in &w.owned {
            add_stats(&mut w.summary.engine, part.engine.stats());
            w.summary.partitions.insert(p as u32);
        }
        w.summary.elapsed = started.elapsed();
        Ok(w.summary)
    }
}

struct Worker<'a> {
    kafka: &'a KafkaPlan,
    partials_topic: &'a str,
    state_topic: String,
    partitions: u32,
    config: String,
    output: Arc<Output>,
    owned: BTreeMap<i32, Partition>,
    summary: WorkerSummary,
}

impl Worker<'_> {
    fn apply_changes(&mut self, changes: &Mutex<Changes>) {
        let Changes { assigned, revoked } = std::mem::take(&mut *changes.lock().unwrap_or_else(|e| e.into_inner()));
        for p in revoked {
            if let Some(part) = self.owned.remove(&p) {
                add_stats(&mut self.summary.engine, part.engine.stats());
                self.summary.moved_away += 1;
                tracing::info!(partition = p, "partition {p} of '{}' moved to another worker", self.kafka.topic);
            }
        }
        for (p, part) in assigned {
            self.owned.insert(p, part);
        }
    }

    /// Every --commit-interval: progress, checkpoints, and with
    /// transactions the commit of everything sent since the last.
    fn commit(&mut self) -> Result<(), PipelineError> {
        self.report_progress()?;
        self.save_checkpoints()?;
        if self.output.transactional() {
            self.output.commit()?;
        }
        Ok(())
    }

    /// Saves a checkpoint of every partition read further since its last,
    /// once every message sent so far is acknowledged (so the merge can
    /// have everything a worker resumed there would skip).
    fn save_checkpoints(&mut self) -> Result<(), PipelineError> {
        if !self.owned.values().any(|part| part.next > part.saved_to) {
            return Ok(());
        }
        if !self.output.transactional() {
            self.output.flush()?;
        }
        for (&p, part) in self.owned.iter_mut().filter(|(_, part)| part.next > part.saved_to) {
            let Some(checkpoint) = PartitionCheckpoint::of(&part.engine, part.next, part.cut_from) else { continue };
            let key = format!("{}/{}/{p}", self.kafka.group, self.kafka.topic);
            self.output.send(&self.state_topic, key.as_bytes(), &checkpoint.encode())?;
            part.saved_to = part.next;
        }
        Ok(())
    }

    /// Feeds a partition's parsed frames to its engine, sending a slots
    /// message at each frame that completes slots.
    fn feed(&mut self, p: i32, events: &mut Vec<Event>) -> Result<(), PipelineError> {
        for ev in events.drain(..) {
            let part = self.owned.get_mut(&p).expect("fed partitions are owned");
            if part.status != Status::Active {
                part.engine.set_idle(0, false);
                part.status = Status::Active;
            }
            part.engine.observe(0, ev);
            if part.engine.has_shipped() {
                self.send(p, ev.offset + 1, Carries::Slots, Status::Active)?;
            }
        }
        Ok(())
    }

    /// Sends a message of partition `p` carrying `carries`, with its
    /// watermark and `status`, covering offsets up to `to`.
    fn send(&mut self, p: i32, to: u64, carries: Carries, status: Status) -> Result<(), PipelineError> {
        let part = self.owned.get_mut(&p).expect("sent partitions are owned");
        let shipped = match carries {
            Carries::Slots => part.engine.take_shipped(),
            Carries::Snapshot => part.engine.snapshot_pending(),
            Carries::Progress => Vec::new(),
        };
        let from = if carries == Carries::Slots { part.cut_from } else { part.reported_to.min(to) };
        let windows = ship_states(shipped, p as u32, to)
            .map_err(|e| Error::Config(format!("partition {p}: slots of different estimators: {e}")))?;
        let message = Partials {
            topic: self.kafka.topic.clone(),
            partition: p as u32,
            partitions: self.partitions,
            config: self.config.clone(),
            from,
            to,
            watermark: part.engine.watermark(),
            status,
            carries,
            windows,
        };
        if carries == Carries::Slots {
            part.cut_from = to;
        }
        part.reported_to = part.reported_to.max(to);
        part.status = status;
        let bytes = message.encode();
        self.summary.messages += 1;
        self.summary.message_bytes += bytes.len() as u64;
        self.output.send(self.partials_topic, message.key().as_bytes(), &bytes)?;
        Ok(())
    }

    /// A progress message for every partition read further since the last.
    fn report_progress(&mut self) -> Result<(), PipelineError> {
        let due: Vec<(i32, u64, Status)> = self
            .owned
            .iter()
            .filter(|(_, part)| part.next > part.reported_to)
            .map(|(&p, part)| (p, part.next, part.status))
            .collect();
        for (p, to, status) in due {
            self.send(p, to, Carries::Progress, status)?;
        }
        self.output.check_deliveries()?;
        Ok(())
    }

    /// Partitions at their end for the idle timeout send a snapshot of what
    /// they read and are reported idle.
    fn find_idle(&mut self, now: Instant) -> Result<(), PipelineError> {
        let idle: Vec<(i32, u64)> = self
            .owned
            .iter()
            .filter(|(_, part)| {
                part.status == Status::Active
                    && part.at_end
                    && now.duration_since(part.last_record) >= self.kafka.idle_timeout
            })
            .map(|(&p, part)| (p, part.next))
            .collect();
        for (p, to) in idle {
            let part = self.owned.get_mut(&p).expect("idle partitions are owned");
            part.engine.set_idle(0, true);
            self.send(p, to, Carries::Snapshot, Status::Idle)?;
        }
        Ok(())
    }

    /// `-e`: every window of every partition completed and shipped.
    fn end_all(&mut self) -> Result<(), PipelineError> {
        let ends: Vec<(i32, u64)> = self.owned.iter().map(|(&p, part)| (p, part.next)).collect();
        for (p, to) in ends {
            self.owned.get_mut(&p).expect("ended partitions are owned").engine.flush();
            self.send(p, to, Carries::Slots, Status::Ended)?;
        }
        Ok(())
    }
}
