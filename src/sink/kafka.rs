//! The output side of a Kafka run: one producer for the output topic (one
//! record per emission, keyed by its window, `minute:1468244400`, so a
//! compacted topic keeps the latest revision) and for the run's saved state.
//!
//! Records are queued in librdkafka (batched and compressed as configured)
//! and [`Output::flush`] waits until every queued record is acknowledged. A
//! delivery failure is never dropped: it fails the next `send` or flush.
//!
//! With `--exactly-once` the producer is transactional: records, the saved
//! state and the consumed offsets of one checkpoint interval are committed
//! together ([`Output::commit_transaction`]), or not at all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::kafka::Error;
use crate::metrics::Metrics;
use crate::sink::{Sink, SinkError};
use crate::window::engine::Emission;

/// How long `flush` and transaction calls wait before failing.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Remembers the first delivery failure, and which records (numbered in
/// sending order) are not acknowledged yet, with, for output records, when
/// they became due (their emission latency ends at the acknowledgement).
#[derive(Default)]
pub struct DeliveryWatch {
    failure: Mutex<Option<(String, KafkaError)>>,
    outstanding: Mutex<BTreeMap<usize, Option<Instant>>>,
    metrics: Option<Arc<Metrics>>,
}

impl DeliveryWatch {
    /// The first delivery failure, if any.
    pub fn failure(&self) -> Option<Error> {
        let failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        failure.as_ref().map(|(topic, e)| Error::Delivery { topic: topic.clone(), source: e.clone() })
    }

    /// True when every record numbered below `n` was acknowledged.
    fn acknowledged_below(&self, n: usize) -> bool {
        self.outstanding
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .first_key_value()
            .is_none_or(|(&first, _)| first >= n)
    }
}

impl ClientContext for DeliveryWatch {}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, number: usize) {
        if let Err((e, message)) = result {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| (message.topic().to_string(), e.clone()));
            if let Some(metrics) = &self.metrics {
                metrics.producer_error();
            }
        }
        // A failed record stays outstanding: nothing after it counts as
        // safely written.
        if result.is_ok() {
            let due = self.outstanding.lock().unwrap_or_else(|p| p.into_inner()).remove(&number);
            if let (Some(metrics), Some(Some(due))) = (&self.metrics, due) {
                metrics.observe_latency(due.elapsed());
            }
        }
    }
}

/// The run's producer, shared by the output sink and the state writer.
///
/// A `BaseProducer` served by the caller (every send and check polls it
/// without waiting), not a `ThreadedProducer`, whose polling thread costs up
/// to 100 ms at exit.
pub struct Output {
    producer: BaseProducer<DeliveryWatch>,
    transactional: bool,
    /// Records sent so far (the next record's number).
    sent: AtomicUsize,
}

