//! Where frames come from. A source hands out *chunks*: byte ranges holding
//! whole lines, numbered in input order so the merge can restore that order.
//!
//! - [`file`]: regular files (memory-mapped segments, read in parallel
//!   without copying) and streams (gzip files, stdin) cut into buffers by a
//!   reader thread.
//! - [`kafka`]: a topic's partitions, each on its own librdkafka queue;
//!   records instead of lines, and checkpoints in a state topic.
//!
//! Each source folder holds the reader and the source's side of the one
//! pipeline ([`crate::pipeline`]): its workers' loop and its part of the
//! merge (`feed`).

pub mod file;
pub mod kafka;

use std::ops::Deref;

/// Bytes of one chunk: a mapped segment of a file or an owned buffer.
#[derive(Debug)]
pub enum ChunkData {
    /// Part of a memory-mapped file.
    Mapped(memmap2::Mmap),
    /// Lines read from a stream.
    Owned(Vec<u8>),
}

impl Deref for ChunkData {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            ChunkData::Mapped(m) => m,
            ChunkData::Owned(v) => v,
        }
    }
}

/// Whole lines of input, with their position.
#[derive(Debug)]
pub struct Chunk {
    /// Position of the chunk in input order, from 0.
    pub seq: u64,
    /// Byte offset of the chunk's first byte in the (decompressed) input.
    pub base: u64,
    /// The lines; the last may lack its line ending at end of input.
    pub data: ChunkData,
    /// Lines longer than the frame size limit that the reader skipped
    /// before this chunk (their bytes are not in `data`).
    pub too_large: u64,
    /// Bytes of those skipped lines.
    pub skipped_bytes: u64,
}
