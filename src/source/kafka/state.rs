//! Saved state of a Kafka run: where each partition can be read again and
//! what its clock knew there, so a restart emits the same records.
//!
//! Every checkpoint appends one record to the state topic (one partition,
//! `kuniq-state` by default, created when missing), keyed `<group>/<topic>`,
//! with a one-line text value:
//!
//! ```text
//! kuniq-state 3 partitions=4 config=lateness:5,allowed:60,interval:5,quarantine:3600,windows:minute+day,max-open:4096 wm=1468244400 p0=1200:1350:1468244455:1468244400 p1=... w=minute:1468244340:1:812:1000:1 windows=7:3:1310720:9f1c...
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
//! `wm`) and version 2 records (no `windows`) are still read.
//!
//! **Saved windows** (version 3). The open windows longer than a minute go
//! with the checkpoint as data ([`WindowState`]: their uid sets, held late
//! frames, stages and records sent), so the partitions resume near the
//! minute windows' frontier instead of the start of the day or year, and a
//! restart stays exact after retention deleted the day's early frames.
//! They are written before the state record, as chunks of at most
//! [`CHUNK_BYTES`] keyed `<group>/<topic>#windows/<SLOT>/<I>` (value:
//! `KUWC`, u64 generation, u32 index, u32 count, then the bytes), where the
//! slot alternates between checkpoints (generation % 2). The state record
//! names them last: `windows=GENERATION:CHUNKS:BYTES:XXH3` (hex of the
//! XXH3-64 of the joined chunks). A crash mid-save leaves the previous
//! state record pointing at the other slot, which is intact; with
//! `--exactly-once` chunks and record are one transaction anyway. The
//! joined bytes are a u32 count of windows, then each as a u32 length and
//! its encoding.
//!
//! **Incremental saves.** A run saves the windows whole at its first
//! checkpoint, in the `whole` section (keys `<group>/<topic>#whole/<SLOT>/<I>`,
//! named by `whole=GENERATION:CHUNKS:BYTES:XXH3`), and at later checkpoints
//! only what changed since, in the `windows` section, with `whole=` naming
//! the save they build on: each window whole but for the uid hashes of
//! exact windows that the whole save holds
//! ([`crate::window::engine::Engine::saved_window_changes`]). A restart
//! unites the two ([`crate::window::state::with_saved_windows`]). A record
//! with `windows=` and no `whole=` (all records before incremental saves)
//! holds the windows whole. A new whole save goes to the slot the current
//! one does not use (its generation skips one when it must), so a crash
//! mid-save never touches the save the newest record names.
//!
//! The record is written only after every output
//! record it accounts for was acknowledged, so the latest one is always
//! safe to resume from: its windows' frames are all at or after RESUME. A
//! restart reads the topic's newest record with its key (reading backwards
//! from the end, so the topic's length does not matter).

use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::{ClientConfig, ClientContext};

use crate::count::Estimator;
use crate::kafka::Error;
use crate::kafka::topic::TopicSpec;
use crate::window::engine::{Checkpoint, EmittedWindow, EngineConfig, StreamState};
use crate::window::state::WindowState;
use crate::window::{Secs, WindowKind};

/// Default state topic.
pub const DEFAULT_STATE_TOPIC: &str = "kuniq-state";

const MAGIC: &str = "kuniq-state 3";
/// Version 2: no saved windows (read, not written).
const MAGIC_V2: &str = "kuniq-state 2";
/// The first version: windows without their last record (read, not written).
const MAGIC_V1: &str = "kuniq-state 1";

/// Largest value of a saved-windows chunk: half of Kafka's default record
/// size limit (`max.message.bytes`, about 1 MB), so any broker takes it.
pub const CHUNK_BYTES: usize = 512 << 10;

/// First bytes of a saved-windows chunk.
const CHUNK_MAGIC: &[u8; 4] = b"KUWC";
const TIMEOUT: Duration = Duration::from_secs(30);

/// One checkpoint of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedState {
    /// The record's version: 3 when written by this kuniq; 1 or 2 when
    /// read from an older one (records then had no `closed` field).
    pub version: u8,
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
    /// The open windows longer than a minute, as data (empty in states
    /// older than version 3).
    pub windows: Vec<WindowState>,
}

/// Where a state record's saved windows are (its `windows=` and `whole=`
/// fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowRefs {
    /// The checkpoint's windows: whole, or the changes since `whole`.
    pub windows: Option<WindowsRef>,
    /// The last whole save that `windows` holds the changes since.
    pub whole: Option<WindowsRef>,
}

