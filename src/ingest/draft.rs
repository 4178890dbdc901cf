//! A snapshot in the making. `draft` takes the lock and notes where the
//! index stood; `commit` stores the snapshot object last, only after
//! everything it references is stored and indexed and only while the lock
//! still holds: a snapshot is recorded only when all of it is safe.

use std::time::Instant;

use crate::error::Result;
use crate::format::snapshot::{Snapshot, Summary, TOTAL_BYTES_KEY};
use crate::format::{Id, Timestamp};
use crate::repo::{BlobWriter, LockGuard, Repository, WriteStats};
use crate::storage::RequestCounts;
use crate::system::{hostname, interrupt, username};

#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same paths from the same host.
    #[default]
    Auto,
    /// Read every file again.
    None,
    Id(Id),
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// Overrides the repository's zstd level for this run.
    pub compression: Option<i32>,
    pub parent: ParentChoice,
    /// Source-specific facts to record (database sources use this).
    pub meta: Vec<(String, Vec<u8>)>,
}

impl SnapshotOptions {
    /// These options with `facts` about the source added to the meta.
    pub fn with_facts(&self, facts: &[(&str, String)]) -> SnapshotOptions {
        let mut opts = self.clone();
        opts.meta.extend(
            facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())),
        );
        opts
    }
}

#[derive(Debug)]
pub struct SnapshotOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Entries left out because they could not be read.
    pub warnings: Vec<String>,
    pub stats: WriteStats,
    /// Requests made to remote storage by this run, opening included.
    pub requests: RequestCounts,
}

pub(crate) struct Draft {
    /// Held from before the parent was chosen until the snapshot is stored.
    lock: LockGuard,
    pub(crate) started: Instant,
    pub(crate) time: Timestamp,
    source: &'static str,
    paths: Vec<Vec<u8>>,
    parent: Option<Id>,
    written_mark: usize,
}

/// What a snapshot read, for its summary.
pub(crate) struct ReadCounts {
    pub(crate) files: u64,
    pub(crate) dirs: u64,
    pub(crate) bytes_read: u64,
    /// Bytes of every file held, unchanged ones included.
    pub(crate) total_bytes: u64,
}

fn with_total_bytes(meta: &[(String, Vec<u8>)], total: u64) -> Vec<(String, Vec<u8>)> {
    let mut meta: Vec<_> = meta
        .iter()
        .filter(|(k, _)| k != TOTAL_BYTES_KEY)
        .cloned()
        .collect();
    meta.push((TOTAL_BYTES_KEY.to_string(), total.to_le_bytes().to_vec()));
    meta
}

pub(crate) fn commit(
    repo: &Repository,
    writer: BlobWriter,
    draft: Draft,
    root: Id,
    counts: ReadCounts,
    warnings: Vec<String>,
    opts: &SnapshotOptions,
) -> Result<SnapshotOutcome> {
    let stats = writer.finish()?;
    // Everything stored is indexed by now; a stopped run records no
    // snapshot, since its sources were not read to the end.
    interrupt::check()?;
    let snapshot = Snapshot {
        time: draft.time,
        host: opts.host.clone().unwrap_or_else(hostname),
        user: username(),
        tags: opts.tags.clone(),
        source: draft.source.to_string(),
        paths: draft.paths,
        root,
        parent: draft.parent,
        summary: Summary {
            files: counts.files,
            dirs: counts.dirs,
            bytes_read: counts.bytes_read,
            bytes_added: stats.stored_bytes_added,
            blobs_added: stats.blobs_added,
            duration_ms: draft.started.elapsed().as_millis() as u64,
            warnings: warnings.len() as u64,
        },
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        meta: with_total_bytes(&opts.meta, counts.total_bytes),
    };
    // Only a lock held throughout guarantees that no prune deleted data
    // this snapshot references. A lost lock says so first; the index check
    // catches a prune that got past a lock anyway; the lock is checked
    // again right before the snapshot is stored.
    draft.lock.check()?;
    repo.verify_index_kept(draft.written_mark)?;
    draft.lock.check()?;
    let id = repo.save_snapshot(&snapshot)?;
    Ok(SnapshotOutcome {
        id,
        snapshot,
        warnings,
        stats,
        requests: repo.backend().requests(),
    })
}

pub(crate) fn draft(
    repo: &Repository,
    lock: LockGuard,
    source: &'static str,
    paths: Vec<Vec<u8>>,
    parent: Option<Id>,
) -> Result<Draft> {
    Ok(Draft {
        written_mark: repo.index_written_mark(),
        lock,
        started: Instant::now(),
        time: Timestamp::now(),
        source,
        paths,
        parent,
    })
}
