//! Saved state of a Kafka run: where each partition can be read again and
//! what its clock knew there, so a restart emits the same records.
//!
//! Every checkpoint appends one record to the state topic (one partition,
//! `kuniq-state` by default, created when missing), keyed `<group>/<topic>`,
//! with a one-line text value:
//!
//! ```text
//! kuniq-state 2 partitions=4 config=lateness:5,allowed:60,interval:5,quarantine:3600,windows:minute,max-open:4096 wm=1468244400 p0=1200:1350:1468244455:1468244400 p1=... w=minute:1468244340:1:812:1000:1
//! ```
//!
//! `pP=RESUME:READ_TO:MAX_TS:FINAL_BEFORE` for each partition, where `-`
//! stands for an unknown timestamp; `wm=W`, the global watermark (it can be
//! ahead of every partition's when a quiet topic moved it on with the wall
//! clock); and `w=KIND:START:N:USERS:FRAMES:STAGES` for each window that is
//! not final and had emitted N records, the last with USERS and FRAMES,
//! after STAGES stages ([`EmittedWindow`]): a resumed run reads the
//! window's frames again but does not send those records again, and its
//! next record is revision N. Version 1 records (`w=KIND:START:N`, no
//! `wm`) are still read. The record is written only after every output
//! record it accounts for was acknowledged, so the latest one is always
//! safe to resume from: its windows' frames are all at or after RESUME. A
//! restart reads the topic's newest record with its key (reading backwards
//! from the end, so the topic's length does not matter).

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use crate::kafka::{Error, block_on};
use crate::window::engine::{Checkpoint, EmittedWindow, EngineConfig, StreamState};
use crate::window::{Secs, WindowKind};

/// Default state topic.
pub const DEFAULT_STATE_TOPIC: &str = "kuniq-state";

const MAGIC: &str = "kuniq-state 2";
/// The first version: windows without their last record (read, not written).
const MAGIC_V1: &str = "kuniq-state 1";
const TIMEOUT: Duration = Duration::from_secs(30);

/// One checkpoint of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    /// Partitions of the input topic when it was written.
    pub partitions: i32,
    /// The window settings it was written with ([`config_text`]).
    pub config: String,
    /// Partitions with a state.
    pub streams: Vec<(i32, StreamState)>,
    /// The global watermark when it was written.
    pub watermark: Option<Secs>,
    /// What the windows that were not final had emitted.
    pub emitted: Vec<EmittedWindow>,
}

/// The window settings that decide records, as saved with a state.
pub fn config_text(cfg: &EngineConfig) -> String {
    let windows: Vec<&str> = cfg.kinds.iter().map(|k| k.name()).collect();
    format!(
        "lateness:{},allowed:{},interval:{},quarantine:{},windows:{},max-open:{}",
        cfg.lateness_secs,
        cfg.allowed_lateness_secs,
        cfg.revision_interval_secs,
        cfg.quarantine_secs,
        windows.join("+"),
        cfg.max_open_windows
    )
}

/// The state record's key for a group reading a topic.
pub fn state_key(group: &str, topic: &str) -> String {
    format!("{group}/{topic}")
}

fn ts_text(ts: Option<Secs>) -> String {
    ts.map_or_else(|| "-".to_string(), |t| t.to_string())
}

fn parse_ts(text: &str) -> Result<Option<Secs>, String> {
    if text == "-" { Ok(None) } else { text.parse().map(Some).map_err(|_| format!("bad timestamp '{text}'")) }
}

impl SavedState {
    /// The record value.
    pub fn encode(&self) -> String {
        let mut out = format!("{MAGIC} partitions={} config={}", self.partitions, self.config);
        if let Some(wm) = self.watermark {
            out.push_str(&format!(" wm={wm}"));
        }
        for (p, s) in &self.streams {
            out.push_str(&format!(
                " p{p}={}:{}:{}:{}",
                s.resume.offset,
                s.read_to,
                ts_text(s.resume.max_ts),
                ts_text(s.final_before)
            ));
        }
        for w in &self.emitted {
            let (users, frames) =
                w.last.map_or(("-".to_string(), "-".to_string()), |(u, f)| (u.to_string(), f.to_string()));
            out.push_str(&format!(" w={}:{}:{}:{users}:{frames}:{}", w.kind, w.start, w.revisions, w.stages));
        }
        out
    }