/// Where one section of saved windows is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowsRef {
    /// The checkpoint's generation (chunks of other generations are not
    /// its own).
    pub generation: u64,
    /// Chunks.
    pub chunks: u32,
    /// Bytes of the joined chunks.
    pub bytes: u64,
    /// XXH3-64 (seed 0) of the joined chunks.
    pub checksum: u64,
}

/// Which saved windows a chunk holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// A checkpoint's windows (`windows=`): whole, or with a `whole=`
    /// beside them, only what changed since that save.
    Windows,
    /// The windows saved whole that later checkpoints' changes build on
    /// (`whole=`).
    Whole,
}

/// A saved-windows chunk's key: `<key>#windows/<SLOT>/<I>` or
/// `<key>#whole/<SLOT>/<I>`.
pub fn chunk_key(key: &str, section: Section, generation: u64, index: u32) -> String {
    let name = match section {
        Section::Windows => "windows",
        Section::Whole => "whole",
    };
    format!("{key}#{name}/{}/{index}", generation % 2)
}

/// The records that save `windows` in `section` for checkpoint
/// `generation` under `key`: the chunks to write first, and the reference
/// the state record carries.
pub fn window_chunks(
    key: &str,
    section: Section,
    generation: u64,
    windows: &[WindowState],
) -> (Vec<(String, Vec<u8>)>, WindowsRef) {
    let mut joined = Vec::new();
    joined.extend_from_slice(&(windows.len() as u32).to_le_bytes());
    for w in windows {
        let bytes = w.encode();
        joined.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        joined.extend_from_slice(&bytes);
    }
    let pieces: Vec<&[u8]> = joined.chunks(CHUNK_BYTES).collect();
    let count = pieces.len() as u32;
    let chunks = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut value = Vec::with_capacity(20 + piece.len());
            value.extend_from_slice(CHUNK_MAGIC);
            value.extend_from_slice(&generation.to_le_bytes());
            value.extend_from_slice(&(i as u32).to_le_bytes());
            value.extend_from_slice(&count.to_le_bytes());
            value.extend_from_slice(piece);
            (chunk_key(key, section, generation, i as u32), value)
        })
        .collect();
    let checksum = twox_hash::XxHash3_64::oneshot_with_seed(0, &joined);
    (chunks, WindowsRef { generation, chunks: count, bytes: joined.len() as u64, checksum })
}

/// The windows from their chunks (`chunks[i]` the value of chunk `i`),
/// checked against `reference`.
pub fn windows_from_chunks(reference: &WindowsRef, chunks: &[Vec<u8>]) -> Result<Vec<WindowState>, String> {
    let mut joined = Vec::with_capacity(reference.bytes as usize);
    for (i, value) in chunks.iter().enumerate() {
        let header = value.get(..20).ok_or_else(|| format!("saved-windows chunk {i} is too short"))?;
        let generation = u64::from_le_bytes(header[4..12].try_into().unwrap_or_default());
        let index = u32::from_le_bytes(header[12..16].try_into().unwrap_or_default());
        if &header[..4] != CHUNK_MAGIC || generation != reference.generation || index != i as u32 {
            return Err(format!(
                "saved-windows chunk {i} is not chunk {i} of checkpoint {} (checkpoint {generation}, chunk {index})",
                reference.generation
            ));
        }
        joined.extend_from_slice(&value[20..]);
    }
    if joined.len() as u64 != reference.bytes
        || twox_hash::XxHash3_64::oneshot_with_seed(0, &joined) != reference.checksum
    {
        return Err(format!("the saved windows of checkpoint {} do not match their checksum", reference.generation));
    }
    let mut rest = &joined[..];
    let mut take = |n: usize| -> Result<&[u8], String> {
        if rest.len() < n {
            return Err("the saved windows end early".to_string());
        }
        let (head, tail) = rest.split_at(n);
        rest = tail;
        Ok(head)
    };
    let count = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default());
    let mut windows = Vec::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(take(4)?.try_into().unwrap_or_default()) as usize;
        windows.push(WindowState::decode(take(len)?).map_err(|e| e.to_string())?);
    }
    Ok(windows)
}

