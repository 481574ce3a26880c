//! `kuniq produce`: loads frames (one per line) from a file, a `.gz` file or
//! stdin into a topic, the role kafka-console-producer plays elsewhere.
//!
//! Lines go to partitions round-robin (line `i` to partition `i % P`), so
//! the same input always lands the same way: tests and benchmarks can
//! replay it and predict each partition's order.

use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::Error;
use crate::sink::kafka::DeliveryWatch;
use crate::source::file::FileSource;

/// Records between polls of the producer (and, with a rate, between pauses).
const PACE_EVERY: u64 = 1024;

/// What a produce run did.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProduceSummary {
    /// Records produced (and acknowledged).
    pub records: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Wall time.
    pub elapsed: Duration,
}

/// Produces every non-empty line of `source` to `topic`, at most `rate`
/// records per second when `rate` is not 0. `progress` is called now and
/// then with the records sent so far.
pub fn produce(
    config: &ClientConfig,
    topic: &str,
    source: &FileSource,
    rate: u64,
    mut progress: impl FnMut(u64, u64),
) -> Result<ProduceSummary, Error> {
    let started = Instant::now();
    let producer: BaseProducer<DeliveryWatch> = config
        .create_with_context(DeliveryWatch::default())
        .map_err(|e| Error::client("cannot create a Kafka producer", e))?;
    let partitions = super::partition_count(producer.client(), config, topic, super::DEFAULT_CONNECT_TIMEOUT)?;
    let mut sent = 0u64;
    let mut bytes = 0u64;
    let mut next_progress = Instant::now() + Duration::from_millis(500);
    while let Some(chunk) = source.next_chunk() {
        let chunk = chunk.map_err(|e| Error::Read { name: source.name().to_string(), source: e })?;
        for line in chunk.data.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let partition = (sent % partitions as u64) as i32;
            let mut record = BaseRecord::<(), [u8], usize>::with_opaque_to(topic, 0).payload(line).partition(partition);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((e, back)) if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::QueueFull) => {
                        producer.poll(Duration::from_millis(5));
                        record = back;
                    }
                    Err((e, _)) => return Err(Error::client(format!("producing to '{topic}'"), e)),
                }
            }
            sent += 1;
            bytes += line.len() as u64;
            if sent.is_multiple_of(PACE_EVERY) {
                producer.poll(Duration::ZERO);
                if rate > 0 {
                    // Paced: record `sent` is due `sent / rate` s after the start.
                    let due = started + Duration::from_secs_f64(sent as f64 / rate as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                if Instant::now() >= next_progress {
                    progress(sent, bytes);
                    next_progress = Instant::now() + Duration::from_millis(500);
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .map_err(|e| Error::client("waiting for the brokers to acknowledge the records", e))?;
    if producer.in_flight_count() > 0 {
        return Err(Error::Unacknowledged { topic: topic.to_string(), records: producer.in_flight_count() as u64 });
    }
    if let Some(e) = producer.context().failure() {
        return Err(e);
    }
    progress(sent, bytes);
    Ok(ProduceSummary { records: sent, bytes, partitions, elapsed: started.elapsed() })
}
