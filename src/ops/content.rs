//! Reading a file's content back: chunks are fetched and verified in
//! parallel, a window at a time, and handed over in order.

use rayon::prelude::*;

use crate::error::Result;
use crate::format::tree::ChunkRef;
use crate::format::BlobKind;
use crate::repo::Repository;

/// Chunks fetched at once: enough to keep both cores busy decrypting and
/// decompressing, small enough to bound memory (window x max chunk size).
const WINDOW: usize = 8;

/// Call `sink` with each chunk's plaintext (or its error) in file order.
/// `sink` returns false to stop early.
pub fn for_each_chunk(
    repo: &Repository,
    chunks: &[ChunkRef],
    sink: &mut dyn FnMut(usize, &ChunkRef, Result<Vec<u8>>) -> Result<bool>,
) -> Result<()> {
    let mut index = 0;
    for window in chunks.chunks(WINDOW) {
        let fetched: Vec<Result<Vec<u8>>> =
            window.par_iter().map(|c| repo.read_blob(BlobKind::Data, &c.id)).collect();
        for (chunk, data) in window.iter().zip(fetched) {
            if !sink(index, chunk, data)? {
                return Ok(());
            }
            index += 1;
        }
    }
    Ok(())
}
