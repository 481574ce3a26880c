//! Kafka in and out: the consumer side of `kuniq count -b`, the output-topic
//! sink, and `kuniq produce`.
//!
//! Every client kuniq makes starts from [`client_config`]: the brokers, the
//! user's properties (`-F FILE`, then `-X key=value`, passed to librdkafka
//! as kcat does), and defaults that suit kuniq. A user's property always
//! wins over a default. Secret values never appear in kuniq's messages
//! (see [`properties`]).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, ConsumerContext};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext};

pub mod consume;
mod error;
pub mod produce;
pub mod properties;
pub mod topic;

pub use error::Error;
pub use properties::Property;

/// librdkafka's default `fetch.wait.max.ms` (500) makes brokers that hold
/// every fetch for the full wait (tansu does) deliver a few thousand
/// messages a second; 10 ms keeps fetches flowing at a negligible cost on
/// brokers that answer as soon as data is there.
pub const DEFAULT_FETCH_WAIT_MAX_MS: &str = "10";

/// librdkafka's default `fetch.queue.backoff.ms` (1000) stops fetching a
/// partition for a whole second whenever its prefetch queue is full, which
/// happens as soon as the parser is the slower side: on a local Apache
/// Kafka, runs took 1.7 to 4.0 s where they took 1.5 to 2.0 s with 10 ms
/// (profiles/2026-12-07-kafka-fetch-backoff.md).
pub const DEFAULT_FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Prefetched bytes kuniq lets librdkafka hold per partition (kuniq reads
/// each partition from its own queue, so the limit is per partition):
/// 16 MiB, a quarter of librdkafka's default, is as fast here and keeps
/// peak RSS near 120 MB for 4 partitions instead of 340 MB.
pub const DEFAULT_QUEUED_MAX_KBYTES: &str = "16384";

/// A client configuration: `defaults` first, then the user's properties.
///
/// librdkafka checks every property here, so an unknown key or a bad value
/// is reported before any client exists (and clients made from the result
/// cannot fail on a property). Errors never show a secret value.
pub fn client_config(brokers: &str, defaults: &[(&str, &str)], properties: &[Property]) -> Result<ClientConfig, Error> {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers);
    for (key, value) in defaults {
        config.set(*key, *value);
    }
    for pair in properties {
        match (pair.key(), pair.value()) {
            ("", Some(_)) => {
                return Err(Error::Config("-X expects key=value (a librdkafka property); one has no key".into()));
            }
            (key, Some(value)) => config.set(key, value),
            (text, None) => {
                return Err(Error::Config(format!(
                    "-X expects key=value (a librdkafka property), not {}",
                    properties::describe_malformed(text)
                )));
            }
        };
    }
    config.create_native_config().map_err(|e| config_error(&e, properties))?;
    Ok(config)
}

/// A librdkafka error about the configuration, with secrets blanked: its
/// own text quotes the refused value ("Invalid value \"...\" for ...").
fn config_error(error: &KafkaError, properties: &[Property]) -> Error {
    let text = match error {
        KafkaError::ClientConfig(_, description, key, value) => {
            let description = if properties::is_secret(key) && !value.is_empty() {
                description.replace(value.as_str(), properties::REDACTED)
            } else {
                description.clone()
            };
            format!("librdkafka refused property '{key}': {description}")
        }
        other => format!("invalid Kafka client configuration: {other}"),
    };
    Error::Config(properties::redact(&text, properties))
}

