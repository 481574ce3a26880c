//! `kuniq consume`: prints a topic's records (kcat -C style), for reading an
//! output topic without other tools. It reads every partition from the
//! beginning without joining a group and commits nothing.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::Error;

/// Prints `topic`'s records to `out`, one per line (`key<TAB>value` with
/// `keys`). With `exit_at_end`, returns once every partition is read to its
/// end; otherwise runs until `stop` says so. Returns the records printed.
pub fn consume(
    config: &ClientConfig,
    topic: &str,
    keys: bool,
    exit_at_end: bool,
    out: &mut impl Write,
    stop: &dyn Fn() -> bool,
) -> Result<u64, Error> {
    let mut config = config.clone();
    config.set("group.id", "kuniq-consume").set("enable.partition.eof", "true").set("enable.auto.commit", "false");
    let consumer: BaseConsumer = config.create().map_err(|e| Error::client("cannot create a Kafka consumer", e))?;
    let partitions =
        super::partition_count(consumer.client(), &config, topic, super::DEFAULT_CONNECT_TIMEOUT)? as usize;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions as i32 {
        list.add_partition_offset(topic, p, Offset::Beginning)
            .map_err(|e| Error::client(format!("cannot read partition {p} of '{topic}'"), e))?;
    }
    consumer.assign(&list).map_err(|e| Error::client(format!("cannot assign partitions of '{topic}'"), e))?;
    let mut at_end = vec![false; partitions];
    let mut printed = 0;
    let started = Instant::now();
    loop {
        if (exit_at_end && at_end.iter().all(|&e| e)) || stop() {
            break;
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => {
                at_end[message.partition() as usize] = false;
                if keys {
                    out.write_all(message.key().unwrap_or_default()).map_err(Error::Write)?;
                    out.write_all(b"\t").map_err(Error::Write)?;
                }
                out.write_all(message.payload().unwrap_or_default()).map_err(Error::Write)?;
                out.write_all(b"\n").map_err(Error::Write)?;
                printed += 1;
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                if let Some(e) = at_end.get_mut(p as usize) {
                    *e = true;
                }
                out.flush().map_err(Error::Write)?;
            }
            // Errors while the client connects are retried by librdkafka.
            Some(Err(e)) if started.elapsed() > Duration::from_secs(1) => tracing::warn!(error = %e, "{e}"),
            Some(Err(_)) => {}
        }
    }
    out.flush().map_err(Error::Write)?;
    Ok(printed)
}
