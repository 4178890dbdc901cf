//! Copying snapshots into another repository (the off-site copy).
//!
//! The two repositories have their own master keys, so every blob id
//! differs (ids are keyed hashes) and so do chunk boundaries (the gear table
//! is keyed too). Data is therefore not moved blob by blob: each file's
//! content streams out of the source and through the target's chunker, and
//! each tree is rewritten with the new ids. The target's writer skips blobs
//! it already has, so only data the target lacks is uploaded.
//!
//! A copied snapshot records where it came from (`copied-from` in its meta
//! list), which makes a second run skip it: copying is idempotent, and an
//! interrupted run resumes with the snapshots it had not finished (their
//! packs, already indexed in the target, are not uploaded again).

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::content::{for_each_chunk, SEQUENTIAL_READAHEAD};
use super::reachable::reachable;
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, Content, Entry, Tree};
use crate::format::{BlobKind, Id};
use crate::ingest::stream::{save_stream, StreamError};
use crate::progress::Progress;
use crate::repo::{BlobReader, BlobWriter, Repository, WriteStats};

/// Meta key of a copied snapshot: the source repository's id followed by
/// the source snapshot's id (32 bytes each).
pub const COPIED_FROM: &str = "copied-from";

/// Where a snapshot was copied from, as recorded in its meta list.
pub fn copied_from(snapshot: &Snapshot) -> Option<(Id, Id)> {
    let (_, value) = snapshot.meta.iter().find(|(k, _)| k == COPIED_FROM)?;
    if value.len() != 64 {
        return None;
    }
    let mut repo = [0u8; 32];
    let mut snap = [0u8; 32];
    repo.copy_from_slice(&value[..32]);
    snap.copy_from_slice(&value[32..]);
    Some((Id::from_bytes(repo), Id::from_bytes(snap)))
}

fn marker(source_repo: &Id, source_snapshot: &Id) -> (String, Vec<u8>) {
    let mut value = Vec::with_capacity(64);
    value.extend_from_slice(source_repo.as_bytes());
    value.extend_from_slice(source_snapshot.as_bytes());
    (COPIED_FROM.to_string(), value)
}

/// What a copy will do, decided before anything is written.
#[derive(Debug, Default)]
pub struct CopyPlan {
    /// Source snapshots to copy, oldest first.
    pub to_copy: Vec<(Id, Snapshot)>,
    /// Source snapshots the target already holds: (source id, target id).
    pub already_copied: Vec<(Id, Id)>,
    /// Trees and data blobs the snapshots to copy reference in the source.
    pub trees: usize,
    pub data_blobs: usize,
    /// Plaintext bytes of those data blobs (an upper bound on what moves).
    pub data_bytes: u64,
}

/// Split the selected source snapshots into those to copy and those the
/// target already holds (pure: the caller lists both repositories). The
/// counts are left for `plan` to fill in.
pub fn select(
    source_repo: &Id,
    selected: Vec<(Id, Snapshot)>,
    target_snapshots: &[(Id, Snapshot)],
) -> CopyPlan {
    let copied: HashMap<Id, Id> = target_snapshots
        .iter()
        .filter_map(|(target_id, s)| {
            let (repo, snap) = copied_from(s)?;
            (repo == *source_repo).then_some((snap, *target_id))
        })
        .collect();
    let mut seen = HashSet::new();
    let mut to_copy = Vec::new();
    let mut already = Vec::new();
    for (id, snap) in selected {
        if !seen.insert(id) {
            continue;
        }
        match copied.get(&id) {
            Some(target_id) => already.push((id, *target_id)),
            None => to_copy.push((id, snap)),
        }
    }
    to_copy.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
    CopyPlan {
        to_copy,
        already_copied: already,
        ..CopyPlan::default()
    }
}

/// Plan a copy of `selected` from `source` to `target`. Refuses when the
/// two are one repository, or when a tree to copy cannot be read: a copy
/// that silently left out a folder would be a backup with a hole.
pub fn plan(
    source: &Repository,
    target: &Repository,
    selected: Vec<(Id, Snapshot)>,
) -> Result<CopyPlan> {
    if source.config().repo_id == target.config().repo_id {
        return Err(Error::invalid(
            "source and target are the same repository; nothing to copy",
        ));
    }
    let selection = select(&source.config().repo_id, selected, &target.snapshots()?);
    let walk = reachable(source, selection.to_copy.iter().map(|(_, s)| s.root));
    if let Some((tree, e)) = walk.unreadable.first() {
        return Err(Error::new(
            e.kind(),
            format!(
                "source tree {} cannot be read ({} unreadable in all); copy refused: {e}",
                tree.short(),
                walk.unreadable.len()
            ),
        ));
    }
    let mut data_bytes = 0u64;
    for id in &walk.data {
        if let Some(loc) = source.blob_location(BlobKind::Data, id)? {
            data_bytes += u64::from(loc.raw_len);
        }
    }
    Ok(CopyPlan {
        trees: walk.trees.len(),
        data_blobs: walk.data.len(),
        data_bytes,
        ..selection
    })
}

