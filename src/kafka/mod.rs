//! Kafka in and out: the consumer side of `kuniq count -b`, the output-topic
//! sink, and `kuniq produce`.
//!
//! Every client kuniq makes starts from [`client_config`]: the brokers, the
//! user's `-X key=value` properties (passed to librdkafka as kcat does), and
//! defaults that suit kuniq. A user's `-X` always wins over a default.

use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::{ClientConfig, ClientContext};

pub mod consume;
pub mod produce;
pub mod sink;
pub mod source;
pub mod state;

/// librdkafka's default `fetch.wait.max.ms` (500) makes brokers that hold
/// every fetch for the full wait (tansu does) deliver a few thousand
/// messages a second; 10 ms keeps fetches flowing at a negligible cost on
/// brokers that answer as soon as data is there.
pub const DEFAULT_FETCH_WAIT_MAX_MS: &str = "10";

/// A client configuration: `defaults` first, then the user's `-X` pairs.
pub fn client_config(brokers: &str, defaults: &[(&str, &str)], properties: &[String]) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for pair in properties {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| format!("-X expects key=value (a librdkafka property), not '{pair}'"))?;
        config.set(key.trim(), value.trim());
    }
    Ok(config)
}

/// How long a client waits for the brokers to answer its first metadata
/// request before kuniq gives up with an error.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Partitions of `topic`, from the metadata of the brokers at `brokers`
/// (the `-b` list, for messages); an error naming the topic when it does not
/// exist, and one naming the brokers when none answers within `timeout`.
/// After the first 2 s without an answer kuniq says that it is waiting.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    brokers: &str,
    topic: &str,
    timeout: Duration,
) -> Result<i32, String> {
    let started = std::time::Instant::now();
    let first = timeout.min(Duration::from_secs(2));
    let metadata = match client.fetch_metadata(Some(topic), first) {
        Ok(metadata) => Ok(metadata),
        Err(_) if timeout > first => {
            eprintln!(
                "kuniq: no answer yet from the Kafka brokers at {brokers}; waiting up to {} s (--connect-timeout)",
                timeout.as_secs_f64().round()
            );
            client.fetch_metadata(Some(topic), timeout.saturating_sub(started.elapsed()))
        }
        Err(e) => Err(e),
    }
    .map_err(|e| {
        format!(
            "cannot reach the Kafka brokers at {brokers} within {} s ({e}): check that they run, that -b names \
             them, and any -X security settings",
            timeout.as_secs_f64().round()
        )
    })?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
        _ => Err(format!("topic '{topic}' does not exist (create it first, e.g. scripts/broker.sh topic {topic} 4)")),
    }
}

/// True for properties meant for consumers only; the producer of a
/// `count` run ignores them instead of warning about them.
fn consumer_only(key: &str) -> bool {
    key.starts_with("fetch.")
        || key.starts_with("group.")
        || key.starts_with("auto.")
        || key.starts_with("enable.auto")
        || key.starts_with("session.")
        || key.starts_with("heartbeat.")
        || key.starts_with("max.poll")
        || key.starts_with("partition.assignment")
        || key.starts_with("isolation.")
        || key.starts_with("queued.")
        || key == "enable.partition.eof"
        || key == "check.crcs"
}

/// True for properties meant for producers only.
fn producer_only(key: &str) -> bool {
    key.starts_with("linger.")
        || key.starts_with("batch.")
        || key.starts_with("compression.")
        || key.starts_with("queue.buffering")
        || key.starts_with("message.send")
        || key.starts_with("delivery.")
        || key.starts_with("transaction")
        || key.starts_with("request.required")
        || key == "acks"
        || key == "enable.idempotence"
        || key == "partitioner"
        || key == "retries"
}

/// The `-X` pairs that apply to a consumer (`consumer` true) or a producer.
pub fn properties_for(properties: &[String], consumer: bool) -> Vec<String> {
    properties
        .iter()
        .filter(|pair| {
            let key = pair.split_once('=').map_or(pair.as_str(), |(k, _)| k).trim();
            if consumer { !producer_only(key) } else { !consumer_only(key) }
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_properties_override_defaults() {
        let config = client_config("b:9092", &[("fetch.wait.max.ms", "10")], &["fetch.wait.max.ms=50".into()]).unwrap();
        assert_eq!(config.get("fetch.wait.max.ms"), Some("50"));
        assert_eq!(config.get("bootstrap.servers"), Some("b:9092"));
    }

    #[test]
    fn malformed_properties_are_refused() {
        assert!(client_config("b", &[], &["novalue".into()]).unwrap_err().contains("key=value"));
        assert!(client_config("b", &[], &["=x".into()]).is_err());
    }

    #[test]
    fn properties_are_split_by_client_kind() {
        let all = vec!["fetch.wait.max.ms=10".to_string(), "compression.codec=lz4".into(), "client.id=k".into()];
        assert_eq!(properties_for(&all, true), vec!["fetch.wait.max.ms=10", "client.id=k"]);
        assert_eq!(properties_for(&all, false), vec!["compression.codec=lz4", "client.id=k"]);
    }
}
