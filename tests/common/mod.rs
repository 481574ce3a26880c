//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod apache_kafka;
pub mod broker;
pub mod cli;
pub mod frames;
pub mod hostile;
pub mod kafka;
pub mod oracle;
pub mod tls;

/// What the Kafka tests need of a broker, whichever kind runs it: Apache
/// Kafka ([`apache_kafka::ApacheKafka`]) or tansu ([`broker::Broker`]).
pub trait TestBroker {
    /// `127.0.0.1:PORT`, as librdkafka's `bootstrap.servers` wants it.
    fn addr(&self) -> &str;
    /// Creates `name` with `partitions` partitions; panics if it cannot.
    fn create_topic(&self, name: &str, partitions: u32);
}

impl TestBroker for apache_kafka::ApacheKafka {
    fn addr(&self) -> &str {
        &self.addr
    }
    fn create_topic(&self, name: &str, partitions: u32) {
        apache_kafka::ApacheKafka::create_topic(self, name, partitions);
    }
}

impl TestBroker for broker::Broker {
    fn addr(&self) -> &str {
        &self.addr
    }
    fn create_topic(&self, name: &str, partitions: u32) {
        broker::Broker::create_topic(self, name, partitions);
    }
}
