//! Checkpoints of a Kafka run: every `--commit-interval` (and when the run
//! ends) the open windows longer than a minute, then the state of every
//! partition, go to the state topic once the records emitted before them
//! are acknowledged (see [`super::state`]), then the group's offsets are
//! committed for monitoring. With `--exactly-once`, records, windows,
//! state and offsets of each interval are one transaction.

use std::collections::VecDeque;
use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::KafkaConsumer;
use super::feed::PartitionState;
use super::state::{self, SavedState, Section, WindowRefs, WindowsRef};
use crate::kafka::Error;
use crate::pipeline::PipelineError;
use crate::sink::Sink;
use crate::sink::kafka::Output;
use crate::window::engine::{Engine, StreamState};

/// Saves checkpoints: saved windows, state record, then group offsets.
pub(super) struct Checkpoints {
    pub(super) output: Arc<Output>,
    pub(super) consumer: Arc<KafkaConsumer>,
    pub(super) topic: String,
    pub(super) state_topic: String,
    pub(super) key: String,
    pub(super) config: String,
    pub(super) partitions: i32,
    /// The next checkpoint's generation (its saved windows' chunks go to
    /// slot `generation % 2`).
    pub(super) generation: u64,
    /// The windows saved whole that the state topic's newest state builds
    /// on, if any.
    pub(super) whole: Option<WindowsRef>,
    /// This run saved the windows whole (the engine tracks what changed
    /// since); until it has, a checkpoint saves them whole.
    pub(super) whole_saved: bool,
    /// A checkpoint taken but not written yet (at least once mode).
    pub(super) pending: Option<Pending>,
}

/// A checkpoint's records, in the order they are written: the saved
/// windows' chunks, then the state record naming them.
pub(super) struct Snapshot {
    chunks: Vec<(String, Vec<u8>)>,
    state: (String, Vec<u8>),
    offsets: TopicPartitionList,
}

/// A checkpoint on its way: each batch of records (the windows' chunks,
/// then the state record) is sent once everything sent before it is
/// acknowledged, and the offsets are committed once the state record is.
pub(super) struct Pending {
    batches: VecDeque<Vec<(String, Vec<u8>)>>,
    offsets: TopicPartitionList,
    /// Records sent before the next batch may go.
    wait_for: usize,
}

impl Checkpoints {
    /// The state of every partition that has one, the open windows longer
    /// than a minute, and the matching offsets.
    ///
    /// Windows are saved incrementally: whole (in the `whole` section)
    /// at the run's first checkpoint and whenever what exact windows gained
    /// since would take more than a quarter of that save's bytes; in
    /// between, only those changes (each window whole but for the users
    /// already in the whole save), which a restart unites with it. So a
    /// day of a million users costs its 8 MB now and then, and each
    /// checkpoint in between the users that arrived since.
    pub(super) fn snapshot(
        &mut self,
        engine: &mut Engine,
        states: &[PartitionState],
    ) -> Result<Option<Snapshot>, PipelineError> {
        let positions: Vec<(u32, u64)> =
            (0..self.partitions).filter_map(|p| Some((p as u32, states[p as usize].next_offset? as u64))).collect();
        let streams: Vec<(i32, StreamState)> = positions
            .iter()
            .filter_map(|&(p, position)| engine.stream_state(p as usize, position, true).map(|s| (p as i32, s)))
            .collect();
        if streams.is_empty() {
            return Ok(None);
        }
        let saved = SavedState {
            version: 3,
            partitions: self.partitions,
            config: self.config.clone(),
            streams,
            watermark: engine.saved_watermark(),
            emitted: engine.emitted_windows(),
            windows: Vec::new(),
        };
        let whole_due =
            !self.whole_saved || self.whole.is_none_or(|whole| engine.unsaved_users() * 8 * 4 > whole.bytes);
        let (chunks, refs) = if whole_due {
            let windows = engine.saved_windows(&positions);
            if windows.is_empty() {
                // Nothing open to save, nor to build on later.
                (self.whole, self.whole_saved) = (None, false);
                (Vec::new(), WindowRefs::default())
            } else {
                // The whole save the newest state names stays intact: the
                // new one goes to the other slot.
                if self.whole.is_some_and(|w| w.generation % 2 == self.generation % 2) {
                    self.generation += 1;
                }
                let (chunks, reference) = state::window_chunks(&self.key, Section::Whole, self.generation, &windows);
                engine.mark_windows_saved();
                (self.whole, self.whole_saved) = (Some(reference), true);
                (chunks, WindowRefs { windows: None, whole: Some(reference) })
            }
        } else {
            let windows = engine.saved_window_changes(&positions);
            if windows.is_empty() {
                // Every saved window closed: the whole save is not needed
                // any more (a restart would read it for nothing).
                (self.whole, self.whole_saved) = (None, false);
                (Vec::new(), WindowRefs::default())
            } else {
                let (chunks, reference) = state::window_chunks(&self.key, Section::Windows, self.generation, &windows);
                (chunks, WindowRefs { windows: Some(reference), whole: self.whole })
            }
        };
        self.generation += 1;
        let offsets = saved.offsets(&self.topic).map_err(|e| Error::client("cannot list the saved offsets", e))?;
        let state = (self.key.clone(), saved.encode(&refs).into_bytes());
        Ok(Some(Snapshot { chunks, state, offsets }))
    }

