//! Reading a file's content back. A few worker threads fetch, decrypt,
//! decompress and verify chunks while the caller consumes them: in file
//! order (`for_each_chunk`, for streams), or each as soon as it is ready,
//! with its offset (`for_each_chunk_at`, for positional writes into a
//! file). Workers take the next chunk as they free up, so one slow chunk
//! holds up no other, and writing overlaps decoding.

use std::collections::HashMap;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{ChunkRef, Entry};
use crate::format::BlobKind;
use crate::progress::Progress;
use crate::repo::{BlobReader, Repository};
use crate::system::process::CommandSource;

/// Up to this many chunks and bytes a file is read on the caller's rayon
/// pool with no threads of its own (most files of a tree): restore already
/// works on several files at once.
const SMALL_CHUNKS: usize = 16;
const SMALL_BYTES: u64 = 8 << 20;

/// Threads fetching one large file: more than cores, because with a cold
/// page cache each of them mostly waits on the disk. Not rayon's pool: the
/// caller may be a rayon worker (restore writes files in parallel) blocked
/// waiting for these chunks, and a pool whose workers all wait for work
/// queued behind them never finishes.
const FETCH_THREADS: usize = 4;

/// How far decoding may run ahead of an in-order consumer, in plaintext
/// bytes (but always at least one chunk): memory stays near this whatever
/// the chunk size.
const AHEAD_BYTES: u64 = 16 << 20;

/// Readahead for reading whole files and snapshots in order (restore,
/// dump): one request per 4 MiB of pack instead of one per blob.
pub const SEQUENTIAL_READAHEAD: u64 = 4 << 20;

fn is_small(chunks: &[ChunkRef]) -> bool {
    chunks.len() <= SMALL_CHUNKS
        && chunks.iter().map(|c| u64::from(c.len)).sum::<u64>() <= SMALL_BYTES
}

/// Fetch one chunk; a panic in the decoder is reported, not propagated
/// into a thread another one waits on.
fn fetch(reader: &BlobReader<'_>, chunk: &ChunkRef) -> Result<Vec<u8>> {
    catch_unwind(AssertUnwindSafe(|| reader.read(BlobKind::Data, &chunk.id)))
        .unwrap_or_else(|_| Err(Error::panicked("a reading thread")))
}

/// Receives each chunk and its plaintext (or why it could not be read);
/// returns false to stop early.
pub type ChunkSink<'a> = dyn FnMut(&ChunkRef, Result<Vec<u8>>) -> Result<bool> + 'a;

/// Call `sink` with each chunk's plaintext (or its error) in file order.
pub fn for_each_chunk(
    reader: &BlobReader<'_>,
    chunks: &[ChunkRef],
    sink: &mut ChunkSink<'_>,
) -> Result<()> {
    if is_small(chunks) {
        let fetched: Vec<_> = chunks.par_iter().map(|c| fetch(reader, c)).collect();
        for (chunk, data) in chunks.iter().zip(fetched) {
            if !sink(chunk, data)? {
                break;
            }
        }
        return Ok(());
    }
    let queue = InOrder::new(chunks);
    std::thread::scope(|scope| {
        for _ in 0..FETCH_THREADS {
            scope.spawn(|| queue.work(reader));
        }
        let result = queue.consume(sink);
        // Also when the sink stopped early or failed: the workers stop.
        queue.stop();
        result
    })
}

/// Chunks decoded by workers, handed to one consumer in order.
struct InOrder<'c> {
    chunks: &'c [ChunkRef],
    state: Mutex<InOrderState>,
    /// A chunk was decoded.
    ready: Condvar,
    /// The consumer took one (room to decode more), or stopped.
    room: Condvar,
}

#[derive(Default)]
struct InOrderState {
    /// The next chunk a worker may take.
    next: usize,
    /// Plaintext bytes taken by workers and not yet consumed.
    ahead: u64,
    done: HashMap<usize, Result<Vec<u8>>>,
    stop: bool,
}

