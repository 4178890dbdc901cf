//! Where a stream's counterpart lives: the newest snapshot of the same
//! source, host and labels (stream, command or database names), and in it
//! the file at the same path. Streams never record a parent (their bytes
//! are always read); this is only where deltas look for bases.

use super::Counterpart;
use crate::cache::bases::BaseCache;
use crate::format::tree::EntryKind;
use crate::format::Id;
use crate::repo::Repository;

/// The root tree of the snapshot a set of streams is compared with.
pub struct Parent {
    root: Id,
    /// The parent snapshot's source-specific facts (how a source cut its
    /// streams, say).
    pub meta: Vec<(String, Vec<u8>)>,
}

/// The newest snapshot with the same source, host and labels, if deltas
/// are on. A repository we cannot list only costs the deltas.
pub fn stream_parent(
    repo: &Repository,
    source: &str,
    host: &str,
    labels: &[Vec<u8>],
) -> Option<Parent> {
    if !repo.config().deltas() {
        return None;
    }
    let all = repo.snapshots().ok()?;
    all.into_iter()
        .rev()
        .find(|(_, s)| s.source == source && s.host == host && s.paths == labels)
        .map(|(_, s)| Parent {
            root: s.root,
            meta: s.meta,
        })
}

impl Parent {
    /// The parent's file at `path` (folder names, then the file name).
    pub fn counterpart(&self, repo: &Repository, path: &[Vec<u8>]) -> Option<Counterpart> {
        self.counterpart_within(repo, path, None)
    }

    /// Like `counterpart`, limited to the parent's chunks lying wholly in
    /// `range` of its file (a stream stored in parts, each aligned with the
    /// same part of the parent's).
    pub fn counterpart_within(
        &self,
        repo: &Repository,
        path: &[Vec<u8>],
        range: Option<std::ops::Range<u64>>,
    ) -> Option<Counterpart> {
        let (file, dirs) = path.split_last()?;
        let mut tree = repo.read_tree(&self.root).ok()?;
        for dir in dirs {
            let sub = tree.find(dir)?.subtree()?;
            tree = repo.read_tree(&sub).ok()?;
        }
        let entry = tree.find(file)?;
        if entry.kind != EntryKind::File {
            return None;
        }
        let Some(range) = range else {
            return Counterpart::new(entry.chunks());
        };
        let mut at = 0u64;
        let within: Vec<_> = entry
            .chunks()
            .iter()
            .filter(|c| {
                let start = at;
                at += u64::from(c.len);
                start >= range.start && at <= range.end
            })
            .copied()
            .collect();
        Counterpart::new(&within)
    }
}

/// The cache of base bytes for the snapshots of one source (same source,
/// host and labels as `stream_parent` matches), when the repository keeps
/// them (remote storage, a cache folder, deltas on). Each source has its
/// own bounded folder, so a large source cannot evict a small one's bases.
pub fn base_cache(
    repo: &Repository,
    source: &str,
    host: &str,
    labels: &[Vec<u8>],
) -> Option<BaseCache> {
    if !repo.config().deltas() {
        return None;
    }
    let (dir, bound) = repo.base_caches()?;
    let mut key = Vec::new();
    for part in [source.as_bytes(), host.as_bytes()]
        .into_iter()
        .chain(labels.iter().map(Vec::as_slice))
    {
        key.extend_from_slice(&(part.len() as u64).to_le_bytes());
        key.extend_from_slice(part);
    }
    let name = Id::of_object(&key).to_hex();
    BaseCache::open(dir.join(&name[..16]), bound)
}
