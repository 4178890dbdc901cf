//! Byte streams into chunks: cut with the repository's keyed chunker, hash,
//! deduplicate and queue each chunk on the write pipeline, and return the
//! chunk list that a tree entry records. Files of a tree and named streams
//! (stdin, command output, database dumps) all come through here.

use std::io::Read;
use std::sync::atomic::Ordering;

use crate::chunker::Chunker;
use crate::delta::Counterpart;
use crate::error::Error;
use crate::format::tree::ChunkRef;
use crate::format::BlobKind;
use crate::progress::Progress;
use crate::repo::BlobWriter;
use crate::system::interrupt;

/// A file expected to fit in one chunk. If it grew past `min` since it was
/// stat'ed, its bytes go through the chunker after all.
pub(super) fn save_small(
    writer: &BlobWriter,
    mut file: std::fs::File,
    min: u64,
    seed: u64,
    progress: &Progress,
    like: Option<&Counterpart>,
) -> std::result::Result<(Vec<ChunkRef>, u64), StreamError> {
    let mut data = Vec::new();
    (&mut file)
        .take(min)
        .read_to_end(&mut data)
        .map_err(StreamError::Read)?;
    if data.len() as u64 == min {
        return save_in_turn(
            writer,
            std::io::Cursor::new(data).chain(file),
            seed,
            progress,
            like,
        );
    }
    if data.is_empty() {
        return Ok((vec![], 0));
    }
    let chunk = save_chunk(writer, data, progress, (0, like))?;
    Ok((vec![chunk], u64::from(chunk.len)))
}

/// `at`: the chunk's offset in its file, and the parent's version of the
/// file to store it as a delta against.
fn save_chunk(
    writer: &BlobWriter,
    data: Vec<u8>,
    progress: &Progress,
    at: (u64, Option<&Counterpart>),
) -> std::result::Result<ChunkRef, StreamError> {
    let len = data.len() as u32;
    progress
        .bytes_read
        .fetch_add(u64::from(len), Ordering::Relaxed);
    let (offset, like) = at;
    let id = writer
        .save_like(BlobKind::Data, data, |id| like?.like(offset, len, id))
        .map_err(StreamError::Repo)?;
    Ok(ChunkRef { id, len })
}

/// Why a stream could not be stored: the source failed (skip it, or fail the
/// snapshot for streams), or the repository failed (always fatal).
pub enum StreamError {
    Read(std::io::Error),
    Repo(Error),
}

/// Cut and save a stream on the calling thread.
pub(super) fn save_in_turn(
    writer: &BlobWriter,
    reader: impl Read,
    seed: u64,
    progress: &Progress,
    like: Option<&Counterpart>,
) -> std::result::Result<(Vec<ChunkRef>, u64), StreamError> {
    let params = writer.repo().config().chunker;
    let mut chunks = Vec::new();
    let mut total = 0u64;
    for chunk in Chunker::new(reader, &params, seed) {
        interrupt::check().map_err(StreamError::Repo)?;
        let data = chunk.map_err(StreamError::Read)?;
        let chunk = save_chunk(writer, data, progress, (total, like))?;
        total += u64::from(chunk.len);
        chunks.push(chunk);
    }
    Ok((chunks, total))
}

/// Chunks in flight between the chunking thread and the hashers.
const CHUNKS_IN_FLIGHT: usize = 8;

/// Chunk a byte stream into the repository; returns its chunk list and length.
///
/// One thread reads and cuts the stream; the current rayon pool hashes,
/// deduplicates and queues the chunks, so cutting the next chunks overlaps
/// hashing the last ones. Chunks are numbered as they are cut and put back
/// in order at the end.
pub fn save_stream(
    writer: &BlobWriter,
    reader: impl Read + Send,
    seed: u64,
    progress: &Progress,
    like: Option<&Counterpart>,
) -> std::result::Result<(Vec<ChunkRef>, u64), StreamError> {
    use rayon::iter::{ParallelBridge, ParallelIterator};
    let params = writer.repo().config().chunker;
    std::thread::scope(|scope| {
        let (tx, rx) = crossbeam_channel::bounded::<(usize, u64, Vec<u8>)>(CHUNKS_IN_FLIGHT);
        let cutter = scope.spawn(move || -> std::io::Result<()> {
            let mut offset = 0u64;
            for (n, chunk) in Chunker::for_long_stream(reader, &params, seed).enumerate() {
                if interrupt::received().is_some() {
                    break; // reported below, once the hashers are done
                }
                let chunk = chunk?;
                let len = chunk.len() as u64;
                if tx.send((n, offset, chunk)).is_err() {
                    break; // the hashers stopped on an error
                }
                offset += len;
            }
            Ok(())
        });
        let saved: std::result::Result<Vec<(usize, ChunkRef)>, StreamError> = rx
            .into_iter()
            .par_bridge()
            .map(|(n, at, data)| save_chunk(writer, data, progress, (at, like)).map(|c| (n, c)))
            .collect();
        // A stop signal also explains a read that failed because the
        // producer was killed by the same signal.
        interrupt::check().map_err(StreamError::Repo)?;
        // A read error ends the stream early: it outranks what was saved.
        match cutter.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(StreamError::Read(e)),
            Err(_) => return Err(StreamError::Repo(Error::panicked("the chunking thread"))),
        }
        let mut saved = saved?;
        saved.sort_unstable_by_key(|(n, _)| *n);
        let total = saved.iter().map(|(_, c)| u64::from(c.len)).sum();
        Ok((saved.into_iter().map(|(_, c)| c).collect(), total))
    })
}
