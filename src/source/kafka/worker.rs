//! The Kafka workers: each polls its partitions' queues in turn, parses a
//! batch where librdkafka holds the payloads (no copy per frame), and sends
//! compact events to the merge.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rdkafka::error::KafkaError;

use super::Queue;
use super::queue::{Message, Messages};
use crate::count::Estimator;
use crate::frame::FrameParser;
use crate::pipeline::worker::{Frames, WithParser};
use crate::stats::InputCounters;
use crate::window::clock::Event;

/// A partition's queue, as a worker polls it.
pub(super) struct Assigned {
    pub(super) partition: i32,
    pub(super) queue: Queue,
    /// Messages below this offset were fetched only to reach it: skipped.
    pub(super) skip_below: i64,
}

/// What a worker made of one poll of one partition.
pub(super) struct Batch {
    pub(super) partition: i32,
    pub(super) events: Vec<Event>,
    pub(super) counters: InputCounters,
    /// Offset of the last message in the batch, if any.
    pub(super) last_offset: Option<i64>,
    /// The partition was at its end after this batch: the end of
    /// partition's offset (the next offset to read there).
    pub(super) end_offset: Option<i64>,
}

/// A Kafka worker: polls its partitions' queues in turn, parses each
/// batch where librdkafka holds it, sends the events to the merge.
pub(super) struct KafkaWorker<'a> {
    pub(super) max_frame_bytes: usize,
    /// How windows count (frames get sketch coupons for `hll`).
    pub(super) estimator: Estimator,
    pub(super) batch_size: usize,
    pub(super) queues: Vec<Assigned>,
    pub(super) tx: mpsc::SyncSender<Batch>,
    pub(super) stop: &'a AtomicBool,
}

impl WithParser for KafkaWorker<'_> {
    type Output = ();

    fn run<P: FrameParser>(mut self, parser: P) {
        let mut frames = Frames::new(parser, self.max_frame_bytes, self.estimator);
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