    /// Sends a batch of records to the state topic.
    fn send(&self, records: &[(String, Vec<u8>)]) -> Result<(), Error> {
        for (key, value) in records {
            self.output.send(&self.state_topic, key.as_bytes(), value)?;
        }
        Ok(())
    }

    /// The consumer's group, for the offsets a transaction commits.
    fn group(&self) -> Result<ConsumerGroupMetadata, Error> {
        self.consumer
            .group_metadata()
            .ok_or_else(|| Error::Group("the consumer has no group metadata to commit offsets with".into()))
    }

    /// Takes a checkpoint without waiting for the broker: the merge goes on
    /// and [`Checkpoints::progress`] writes it once it is safe. In a
    /// transaction, commits it now (records, state and offsets at once).
    /// False when the previous checkpoint is still on its way (none taken).
    pub(super) fn begin(
        &mut self,
        engine: &mut Engine,
        states: &[PartitionState],
        sink: &mut dyn Sink,
    ) -> Result<bool, PipelineError> {
        if self.output.transactional() {
            return self.save(engine, states, sink).map(|()| true);
        }
        if self.pending.is_some() {
            return Ok(false);
        }
        if let Some(Snapshot { chunks, state, offsets }) = self.snapshot(engine, states)? {
            sink.flush()?;
            let batches = [chunks, vec![state]].into_iter().filter(|b| !b.is_empty()).collect();
            self.pending = Some(Pending { batches, offsets, wait_for: self.output.sent() });
            self.progress()?;
        }
        Ok(true)
    }

    /// Serves the producer's acknowledgements (a record's emission latency
    /// ends at its callback; failures surface here), and moves a pending
    /// checkpoint on, without waiting.
    pub(super) fn progress(&mut self) -> Result<(), PipelineError> {
        self.output.check_deliveries()?;
        let Some(pending) = &mut self.pending else {
            return Ok(());
        };
        if !self.output.acknowledged(pending.wait_for)? {
            return Ok(());
        }
        match pending.batches.pop_front() {
            Some(batch) => {
                for (key, value) in &batch {
                    self.output.send(&self.state_topic, key.as_bytes(), value)?;
                }
                pending.wait_for = self.output.sent();
            }
            None => {
                // For monitoring (lag); the state topic is what a restart reads.
                if let Err(e) = self.consumer.commit(&pending.offsets, CommitMode::Async) {
                    tracing::warn!(error = %e, "committing offsets for group monitoring: {e}");
                }
                self.pending = None;
            }
        }
        Ok(())
    }

    /// Saves where every partition can be read again, waiting until it is
    /// written. Records emitted so far are acknowledged first (or, in a
    /// transaction, committed with the state), so a saved state never skips
    /// a record that was lost.
    pub(super) fn save(
        &mut self,
        engine: &mut Engine,
        states: &[PartitionState],
        sink: &mut dyn Sink,
    ) -> Result<(), PipelineError> {
        self.pending = None;
        let Some(Snapshot { chunks, state, offsets }) = self.snapshot(engine, states)? else {
            return Ok(());
        };
        sink.flush()?;
        if self.output.transactional() {
            self.send(&chunks)?;
            self.send(std::slice::from_ref(&state))?;
            self.output.commit_transaction(&offsets, &self.group()?)?;
        } else {
            // Each step once the one before is acknowledged: a state record
            // is never written before the records and chunks it relies on.
            self.output.flush()?;
            self.send(&chunks)?;
            self.output.flush()?;
            self.send(std::slice::from_ref(&state))?;
            self.output.flush()?;
            // For monitoring (lag); the state topic is what a restart reads.
            if let Err(e) = self.consumer.commit(&offsets, CommitMode::Sync) {
                tracing::warn!(error = %e, "committing offsets for group monitoring: {e}");
            }
        }
        Ok(())
    }

    /// Makes the records emitted after the last checkpoint visible (end of
    /// a `-e` run).
    pub(super) fn finish(&self, sink: &mut dyn Sink) -> Result<(), PipelineError> {
        sink.flush()?;
        if self.output.transactional() {
            self.output.commit_transaction(&TopicPartitionList::new(), &self.group()?)?;
        } else {
            self.output.flush()?;
        }
        Ok(())
    }
}
