//! What can go wrong with Kafka, as one typed error.
//!
//! Variants that wrap a librdkafka or I/O error give it as their
//! [`source`](std::error::Error::source) and say only what kuniq was doing
//! (print the chain, as `{:#}` of an `anyhow::Error` does, to see both);
//! the others are kuniq's own verdicts, whose text says what to check or
//! do. No variant's text shows a secret property value.

use std::fmt;
use std::io;

use rdkafka::error::KafkaError;

/// A Kafka operation that failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A property is malformed, reserved, or refused by librdkafka.
    Config(String),
    /// The brokers did not answer in time, refused the login or the TLS
    /// handshake, or closed every connection.
    Connect(String),
    /// The topic does not exist, or this client may not describe it.
    Topic(String),
    /// The brokers refused the consumer group to this client.
    Group(String),
    /// kuniq cannot start where it was asked to (no saved state or
    /// committed offset with `--offset stored`).
    Start(String),
    /// librdkafka failed an operation.
    Client {
        /// What kuniq was doing, e.g. "cannot create the Kafka consumer".
        doing: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A record sent to `topic` was not delivered.
    Delivery {
        /// The topic the record was for.
        topic: String,
        /// librdkafka's error.
        source: KafkaError,
    },
    /// A saved state on the state topic cannot be read.
    SavedState {
        /// The state topic.
        topic: String,
        /// The state's key (group and input topic).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Records sent to `topic` were still unacknowledged when kuniq gave
    /// up waiting.
    Unacknowledged {
        /// The topic.
        topic: String,
        /// How many.
        records: u64,
    },
    /// Reading the input to produce (`kuniq produce`) failed.
    Read {
        /// The input's name.
        name: String,
        /// Why.
        source: io::Error,
    },
    /// Writing what was read (`kuniq consume`) failed.
    Write(io::Error),
}

impl Error {
    /// An error of librdkafka while kuniq was `doing` something.
    pub fn client(doing: impl Into<String>, source: KafkaError) -> Error {
        Error::Client { doing: doing.into(), source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(text)
            | Error::Connect(text)
            | Error::Topic(text)
            | Error::Group(text)
            | Error::Start(text) => f.write_str(text),
            Error::Client { doing, .. } => f.write_str(doing),
            Error::Delivery { topic, .. } => write!(f, "a record for topic '{topic}' was not delivered"),
            Error::SavedState { topic, key, reason } => write!(f, "state topic '{topic}', key '{key}': {reason}"),
            Error::Unacknowledged { topic, records } => {
                write!(f, "{records} records for topic '{topic}' were not acknowledged by the brokers")
            }
            Error::Read { name, .. } => write!(f, "reading {name}"),
            Error::Write(_) => f.write_str("writing the records read"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Client { source, .. } | Error::Delivery { source, .. } => Some(source),
            Error::Read { source, .. } | Error::Write(source) => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::error::RDKafkaErrorCode;
    use std::error::Error as _;

    #[test]
    fn wrapped_errors_are_their_source() {
        let e = Error::client("cannot create the Kafka consumer", KafkaError::ClientCreation("no memory".into()));
        assert_eq!(e.to_string(), "cannot create the Kafka consumer");
        assert!(e.source().is_some_and(|s| s.to_string().contains("no memory")));
        let e = Error::Delivery {
            topic: "counts".into(),
            source: KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut),
        };
        assert_eq!(e.to_string(), "a record for topic 'counts' was not delivered");
        assert!(e.source().is_some());
        assert!(Error::Topic("topic 'x' does not exist".into()).source().is_none());
    }
}