    /// Parses a record value.
    pub fn decode(text: &str) -> Result<SavedState, String> {
        let (rest, v1) = match (text.strip_prefix(MAGIC), text.strip_prefix(MAGIC_V1)) {
            (Some(rest), _) => (rest, false),
            (None, Some(rest)) => (rest, true),
            _ => return Err("not a kuniq state record (version 1 or 2)".into()),
        };
        let mut state = SavedState {
            partitions: 0,
            config: String::new(),
            streams: Vec::new(),
            watermark: None,
            emitted: Vec::new(),
        };
        for field in rest.split_whitespace() {
            let (name, value) = field.split_once('=').ok_or_else(|| format!("bad field '{field}'"))?;
            match name {
                "partitions" => state.partitions = value.parse().map_err(|_| format!("bad partitions '{value}'"))?,
                "config" => state.config = value.to_string(),
                "wm" => state.watermark = parse_ts(value)?,
                "w" => {
                    let bad = || format!("bad window '{field}'");
                    let parts: Vec<&str> = value.split(':').collect();
                    let kind = parts.first().and_then(|t| WindowKind::from_name(t)).ok_or_else(bad)?;
                    let start = parts.get(1).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let revisions = parts.get(2).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let (last, stages) = match parts[3..] {
                        // Version 1: only how many records were sent.
                        [] if v1 => (None, 0),
                        [users, frames, stages] => {
                            let last = match (users, frames) {
                                ("-", "-") => None,
                                _ => Some((users.parse().map_err(|_| bad())?, frames.parse().map_err(|_| bad())?)),
                            };
                            (last, stages.parse().map_err(|_| bad())?)
                        }
                        _ => return Err(bad()),
                    };
                    state.emitted.push(EmittedWindow { kind, start, revisions, last, stages });
                }
                _ if name.starts_with('p') => {
                    let p: i32 = name[1..].parse().map_err(|_| format!("bad field '{field}'"))?;
                    let parts: Vec<&str> = value.split(':').collect();
                    let [resume, read_to, max_ts, final_before] = parts[..] else {
                        return Err(format!("bad partition state '{field}'"));
                    };
                    let number = |t: &str| t.parse::<u64>().map_err(|_| format!("bad offset '{t}' in '{field}'"));
                    state.streams.push((
                        p,
                        StreamState {
                            resume: Checkpoint { offset: number(resume)?, max_ts: parse_ts(max_ts)? },
                            read_to: number(read_to)?,
                            final_before: parse_ts(final_before)?,
                        },
                    ));
                }
                _ => {} // Fields added later are ignored.
            }
        }
        Ok(state)
    }

    /// Committed offsets matching this state, for the group (monitoring
    /// tools show lag from them).
    pub fn offsets(&self, topic: &str) -> Result<TopicPartitionList, KafkaError> {
        let mut list = TopicPartitionList::new();
        for (p, s) in &self.streams {
            list.add_partition_offset(topic, *p, Offset::Offset(s.resume.offset as i64))?;
        }
        Ok(list)
    }
}

