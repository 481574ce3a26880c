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
//!   before subscribing, so messages never pass through a shared queue and
//!   a partition's messages are always handled by the same worker, in
//!   offset order. Workers are pinned; they parse payloads where librdkafka
//!   holds them (no copy per frame) and send compact events to the merge.
//! - The merge (the calling thread) serves the consumer's own queue
//!   (rebalances, errors), feeds the window engine with one stream per
//!   partition, and emits records.
//! - Watermarks: a partition's watermark is its highest ts minus the
//!   lateness; the global one is the minimum over partitions that are not
//!   idle. A partition is idle when it is not assigned to this member, or
//!   when it has been caught up (at its end) with no records for the idle
//!   timeout. When all are idle the watermark moves on with the wall clock,
//!   so the last minutes of a quiet topic are still emitted.
//! - Offsets: committed when the run ends (`-e`, or a stop), after every
//!   window was emitted and the sink flushed; a crash before that replays
//!   from the previous commit, and the replay emits the same records
//!   (at least once, never lost).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};

use crate::count::UidHasher;
use crate::frame::{FrameParser, ParserKind, Reject};
use crate::pipeline::{CountPlan, PipelineError, Progress, emit};
use crate::sink::Sink;
use crate::stats::{InputCounters, Summary};
use crate::window::Secs;
use crate::window::clock::Event;
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
    /// `-X` properties for the consumer.
    pub properties: Vec<String>,
    /// Start for partitions without a committed offset.
    pub start: StartAt,
    /// Stop once every assigned partition is read to its end.
    pub exit_at_end: bool,
    /// Caught-up time without records after which a partition is idle.
    pub idle_timeout: Duration,
    /// Messages per poll of a partition queue.
    pub batch_size: usize,
}

/// Partition changes seen by the consumer, handed to the merge.
#[derive(Default)]
struct GroupEvents {
    notes: Mutex<Vec<GroupNote>>,
}

enum GroupNote {
    Assigned(Vec<i32>),
    Revoked(Vec<i32>),
    Error(String),
}

impl ClientContext for GroupEvents {}

impl ConsumerContext for GroupEvents {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &TopicPartitionList| list.elements().iter().map(|e| e.partition()).collect();
        let note = match rebalance {
            Rebalance::Assign(list) => GroupNote::Assigned(partitions(list)),
            Rebalance::Revoke(list) => GroupNote::Revoked(partitions(list)),
            Rebalance::Error(e) => GroupNote::Error(e.to_string()),
        };
        self.notes.lock().unwrap_or_else(|p| p.into_inner()).push(note);
    }
}

type Queue = rdkafka::consumer::base_consumer::PartitionQueue<GroupEvents>;

/// What a worker made of one poll of one partition.
struct Batch {
    partition: i32,
    events: Vec<Event>,
    counters: InputCounters,
    /// Offset of the last message in the batch, if any.
    last_offset: Option<i64>,
    /// The partition was at its end after this batch.
    at_end: bool,
}

/// Per-partition bookkeeping of the merge.
#[derive(Debug, Clone, Copy)]
struct PartitionState {
    assigned: bool,
    at_end: bool,
    idle: bool,
    last_record: Instant,
    /// Next offset to commit (last processed + 1).
    next_offset: Option<i64>,
}

/// Counts frames from Kafka into `sink` until the end (`-e`) or `stop`.
pub fn count_kafka(
    plan: &CountPlan,
    kafka: &KafkaPlan,
    sink: &mut dyn Sink,
    stop: &AtomicBool,
    mut progress: impl FnMut(&Progress),
) -> Result<Summary, PipelineError> {
    let started = Instant::now();
    let fail = |what: String| PipelineError::Input(std::io::Error::other(what));
    let config = consumer_config(kafka).map_err(fail)?;
    let consumer: Arc<BaseConsumer<GroupEvents>> = Arc::new(
        config
            .create_with_context(GroupEvents::default())
            .map_err(|e| fail(format!("cannot create the Kafka consumer: {e}")))?,
    );
    let partitions = super::partition_count(consumer.client(), &kafka.topic).map_err(fail)?;
    let mut queues: Vec<(i32, Queue)> = Vec::new();
    for p in 0..partitions {
        let queue = consumer
            .split_partition_queue(&kafka.topic, p)
            .ok_or_else(|| fail(format!("cannot open a queue for partition {p} of '{}'", kafka.topic)))?;
        queues.push((p, queue));
    }
    consumer.subscribe(&[&kafka.topic]).map_err(|e| fail(format!("cannot subscribe to '{}': {e}", kafka.topic)))?;

    let mut engine = Engine::new(plan.engine.clone(), partitions as usize);
    for p in 0..partitions as usize {
        engine.set_idle(p, true);
    }
    let workers = plan.workers.clamp(1, partitions.max(1) as usize);
    let cores = if plan.pin { core_affinity::get_core_ids().unwrap_or_default() } else { Vec::new() };
    let (tx, rx) = mpsc::sync_channel::<Batch>(workers * 8);
    let workers_stop = AtomicBool::new(false);
    let mut owned: Vec<Vec<(i32, Queue)>> = (0..workers).map(|_| Vec::new()).collect();
    for (p, queue) in queues {
        owned[p as usize % workers].push((p, queue));
    }

    std::thread::scope(|scope| {
        for (w, mine) in owned.into_iter().enumerate() {
            let tx = tx.clone();
            let core = (!cores.is_empty()).then(|| cores[w % cores.len()]);
            let (plan, kafka, workers_stop) = (plan, kafka, &workers_stop);
            std::thread::Builder::new()
                .name(format!("kuniq-kafka-{w}"))
                .spawn_scoped(scope, move || {
                    if let Some(core) = core {
                        core_affinity::set_for_current(core);
                    }
                    run_worker(plan, kafka.batch_size, mine, &tx, workers_stop);
                })
                .expect("spawning a Kafka worker thread");
        }
        drop(tx);
        let result = merge(kafka, &consumer, partitions, &rx, &mut engine, sink, stop, started, &mut progress);
        // Workers stop; what they polled but the merge did not apply is not
        // committed, so the next run reads it again.
        workers_stop.store(true, Ordering::Relaxed);
        result
    })
    .and_then(|(input, states)| {
        engine.flush();
        emit(&mut engine, sink)?;
        commit(&consumer, &kafka.topic, &states).map_err(|e| fail(format!("committing offsets: {e}")))?;
        Ok(Summary { input, engine: engine.stats(), elapsed: started.elapsed() })
    })
}

