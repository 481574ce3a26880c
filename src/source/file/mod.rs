//! Files and stdin as chunks of whole lines.
//!
//! A regular uncompressed file is cut up front into segments of about
//! `segment_bytes` that end just after a line feed; each worker maps its
//! own segment (read-only; the kernel maps pages around each fault) and unmaps it when done, so
//! workers read page-cache pages without copying and resident memory stays
//! at a few segments however large the file is.
//!
//! Gzip files (recognized by their magic bytes, whatever the name) and
//! stdin are read by one reader thread into buffers of about
//! `segment_bytes`, cut after the last line feed; the partial line moves to
//! the next buffer. A line longer than the frame size limit is skipped
//! without being held in memory, and counted.
//!
//! Stdin and named pipes are live: a buffer is handed on before it is full
//! as soon as it holds a complete line and the pipe has had nothing more
//! for [`LIVE_PAUSE_MS`], so `kcat ... | kuniq count -i -` emits each
//! window as the frames that close it arrive. A fast pipe always has more
//! waiting, so its buffers still fill up. (Gzip on a pipe is read in full
//! buffers: the compressed bytes waiting say nothing about the lines.)

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use flate2::read::MultiGzDecoder;
use memmap2::MmapOptions;

use super::{Chunk, ChunkData};

mod feed;

pub use feed::count_file;

/// Default chunk size: small enough that a few in flight stay far below the
/// memory target, large enough that per-chunk costs vanish.
pub const DEFAULT_SEGMENT_BYTES: usize = 4 << 20;

/// Default frame size limit: longer lines are skipped and counted.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 << 20;

/// How long a live input (stdin, a named pipe) may stay silent before the
/// complete lines read so far are handed on.
pub const LIVE_PAUSE_MS: i32 = 2;

/// An opened input, ready to hand out chunks to any number of workers.
pub struct FileSource {
    name: String,
    total_bytes: Option<u64>,
    kind: Kind,
}

enum Kind {
    Mapped { file: File, segments: Vec<(u64, u64)>, next: AtomicUsize },
    Stream { chunks: Mutex<Receiver<io::Result<Chunk>>>, reader: Mutex<Option<JoinHandle<()>>> },
}