/// How long a client waits for the brokers to answer its first metadata
/// request before kuniq gives up with an error.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Partitions of `topic`, from the metadata of the brokers `config` names
/// (its `bootstrap.servers`, for messages); an error naming the topic when
/// it does not exist or the user may not see it, and one naming the brokers
/// when none answers within `timeout`. After the first 2 s without an answer
/// kuniq says that it is waiting, and watches a second client connect with
/// `config`: a refused SASL login or a failed TLS handshake ends the wait at
/// once with that reason, instead of passing for brokers that do not run.
pub fn partition_count<C: ClientContext>(
    client: &Client<C>,
    config: &ClientConfig,
    topic: &str,
    timeout: Duration,
) -> Result<i32, Error> {
    let brokers = config.get("bootstrap.servers").unwrap_or_default();
    let started = Instant::now();
    let first = timeout.min(Duration::from_secs(2));
    let metadata = match client.fetch_metadata(Some(topic), first) {
        Ok(metadata) => Ok(metadata),
        Err(_) if timeout > first => {
            tracing::info!(
                brokers,
                "no answer yet from the Kafka brokers at {brokers}; waiting up to {} s (--connect-timeout)",
                timeout.as_secs_f64().round()
            );
            watch_connect(client, config, topic, started + timeout)?
        }
        Err(e) => Err(e),
    }
    .map_err(|e| {
        Error::Connect(format!(
            "cannot reach the Kafka brokers at {brokers} within {} s ({e}): check that they run, that -b names \
             them, and any -X security settings",
            timeout.as_secs_f64().round()
        ))
    })?;
    match metadata.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(t.partitions().len() as i32),
        Some(t) if t.error().map(RDKafkaErrorCode::from) == Some(RDKafkaErrorCode::TopicAuthorizationFailed) => {
            Err(Error::Topic(format!(
                "the Kafka brokers at {brokers} do not authorize this client to describe topic '{topic}' \
                 (TOPIC_AUTHORIZATION_FAILED; the broker does not say whether it exists): the client's user \
                 (sasl.username) needs ACLs for it (Describe and Read to count or consume, Describe and Write to \
                 produce)"
            )))
        }
        _ => Err(Error::Topic(format!(
            "topic '{topic}' does not exist (create it first, e.g. scripts/broker.sh topic {topic} 4)"
        ))),
    }
}

/// Fetches `topic`'s metadata with `client` in short slices until
/// `deadline`, while a probe client made from `config` connects and reports
/// librdkafka's errors. Err(message) when the probe's brokers refuse its
/// credentials or its TLS handshake (retrying cannot help there), and at
/// the deadline when they kept closing its connections at the first
/// request, as a TLS listener does to a plaintext client.
fn watch_connect<C: ClientContext>(
    client: &Client<C>,
    config: &ClientConfig,
    topic: &str,
    deadline: Instant,
) -> Result<KafkaResult<Metadata>, Error> {
    let brokers = config.get("bootstrap.servers").unwrap_or_default();
    // A producer needs no group; consumer-only properties in `config` only
    // make librdkafka log (which kuniq does not print).
    let mut probe_config = config.clone();
    // Info: the level of librdkafka's line about a closed connection.
    probe_config.set_log_level(RDKafkaLogLevel::Info);
    let probe: Option<BaseProducer<ConnectErrors>> = probe_config.create_with_context(ConnectErrors::default()).ok();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let result = client.fetch_metadata(Some(topic), left.min(Duration::from_millis(300)));
        if result.is_ok() {
            return Ok(result);
        }
        if left.is_zero() {
            let closed = probe.as_ref().map_or(0, |p| p.context().closed_at_first_request.load(Ordering::Relaxed));
            if closed >= 2 {
                return Err(Error::Connect(format!(
                    "the Kafka brokers at {brokers} accept connections but close them at the first request \
                     ({closed} times): is it a TLS port? A TLS listener needs security.protocol=SSL or SASL_SSL \
                     (and ssl.ca.location); a plaintext client cannot talk to it"
                )));
            }
            return Ok(result);
        }
        let Some(probe) = &probe else { continue };
        // Serves every event that comes within the slice (one poll with no
        // wait serves one event, and log lines queue up before errors).
        probe.poll(deadline.saturating_duration_since(Instant::now()).min(Duration::from_millis(200)));
        let Some((code, reason)) = probe.context().first() else { continue };
        // librdkafka's reasons name the mechanism, user and certificate
        // problem, never a secret; blanked anyway, in case one ever does.
        let reason = redact_config(&reason, config);
        return Err(Error::Connect(match code {
            RDKafkaErrorCode::Authentication => format!(
                "the Kafka brokers at {brokers} refused the SASL login ({reason}): check sasl.username, \
                 sasl.password and sasl.mechanism"
            ),
            _ => format!(
                "TLS with the Kafka brokers at {brokers} failed ({reason}): check ssl.ca.location (the CA that \
                 signed the brokers' certificates) and that security.protocol matches the port"
            ),
        }));
    }
}