fn consumer_config(kafka: &KafkaPlan) -> Result<ClientConfig, String> {
    super::client_config(
        &kafka.brokers,
        &[
            ("group.id", kafka.group.as_str()),
            ("enable.auto.commit", "false"),
            ("enable.auto.offset.store", "false"),
            ("enable.partition.eof", "true"),
            ("auto.offset.reset", kafka.start.reset_policy()),
            ("fetch.wait.max.ms", super::DEFAULT_FETCH_WAIT_MAX_MS),
        ],
        &super::properties_for(&kafka.properties, true),
    )
}

fn run_worker(
    plan: &CountPlan,
    batch_size: usize,
    mut queues: Vec<(i32, Queue)>,
    tx: &mpsc::SyncSender<Batch>,
    stop: &AtomicBool,
) {
    let max = plan.max_frame_bytes;
    match plan.parser {
        #[cfg(feature = "scan")]
        ParserKind::Scan => worker_loop(crate::frame::scan::ScanParser::new(), max, batch_size, &mut queues, tx, stop),
        #[cfg(feature = "sonic")]
        ParserKind::Sonic => {
            worker_loop(crate::frame::sonic::SonicParser::new(), max, batch_size, &mut queues, tx, stop)
        }
        #[cfg(feature = "serde")]
        ParserKind::Serde => {
            worker_loop(crate::frame::serdejson::SerdeParser::new(), max, batch_size, &mut queues, tx, stop)
        }
        #[allow(unreachable_patterns)]
        _ => worker_loop(plan.parser.build(), max, batch_size, &mut queues, tx, stop),
    }
}