/// The window settings that decide records, as saved with a state.
pub fn config_text(cfg: &EngineConfig) -> String {
    let windows: Vec<&str> = cfg.kinds.iter().map(|k| k.name()).collect();
    let mut text = format!(
        "lateness:{},allowed:{},interval:{},quarantine:{},windows:{},max-open:{},early:{}",
        cfg.lateness_secs,
        cfg.allowed_lateness_secs,
        cfg.revision_interval_secs,
        cfg.quarantine_secs,
        windows.join("+"),
        cfg.max_open_windows,
        cfg.early_interval_secs
    );
    // Exact counting without sketches says nothing, as before sketches
    // existed, so those checkpoints still match.
    if cfg.estimator != Estimator::Exact {
        text.push_str(&format!(",estimator:{}", cfg.estimator));
    }
    if cfg.emit_sketch {
        text.push_str(",emit-sketch");
    }
    text
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
    /// The record value, naming where the saved windows are.
    pub fn encode(&self, refs: &WindowRefs) -> String {
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
            out.push_str(&format!(
                " w={}:{}:{}:{users}:{frames}:{}:{}",
                w.kind, w.start, w.revisions, w.stages, w.early
            ));
        }
        for (name, r) in [("windows", &refs.windows), ("whole", &refs.whole)] {
            if let Some(r) = r {
                out.push_str(&format!(" {name}={}:{}:{}:{:016x}", r.generation, r.chunks, r.bytes, r.checksum));
            }
        }
        out
    }

    /// Parses a record value; the windows it names are still to be read
    /// (`windows` is empty).
    pub fn decode(text: &str) -> Result<(SavedState, WindowRefs), String> {
        let (rest, version) = match [MAGIC, MAGIC_V2, MAGIC_V1].map(|m| text.strip_prefix(m)) {
            [Some(rest), _, _] => (rest, 3),
            [None, Some(rest), _] => (rest, 2),
            [None, None, Some(rest)] => (rest, 1),
            _ => return Err("not a kuniq state record of version 1 to 3 (written by a newer kuniq?)".into()),
        };
        let v1 = version == 1;
        let mut state = SavedState {
            version,
            partitions: 0,
            config: String::new(),
            streams: Vec::new(),
            watermark: None,
            emitted: Vec::new(),
            windows: Vec::new(),
        };
        let mut refs = WindowRefs::default();
        for field in rest.split_whitespace() {
            let (name, value) = field.split_once('=').ok_or_else(|| format!("bad field '{field}'"))?;
            match name {
                "partitions" => state.partitions = value.parse().map_err(|_| format!("bad partitions '{value}'"))?,
                "config" => state.config = value.to_string(),
                "wm" => state.watermark = parse_ts(value)?,
                "windows" | "whole" => {
                    let bad = || format!("bad saved-windows field '{field}'");
                    let parts: Vec<&str> = value.split(':').collect();
                    let [generation, chunks, bytes, checksum] = parts[..] else {
                        return Err(bad());
                    };
                    let reference = Some(WindowsRef {
                        generation: generation.parse().map_err(|_| bad())?,
                        chunks: chunks.parse().map_err(|_| bad())?,
                        bytes: bytes.parse().map_err(|_| bad())?,
                        checksum: u64::from_str_radix(checksum, 16).map_err(|_| bad())?,
                    });
                    if name == "windows" {
                        refs.windows = reference;
                    } else {
                        refs.whole = reference;
                    }
                }
                "w" => {
                    let bad = || format!("bad window '{field}'");
                    let parts: Vec<&str> = value.split(':').collect();
                    let kind = parts.first().and_then(|t| WindowKind::from_name(t)).ok_or_else(bad)?;
                    let start = parts.get(1).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let revisions = parts.get(2).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
                    let (last, stages, early) = match parts[3..] {
                        // Version 1: only how many records were sent.
                        [] if v1 => (None, 0, "0"),
                        // Version 2: no provisional records; version 3:
                        // how many were completed.
                        [users, frames, stages] | [users, frames, stages, _] => {
                            let last = match (users, frames) {
                                ("-", "-") => None,
                                _ => Some((users.parse().map_err(|_| bad())?, frames.parse().map_err(|_| bad())?)),
                            };
                            (last, stages.parse().map_err(|_| bad())?, parts.get(6).copied().unwrap_or("0"))
                        }
                        _ => return Err(bad()),
                    };
                    let early = early.parse().map_err(|_| bad())?;
                    state.emitted.push(EmittedWindow { kind, start, revisions, last, stages, early });
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
        Ok((state, refs))
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
    let spec = TopicSpec {
        role: "state topic",
        partitions: 1,
        configs: &[("cleanup.policy", "compact")],
        alternative: "or name another with --state-topic",
    };
    crate::kafka::topic::ensure_topic(client, config, topic, &spec)
}

/// The newest state saved under `key` in `topic`, with its saved windows,
/// and where they were (its generation is the largest of theirs; none
/// before version 3), if any, read with `consumer` (configured with
/// `enable.partition.eof` and, for transactions,
/// `isolation.level=read_committed`; its assignment is replaced).
pub fn load<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    key: &str,
) -> Result<Option<(SavedState, WindowRefs)>, Error> {
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .map_err(|e| Error::client(format!("cannot read the offsets of state topic '{topic}'"), e))?;
    let damaged = |reason: String| Error::SavedState { topic: topic.to_string(), key: key.to_string(), reason };
    let mut record = None;
    scan_back(consumer, topic, key, (low, high), |offset, k, value| {
        if k == key.as_bytes() {
            record = Some((offset, String::from_utf8_lossy(value).into_owned()));
        }
        record.is_some()
    })?;
    let Some((at, text)) = record else {
        return Ok(None);
    };
    let (mut state, refs) = SavedState::decode(&text).map_err(damaged)?;
    // The chunks were written before the record naming them.
    let read = |section: Section, reference: Option<WindowsRef>| -> Result<Option<Vec<WindowState>>, Error> {
        let Some(reference) = reference.filter(|r| r.chunks > 0) else {
            return Ok(reference.map(|_| Vec::new()));
        };
        let keys: Vec<String> =
            (0..reference.chunks).map(|i| chunk_key(key, section, reference.generation, i)).collect();
        let mut found: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        scan_back(consumer, topic, key, (low, at), |_, k, value| {
            if let Some(i) = keys.iter().position(|want| want.as_bytes() == k)
                && found[i].is_none()
            {
                found[i] = Some(value.to_vec());
            }
            found.iter().all(Option::is_some)
        })?;
        let missing = found.iter().filter(|f| f.is_none()).count();
        let chunks: Vec<Vec<u8>> = found.into_iter().flatten().collect();
        if missing > 0 {
            return Err(damaged(format!(
                "{missing} of the {} saved-windows chunks of checkpoint {} are gone from the topic",
                reference.chunks, reference.generation
            )));
        }
        windows_from_chunks(&reference, &chunks).map(Some).map_err(damaged)
    };
    let windows = read(Section::Windows, refs.windows)?;
    let whole = read(Section::Whole, refs.whole)?;
    state.windows = match (windows, whole) {
        (Some(changes), Some(whole)) => {
            crate::window::state::with_saved_windows(changes, &whole).map_err(|e| damaged(e.to_string()))?
        }
        (Some(windows), None) | (None, Some(windows)) => windows,
        (None, None) => Vec::new(),
    };
    Ok(Some((state, refs)))
}

/// The newest record under exactly `key` in `topic` (partition 0), read
/// backwards from its end with `consumer` (its assignment is replaced).
pub fn newest_value<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, Error> {
    let (low, high) = consumer
        .fetch_watermarks(topic, 0, TIMEOUT)
        .map_err(|e| Error::client(format!("cannot read the offsets of state topic '{topic}'"), e))?;
    let mut found = None;
    scan_back(consumer, topic, key, (low, high), |_, k, value| {
        if k == key.as_bytes() {
            found = Some(value.to_vec());
        }
        found.is_some()
    })?;
    Ok(found)
}

impl WindowRefs {
    /// The largest generation of the saved windows named (0 with none).
    pub fn generation(&self) -> u64 {
        self.windows.iter().chain(&self.whole).map(|r| r.generation).max().unwrap_or(0)
    }
}

/// Reads `topic` (partition 0) backwards from `high` to `low` in growing
/// steps, so its length does not matter, and shows `visit` every record
/// whose key starts with `prefix`, newest first, until `visit` returns
/// true.
fn scan_back<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    prefix: &str,
    (low, high): (i64, i64),
    mut visit: impl FnMut(i64, &[u8], &[u8]) -> bool,
) -> Result<(), Error> {
    let reading = || format!("cannot read state topic '{topic}'");
    let (mut end, mut step) = (high, 64i64);
    let mut done = false;
    while end > low && !done {
        let start = (end - step).max(low);
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, 0, Offset::Offset(start)).map_err(|e| Error::client(reading(), e))?;
        consumer.assign(&list).map_err(|e| Error::client(reading(), e))?;
        // Only records under `prefix` are kept (chunks can be large).
        let mut step_records: Vec<(i64, Vec<u8>, Vec<u8>)> = Vec::new();
        loop {
            match consumer.poll(TIMEOUT) {
                Some(Ok(m)) if m.offset() >= end => break,
                Some(Ok(m)) => {
                    let key = m.key().unwrap_or_default();
                    if key.starts_with(prefix.as_bytes()) {
                        step_records.push((m.offset(), key.to_vec(), m.payload().unwrap_or_default().to_vec()));
                    }
                    if m.offset() + 1 >= end {
                        break;
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
        done = step_records.iter().rev().any(|(offset, key, value)| visit(*offset, key, value));
        (end, step) = (start, step * 4);
    }
    consumer.unassign().map_err(|e| Error::client(reading(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_encoding() {
        let state = SavedState {
            version: 3,
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
                    early: 0,
                },
                EmittedWindow {
                    kind: WindowKind::Hour,
                    start: 1_468_242_000,
                    revisions: 1,
                    last: None,
                    stages: 0,
                    early: 5,
                },
            ],
            windows: Vec::new(),
        };
        let text = state.encode(&WindowRefs::default());
        assert!(text.starts_with("kuniq-state 3 partitions=4 config=lateness:5,allowed:60"), "{text}");
        assert!(text.contains(" wm=1468244452 ") && text.contains(" w=minute:1468244400:3:812:1000:4:0"), "{text}");
        assert_eq!(SavedState::decode(&text), Ok((state.clone(), WindowRefs::default())));
        let reference = WindowsRef { generation: 7, chunks: 3, bytes: 1_310_720, checksum: 0x9f1c };
        let refs = WindowRefs { windows: Some(reference), whole: None };
        let text = state.encode(&refs);
        assert!(text.ends_with(" windows=7:3:1310720:0000000000009f1c"), "{text}");
        assert_eq!(SavedState::decode(&text), Ok((state.clone(), refs)));
        let whole = WindowsRef { generation: 4, chunks: 16, bytes: 8_000_000, checksum: 0xab };
        let refs = WindowRefs { windows: Some(reference), whole: Some(whole) };
        let text = state.encode(&refs);
        assert!(text.ends_with(" windows=7:3:1310720:0000000000009f1c whole=4:16:8000000:00000000000000ab"), "{text}");
        assert_eq!(SavedState::decode(&text), Ok((state, refs)));
        assert_eq!(refs.generation(), 7);
    }

    /// Windows big enough for several chunks come back whole, and chunks of
    /// another checkpoint, out of order, missing or changed are refused.
    #[test]
    fn saved_windows_survive_chunking() {
        use crate::count::{UidSet, Users};
        use crate::window::state::{Emitted, Part, Stage};
        let windows: Vec<WindowState> = (0..3u64)
            .map(|d| WindowState {
                kind: WindowKind::Day,
                start: 1_468_195_200 + 86_400 * d as Secs,
                parts: vec![Part {
                    covers: vec![(0, 5_000), (1, 7_000)],
                    stages: vec![Stage {
                        users: Users::Exact((0..100_000u64).map(|i| i * 7919 + d).collect::<UidSet>()),
                        frames: 250_000,
                    }],
                    early: vec![
                        Stage { users: Users::Exact(UidSet::new()), frames: 0 },
                        Stage { users: Users::Exact([1u64, 2].into_iter().collect()), frames: 3 },
                    ],
                }],
                emitted: Emitted { revisions: d as u32, stages: 0, last: None, early: 3, closed: false },
            })
            .collect();
        let (chunks, reference) = window_chunks("g/t", Section::Windows, 8, &windows);
        assert_eq!(reference.chunks, chunks.len() as u32);
        assert!(chunks.len() >= 4 && chunks.iter().all(|(_, v)| v.len() <= CHUNK_BYTES + 20), "{}", chunks.len());
        assert_eq!(chunks[1].0, "g/t#windows/0/1");
        let values: Vec<Vec<u8>> = chunks.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(windows_from_chunks(&reference, &values), Ok(windows.clone()));
        let mut swapped = values.clone();
        swapped.swap(0, 1);
        assert!(windows_from_chunks(&reference, &swapped).unwrap_err().contains("not chunk 0"));
        assert!(windows_from_chunks(&reference, &values[1..]).is_err());
        let mut changed = values.clone();
        *changed[2].last_mut().unwrap() ^= 1;
        assert!(windows_from_chunks(&reference, &changed).unwrap_err().contains("checksum"));
        let (_, other) = window_chunks("g/t", Section::Windows, 9, &windows);
        assert!(windows_from_chunks(&other, &values).unwrap_err().contains("checkpoint 9"));
    }

    #[test]
    fn a_version_1_state_is_still_read() {
        let (state, windows) =
            SavedState::decode("kuniq-state 1 partitions=1 config=x p0=10:12:1468244455:- w=minute:1468244400:2")
                .unwrap();
        assert_eq!(windows, WindowRefs::default());
        assert_eq!(state.watermark, None);
        assert_eq!(
            state.emitted,
            [EmittedWindow {
                kind: WindowKind::Minute,
                start: 1_468_244_400,
                revisions: 2,
                last: None,
                stages: 0,
                early: 0
            }]
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
