//! Reading many blobs in pack order (restore, dump): a miss reads the blob
//! and what follows it in the pack in one request, and the next blobs come
//! from that span. A snapshot's blobs lie in packs in the order they were
//! written, which is the order a restore wants them, so one request serves
//! hundreds of small files.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use super::{missing_blob, pack_read_error, Repository};
use crate::error::{ErrorKind, Result};
use crate::format::{layout, BlobKind, Id};

/// Spans kept: enough for a few readers working in different packs.
const SPANS: usize = 4;

struct Span {
    pack: Id,
    start: u64,
    bytes: Arc<Vec<u8>>,
}

pub struct BlobReader<'r> {
    repo: &'r Repository,
    readahead: u64,
    spans: Mutex<VecDeque<Span>>,
}

impl<'r> BlobReader<'r> {
    /// `readahead`: bytes read past a missed blob (0 reads blobs one by one,
    /// right for random access).
    pub fn new(repo: &'r Repository, readahead: u64) -> Self {
        BlobReader {
            repo,
            readahead,
            spans: Mutex::new(VecDeque::new()),
        }
    }

    pub fn repo(&self) -> &'r Repository {
        self.repo
    }

    fn cached(&self, pack: &Id, start: u64, end: u64) -> Option<(Arc<Vec<u8>>, usize)> {
        let spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        spans.iter().find_map(|s| {
            let inside =
                s.pack == *pack && start >= s.start && end <= s.start + s.bytes.len() as u64;
            inside.then(|| (s.bytes.clone(), (start - s.start) as usize))
        })
    }

    pub fn read(&self, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .repo
            .blob_location(kind, id)?
            .ok_or_else(|| missing_blob(id))?;
        let start = u64::from(loc.offset);
        let len = u64::from(loc.stored_len);
        // Large blobs are worth a request each; reading ahead past them
        // would mostly fetch what another thread is fetching.
        if len.saturating_mul(4) > self.readahead {
            return self.repo.read_blob_at(kind, id, &loc);
        }
        let (bytes, at) = match self.cached(&loc.pack, start, start + len) {
            Some(hit) => hit,
            None => {
                let want = len.max(self.readahead.min(loc.pack_size.saturating_sub(start)));
                let bytes =
                    match self
                        .repo
                        .backend()
                        .read_range(&layout::pack(&loc.pack), start, want)
                    {
                        Ok(b) => Arc::new(b),
                        // A pack shorter than the index says still has its
                        // earlier blobs, and a missing one may have been
                        // repacked: read just this blob, wherever it is now.
                        Err(e) if want > len || e.kind() == ErrorKind::NotFound => {
                            return self.repo.read_blob_at(kind, id, &loc)
                        }
                        Err(e) => return Err(pack_read_error(e, id, &loc)),
                    };
                let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
                if spans.len() == SPANS {
                    spans.pop_front();
                }
                spans.push_back(Span {
                    pack: loc.pack,
                    start,
                    bytes: bytes.clone(),
                });
                (bytes, 0)
            }
        };
        self.repo
            .open_blob_at(kind, id, &loc, &bytes[at..at + len as usize])
    }
}