fn worker_loop<P: FrameParser>(
    mut parser: P,
    max_frame_bytes: usize,
    batch_size: usize,
    queues: &mut [(i32, Queue)],
    tx: &mpsc::SyncSender<Batch>,
    stop: &AtomicBool,
) {
    let hasher = UidHasher::new();
    let me = std::thread::current();
    for (_, queue) in queues.iter_mut() {
        let me = me.clone();
        queue.set_nonempty_callback(move || me.unpark());
    }
    let batch_size = batch_size.max(1);
    while !stop.load(Ordering::Relaxed) {
        let mut polled = false;
        for (partition, queue) in queues.iter() {
            let mut batch = Batch {
                partition: *partition,
                events: Vec::new(),
                counters: InputCounters::default(),
                last_offset: None,
                at_end: false,
            };
            for _ in 0..batch_size {
                match queue.poll(Duration::ZERO) {
                    None => break,
                    Some(Ok(message)) => {
                        let payload = message.payload().unwrap_or_default();
                        batch.counters.frames += 1;
                        batch.counters.bytes += payload.len() as u64;
                        if payload.len() > max_frame_bytes {
                            batch.counters.reject(Reject::TooLarge);
                            batch.last_offset = Some(message.offset());
                            continue;
                        }
                        match parser.parse(payload) {
                            Ok(fields) => batch.events.push(Event {
                                ts: fields.ts as Secs,
                                hash: hasher.hash(fields.uid),
                                offset: message.offset() as u64,
                            }),
                            Err(reason) => batch.counters.reject(reason),
                        }
                        batch.last_offset = Some(message.offset());
                    }
                    Some(Err(KafkaError::PartitionEOF(_))) => {
                        batch.at_end = true;
                        break;
                    }
                    Some(Err(e)) => {
                        // Fetch errors are retried by librdkafka; report them.
                        eprintln!("kuniq: partition {partition}: {e}");
                        break;
                    }
                }
            }
            if batch.last_offset.is_some() || batch.at_end {
                polled = true;
                if !send(tx, batch, stop) {
                    return;
                }
            }
        }
        if !polled {
            // Woken by a queue becoming non-empty, or to check `stop`.
            std::thread::park_timeout(Duration::from_millis(100));
        }
    }
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

#[allow(clippy::too_many_arguments)]
fn merge(
    kafka: &KafkaPlan,
    consumer: &BaseConsumer<GroupEvents>,
    partitions: i32,
    rx: &mpsc::Receiver<Batch>,
    engine: &mut Engine,
    sink: &mut dyn Sink,
    stop: &AtomicBool,
    started: Instant,
    progress: &mut impl FnMut(&Progress),
) -> Result<(InputCounters, Vec<PartitionState>), PipelineError> {
    let now = Instant::now();
    let mut states =
        vec![
            PartitionState { assigned: false, at_end: false, idle: true, last_record: now, next_offset: None };
            partitions as usize
        ];
    let mut input = InputCounters::default();
    let mut quiet_since: Option<(Instant, Secs)> = None;
    let mut assigned = BTreeSet::new();
    loop {
        // Serve rebalances and errors (messages all go to partition queues).
        if let Some(Err(e)) = consumer.poll(Duration::ZERO) {
            eprintln!("kuniq: Kafka consumer: {e}");
        }
        let notes = std::mem::take(&mut *consumer.context().notes.lock().unwrap_or_else(|p| p.into_inner()));
        for note in notes {
            match note {
                GroupNote::Assigned(list) => {
                    for p in list.into_iter().filter(|&p| p >= 0 && p < partitions) {
                        let s = &mut states[p as usize];
                        (s.assigned, s.at_end, s.idle, s.last_record) = (true, false, false, Instant::now());
                        engine.set_idle(p as usize, false);
                        assigned.insert(p);
                    }
                }
                GroupNote::Revoked(list) => {
                    for p in list.into_iter().filter(|&p| p >= 0 && p < partitions) {
                        let s = &mut states[p as usize];
                        (s.assigned, s.idle) = (false, true);
                        engine.set_idle(p as usize, true);
                        assigned.remove(&p);
                    }
                }
                GroupNote::Error(e) => eprintln!("kuniq: rebalance: {e}"),
            }
        }

        let mut got = 0;
        match rx.recv_timeout(Duration::from_millis(20)) {
            Ok(batch) => {
                apply(batch, engine, &mut states, &mut input);
                got += 1;
                while got < 64 {
                    match rx.try_recv() {
                        Ok(batch) => {
                            apply(batch, engine, &mut states, &mut input);
                            got += 1;
                        }
                        Err(_) => break,
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }

        // Idle partitions: caught up and quiet for the idle timeout.
        let now = Instant::now();
        for (p, s) in states.iter_mut().enumerate() {
            if s.assigned && !s.idle && s.at_end && now.duration_since(s.last_record) >= kafka.idle_timeout {
                s.idle = true;
                engine.set_idle(p, true);
            }
        }
        if states.iter().all(|s| s.idle) {
            // All quiet: the watermark follows the wall clock from where the
            // leading partition left it.
            if let Some(lead) = engine.leading_watermark() {
                let (since, base) = *quiet_since.get_or_insert((now, lead));
                engine.advance_quiet(base + now.duration_since(since).as_secs() as Secs);
            }
        } else {
            quiet_since = None;
        }
        emit(engine, sink)?;
        if got > 0 {
            progress(&Progress {
                input,
                watermark: engine.watermark(),
                open_windows: engine.open_windows(),
                elapsed: started.elapsed(),
            });
        }
        let done = kafka.exit_at_end && !assigned.is_empty() && assigned.iter().all(|&p| states[p as usize].at_end);
        if done || stop.load(Ordering::Relaxed) {
            // Take what the workers already sent.
            while let Ok(batch) = rx.try_recv() {
                apply(batch, engine, &mut states, &mut input);
            }
            break;
        }
    }
    Ok((input, states))
}

fn apply(batch: Batch, engine: &mut Engine, states: &mut [PartitionState], input: &mut InputCounters) {
    let s = &mut states[batch.partition as usize];
    input.add(&batch.counters);
    if let Some(last) = batch.last_offset {
        s.last_record = Instant::now();
        s.next_offset = Some(last + 1);
        if s.idle {
            s.idle = false;
            engine.set_idle(batch.partition as usize, false);
        }
    }
    s.at_end = batch.at_end;
    engine.observe_batch(batch.partition as usize, &batch.events);
}

/// Commits the next offset of every partition this run processed.
fn commit(consumer: &BaseConsumer<GroupEvents>, topic: &str, states: &[PartitionState]) -> Result<(), KafkaError> {
    let mut list = TopicPartitionList::new();
    for (p, s) in states.iter().enumerate() {
        if let Some(next) = s.next_offset {
            list.add_partition_offset(topic, p as i32, Offset::Offset(next))?;
        }
    }
    if list.count() == 0 {
        return Ok(());
    }
    consumer.commit(&list, CommitMode::Sync)
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
}