/// Creates the state topic (one partition, compacted) unless `client` sees
/// it; `config` makes the admin client when it must be created.
pub fn ensure_topic<C: ClientContext>(client: &Client<C>, config: &ClientConfig, topic: &str) -> Result<(), Error> {
    let exists = || -> Result<bool, Error> {
        let metadata = client
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| Error::client(format!("cannot read metadata of state topic '{topic}'"), e))?;
        Ok(metadata.topics().iter().any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
    };
    if exists()? {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        config.create().map_err(|e| Error::client("cannot create a Kafka admin client", e))?;
    let new = NewTopic::new(topic, 1, TopicReplication::Fixed(-1)).set("cleanup.policy", "compact");
    let results = block_on(admin.create_topics([&new], &AdminOptions::new().operation_timeout(Some(TIMEOUT))))
        .map_err(|e| Error::client(format!("cannot create state topic '{topic}'"), e))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(Error::client(
                    format!(
                        "cannot create state topic '{topic}' (create it with one partition, or name another with \
                         --state-topic)"
                    ),
                    KafkaError::AdminOp(code),
                ));
            }
        }
    }
    // Wait until the new topic shows in the metadata (reading it before
    // fails with an unknown partition).
    let deadline = std::time::Instant::now() + TIMEOUT;
    while !exists()? {
        if std::time::Instant::now() >= deadline {
            return Err(Error::Topic(format!(
                "created state topic '{topic}', but it is still missing from the metadata"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// The newest state saved under `key` in `topic`, if any, read with
/// `consumer` (configured with `enable.partition.eof` and, for transactions,
/// `isolation.level=read_committed`; its assignment is replaced).
pub fn load<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    key: &str,
) -> Result<Option<SavedState>, Error> {
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .map_err(|e| Error::client(format!("cannot read the offsets of state topic '{topic}'"), e))?;
    // Read backwards in growing steps until a record with `key` turns up.
    let (mut end, mut step) = (high, 64i64);
    while end > low {
        let start = (end - step).max(low);
        let mut list = TopicPartitionList::new();
        let reading = || format!("cannot read state topic '{topic}'");
        list.add_partition_offset(topic, 0, Offset::Offset(start)).map_err(|e| Error::client(reading(), e))?;
        consumer.assign(&list).map_err(|e| Error::client(reading(), e))?;
        let mut found = None;
        loop {
            match consumer.poll(TIMEOUT) {
                Some(Ok(m)) if m.offset() >= end => break,
                Some(Ok(m)) => {
                    if m.key() == Some(key.as_bytes()) {
                        found = Some(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => return Err(Error::client(reading(), e)),
                None => {
                    return Err(Error::Connect(format!(
                        "reading state topic '{topic}': no answer in {} s",
                        TIMEOUT.as_secs()
                    )));
                }
            }
        }
        if let Some(text) = found {
            consumer.unassign().map_err(|e| Error::client(reading(), e))?;
            return SavedState::decode(&text).map(Some).map_err(|reason| Error::SavedState {
                topic: topic.to_string(),
                key: key.to_string(),
                reason,
            });
        }
        (end, step) = (start, step * 4);
    }
    consumer.unassign().map_err(|e| Error::client(format!("cannot read state topic '{topic}'"), e))?;
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_encoding() {
        let state = SavedState {
            partitions: 4,
            config: config_text(&EngineConfig::default()),
            streams: vec![
                (
                    0,
                    StreamState {
                        resume: Checkpoint { offset: 1200, max_ts: Some(1_468_244_455) },
                        read_to: 1350,
                        final_before: Some(1_468_244_400),
                    },
                ),
                (3, StreamState { resume: Checkpoint { offset: 0, max_ts: None }, read_to: 16, final_before: None }),
            ],
            watermark: Some(1_468_244_452),
            emitted: vec![
                EmittedWindow {
                    kind: WindowKind::Minute,
                    start: 1_468_244_400,
                    revisions: 3,
                    last: Some((812, 1000)),
                    stages: 4,
                },
                EmittedWindow { kind: WindowKind::Hour, start: 1_468_242_000, revisions: 1, last: None, stages: 0 },
            ],
        };
        let text = state.encode();
        assert!(text.starts_with("kuniq-state 2 partitions=4 config=lateness:5,allowed:60"), "{text}");
        assert!(text.contains(" wm=1468244452 ") && text.contains(" w=minute:1468244400:3:812:1000:4"), "{text}");
        assert_eq!(SavedState::decode(&text), Ok(state));
    }

    #[test]
    fn a_version_1_state_is_still_read() {
        let state =
            SavedState::decode("kuniq-state 1 partitions=1 config=x p0=10:12:1468244455:- w=minute:1468244400:2")
                .unwrap();
        assert_eq!(state.watermark, None);
        assert_eq!(
            state.emitted,
            [EmittedWindow { kind: WindowKind::Minute, start: 1_468_244_400, revisions: 2, last: None, stages: 0 }]
        );
        assert!(SavedState::decode("kuniq-state 2 w=minute:1468244400:2").unwrap_err().contains("bad window"));
    }

    #[test]
    fn damaged_states_are_refused_with_a_reason() {
        assert!(SavedState::decode("hello").unwrap_err().contains("not a kuniq state"));
        assert!(SavedState::decode("kuniq-state 1 p0=1:2:3").unwrap_err().contains("bad partition state"));
        assert!(SavedState::decode("kuniq-state 1 p0=x:2:3:4").unwrap_err().contains("bad offset"));
        assert!(SavedState::decode("kuniq-state 2 w=fortnight:0:1:-:-:0").unwrap_err().contains("bad window"));
        assert!(SavedState::decode("kuniq-state 1 p0=1:2:3:4 later=5").is_ok(), "unknown fields are ignored");
    }
}
