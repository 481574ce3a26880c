//! Scale-out over Kafka: workers in a consumer group count the partitions
//! they are assigned and publish partial window state to a partials topic;
//! one merge combines it into the records a single `kuniq count` over the
//! whole topic would emit.
//!
//! ```text
//!  input topic ─▶ worker A (partitions 0, 3) ─┐
//!   (P parts) ─▶ worker B (partitions 1, 4) ─┼─▶ partials topic ─▶ kuniq merge ─▶ output topic
//!             ─▶ worker C (partitions 2, 5) ─┘   (KUWP messages)
//! ```
//!
//! - A worker ([`worker`]) runs one shipping engine per assigned partition
//!   ([`crate::window::engine::Engine::shipping`]) and sends
//!   [`crate::window::partials::Partials`] messages keyed `TOPIC/PARTITION`,
//!   so one partition's messages stay in order on one partials partition.
//! - The merge ([`merge`]) absorbs every partition's slots into one engine
//!   with a stream per input partition, takes each partition's watermark
//!   from its messages, and emits records as `kuniq count` does.
//!
//! What the worker sends for a partition depends only on the partition's
//! frames in offset order (slots complete at frames, not at wall-clock
//! moments), so the merge skips, per partition, messages below the offset
//! it has absorbed: a partition resumed by another worker from its
//! checkpoint (or read again from its start) after a rebalance or a crash
//! sends the same messages again, and nothing counts twice.

pub mod merge;
pub mod worker;

use rdkafka::client::Client;
use rdkafka::{ClientConfig, ClientContext};

use crate::kafka::Error;
use crate::kafka::topic::{TopicSpec, ensure_topic};

/// Largest partials message: an exact day window shipped whole at its close
/// holds 8 bytes a user (a million users: 8 MB), over Kafka's 1 MB default.
pub const MAX_MESSAGE_BYTES: &str = "67108864";

/// Creates the partials topic with `partitions` partitions (and messages up
/// to [`MAX_MESSAGE_BYTES`]) unless `client` sees it.
pub fn ensure_partials_topic<C: ClientContext>(
    client: &Client<C>,
    config: &ClientConfig,
    topic: &str,
    partitions: i32,
) -> Result<(), Error> {
    let spec = TopicSpec {
        role: "partials topic",
        partitions,
        configs: &[("max.message.bytes", MAX_MESSAGE_BYTES)],
        alternative: "",
    };
    ensure_topic(client, config, topic, &spec)
}

/// The topic where workers save their partitions' checkpoints: the
/// partials topic's name with `-state`.
pub fn state_topic(partials_topic: &str) -> String {
    format!("{partials_topic}-state")
}

/// The topic where the merge saves its checkpoints: the partials topic's
/// name with `-merge-state`. Not the workers' state topic: a killed
/// worker's open transaction holds back what `read_committed` readers see
/// of every partition it wrote to, until the broker aborts it, and a
/// restarted merge must see its own newest checkpoint at once.
pub fn merge_state_topic(partials_topic: &str) -> String {
    format!("{partials_topic}-merge-state")
}

/// Creates the workers' state topic (one partition, compacted, messages
/// up to [`MAX_MESSAGE_BYTES`]) unless `client` sees it.
pub fn ensure_state_topic<C: ClientContext>(
    client: &Client<C>,
    config: &ClientConfig,
    topic: &str,
) -> Result<(), Error> {
    let spec = TopicSpec {
        role: "state topic",
        partitions: 1,
        configs: &[("max.message.bytes", MAX_MESSAGE_BYTES), ("cleanup.policy", "compact"), ("segment.ms", "600000")],
        alternative: "",
    };
    ensure_topic(client, config, topic, &spec)
}
