//! Reading many blobs in pack order (restore, dump): a miss reads the blob
//! and what follows it in the pack in one request, and the next blobs come
//! from that span. A snapshot's blobs lie in packs in the order they were
//! written, which is the order a restore wants them, so one request serves
//! hundreds of small files.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use super::{missing_blob, Repository};
use crate::error::Result;
use crate::format::{layout, BlobKind, Id};

/// Spans kept: enough for a few readers working in different packs.
const SPANS: usize = 4;

/// A range of a pack, read once by whichever reader first needs it; the
/// others needing a blob inside it wait for that read instead of issuing
/// their own (`None`: the read failed, and each blob is read on its own).
type SpanBytes = Arc<OnceLock<Option<Arc<Vec<u8>>>>>;

struct Span {
    pack: Id,
    start: u64,
    end: u64,
    bytes: SpanBytes,
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

    /// The span holding `start..end` of `pack`, planned (not yet read) if
    /// no span holds it: `want` bytes from `start`.
    fn span(&self, pack: &Id, start: u64, end: u64, want: u64) -> (SpanBytes, u64, u64) {
        let mut spans = self.spans.lock().unwrap_or_else(|p| p.into_inner());
        let held = spans
            .iter()
            .find(|s| s.pack == *pack && start >= s.start && end <= s.end);
        if let Some(s) = held {
            return (s.bytes.clone(), s.start, s.end);
        }
        if spans.len() == SPANS {
            spans.pop_front();
        }
        let bytes = SpanBytes::default();
        spans.push_back(Span {
            pack: *pack,
            start,
            end: start + want,
            bytes: bytes.clone(),
        });
        (bytes, start, start + want)
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
        let want = len.max(self.readahead.min(loc.pack_size.saturating_sub(start)));
        let (cell, span_start, span_end) = self.span(&loc.pack, start, start + len, want);
        let bytes = cell.get_or_init(|| {
            let path = layout::pack(&loc.pack);
            let read = self
                .repo
                .backend()
                .read_range(&path, span_start, span_end - span_start);
            read.ok().map(Arc::new)
        });
        match bytes {
            Some(bytes) => {
                let at = (start - span_start) as usize;
                self.repo
                    .open_blob_at(kind, id, &loc, &bytes[at..at + len as usize])
            }
            // A pack shorter than the index says still has its earlier
            // blobs, a missing one may have been repacked, and a failing
            // read deserves its own error: read just this blob, wherever
            // it is now.
            None => self.repo.read_blob_at(kind, id, &loc),
        }
    }
}
