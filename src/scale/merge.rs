//! `kuniq merge -b B --partials-topic T [-o OUTPUT]`: combines what the
//! workers send (see [`super`]) into the records one `kuniq count` over the
//! whole input topic would emit.
//!
//! The merge reads every partition of the partials topic from its start.
//! Per input partition it keeps the offset its slots are absorbed up to,
//! skipping messages below it (a partition read again after it moved to
//! another worker), its watermark, and whether it is idle or ended. The
//! global watermark is the minimum over partitions that are not idle, every
//! partition of the input topic accounted for; as in `kuniq count`, a
//! window's stage completes once it passes, and when every partition is
//! idle the watermark follows the wall clock. With `-e` the merge stops
//! once the partials are read to their end and every input partition is
//! idle or ended, completing every open window first (as `kuniq count -e`
//! does at the end of the input).
//!
//! Every `--commit-interval`, once the records emitted so far are
//! delivered, the merge saves a [`MergeCheckpoint`] (its open windows, what
//! it knows of each input partition, and where it is in the partials topic)
//! to its own state topic (`PARTIALS-merge-state`) under `merge/GROUP`. A restart (or a standby
//! started after it) goes on from the newest checkpoint and emits the
//! records since it again, each repeat identical (at least once).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::kafka::{self, Error, Property};
use crate::pipeline::{PipelineError, emit};
use crate::sink::Sink;
use crate::sink::kafka::Output;
use crate::source::kafka::follow_quiet;
use crate::source::kafka::state::config_text;
use crate::window::Secs;
use crate::window::engine::{Engine, EngineConfig, EngineStats};
use crate::window::partials::{Applied, Input, MergeCheckpoint, Partials, Status};

/// How to merge.
#[derive(Debug, Clone)]
pub struct MergePlan {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The topic the workers write to.
    pub partials_topic: String,
    /// librdkafka properties (`-X`, `-F`).
    pub properties: Vec<Property>,
    /// Stop once every input partition's partials are complete to the end.
    pub exit_at_end: bool,
    /// Longest wait for the partials topic and the brokers at start-up.
    pub connect_timeout: Duration,
    /// Names the merge's checkpoint (`merge/GROUP` on the merge's state
    /// topic, `PARTIALS-merge-state`).
    pub group: String,
    /// Time between checkpoints.
    pub commit_interval: Duration,
    /// Records and checkpoints in Kafka transactions (the records' producer
    /// is transactional).
    pub exactly_once: bool,
    /// The window settings the workers count with.
    pub engine: EngineConfig,
}

/// What the merge did, for its summary.
#[derive(Debug, Clone, Default)]
pub struct MergeSummary {
    /// The input topic and its partition count, once a message named them.
    pub input: Option<(String, u32)>,
    /// Partials messages read.
    pub messages: u64,
    /// Messages whose slots were already absorbed (a partition read again).
    pub duplicates: u64,
    /// The merge engine's counters (`counted`: frames in absorbed slots).
    pub engine: EngineStats,
    /// Run time.
    pub elapsed: Duration,
}

impl MergeSummary {
    /// One JSON object.
    pub fn to_json(&self) -> String {
        let (topic, partitions) = self.input.clone().unwrap_or_default();
        format!(
            r#"{{"role":"merge","topic":"{}","partitions":{},"messages":{},"duplicates":{},"frames":{},"too_late":{},"records":{},"revisions":{},"provisional":{},"elapsed_secs":{:.3}}}"#,
            topic.replace('\\', "\\\\").replace('"', "\\\""),
            partitions,
            self.messages,
            self.duplicates,
            self.engine.counted,
            self.engine.too_late,
            self.engine.emissions,
            self.engine.revisions,
            self.engine.provisional,
            self.elapsed.as_secs_f64()
        )
    }
}