impl std::fmt::Debug for FileSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FileSource({})", self.name)
    }
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl FileSource {
    /// Opens `path` (`-` for stdin). Regular uncompressed files are mapped;
    /// gzip and stdin are streamed.
    pub fn open(path: &str, segment_bytes: usize, max_frame_bytes: usize) -> io::Result<FileSource> {
        let segment_bytes = segment_bytes.max(4096);
        if path == "-" {
            // Its own descriptor, read without the standard library's
            // buffer in between, so the pipe can be asked what it holds.
            let stdin = File::from(io::stdin().as_fd().try_clone_to_owned()?);
            return Ok(FileSource::live("stdin".into(), stdin, segment_bytes, max_frame_bytes));
        }
        let file = File::open(Path::new(path)).map_err(|e| annotate(e, path))?;
        let meta = file.metadata().map_err(|e| annotate(e, path))?;
        let mut magic = [0u8; 2];
        let is_gzip =
            meta.is_file() && file.read_at(&mut magic, 0).map_err(|e| annotate(e, path))? == 2 && magic == GZIP_MAGIC;
        if is_gzip {
            let reader =
                BufReader::with_capacity(1 << 20, MultiGzDecoder::new(BufReader::with_capacity(1 << 20, file)));
            return Ok(FileSource::stream(path.into(), Some(meta.len()), reader, segment_bytes, max_frame_bytes));
        }
        if !meta.is_file() {
            // A pipe or device given by name: read it as it arrives.
            return Ok(FileSource::live(path.into(), file, segment_bytes, max_frame_bytes));
        }
        let segments = plan_segments(&file, meta.len(), segment_bytes as u64).map_err(|e| annotate(e, path))?;
        Ok(FileSource {
            name: path.into(),
            total_bytes: Some(meta.len()),
            kind: Kind::Mapped { file, segments, next: AtomicUsize::new(0) },
        })
    }

    /// A gzip file, read by a reader thread in full buffers.
    fn stream(
        name: String,
        total_bytes: Option<u64>,
        reader: impl BufRead + Send + 'static,
        segment_bytes: usize,
        max_frame_bytes: usize,
    ) -> FileSource {
        FileSource::reader_thread(name, total_bytes, move |tx| {
            read_lines(reader, None, Vec::new(), tx, segment_bytes, max_frame_bytes)
        })
    }

    /// Stdin or a named pipe, read as it arrives (or in full buffers when
    /// it carries gzip).
    fn live(name: String, pipe: File, segment_bytes: usize, max_frame_bytes: usize) -> FileSource {
        FileSource::reader_thread(name, None, move |tx| {
            // Pipes may carry gzip too; the first bytes tell, and reading
            // them blocks, so it happens here, off the caller's thread.
            let mut pipe = pipe;
            let mut head = Vec::new();
            while head.len() < GZIP_MAGIC.len() {
                if (&mut pipe).take((GZIP_MAGIC.len() - head.len()) as u64).read_to_end(&mut head)? == 0 {
                    break;
                }
            }
            if head.starts_with(&GZIP_MAGIC) {
                let raw = io::Cursor::new(head).chain(pipe);
                let reader =
                    BufReader::with_capacity(1 << 20, MultiGzDecoder::new(BufReader::with_capacity(1 << 20, raw)));
                return read_lines(reader, None, Vec::new(), tx, segment_bytes, max_frame_bytes);
            }
            let fd = pipe.as_raw_fd();
            read_lines(pipe, Some(fd), head, tx, segment_bytes, max_frame_bytes)
        })
    }

    /// Runs `read` on a reader thread that sends chunks in order; an error
    /// it returns is the last item sent.
    fn reader_thread(
        name: String,
        total_bytes: Option<u64>,
        read: impl FnOnce(&SyncSender<io::Result<Chunk>>) -> io::Result<()> + Send + 'static,
    ) -> FileSource {
        let (tx, rx) = sync_channel(2);
        let handle = std::thread::Builder::new()
            .name("kuniq-reader".into())
            .spawn(move || {
                if let Err(e) = read(&tx) {
                    let _ = tx.send(Err(e));
                }
            })
            .expect("spawning the reader thread");
        FileSource {
            name,
            total_bytes,
            kind: Kind::Stream { chunks: Mutex::new(rx), reader: Mutex::new(Some(handle)) },
        }
    }

    /// Display name (the path, or `stdin`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Size on disk, when known (compressed size for gzip).
    pub fn total_bytes(&self) -> Option<u64> {
        self.total_bytes
    }

    /// The next chunk in input order, or None at the end. Safe to call from
    /// many threads; each chunk goes to exactly one caller.
    pub fn next_chunk(&self) -> Option<io::Result<Chunk>> {
        self.next_chunk_gated(|_| true)
    }

    /// Like [`FileSource::next_chunk`], but first waits for `turn(seq)`
    /// (which returns false to stop): a mapped segment is only mapped once
    /// it may be processed.
    pub fn next_chunk_gated(&self, turn: impl Fn(u64) -> bool) -> Option<io::Result<Chunk>> {
        match &self.kind {
            Kind::Mapped { file, segments, next } => {
                let seq = next.fetch_add(1, Ordering::Relaxed);
                let &(start, end) = segments.get(seq)?;
                if !turn(seq as u64) {
                    return None;
                }
                // SAFETY: the mapping is read-only and private. If another
                // process truncated the file while it is mapped, reading the
                // lost pages would raise SIGBUS; like ripgrep and other tools
                // that map their input, kuniq accepts that for files it is
                // asked to read.
                let map = unsafe { MmapOptions::new().offset(start).len((end - start) as usize).map(file) };
                Some(map.map(|m| Chunk {
                    seq: seq as u64,
                    base: start,
                    data: ChunkData::Mapped(m),
                    too_large: 0,
                    skipped_bytes: 0,
                }))
            }
            Kind::Stream { chunks, reader } => {
                let received = chunks.lock().unwrap_or_else(|p| p.into_inner()).recv();
                match received {
                    Ok(Ok(chunk)) => turn(chunk.seq).then_some(Ok(chunk)),
                    Ok(Err(e)) => Some(Err(e)),
                    Err(_) => {
                        if let Some(handle) = reader.lock().unwrap_or_else(|p| p.into_inner()).take() {
                            let _ = handle.join();
                        }
                        None
                    }
                }
            }
        }
    }
}

fn annotate(e: io::Error, path: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{path}: {e}"))
}

/// Segment bounds `[start, end)` of about `segment_bytes`, each ending just
/// after a line feed (or at the end of the file).
fn plan_segments(file: &File, len: u64, segment_bytes: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut segments = Vec::new();
    // Lines are a few KiB: one small read usually finds the next line feed.
    let mut buf = [0u8; 4096];
    let mut start = 0;
    while start < len {
        let want = start + segment_bytes;
        let end = if want >= len {
            len
        } else {
            newline_at_or_after(file, want - 1, len, &mut buf)?.map_or(len, |nl| nl + 1)
        };
        segments.push((start, end));
        start = end;
    }
    Ok(segments)
}

