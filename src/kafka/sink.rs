//! The output topic: one record per emission, keyed by its window
//! (`minute:1468244400`), so a compacted topic keeps the latest revision.
//!
//! Records are queued in librdkafka (batched and compressed as configured)
//! and `flush` waits until every queued record is acknowledged. A delivery
//! failure is never dropped: it fails the next `emit` or `flush`.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::sink::Sink;
use crate::window::engine::Emission;

/// How long `flush` waits for acknowledgements before failing.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Remembers the first delivery failure.
#[derive(Default)]
pub struct DeliveryWatch {
    failure: Mutex<Option<String>>,
}

impl DeliveryWatch {
    /// The first delivery failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ClientContext for DeliveryWatch {}

impl ProducerContext for DeliveryWatch {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
            failure.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Writes emissions to a Kafka topic.
pub struct KafkaSink {
    producer: ThreadedProducer<DeliveryWatch>,
    topic: String,
    value: Vec<u8>,
}

impl KafkaSink {
    /// A sink producing to `topic` with `config` (brokers and properties).
    pub fn new(config: &rdkafka::ClientConfig, topic: &str) -> Result<KafkaSink, String> {
        let producer = config
            .create_with_context(DeliveryWatch::default())
            .map_err(|e| format!("cannot create the Kafka producer for output topic '{topic}': {e}"))?;
        Ok(KafkaSink { producer, topic: topic.to_string(), value: Vec::with_capacity(256) })
    }

    fn check_deliveries(&self) -> io::Result<()> {
        match self.producer.context().failure() {
            Some(e) => Err(io::Error::other(format!("a record was not delivered to '{}': {e}", self.topic))),
            None => Ok(()),
        }
    }
}

impl Sink for KafkaSink {
    fn emit(&mut self, record: &Emission) -> io::Result<()> {
        self.check_deliveries()?;
        self.value.clear();
        record.write_json(&mut self.value);
        let key = record.key();
        let mut pending = BaseRecord::to(&self.topic).key(&key).payload(&self.value);
        loop {
            match self.producer.send(pending) {
                Ok(()) => return Ok(()),
                Err((e, back)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                    // The local queue is full: wait for acknowledgements.
                    self.producer.poll(Duration::from_millis(10));
                    pending = back;
                }
                Err((e, _)) => return Err(io::Error::other(format!("producing to '{}': {e}", self.topic))),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| io::Error::other(format!("flushing records to '{}': {e}", self.topic)))?;
        self.check_deliveries()
    }
}
