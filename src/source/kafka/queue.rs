//! A partition's own librdkafka queue, read many messages per call.
//!
//! rust-rdkafka's `PartitionQueue` hands out one message per poll: a queue
//! lock, three clock reads and an event wrapped and unwrapped per message,
//! about a tenth of kuniq's CPU when it reads Kafka. librdkafka's
//! `rd_kafka_consume_batch_queue` takes up to a batch of messages in one call
//! (one poll start, one position update per partition), and rust-rdkafka
//! does not expose it, nor the queue it needs. This module is that thin
//! layer: the partition's queue, split off the consumer's queue, a
//! non-blocking batch read, and a wake-up when the queue stops being empty.
//!
//! Payloads are borrowed from librdkafka's fetch buffers until the batch is
//! cleared: no copy per frame.

use std::ffi::{CString, c_void};
use std::ptr::NonNull;
use std::sync::Arc;
use std::thread::Thread;

use rdkafka::bindings as rd;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::types::RDKafkaRespErr;

/// One partition's messages, split off the consumer's queue: they reach
/// only this queue, in offset order.
pub(super) struct BatchQueue<C: ConsumerContext + 'static> {
    queue: NonNull<rd::rd_kafka_queue_t>,
    /// The thread to unpark when the queue stops being empty; boxed so its
    /// address, handed to librdkafka, stays put.
    wake: Option<Box<Thread>>,
    /// Keeps the client alive while its queue handle exists.
    _consumer: Arc<BaseConsumer<C>>,
}

// SAFETY: librdkafka queues are thread-safe (every operation takes the
// queue's own lock), and the handle is used by one thread at a time
// (`&mut self` or `&self` of the owning worker).
unsafe impl<C: ConsumerContext + 'static> Send for BatchQueue<C> {}

impl<C: ConsumerContext + 'static> BatchQueue<C> {
    /// The queue of `partition` of `topic`, no longer forwarded to the
    /// consumer's queue. Split before assigning, as with rust-rdkafka's
    /// `split_partition_queue`. None when librdkafka has no such queue.
    pub(super) fn split(consumer: &Arc<BaseConsumer<C>>, topic: &str, partition: i32) -> Option<Self> {
        let topic = CString::new(topic).ok()?;
        // SAFETY: the client pointer is valid while `consumer` lives, and
        // `topic` is a NUL-terminated string that outlives the call.
        let queue =
            unsafe { rd::rd_kafka_queue_get_partition(consumer.client().native_ptr(), topic.as_ptr(), partition) };
        let queue = NonNull::new(queue)?;
        // SAFETY: `queue` is a live handle; a null destination stops the
        // forwarding to the consumer's queue.
        unsafe { rd::rd_kafka_queue_forward(queue.as_ptr(), std::ptr::null_mut()) };
        Some(BatchQueue { queue, wake: None, _consumer: Arc::clone(consumer) })
    }

    /// Unparks `thread` whenever the queue goes from empty to non-empty.
    pub(super) fn wake_on_nonempty(&mut self, thread: Thread) {
        let wake = Box::new(thread);
        let opaque = (&*wake as *const Thread).cast_mut().cast::<c_void>();
        // SAFETY: `opaque` points to the boxed thread handle, which lives
        // until the callback is replaced below or in `drop` (librdkafka
        // swaps callbacks under the queue's lock, the one it calls them
        // under, so no call is in flight when the old box is freed).
        unsafe { rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), Some(unpark), opaque) };
        self.wake = Some(wake);
    }

    /// Releases `batch`'s messages, then moves up to `max` messages (at least
    /// one) from the queue into it, without waiting. Returns how many.
    pub(super) fn poll_into(&self, batch: &mut Messages, max: usize) -> usize {
        batch.clear();
        let max = max.max(1);
        batch.messages.reserve(max);
        // SAFETY: the spare capacity holds at least `max` pointers;
        // librdkafka writes at most `max` and returns how many it wrote (or
        // -1 on an invalid queue, read as none). Timeout 0: no waiting.
        let got = unsafe {
            rd::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                batch.messages.spare_capacity_mut().as_mut_ptr().cast(),
                max,
            )
        };
        let got = usize::try_from(got).unwrap_or(0).min(max);
        // SAFETY: librdkafka initialised the first `got` pointers, each a
        // message now owned by `batch` (released in `clear`).
        unsafe { batch.messages.set_len(got) };
        got
    }
}