/// Position of the first line feed at or after `from`.
fn newline_at_or_after(file: &File, mut from: u64, len: u64, buf: &mut [u8]) -> io::Result<Option<u64>> {
    while from < len {
        let n = file.read_at(buf, from)?;
        if n == 0 {
            break;
        }
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok(Some(from + i as u64));
        }
        from += n as u64;
    }
    Ok(None)
}

/// Reads `reader` into chunks of whole lines and sends them in order;
/// `head` is input already read from it. With `live`, the descriptor
/// `reader` reads, a chunk goes out as soon as the input pauses (see
/// [`fill_live`]).
fn read_lines(
    mut reader: impl Read,
    live: Option<RawFd>,
    head: Vec<u8>,
    tx: &SyncSender<io::Result<Chunk>>,
    segment_bytes: usize,
    max_frame_bytes: usize,
) -> io::Result<()> {
    let mut seq = 0;
    let mut base = 0u64;
    let mut carry: Vec<u8> = head;
    let mut too_large = 0;
    let mut skipped_bytes = 0;
    loop {
        let mut buf = Vec::with_capacity(segment_bytes.max(carry.len() * 2));
        buf.append(&mut carry);
        let mut target = segment_bytes;
        let eof = loop {
            let eof = match live {
                Some(fd) => fill_live(&mut reader, fd, &mut buf, target)?,
                None => fill(&mut reader, &mut buf, target)?,
            };
            if eof || memchr::memrchr(b'\n', &buf).is_some() {
                break eof;
            }
            if buf.len() > max_frame_bytes {
                // One line longer than the limit: drop it unread.
                skipped_bytes += buf.len() as u64 + skip_line(&mut reader, &mut carry)?;
                too_large += 1;
                buf.clear();
                buf.append(&mut carry);
                target = segment_bytes;
                continue;
            }
            target = (target * 2).min(max_frame_bytes + 1);
        };
        if !eof {
            let cut = memchr::memrchr(b'\n', &buf).map_or(buf.len(), |p| p + 1);
            carry.extend_from_slice(&buf[cut..]);
            buf.truncate(cut);
        }
        let chunk_len = buf.len() as u64;
        if !buf.is_empty() || too_large > 0 {
            let chunk =
                Chunk { seq, base: base + skipped_bytes, data: ChunkData::Owned(buf), too_large, skipped_bytes };
            if tx.send(Ok(chunk)).is_err() {
                return Ok(());
            }
            seq += 1;
            base += chunk_len + skipped_bytes;
            too_large = 0;
            skipped_bytes = 0;
        }
        if eof {
            return Ok(());
        }
    }
}

/// Reads into `buf` until it holds `target` bytes or the input ends;
/// returns true at end of input.
fn fill(reader: &mut impl Read, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    let want = target.saturating_sub(buf.len());
    if want == 0 {
        return Ok(false);
    }
    // `take` + `read_to_end` reads into spare capacity without zeroing it
    // first (a pipe gives 64 KiB per read; zeroing the rest of a 4 MiB
    // buffer before each read cost more than the reads).
    buf.reserve(want);
    let got = reader.take(want as u64).read_to_end(buf)?;
    Ok(got < want)
}

/// Like [`fill`], but returns early, with the input not ended, once `buf`
/// holds a complete line and `fd` has had nothing to read for
/// [`LIVE_PAUSE_MS`]. It only reads what `fd` says it holds (or blocks for
/// one byte when it holds nothing and `buf` has no complete line yet), so
/// a read never waits for more than the pipe has.
fn fill_live(reader: &mut impl Read, fd: RawFd, buf: &mut Vec<u8>, target: usize) -> io::Result<bool> {
    let mut has_line = memchr::memchr(b'\n', buf).is_some();
    loop {
        let want = target.saturating_sub(buf.len());
        if want == 0 {
            return Ok(false);
        }
        let Some(mut ready) = bytes_waiting(fd) else {
            // Not a pipe, socket, terminal or file: it cannot say.
            return fill(reader, buf, target);
        };
        if ready == 0 {
            if has_line && !readable_within(fd, LIVE_PAUSE_MS)? {
                return Ok(false);
            }
            // Block for at least one byte (or the end of the input).
            ready = bytes_waiting(fd).unwrap_or(0).max(1);
        }
        let before = buf.len();
        let ask = want.min(ready);
        buf.reserve(ask);
        if (&mut *reader).take(ask as u64).read_to_end(buf)? == 0 {
            return Ok(true);
        }
        has_line = has_line || memchr::memchr(b'\n', &buf[before..]).is_some();
    }
}