#[derive(Debug, Default)]
pub struct CopyOutcome {
    /// (source id, new target id) for each snapshot copied by this run.
    pub copied: Vec<(Id, Id)>,
    pub stats: WriteStats,
}

/// Source trees already rewritten into the target in this run, and file
/// contents already re-chunked: hourly snapshots share most of both.
#[derive(Default)]
struct Memo {
    trees: Mutex<HashMap<Id, Id>>,
    files: Mutex<HashMap<Id, Vec<ChunkRef>>>,
}

struct Copier<'a> {
    reader: BlobReader<'a>,
    writer: &'a BlobWriter,
    seed: u64,
    /// Files no larger than this are one chunk in the target too.
    one_chunk_max: u64,
    memo: &'a Memo,
    progress: &'a Progress,
}

/// Execute a plan: copy each snapshot, oldest first; each is recorded in
/// the target only after all its data and trees are stored and indexed.
pub fn execute(
    source: &Repository,
    target: &Arc<Repository>,
    plan: &CopyPlan,
    progress: &Progress,
) -> Result<CopyOutcome> {
    let mut outcome = CopyOutcome::default();
    if plan.to_copy.is_empty() {
        return Ok(outcome); // a repeated copy writes nothing, not even a lock
    }
    // Held like a backup's: prune must not delete target data that the
    // copies deduplicate against before they are recorded.
    let lock = target.lock_shared("copy")?;
    let memo = Memo::default();
    let pool = crate::ingest::tree::walk_pool()?;
    let source_repo = source.config().repo_id;
    for (source_id, snap) in &plan.to_copy {
        let writer = BlobWriter::new(target.clone(), None);
        let root = {
            let copier = Copier {
                reader: BlobReader::new(source, SEQUENTIAL_READAHEAD),
                writer: &writer,
                seed: target.keys().chunker_seed(),
                one_chunk_max: u64::from(target.config().chunker.min),
                memo: &memo,
                progress,
            };
            pool.install(|| copier.tree(&snap.root))
        };
        let root = root.map_err(|e| e.at(format!("copy snapshot {}", source_id.short())))?;
        let stats = writer.finish()?;
        let mut copy = snap.clone();
        copy.root = root;
        // The parent names a snapshot of the source; the target's copy of
        // it (if any) has another id, and a parent is only a hint.
        copy.parent = None;
        copy.meta.retain(|(k, _)| k != COPIED_FROM);
        copy.meta.push(marker(&source_repo, source_id));
        lock.check()?;
        let target_id = target.save_snapshot(&copy)?;
        outcome.copied.push((*source_id, target_id));
        add_stats(&mut outcome.stats, &stats);
    }
    Ok(outcome)
}

fn add_stats(total: &mut WriteStats, run: &WriteStats) {
    total.blobs_added += run.blobs_added;
    total.raw_bytes_added += run.raw_bytes_added;
    total.stored_bytes_added += run.stored_bytes_added;
    total.packs_written += run.packs_written;
    total.index_objects_written += run.index_objects_written;
}

impl Copier<'_> {
    /// Rewrite one source tree (and everything below) into the target.
    fn tree(&self, id: &Id) -> Result<Id> {
        if let Some(done) = self
            .memo
            .trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
        {
            return Ok(*done);
        }
        let tree = self.reader.repo().read_tree(id)?;
        let entries = tree
            .entries
            .into_par_iter()
            .map(|entry| self.entry(entry))
            .collect::<Result<Vec<_>>>()?;
        let new_id = self
            .writer
            .save(BlobKind::Tree, Tree { entries }.encode())?;
        self.memo
            .trees
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(*id, new_id);
        Ok(new_id)
    }

    fn entry(&self, mut entry: Entry) -> Result<Entry> {
        entry.content = match entry.content {
            Content::Dir { subtree } => Content::Dir {
                subtree: self.tree(&subtree)?,
            },
            Content::File { chunks } => {
                let chunks = self
                    .file(&chunks)
                    .map_err(|e| e.at(String::from_utf8_lossy(&entry.name)))?;
                self.progress.files.fetch_add(1, Ordering::Relaxed);
                Content::File { chunks }
            }
            other => other,
        };
        Ok(entry)
    }

    /// A file's content, re-chunked into the target.
    fn file(&self, chunks: &[ChunkRef]) -> Result<Vec<ChunkRef>> {
        let key = content_key(chunks);
        if let Some(done) = self
            .memo
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
        {
            return Ok(done.clone());
        }
        let size: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
        let new = if size == 0 {
            vec![]
        } else if size <= self.one_chunk_max {
            // Below the smallest chunk the chunker cuts nothing: the
            // whole file is one chunk, without a thread to stream it.
            let mut data = Vec::with_capacity(size as usize);
            for c in chunks {
                data.extend(self.reader.read(BlobKind::Data, &c.id)?);
            }
            self.progress
                .bytes_read
                .fetch_add(data.len() as u64, Ordering::Relaxed);
            let len = data.len() as u32;
            let id = self.writer.save(BlobKind::Data, data)?;
            vec![ChunkRef { id, len }]
        } else {
            self.stream(chunks)?
        };
        self.memo
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, new.clone());
        Ok(new)
    }

    /// Stream a large file from the source through the target's chunker:
    /// one thread fetches (in parallel windows), the chunker reads a pipe.
    fn stream(&self, chunks: &[ChunkRef]) -> Result<Vec<ChunkRef>> {
        let source_error: Mutex<Option<Error>> = Mutex::new(None);
        let saved = std::thread::scope(|scope| {
            let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(4);
            let source_error = &source_error;
            scope.spawn(move || {
                let result = for_each_chunk(&self.reader, chunks, &mut |_, data| {
                    let data = data?;
                    Ok(tx.send(data).is_ok())
                });
                if let Err(e) = result {
                    *source_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                }
            });
            save_stream(
                self.writer,
                ChannelReader::new(rx),
                self.seed,
                self.progress,
                // The target stores whole blobs; its own next snapshots
                // store deltas against them.
                None,
            )
        });
        let failed_source = source_error.into_inner().unwrap_or_else(|p| p.into_inner());
        match (saved, failed_source) {
            (_, Some(e)) => Err(e),
            (Ok((new, total)), None) => {
                let expected: u64 = chunks.iter().map(|c| u64::from(c.len)).sum();
                if total != expected {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        format!("source content is {total} bytes, its tree says {expected}"),
                    ));
                }
                Ok(new)
            }
            (Err(StreamError::Repo(e)), None) => Err(e),
            (Err(StreamError::Read(e)), None) => Err(Error::io("reading source content", e)),
        }
    }
}

