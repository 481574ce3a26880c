//! Topics kuniq creates for itself when they are missing: the state topic
//! of `kuniq count`, and the partials and state topics of a scale-out.

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext};

use super::{Error, block_on};

/// How long metadata requests, the creation and the wait for the new
/// topic to show may each take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A topic kuniq needs, as it would create it.
#[derive(Debug, Clone, Copy)]
pub struct TopicSpec<'a> {
    /// What the topic is for, as messages name it: "state topic".
    pub role: &'a str,
    /// Partitions (at least 1).
    pub partitions: i32,
    /// Topic configs, e.g. `("cleanup.policy", "compact")`.
    pub configs: &'a [(&'a str, &'a str)],
    /// Added to the "create it yourself" advice when creation fails, e.g.
    /// "or name another with --state-topic"; may be empty.
    pub alternative: &'a str,
}

impl TopicSpec<'_> {
    /// "create it yourself with 1 partition and cleanup.policy=compact, or ..."
    fn advice(&self) -> String {
        let partitions = self.partitions.max(1);
        let mut advice =
            format!("create it yourself with {partitions} partition{}", if partitions == 1 { "" } else { "s" });
        if !self.configs.is_empty() {
            let configs: Vec<String> = self.configs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            advice.push_str(" and ");
            advice.push_str(&configs.join(", "));
        }
        if !self.alternative.is_empty() {
            advice.push_str(", ");
            advice.push_str(self.alternative);
        }
        advice
    }
}

/// Creates `topic` as `spec` says unless `client` already sees it, and
/// waits until the new topic shows in the metadata (reading it before
/// fails with an unknown partition). `config` makes the admin client. A
/// topic someone else creates at the same moment is fine.
pub fn ensure_topic<C: ClientContext>(
    client: &Client<C>,
    config: &ClientConfig,
    topic: &str,
    spec: &TopicSpec<'_>,
) -> Result<(), Error> {
    let role = spec.role;
    let exists = || -> Result<bool, Error> {
        let metadata = client
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| Error::client(format!("cannot read metadata of {role} '{topic}'"), e))?;
        Ok(metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    };
    if exists()? {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| Error::client("cannot create a Kafka admin client", e))?;
    let mut new = NewTopic::new(topic, spec.partitions.max(1), TopicReplication::Fixed(-1));
    for (key, value) in spec.configs {
        new = new.set(key, value);
    }
    let results = block_on(admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(TIMEOUT))))
        .map_err(|e| Error::client(format!("cannot create {role} '{topic}'"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::client(
                    format!("cannot create {role} '{topic}' ({})", spec.advice()),
                    KafkaError::AdminOp(code),
                ));
            }
        }
    }
    let deadline = Instant::now() + TIMEOUT;
    while !exists()? {
        if Instant::now() >= deadline {
            return Err(Error::Topic(format!("created {role} '{topic}', but it is still missing from the metadata")));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::TopicSpec;

    #[test]
    fn advice_names_partitions_configs_and_the_alternative() {
        let state = TopicSpec {
            role: "state topic",
            partitions: 1,
            configs: &[("cleanup.policy", "compact")],
            alternative: "or name another with --state-topic",
        };
        assert_eq!(
            state.advice(),
            "create it yourself with 1 partition and cleanup.policy=compact, or name another with --state-topic"
        );
        let partials = TopicSpec { role: "partials topic", partitions: 6, configs: &[], alternative: "" };
        assert_eq!(partials.advice(), "create it yourself with 6 partitions");
        let none = TopicSpec { partitions: 0, ..partials };
        assert_eq!(none.advice(), "create it yourself with 1 partition");
    }
}
