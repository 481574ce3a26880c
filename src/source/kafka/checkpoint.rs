//! Checkpoints of a Kafka run: every `--commit-interval` (and when the run
//! ends) the state of every partition goes to the state topic once the
//! records emitted before it are acknowledged, then the group's offsets are
//! committed for monitoring. With `--exactly-once`, records, state and
//! offsets of each interval are one transaction.

use std::sync::Arc;

use rdkafka::consumer::{CommitMode, Consumer, ConsumerGroupMetadata};
use rdkafka::topic_partition_list::TopicPartitionList;

use super::KafkaConsumer;
use super::feed::PartitionState;
use super::state::SavedState;
use crate::kafka::Error;
use crate::pipeline::PipelineError;
use crate::sink::Sink;
use crate::sink::kafka::Output;
use crate::window::engine::{Engine, StreamState};

/// Saves checkpoints: state record, then group offsets.
pub(super) struct Checkpoints {
    pub(super) output: Arc<Output>,
    pub(super) consumer: Arc<KafkaConsumer>,
    pub(super) topic: String,
    pub(super) state_topic: String,
    pub(super) key: String,
    pub(super) config: String,
    pub(super) partitions: i32,
    /// A checkpoint taken but not written yet (at least once mode).
    pub(super) pending: Option<Pending>,
}

/// A checkpoint on its way: its state record is written once the records
/// emitted before it are acknowledged, its offsets committed once the state
/// record is.
pub(super) struct Pending {
    pub(super) value: String,
    pub(super) offsets: TopicPartitionList,
    /// Records sent before the checkpoint.
    pub(super) records: usize,
    /// Records sent up to and including the state record, once sent.
    pub(super) written: Option<usize>,
}

impl Checkpoints {
    /// The state of every partition that has one, and the matching offsets.
    pub(super) fn snapshot(
        &self,
        engine: &Engine,
        states: &[PartitionState],
    ) -> Result<Option<(String, TopicPartitionList)>, PipelineError> {
        let streams: Vec<(i32, StreamState)> = (0..self.partitions)
            .filter_map(|p| {
                let position = states[p as usize].next_offset?;
                engine.stream_state(p as usize, position as u64, false).map(|s| (p, s))
            })
            .collect();
        if streams.is_empty() {
            return Ok(None);
        }
        let saved = SavedState {
            partitions: self.partitions,
            config: self.config.clone(),
            streams,
            watermark: engine.saved_watermark(),
            emitted: engine.emitted_windows(),
        };
        let offsets = saved.offsets(&self.topic).map_err(|e| Error::client("cannot list the saved offsets", e))?;
        Ok(Some((saved.encode(), offsets)))
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
        engine: &Engine,
        states: &[PartitionState],
        sink: &mut dyn Sink,
    ) -> Result<bool, PipelineError> {
        if self.output.transactional() {
            return self.save(engine, states, sink).map(|()| true);
        }
        if self.pending.is_some() {
            return Ok(false);
        }
        if let Some((value, offsets)) = self.snapshot(engine, states)? {
            sink.flush()?;
            self.pending = Some(Pending { value, offsets, records: self.output.sent(), written: None });
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
        match pending.written {
            None => {
                if self.output.acknowledged(pending.records)? {
                    self.output.send(&self.state_topic, self.key.as_bytes(), pending.value.as_bytes())?;
                    pending.written = Some(self.output.sent());
                }
            }
            Some(written) => {
                if self.output.acknowledged(written)? {
                    // For monitoring (lag); the state topic is what a restart reads.
                    if let Err(e) = self.consumer.commit(&pending.offsets, CommitMode::Async) {
                        tracing::warn!(error = %e, "committing offsets for group monitoring: {e}");
                    }
                    self.pending = None;
                }
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
        engine: &Engine,
        states: &[PartitionState],
        sink: &mut dyn Sink,
    ) -> Result<(), PipelineError> {
        self.pending = None;
        let Some((value, offsets)) = self.snapshot(engine, states)? else {
            return Ok(());
        };
        sink.flush()?;
        if self.output.transactional() {
            self.output.send(&self.state_topic, self.key.as_bytes(), value.as_bytes())?;
            self.output.commit_transaction(&offsets, &self.group()?)?;
        } else {
            self.output.flush()?;
            self.output.send(&self.state_topic, self.key.as_bytes(), value.as_bytes())?;
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