impl std::fmt::Display for MergeSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (topic, partitions) = self.input.clone().unwrap_or_default();
        write!(
            f,
            "kuniq merge: '{topic}' ({partitions} partitions): {} partials messages ({} repeated), {} frames, too \
             late {}, records {} (revisions {}, provisional {}) in {:.2} s",
            self.messages,
            self.duplicates,
            self.engine.counted,
            self.engine.too_late,
            self.engine.emissions,
            self.engine.revisions,
            self.engine.provisional,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Runs the merge until a stop is asked or, with `-e`, the end. `records`
/// is the output topic's producer when `sink` writes to one: a checkpoint
/// waits until it has delivered every record before.
pub fn run(
    plan: &MergePlan,
    sink: &mut dyn Sink,
    records: Option<&Output>,
    stop: &AtomicBool,
) -> Result<MergeSummary, PipelineError> {
    let started = Instant::now();
    let config = kafka::client_config(
        &plan.brokers,
        &[
            ("group.id", "kuniq-merge"),
            ("enable.auto.commit", "false"),
            ("enable.partition.eof", "true"),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
            ("fetch.wait.max.ms", kafka::DEFAULT_FETCH_WAIT_MAX_MS),
        ],
        &kafka::properties_for(&plan.properties, true),
    )?;
    let consumer: BaseConsumer = config.create().map_err(|e| Error::client("cannot create the Kafka consumer", e))?;
    let topic = plan.partials_topic.as_str();
    let partials = wait_for_topic(&consumer, &config, topic, plan.connect_timeout, stop)?;
    let state_topic = super::merge_state_topic(topic);
    super::ensure_state_topic(consumer.client(), &config, &state_topic)?;
    let key = format!("merge/{}", plan.group);
    let saved = match crate::source::kafka::state::newest_value(&consumer, &state_topic, &key)? {
        Some(bytes) => Some(MergeCheckpoint::decode(&bytes).map_err(|e| Error::SavedState {
            topic: state_topic.clone(),
            key: key.clone(),
            reason: format!("{e}; start the merge with another -G to begin again from the partials' start"),
        })?),
        None => None,
    };
    let mut summary = MergeSummary::default();
    let mut engine: Option<Engine> = None;
    let mut inputs: Vec<Input> = Vec::new();
    let mut next: Vec<i64> = vec![0; partials as usize];
    if let Some(saved) = &saved {
        let (restored, restored_inputs) = saved.restore(plan.engine.clone()).map_err(|_| {
            Error::Config(format!(
                "the merge's checkpoint was counted with another estimator than --estimator {}; start the merge \
                 with another -G to begin again from the partials' start",
                plan.engine.estimator
            ))
        })?;
        (engine, inputs) = (Some(restored), restored_inputs);
        summary.input = Some((saved.topic.clone(), saved.partitions));
        for &(p, offset) in &saved.offsets {
            if let Some(n) = next.get_mut(p as usize) {
                *n = offset;
            }
        }
        tracing::info!(
            group = plan.group,
            "resumed from the merge's checkpoint ({} open windows; partials read to offsets {:?})",
            saved.windows.len(),
            saved.offsets.iter().map(|(_, o)| o).collect::<Vec<_>>()
        );
    }
    let mut assignment = TopicPartitionList::new();
    for p in 0..partials {
        let start = if next[p as usize] > 0 { Offset::Offset(next[p as usize]) } else { Offset::Beginning };
        assignment
            .add_partition_offset(topic, p, start)
            .map_err(|e| Error::client(format!("cannot assign partition {p} of '{topic}'"), e))?;
    }
    consumer.assign(&assignment).map_err(|e| Error::client(format!("cannot assign '{topic}'"), e))?;
    // With transactions the checkpoint goes with the records, in their
    // producer's transaction; else through a producer of its own.
    let own_state_output = match records {
        Some(records) if records.transactional() => None,
        _ => Some(Output::new(
            &kafka::client_config(
                &plan.brokers,
                &[("linger.ms", "5"), ("message.max.bytes", super::MAX_MESSAGE_BYTES)],
                &kafka::properties_for(&plan.properties, false),
            )?,
            None,
            None,
        )?),
    };
    let state_output: &Output = match (&own_state_output, records) {
        (Some(own), _) => own,
        (None, Some(records)) => records,
        (None, None) => unreachable!("a producer of its own when the records have none"),
    };
    let mut last_save = Instant::now();
    let expected = config_text(&plan.engine);
    let mut at_end = vec![false; partials as usize];
    let mut quiet_since: Option<(Instant, Secs)> = None;
    let mut last_end_check = started;
    while !stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                at_end[message.partition() as usize] = false;
                next[message.partition() as usize] = message.offset() + 1;
                let bytes = message.payload().unwrap_or_default();
                let partials = Partials::decode(bytes).map_err(|e| {
                    Error::Topic(format!(
                        "partials topic '{topic}', partition {} offset {}: not a kuniq partials message ({e}); \
                         give --partials-topic a topic only kuniq workers write to",
                        message.partition(),
                        message.offset()
                    ))
                })?;
                summary.messages += 1;
                let engine = match &mut engine {
                    Some(engine) => engine,
                    None => {
                        summary.input = Some((partials.topic.clone(), partials.partitions));
                        inputs = vec![Input::default(); partials.partitions as usize];
                        engine.insert(Engine::new(plan.engine.clone(), partials.partitions as usize))
                    }
                };
                check(&partials, &summary, &expected)?;
                let p = partials.partition as usize;
                let applied = inputs[p].apply(engine, p, &partials).map_err(|_| {
                    Error::Config(format!(
                        "partition {p}: partials counted with another estimator than --estimator {}",
                        engine.config().estimator
                    ))
                })?;
                if applied == Applied::Repeat {
                    summary.duplicates += 1;
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => at_end[p as usize] = true,
            Some(Err(e)) => tracing::warn!(error = %e, "reading '{topic}': {e}"),
            None => {}
        }
        let Some(engine) = &mut engine else { continue };
        let all_idle = inputs.iter().all(|i| matches!(i.status, Some(Status::Idle | Status::Ended)));
        let now = Instant::now();
        let caught_up = at_end.iter().all(|&e| e);
        if plan.exit_at_end && all_idle && caught_up && now.duration_since(last_end_check) >= Duration::from_millis(500)
        {
            last_end_check = now;
            if read_to_end(&consumer, summary.input.as_ref(), &inputs)? {
                engine.flush();
                emit(engine, sink, now)?;
                break;
            }
        }
        if caught_up {
            follow_quiet(engine, all_idle, &mut quiet_since, now);
        }
        emit(engine, sink, now)?;
        if now.duration_since(last_save) >= plan.commit_interval {
            last_save = now;
            let checkpoint = MergeCheckpoint::of(engine, &inputs, &input_name(&summary), offsets(&next));
            save(sink, records, state_output, &state_topic, &key, &checkpoint)?;
        }
    }
    if let Some(engine) = &engine {
        // What the run emitted is final for the next one (with -e, every
        // window).
        let checkpoint = MergeCheckpoint::of(engine, &inputs, &input_name(&summary), offsets(&next));
        save(sink, records, state_output, &state_topic, &key, &checkpoint)?;
    }
    state_output.flush()?;
    sink.flush()?;
    if let Some(engine) = &engine {
        summary.engine = engine.stats();
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

fn input_name(summary: &MergeSummary) -> String {
    summary.input.clone().unwrap_or_default().0
}

fn offsets(next: &[i64]) -> Vec<(i32, i64)> {
    next.iter().enumerate().map(|(p, &o)| (p as i32, o)).collect()
}

/// Saves `checkpoint` once every record emitted before it is delivered (a
/// restart from it must not need one of them again); with transactions,
/// commits the records and the checkpoint together.
fn save(
    sink: &mut dyn Sink,
    records: Option<&Output>,
    state_output: &Output,
    state_topic: &str,
    key: &str,
    checkpoint: &MergeCheckpoint,
) -> Result<(), PipelineError> {
    sink.flush()?;
    if let Some(records) = records
        && !records.transactional()
    {
        records.flush()?;
    }
    state_output.send(state_topic, key.as_bytes(), &checkpoint.encode())?;
    if state_output.transactional() {
        state_output.commit()?;
    } else {
        state_output.check_deliveries()?;
    }
    Ok(())
}

/// Refuses a message of another input topic or window settings than the
/// first.
fn check(partials: &Partials, summary: &MergeSummary, expected: &str) -> Result<(), PipelineError> {
    if let Some((topic, partitions)) = &summary.input
        && (&partials.topic != topic || partials.partitions != *partitions)
    {
        return Err(Error::Topic(format!(
            "the partials topic holds partials of '{}' ({} partitions) and of '{topic}' ({partitions} partitions): \
             give each input topic its own partials topic",
            partials.topic, partials.partitions
        ))
        .into());
    }
    if partials.config != expected {
        return Err(Error::Config(format!(
            "the workers count with window settings '{}', this merge with '{expected}': give kuniq merge the same \
             --windows, --lateness, --allowed-lateness, --revision-interval, --quarantine, --max-open-windows, \
             --early-interval, --estimator and --emit-sketch as the workers",
            partials.config
        ))
        .into());
    }
    Ok(())
}

/// True when every input partition's messages say it was read to the end
/// the brokers have for it now (an idle partition reported before frames
/// arrived is not at its end).
fn read_to_end(
    consumer: &BaseConsumer,
    input: Option<&(String, u32)>,
    inputs: &[Input],
) -> Result<bool, PipelineError> {
    let Some((topic, _)) = input else { return Ok(false) };
    for (p, i) in inputs.iter().enumerate() {
        if i.status == Some(Status::Ended) {
            continue;
        }
        let (_, high) = consumer
            .fetch_watermarks(topic, p as i32, Duration::from_secs(10))
            .map_err(|e| Error::client(format!("cannot read the end offsets of '{topic}' partition {p}"), e))?;
        if (i.read_to as i64) < high {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The partials topic's partition count, waiting (up to `timeout`) for the
/// workers to create it.
fn wait_for_topic(
    consumer: &BaseConsumer,
    config: &rdkafka::ClientConfig,
    topic: &str,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<i32, PipelineError> {
    let deadline = Instant::now() + timeout;
    let mut said = false;
    loop {
        match kafka::partition_count(consumer.client(), config, topic, timeout) {
            Ok(n) => return Ok(n),
            Err(Error::Topic(_)) if Instant::now() < deadline && !stop.load(Ordering::Relaxed) => {
                if !said {
                    tracing::info!(topic, "waiting for the partials topic '{topic}' (the workers create it)");
                    said = true;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(Error::Topic(e)) => {
                return Err(Error::Topic(format!(
                    "{e}: start the workers (kuniq count --partials-topic {topic}) first, they create it"
                ))
                .into());
            }
            Err(e) => return Err(e.into()),
        }
    }
}