impl Output {
    /// A producer with `config` (brokers and properties). With a
    /// `transactional_id` it is transactional and a first transaction is
    /// open when this returns. With `metrics`, acknowledgements end the
    /// emission latency of records sent with a due time, and failed
    /// deliveries are counted.
    pub fn new(
        config: &rdkafka::ClientConfig,
        transactional_id: Option<&str>,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<Arc<Output>, Error> {
        let mut config = config.clone();
        if let Some(id) = transactional_id {
            config.set("transactional.id", id);
        }
        let producer: BaseProducer<DeliveryWatch> = config
            .create_with_context(DeliveryWatch { metrics, ..DeliveryWatch::default() })
            .map_err(|e| Error::client("cannot create the Kafka producer", e))?;
        if transactional_id.is_some() {
            producer.init_transactions(FLUSH_TIMEOUT).map_err(|e| {
                Error::client("cannot start Kafka transactions (--exactly-once needs a broker that supports them)", e)
            })?;
            producer.begin_transaction().map_err(|e| Error::client("cannot begin a Kafka transaction", e))?;
        }
        Ok(Arc::new(Output { producer, transactional: transactional_id.is_some(), sent: AtomicUsize::new(0) }))
    }

    /// True when records are written in transactions.
    pub fn transactional(&self) -> bool {
        self.transactional
    }

    /// The first failed delivery, as an error.
    pub fn check_deliveries(&self) -> Result<(), Error> {
        self.producer.poll(Duration::ZERO);
        match self.producer.context().failure() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Records sent so far; [`Output::acknowledged`] tells when all of them
    /// are written.
    pub fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// True when the first `n` records sent are all acknowledged (does not
    /// wait).
    pub fn acknowledged(&self, n: usize) -> Result<bool, Error> {
        self.check_deliveries()?;
        Ok(self.producer.context().acknowledged_below(n))
    }

    /// Queues one record, waiting while librdkafka's queue is full.
    pub fn send(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<(), Error> {
        self.send_due(topic, key, value, None)
    }

    /// Queues one output record that became due at `due` (see
    /// [`Sink::set_due`]): its acknowledgement records its emission latency.
    pub fn send_due(&self, topic: &str, key: &[u8], value: &[u8], due: Option<Instant>) -> Result<(), Error> {
        if let Some(e) = self.producer.context().failure() {
            return Err(e);
        }
        let number = self.sent.fetch_add(1, Ordering::Relaxed);
        self.producer.context().outstanding.lock().unwrap_or_else(|p| p.into_inner()).insert(number, due);
        let mut pending = BaseRecord::with_opaque_to(topic, number).key(key).payload(value);
        loop {
            match self.producer.send(pending) {
                Ok(()) => {
                    self.producer.poll(Duration::ZERO);
                    return Ok(());
                }
                Err((e, back)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                    // The local queue is full: wait for acknowledgements.
                    self.producer.poll(Duration::from_millis(10));
                    pending = back;
                }
                Err((e, _)) => return Err(Error::client(format!("producing to '{topic}'"), e)),
            }
        }
    }

    /// Waits until every queued record is acknowledged. (rust-rdkafka's
    /// `BaseProducer::flush` polls in steps of up to 100 ms that do not end
    /// when the last acknowledgement arrives; this checks every millisecond.)
    pub fn flush(&self) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + FLUSH_TIMEOUT;
        while self.producer.in_flight_count() > 0 {
            if std::time::Instant::now() >= deadline {
                return Err(Error::client(
                    format!("flushing records: {} not acknowledged", self.producer.in_flight_count()),
                    KafkaError::Flush(rdkafka::types::RDKafkaErrorCode::OperationTimedOut),
                ));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        self.producer.poll(Duration::ZERO);
        self.check_deliveries()
    }

    /// Commits the open transaction with `offsets` as the group's consumed
    /// offsets, then opens the next one.
    pub fn commit_transaction(&self, offsets: &TopicPartitionList, group: &ConsumerGroupMetadata) -> Result<(), Error> {
        let fail = |what: &str, e: KafkaError| Error::client(what, e);
        if offsets.count() > 0 {
            self.producer
                .send_offsets_to_transaction(offsets, group, FLUSH_TIMEOUT)
                .map_err(|e| fail("adding offsets to the transaction", e))?;
        }
        self.producer.commit_transaction(FLUSH_TIMEOUT).map_err(|e| fail("committing the transaction", e))?;
        self.check_deliveries()?;
        self.producer.begin_transaction().map_err(|e| fail("beginning a transaction", e))
    }

    /// Commits the open transaction (records only, no consumer offsets),
    /// then opens the next one.
    pub fn commit(&self) -> Result<(), Error> {
        let fail = |what: &str, e: KafkaError| Error::client(what, e);
        self.producer.commit_transaction(FLUSH_TIMEOUT).map_err(|e| fail("committing the transaction", e))?;
        self.check_deliveries()?;
        self.producer.begin_transaction().map_err(|e| fail("beginning a transaction", e))
    }

    /// Aborts the open transaction (its records are never visible to
    /// read_committed consumers).
    pub fn abort_transaction(&self) {
        if self.transactional {
            let _ = self.producer.abort_transaction(FLUSH_TIMEOUT);
        }
    }
}

/// Writes emissions to a Kafka topic.
pub struct KafkaSink {
    output: Arc<Output>,
    topic: String,
    value: Vec<u8>,
    due: Option<Instant>,
}

impl KafkaSink {
    /// A sink producing to `topic` through `output`.
    pub fn new(output: Arc<Output>, topic: &str) -> KafkaSink {
        KafkaSink { output, topic: topic.to_string(), value: Vec::with_capacity(256), due: None }
    }
}

impl Sink for KafkaSink {
    fn emit(&mut self, record: &Emission) -> Result<(), SinkError> {
        self.value.clear();
        record.write_json(&mut self.value);
        Ok(self.output.send_due(&self.topic, record.key().as_bytes(), &self.value, self.due)?)
    }

    /// Does not wait: librdkafka sends queued records within `linger.ms`
    /// (5 ms by default) and a checkpoint waits for their acknowledgement
    /// ([`Output::flush`]) before it saves anything. Reports a failed
    /// delivery.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(self.output.check_deliveries()?)
    }

    fn set_due(&mut self, due: Instant) {
        self.due = Some(due);
    }
}