/// Bytes `fd` can give without blocking (FIONREAD: pipes, sockets,
/// terminals, regular files); None when it cannot say.
fn bytes_waiting(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: `fd` is open for as long as the reader that owns it lives
    // (the caller's), and FIONREAD writes one c_int to the pointer given.
    let rc = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (rc == 0).then(|| usize::try_from(n).unwrap_or(0))
}

/// True when `fd` has something to read (or has ended) within `ms`.
fn readable_within(fd: RawFd, ms: i32) -> io::Result<bool> {
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: one valid pollfd, `fd` open as in `bytes_waiting`.
        let rc = unsafe { libc::poll(&mut poll, 1, ms) };
        if rc >= 0 {
            return Ok(rc > 0);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Discards input up to and including the next line feed; what follows it
/// goes to `rest`. Returns the bytes discarded.
fn skip_line(reader: &mut impl Read, rest: &mut Vec<u8>) -> io::Result<u64> {
    let mut buf = vec![0u8; 64 << 10];
    let mut skipped = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(skipped),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            rest.extend_from_slice(&buf[i + 1..n]);
            return Ok(skipped + i as u64 + 1);
        }
        skipped += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn lines_of(source: &FileSource) -> (Vec<Vec<u8>>, u64, u64) {
        let mut chunks = Vec::new();
        while let Some(c) = source.next_chunk() {
            chunks.push(c.unwrap());
        }
        chunks.sort_by_key(|c| c.seq);
        let mut lines = Vec::new();
        let (mut too_large, mut bytes) = (0, 0);
        for (i, c) in chunks.iter().enumerate() {
            assert_eq!(c.seq, i as u64);
            assert_eq!(c.base, bytes + c.skipped_bytes, "chunk {i} base");
            too_large += c.too_large;
            bytes += c.data.len() as u64 + c.skipped_bytes;
            assert!(c.data.is_empty() || c.data.ends_with(b"\n") || i == chunks.len() - 1);
            lines.extend(c.data.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec));
        }
        (lines, too_large, bytes)
    }

    fn sample() -> Vec<u8> {
        let mut text = Vec::new();
        for i in 0..5000 {
            writeln!(text, "{{\"uid\":\"u{}\",\"ts\":{}}}{}", i % 97, 1000 + i, "x".repeat(i % 300)).unwrap();
        }
        text.extend_from_slice(b"{\"last\":\"no newline\"}");
        text
    }

    #[test]
    fn mapped_and_streamed_reads_give_the_same_lines() {
        let text = sample();
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("f.jsonl");
        std::fs::write(&plain, &text).unwrap();
        let gz = dir.path().join("f.data");
        let mut enc = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        enc.write_all(&text).unwrap();
        enc.finish().unwrap();
        let expect: Vec<Vec<u8>> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
        for segment in [4096, 10_000, 1 << 20] {
            let mapped = FileSource::open(plain.to_str().unwrap(), segment, 1 << 20).unwrap();
            assert_eq!(lines_of(&mapped), (expect.clone(), 0, text.len() as u64), "mapped {segment}");
            let streamed = FileSource::open(gz.to_str().unwrap(), segment, 1 << 20).unwrap();
            assert_eq!(lines_of(&streamed), (expect.clone(), 0, text.len() as u64), "gzip {segment}");
        }
    }

    #[test]
    fn overlong_lines_are_skipped_without_buffering_them() {
        let mut text = b"{\"a\":1}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', 50_000));
        text.extend_from_slice(b"\n{\"b\":2}\n");
        let (tx, rx) = sync_channel(100);
        read_lines(&text[..], None, Vec::new(), &tx, 4096, 10_000).unwrap();
        drop(tx);
        let chunks: Vec<Chunk> = rx.iter().map(Result::unwrap).collect();
        let lines: Vec<&[u8]> =
            chunks.iter().flat_map(|c| c.data.split(|&b| b == b'\n')).filter(|l| !l.is_empty()).collect();
        assert_eq!(lines, vec![&b"{\"a\":1}"[..], b"{\"b\":2}"]);
        assert_eq!(chunks.iter().map(|c| c.too_large).sum::<u64>(), 1);
        let total: u64 = chunks.iter().map(|c| c.data.len() as u64 + c.skipped_bytes).sum();
        assert_eq!(total, text.len() as u64);
    }
}
