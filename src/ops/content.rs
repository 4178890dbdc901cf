//! Reading a file's content back: chunks are fetched and verified in
//! parallel, a window at a time, on a helper thread, and handed over in
//! order, so writing one window overlaps fetching the next.

use std::io::Write;
use std::process::Command;
use std::sync::atomic::Ordering;

use rayon::prelude::*;

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{ChunkRef, Entry};
use crate::format::BlobKind;
use crate::progress::Progress;
use crate::repo::{BlobReader, Repository};
use crate::system::process::CommandSource;

/// Chunks fetched at once: enough to keep every core busy decrypting and
/// decompressing; a window also stops at `WINDOW_BYTES`, so memory stays
/// near two windows (one being written, one fetched) whatever the chunk size.
const WINDOW: usize = 16;
const WINDOW_BYTES: u64 = 8 << 20;

/// Threads fetching one window: more than cores, because with a cold page
/// cache each of them mostly waits on the disk.
const FETCH_THREADS: usize = 4;

/// Readahead for reading whole files and snapshots in order (restore,
/// dump): one request per 4 MiB of pack instead of one per blob.
pub const SEQUENTIAL_READAHEAD: u64 = 4 << 20;

/// Split `chunks` into consecutive windows of at most `WINDOW` chunks and
/// `WINDOW_BYTES` bytes (but at least one chunk).
fn windows(chunks: &[ChunkRef]) -> Vec<&[ChunkRef]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, c) in chunks.iter().enumerate() {
        let full = i - start == WINDOW || (i > start && bytes + u64::from(c.len) > WINDOW_BYTES);
        if full {
            out.push(&chunks[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += u64::from(c.len);
    }
    if start < chunks.len() {
        out.push(&chunks[start..]);
    }
    out
}

/// Fetch a window on threads of its own. Not on rayon's pool: the caller
/// may be a rayon worker (restore writes files in parallel) blocked waiting
/// for this very window, and a pool whose workers all wait for work queued
/// behind them never finishes.
fn fetch_window(reader: &BlobReader<'_>, window: &[ChunkRef]) -> Vec<Result<Vec<u8>>> {
    let read = |c: &ChunkRef| reader.read(BlobKind::Data, &c.id);
    if window.len() < 2 {
        return window.iter().map(read).collect();
    }
    let per_thread = window.len().div_ceil(FETCH_THREADS);
    std::thread::scope(|scope| {
        let parts: Vec<_> = window
            .chunks(per_thread)
            .map(|part| {
                (
                    part.len(),
                    scope.spawn(move || part.iter().map(read).collect::<Vec<_>>()),
                )
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|(len, handle)| {
                handle.join().unwrap_or_else(|_| {
                    (0..len)
                        .map(|_| Err(crate::Error::panicked("a reading thread")))
                        .collect()
                })
            })
            .collect()
    })
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
    let windows = windows(chunks);
    if windows.len() <= 1 {
        // Small files (most of a file tree): no thread to hand off to.
        let fetched: Vec<_> = chunks
            .par_iter()
            .map(|c| reader.read(BlobKind::Data, &c.id))
            .collect();
        for (chunk, data) in chunks.iter().zip(fetched) {
            if !sink(chunk, data)? {
                break;
            }
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<Vec<Result<Vec<u8>>>>(1);
        let windows = &windows;
        scope.spawn(move || {
            for window in windows.iter() {
                if tx.send(fetch_window(reader, window)).is_err() {
                    return;
                }
            }
        });
        for (window, fetched) in windows.iter().zip(rx.iter()) {
            for (chunk, data) in window.iter().zip(fetched) {
                if !sink(chunk, data)? {
                    // Dropping the receiver stops the fetching thread.
                    return Ok(());
                }
            }
        }
        Ok(())
    })
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

    #[test]
    fn windows_cover_every_chunk_in_order_within_bounds() {
        let sizes = [1u32 << 20, 3 << 20, 5 << 20, 9 << 20, 100, 100, 4 << 20];
        let mut chunks: Vec<ChunkRef> = sizes
            .iter()
            .map(|&len| ChunkRef {
                id: Id::default(),
                len,
            })
            .collect();
        chunks.extend((0..40).map(|_| ChunkRef {
            id: Id::default(),
            len: 10,
        }));
        let w = windows(&chunks);
        assert_eq!(w.iter().map(|w| w.len()).sum::<usize>(), chunks.len());
        for window in &w {
            let bytes: u64 = window.iter().map(|c| u64::from(c.len)).sum();
            assert!(window.len() <= WINDOW);
            assert!(window.len() == 1 || bytes <= WINDOW_BYTES, "{bytes}");
        }
    }
}