/// A key naming a file's content in the source: its chunk list.
fn content_key(chunks: &[ChunkRef]) -> Id {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c.id.as_bytes());
        h.update(&c.len.to_le_bytes());
    }
    Id::from_bytes(*h.finalize().as_bytes())
}

/// Bytes arriving over a channel, read as one stream; ends when the
/// sender is dropped.
struct ChannelReader {
    rx: crossbeam_channel::Receiver<Vec<u8>>,
    current: std::io::Cursor<Vec<u8>>,
}

impl ChannelReader {
    fn new(rx: crossbeam_channel::Receiver<Vec<u8>>) -> Self {
        ChannelReader {
            rx,
            current: std::io::Cursor::new(Vec::new()),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            match self.rx.recv() {
                Ok(next) => self.current = std::io::Cursor::new(next),
                Err(_) => return Ok(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::Summary;
    use crate::format::Timestamp;

    fn snap(secs: i64, meta: Vec<(String, Vec<u8>)>) -> Snapshot {
        Snapshot {
            time: Timestamp { secs, nanos: 0 },
            host: "h".into(),
            user: "u".into(),
            tags: vec![],
            source: "files".into(),
            paths: vec![b"/data".to_vec()],
            root: Id::from_bytes([secs as u8; 32]),
            parent: None,
            summary: Summary::default(),
            program_version: "0".into(),
            meta,
        }
    }

    fn id(n: u8) -> Id {
        Id::from_bytes([n; 32])
    }

    #[test]
    fn snapshots_copied_from_this_source_are_skipped() {
        let source_repo = id(100);
        let other_repo = id(101);
        let selected = vec![
            (id(3), snap(3, vec![])),
            (id(1), snap(1, vec![])),
            (id(2), snap(2, vec![])),
        ];
        let target = vec![
            (id(50), snap(9, vec![marker(&source_repo, &id(2))])),
            // Same snapshot id, but copied from another repository.
            (id(51), snap(9, vec![marker(&other_repo, &id(1))])),
        ];
        let plan = select(&source_repo, selected, &target);
        let ids: Vec<Id> = plan.to_copy.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, vec![id(1), id(3)], "oldest first, copied one left out");
        assert_eq!(plan.already_copied, vec![(id(2), id(50))]);
    }

    #[test]
    fn a_snapshot_named_twice_is_copied_once() {
        let selected = vec![(id(1), snap(1, vec![])), (id(1), snap(1, vec![]))];
        let plan = select(&id(100), selected, &[]);
        assert_eq!(plan.to_copy.len(), 1);
        assert!(plan.already_copied.is_empty());
    }

    #[test]
    fn the_marker_round_trips_and_bad_markers_are_ignored() {
        let s = snap(1, vec![marker(&id(7), &id(8))]);
        assert_eq!(copied_from(&s), Some((id(7), id(8))));
        let bad = snap(1, vec![(COPIED_FROM.to_string(), vec![1, 2, 3])]);
        assert_eq!(copied_from(&bad), None);
        assert_eq!(copied_from(&snap(1, vec![])), None);
    }

    #[test]
    fn the_channel_reader_joins_pieces_into_one_stream() {
        let (tx, rx) = crossbeam_channel::bounded(4);
        for piece in [b"ab".to_vec(), vec![], b"cde".to_vec()] {
            tx.send(piece).expect("receiver alive");
        }
        drop(tx);
        let mut out = Vec::new();
        ChannelReader::new(rx)
            .read_to_end(&mut out)
            .expect("in-memory reads succeed");
        assert_eq!(out, b"abcde");
    }
}