impl<'c> InOrder<'c> {
    fn new(chunks: &'c [ChunkRef]) -> Self {
        InOrder {
            chunks,
            state: Mutex::new(InOrderState::default()),
            ready: Condvar::new(),
            room: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InOrderState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chunks are taken in order, so the one the consumer waits for is
    /// always taken before any behind it: the budget cannot deadlock.
    fn work(&self, reader: &BlobReader<'_>) {
        loop {
            let i = {
                let mut s = self.lock();
                loop {
                    if s.stop || s.next == self.chunks.len() {
                        return;
                    }
                    let len = u64::from(self.chunks[s.next].len);
                    if s.ahead == 0 || s.ahead + len <= AHEAD_BYTES {
                        s.ahead += len;
                        s.next += 1;
                        break s.next - 1;
                    }
                    s = self.room.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            };
            let data = fetch(reader, &self.chunks[i]);
            self.lock().done.insert(i, data);
            self.ready.notify_all();
        }
    }

    fn consume(&self, sink: &mut ChunkSink<'_>) -> Result<()> {
        for (i, chunk) in self.chunks.iter().enumerate() {
            let data = {
                let mut s = self.lock();
                loop {
                    if let Some(data) = s.done.remove(&i) {
                        s.ahead -= u64::from(chunk.len);
                        break data;
                    }
                    s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            };
            self.room.notify_all();
            if !sink(chunk, data)? {
                break;
            }
        }
        Ok(())
    }

    fn stop(&self) {
        self.lock().stop = true;
        self.room.notify_all();
    }
}

/// Receives a chunk, its offset in the file and its plaintext (or why it
/// could not be read), from any worker, in any order.
pub type ChunkAtSink<'a> = dyn Fn(u64, &ChunkRef, Result<Vec<u8>>) -> Result<()> + Sync + 'a;

/// Call `sink` with every chunk as soon as it is decoded, in no particular
/// order, with its offset: for writing into a file with positional writes,
/// which needs no reordering and lets writing one chunk overlap decoding
/// the others. Stops at the first error `sink` returns.
pub fn for_each_chunk_at(
    reader: &BlobReader<'_>,
    chunks: &[ChunkRef],
    sink: &ChunkAtSink<'_>,
) -> Result<()> {
    let offsets: Vec<u64> = chunks
        .iter()
        .scan(0u64, |at, c| {
            let here = *at;
            *at += u64::from(c.len);
            Some(here)
        })
        .collect();
    if is_small(chunks) {
        return chunks
            .par_iter()
            .zip(offsets.par_iter())
            .try_for_each(|(c, &at)| sink(at, c, fetch(reader, c)));
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let first_error = Mutex::new(None::<Error>);
    std::thread::scope(|scope| {
        for _ in 0..FETCH_THREADS {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(chunk) = chunks.get(i) else { return };
                    if let Err(e) = sink(offsets[i], chunk, fetch(reader, chunk)) {
                        stop.store(true, Ordering::Relaxed);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Write a file's content to `out` in order, verifying every chunk; errors
/// name the file. For `dump` and for restores that feed a database client.
pub fn write_file(
    repo: &Repository,
    entry: &Entry,
    out: &mut impl std::io::Write,
    what: &str,
) -> Result<u64> {
    let name = String::from_utf8_lossy(&entry.name).into_owned();
    let reader = BlobReader::new(repo, SEQUENTIAL_READAHEAD);
    let mut written = 0u64;
    for_each_chunk(&reader, entry.chunks(), &mut |_, data| {
        let data = data.map_err(|e| e.at(&name))?;
        out.write_all(&data)
            .map_err(|e| Error::io(format!("writing {name} to {what}"), e))?;
        written += data.len() as u64;
        Ok(true)
    })?;
    out.flush()
        .map_err(|e| Error::io(format!("writing {name} to {what}"), e))?;
    Ok(written)
}

/// Write a file's content into `out` from `start` on with positional
/// writes, each chunk from the thread that decoded it, verifying every
/// chunk; stops at the first damaged chunk or failed write, naming the
/// file. For `dump` into a regular file.
pub fn write_file_at(
    repo: &Repository,
    entry: &Entry,
    out: &std::fs::File,
    start: u64,
    what: &str,
) -> Result<u64> {
    use std::os::unix::fs::FileExt;
    let name = String::from_utf8_lossy(&entry.name).into_owned();
    let reader = BlobReader::new(repo, SEQUENTIAL_READAHEAD);
    for_each_chunk_at(&reader, entry.chunks(), &|at, _, data| {
        let data = data.map_err(|e| e.at(&name))?;
        out.write_all_at(&data, start + at)
            .map_err(|e| Error::io(format!("writing {name} to {what}"), e))
    })?;
    Ok(entry.chunks().iter().map(|c| u64::from(c.len)).sum())
}

/// Counts what passes through into `Progress::bytes_written`.
pub(crate) struct Counted<'a, W> {
    pub(crate) inner: W,
    pub(crate) progress: &'a Progress,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress
            .bytes_written
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Stream a stored file into a program's standard input. When the program
/// dies, our write fails with a broken pipe and its own error says why; when
/// the repository fails (a damaged chunk), the program is killed rather
/// than left to run the truncated end of the dump.
pub fn feed_command(
    repo: &Repository,
    entry: &Entry,
    cmd: Command,
    progress: &Progress,
) -> Result<u64> {
    let (sink, stdin) = CommandSource::start_fed(cmd)?;
    let mut stdin = Counted {
        inner: stdin,
        progress,
    };
    let written = write_file(repo, entry, &mut stdin, "the client");
    drop(stdin);
    match written {
        Err(e) if e.kind() != ErrorKind::Io => {
            sink.kill();
            Err(e)
        }
        Ok(n) => sink.finish().map(|()| n),
        Err(e) => {
            sink.finish()?;
            // It exited 0 without reading everything: not a full restore.
            // Reported without the broken pipe, which is no error when the
            // reader is a user's `head`.
            Err(Error::new(
                ErrorKind::SourceFailed,
                format!(
                    "the client stopped reading {} before its end ({})",
                    String::from_utf8_lossy(&entry.name),
                    e.context()
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Id;
    use crate::repo::BlobWriter;
    use std::sync::Arc;

    /// `n` chunks of distinct content and lengths, stored in a fresh
    /// repository: many more than a small file has, so workers fetch them.
    fn stored(n: usize) -> (Arc<Repository>, Vec<ChunkRef>, Vec<Vec<u8>>) {
        let repo = crate::repo::in_memory();
        let writer = BlobWriter::new(repo.clone(), None);
        let datas: Vec<Vec<u8>> = (0..n)
            .map(|i| format!("chunk {i};").repeat(50 + i * 37 % 400).into_bytes())
            .collect();
        let chunks = datas
            .iter()
            .map(|d| ChunkRef {
                id: writer.save(BlobKind::Data, d.clone()).unwrap(),
                len: d.len() as u32,
            })
            .collect();
        writer.finish().unwrap();
        (repo, chunks, datas)
    }

    #[test]
    fn chunks_arrive_in_file_order_through_the_workers() {
        let (repo, chunks, datas) = stored(300);
        assert!(!is_small(&chunks));
        let reader = BlobReader::new(&repo, SEQUENTIAL_READAHEAD);
        let mut got = Vec::new();
        for_each_chunk(&reader, &chunks, &mut |c, d| {
            got.push((c.id, d.unwrap()));
            Ok(true)
        })
        .unwrap();
        let expected: Vec<_> = chunks.iter().map(|c| c.id).zip(datas).collect();
        assert!(got == expected, "chunks out of order or wrong");
    }

    #[test]
    fn a_sink_that_stops_or_fails_ends_the_read() {
        let (repo, chunks, _) = stored(200);
        let reader = BlobReader::new(&repo, SEQUENTIAL_READAHEAD);
        let mut calls = 0;
        for_each_chunk(&reader, &chunks, &mut |_, _| {
            calls += 1;
            Ok(calls < 10)
        })
        .unwrap();
        assert_eq!(calls, 10);
        let mut calls = 0;
        let err = for_each_chunk(&reader, &chunks, &mut |_, _| {
            calls += 1;
            if calls == 7 {
                return Err(Error::invalid("the sink gave up"));
            }
            Ok(true)
        })
        .unwrap_err();
        assert!(err.to_string().contains("the sink gave up"), "{err}");
        assert_eq!(calls, 7);
    }

    #[test]
    fn every_chunk_arrives_once_at_its_offset() {
        let (repo, chunks, datas) = stored(300);
        let reader = BlobReader::new(&repo, SEQUENTIAL_READAHEAD);
        let whole: Vec<u8> = datas.concat();
        let file = Mutex::new(vec![0u8; whole.len()]);
        let calls = AtomicUsize::new(0);
        for_each_chunk_at(&reader, &chunks, &|at, c, d| {
            let d = d?;
            assert_eq!(d.len(), c.len as usize);
            let at = at as usize;
            file.lock().unwrap()[at..at + d.len()].copy_from_slice(&d);
            calls.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(calls.into_inner(), chunks.len());
        assert!(file.into_inner().unwrap() == whole, "the file differs");
    }

    #[test]
    fn an_unreadable_chunk_is_reported_in_its_place_and_the_rest_arrive() {
        let (repo, mut chunks, datas) = stored(100);
        chunks[40].id = Id::default();
        let reader = BlobReader::new(&repo, SEQUENTIAL_READAHEAD);
        let mut failed = Vec::new();
        let mut n = 0;
        for_each_chunk(&reader, &chunks, &mut |_, d| {
            match d {
                Ok(d) => assert!(d == datas[n]),
                Err(e) => failed.push((n, e.kind())),
            }
            n += 1;
            Ok(true)
        })
        .unwrap();
        assert_eq!(failed, vec![(40, ErrorKind::Corrupt)]);
        let offset_of_40: u64 = chunks[..40].iter().map(|c| u64::from(c.len)).sum();
        let failed = Mutex::new(Vec::new());
        for_each_chunk_at(&reader, &chunks, &|at, _, d| {
            if d.is_err() {
                failed.lock().unwrap().push(at);
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(failed.into_inner().unwrap(), vec![offset_of_40]);
    }
}