/// What librdkafka reported to a probe client: the first error that
/// retrying cannot cure (a refused SASL login, a failed TLS handshake), and
/// how often a broker closed the connection at the first request.
#[derive(Default)]
struct ConnectErrors {
    first: Mutex<Option<(RDKafkaErrorCode, String)>>,
    closed_at_first_request: AtomicU32,
}

impl ConnectErrors {
    fn first(&self) -> Option<(RDKafkaErrorCode, String)> {
        self.first.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl ClientContext for ConnectErrors {
    fn log(&self, _level: RDKafkaLogLevel, _fac: &str, line: &str) {
        // A TLS listener closes a plaintext client's connection at its
        // first request; librdkafka logs that, and reports no error.
        if line.contains("Disconnected") && line.contains("in state APIVERSION_QUERY") {
            self.closed_at_first_request.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        let Some(code) = error.rdkafka_error_code() else { return };
        if matches!(code, RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SSL) {
            self.first.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(|| (code, reason.to_string()));
        }
    }
}

impl ProducerContext for ConnectErrors {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

/// Why a group call of `consumer` timed out, when the broker said why: it
/// refused the group to this client (no ACL), an error librdkafka queues
/// for the consumer while the call waits on for a coordinator. For the
/// way to an error only: it takes up to 500 ms and the consumer's pending
/// events (there are no messages before an assignment).
pub fn group_refusal<C: ConsumerContext>(consumer: &BaseConsumer<C>, group: &str) -> Option<Error> {
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Some(Err(e)) = consumer.poll(Duration::from_millis(50))
            && e.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed)
        {
            return Some(Error::Group(format!(
                "the Kafka brokers do not authorize this client to use group '{group}' \
                 (GROUP_AUTHORIZATION_FAILED): the client's user (sasl.username) needs the Read ACL on the group \
                 (-G) for kuniq's committed offsets"
            )));
        }
    }
    None
}

/// `text` with the value of every secret property of `config` blanked.
fn redact_config(text: &str, config: &ClientConfig) -> String {
    let properties: Vec<Property> =
        config.config_map().into_iter().map(|(key, value)| Property::from(format!("{key}={value}"))).collect();
    properties::redact(text, &properties)
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

/// The properties that apply to a consumer (`consumer` true) or a producer.
pub fn properties_for(properties: &[Property], consumer: bool) -> Vec<Property> {
    properties
        .iter()
        .filter(|pair| if consumer { !producer_only(pair.key()) } else { !consumer_only(pair.key()) })
        .cloned()
        .collect()
}

/// Properties `kuniq count` sets itself because its results depend on them,
/// each with what to use instead. A `-X` or `-F` that sets one is refused:
/// overriding it would make kuniq lose or repeat data without a word.
const RESERVED_FOR_COUNT: &[(&str, &str)] = &[
    ("bootstrap.servers", "name the brokers with -b/--brokers"),
    ("metadata.broker.list", "name the brokers with -b/--brokers"),
    ("group.id", "name the group with -G/--group (it also names the saved state)"),
    (
        "auto.offset.reset",
        "choose where a partition without saved state starts with --offset beginning (earliest) or --offset end \
         (latest)",
    ),
    (
        "enable.auto.commit",
        "kuniq commits offsets itself, only after the records they account for are sent (--commit-interval)",
    ),
    (
        "enable.auto.offset.store",
        "kuniq stores offsets itself, only after the records they account for are sent (--commit-interval)",
    ),
    ("enable.partition.eof", "kuniq needs it to know when a partition is read to its end (-e and --idle-timeout)"),
    ("isolation.level", "kuniq always reads committed records (read_committed), so aborted transactions never count"),
    ("transactional.id", "use --exactly-once, with --transactional-id to name it"),
];

/// Refuses properties that `kuniq count` must set itself (see
/// [`RESERVED_FOR_COUNT`]), naming the flag to use instead.
pub fn check_count_properties(properties: &[Property]) -> Result<(), Error> {
    for pair in properties {
        let key = pair.key();
        if let Some((_, instead)) = RESERVED_FOR_COUNT.iter().find(|(reserved, _)| *reserved == key) {
            return Err(Error::Config(format!(
                "kuniq count sets the librdkafka property '{key}' itself (-X/-F cannot): {instead}"
            )));
        }
    }
    Ok(())
}

/// Runs a future to completion on this thread (rdkafka's admin API is
/// async; kuniq has no runtime). The tests use it for their admin calls too.
pub fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park();
    }
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
        let err = client_config("b", &[], &["novalue".into()]).unwrap_err();
        assert!(matches!(&err, Error::Config(text) if text.contains("key=value")), "{err}");
        assert!(client_config("b", &[], &["=x".into()]).is_err());
    }