impl<C: ConsumerContext + 'static> Drop for BatchQueue<C> {
    fn drop(&mut self) {
        // SAFETY: the handle is live; disabling the callback first means
        // librdkafka no longer holds the `wake` pointer when it is freed.
        unsafe {
            rd::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rd::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// librdkafka's non-empty callback: `opaque` is a `BatchQueue`'s boxed
/// `Thread`.
unsafe extern "C" fn unpark(_rk: *mut rd::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `wake_on_nonempty` registers the address of a `Thread` that
    // stays alive for as long as the callback is registered.
    let thread = unsafe { &*opaque.cast::<Thread>() };
    thread.unpark();
}

/// Messages taken from a [`BatchQueue`], owned until [`Messages::clear`]
/// (or drop) hands them back to librdkafka.
#[derive(Default)]
pub(super) struct Messages {
    messages: Vec<*mut rd::rd_kafka_message_t>,
}

/// One message of a batch, as kuniq reads it.
pub(super) enum Message<'a> {
    /// A record: its offset and value (empty when it has none).
    Record { offset: i64, payload: &'a [u8] },
    /// The partition is read to its end (`enable.partition.eof`): `offset`
    /// is the next offset to read. (librdkafka also moves the consumer's
    /// `position()` one past it for an end read in a batch, so the end's own
    /// offset is the one to trust.)
    End { offset: i64 },
    /// A consumer error for this partition (librdkafka retries fetches).
    Error(RDKafkaErrorCode),
}

impl Messages {
    /// Number of messages held.
    pub(super) fn len(&self) -> usize {
        self.messages.len()
    }

    /// The batch's messages in offset order.
    pub(super) fn iter(&self) -> impl Iterator<Item = Message<'_>> {
        self.messages.iter().map(|&m| {
            // SAFETY: every pointer is a live message owned by this batch
            // until `clear`, which needs `&mut self`, so the payload
            // borrowed here cannot outlive it.
            let m = unsafe { &*m };
            if m.err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                if m.err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    return Message::End { offset: m.offset };
                }
                return Message::Error(RDKafkaErrorCode::from(m.err));
            }
            let payload = if m.payload.is_null() || m.len == 0 {
                &[][..]
            } else {
                // SAFETY: librdkafka's payload is `len` readable bytes that
                // live as long as the message.
                unsafe { std::slice::from_raw_parts(m.payload.cast::<u8>(), m.len) }
            };
            Message::Record { offset: m.offset, payload }
        })
    }

    /// Hands every message back to librdkafka.
    pub(super) fn clear(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: each message came from `rd_kafka_consume_batch_queue`
            // and is destroyed exactly once (drained from the vector).
            unsafe { rd::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for Messages {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use rdkafka::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
    use rdkafka::mocking::MockCluster;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

    use super::*;

    /// What [`read_all`] saw of one partition.
    struct Read {
        /// (offset, payload) of every record, in the order handed out.
        records: Vec<(i64, Vec<u8>)>,
        /// The most messages one call returned.
        largest: usize,
        /// The end of partition's offset, if one was reported.
        end: Option<i64>,
    }

    /// Reads a partition through a batch queue, at most `max` messages per
    /// call, until its end (or 30 s).
    fn read_all(queue: &BatchQueue<DefaultConsumerContext>, max: usize) -> Read {
        let mut messages = Messages::default();
        let (mut records, mut largest) = (Vec::new(), 0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let got = queue.poll_into(&mut messages, max);
            largest = largest.max(got);
            for m in messages.iter() {
                match m {
                    Message::Record { offset, payload } => records.push((offset, payload.to_vec())),
                    Message::End { offset } => return Read { records, largest, end: Some(offset) },
                    Message::Error(code) => panic!("consumer error: {code:?}"),
                }
            }
            if got == 0 {
                std::thread::park_timeout(Duration::from_millis(10));
            }
        }
        Read { records, largest, end: None }
    }

    #[test]
    fn batches_hold_every_record_in_order_then_the_end() {
        let cluster = MockCluster::new(1).expect("an rdkafka mock cluster");
        cluster.create_topic("frames", 2, 1).unwrap();
        let producer: ThreadedProducer<DefaultProducerContext> =
            ClientConfig::new().set("bootstrap.servers", cluster.bootstrap_servers()).create().unwrap();
        for i in 0..250u32 {
            let value = format!("frame {i}");
            producer.send(BaseRecord::<(), _>::to("frames").partition((i % 2) as i32).payload(&value)).unwrap();
        }
        producer.flush(Duration::from_secs(10)).unwrap();

        let consumer: Arc<BaseConsumer> = Arc::new(
            ClientConfig::new()
                .set("bootstrap.servers", cluster.bootstrap_servers())
                .set("group.id", "batch-queue-test")
                .set("enable.partition.eof", "true")
                .set("enable.auto.commit", "false")
                .create()
                .unwrap(),
        );
        let mut queues: Vec<_> = (0..2).map(|p| BatchQueue::split(&consumer, "frames", p).unwrap()).collect();
        for q in &mut queues {
            q.wake_on_nonempty(std::thread::current());
        }
        let mut assignment = TopicPartitionList::new();
        for p in 0..2 {
            assignment.add_partition_offset("frames", p, Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();

        for (p, queue) in queues.iter().enumerate() {
            let Read { records, largest, end } = read_all(queue, 16);
            // The end is the next offset to read (the idle check compares
            // it with the partition's high watermark).
            assert_eq!(end, Some(125), "partition {p}: end");
            assert!(largest <= 16, "partition {p}: a batch of {largest} exceeds the maximum of 16");
            assert!(largest > 1, "partition {p}: never more than one message per call");
            let want: Vec<(i64, Vec<u8>)> =
                (0..125).map(|k| (k, format!("frame {}", 2 * k as usize + p).into_bytes())).collect();
            assert_eq!(records, want, "partition {p}");
        }
        // Queues go before the consumer; dropping them must not hang.
        drop(queues);
    }
}