    #[test]
    fn properties_are_split_by_client_kind() {
        let all: Vec<Property> =
            vec!["fetch.wait.max.ms=10".into(), "compression.codec=lz4".into(), "client.id=k".into()];
        let keys = |props: Vec<Property>| props.iter().map(|p| p.key().to_string()).collect::<Vec<_>>();
        assert_eq!(keys(properties_for(&all, true)), ["fetch.wait.max.ms", "client.id"]);
        assert_eq!(keys(properties_for(&all, false)), ["compression.codec", "client.id"]);
    }

    #[test]
    fn bad_values_are_refused_before_any_client_exists() {
        let err = client_config("b", &[], &["socket.timeout.ms=soon".into()]).unwrap_err().to_string();
        assert!(err.contains("socket.timeout.ms"), "{err}");
        let err = client_config("b", &[], &["no.such.property=1".into()]).unwrap_err().to_string();
        assert!(err.contains("no.such.property"), "{err}");
    }

    #[test]
    fn config_errors_never_show_secrets() {
        use rdkafka::types::RDKafkaConfRes;
        let props: Vec<Property> = vec!["sasl.password=hunter2".into()];
        let error = KafkaError::ClientConfig(
            RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value \"hunter2\" for configuration property \"sasl.password\"".into(),
            "sasl.password".into(),
            "hunter2".into(),
        );
        let text = config_error(&error, &props).to_string();
        assert!(!text.contains("hunter2") && text.contains("sasl.password") && text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn count_refuses_properties_it_sets_itself_and_names_the_flag() {
        let err = check_count_properties(&["auto.offset.reset=earliest".into()]).unwrap_err().to_string();
        assert!(err.contains("'auto.offset.reset'") && err.contains("--offset beginning"), "{err}");
        let err = check_count_properties(&["group.id = g".into()]).unwrap_err().to_string();
        assert!(err.contains("-G/--group"), "{err}");
        for key in ["enable.partition.eof", "isolation.level", "enable.auto.commit", "transactional.id"] {
            assert!(check_count_properties(&[format!("{key}=x").into()]).is_err(), "{key}");
        }
        let fine: Vec<Property> = vec!["fetch.wait.max.ms=50".into(), "security.protocol=SASL_SSL".into()];
        assert!(check_count_properties(&fine).is_ok());
    }
}
