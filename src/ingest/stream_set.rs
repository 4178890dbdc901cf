//! Snapshots assembled from named byte streams: one stream from stdin or a
//! command, or the many streams of a database dump (schema files, one file
//! per table) written by parallel workers. Each stream becomes a file at
//! its path; the folders above it are made up. Nothing is recorded until
//! `commit`: dropping a set after a failed stream leaves stored data indexed
//! for reuse and no snapshot.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use super::draft::{commit, draft, Draft, ReadCounts, SnapshotOptions, SnapshotOutcome};
use super::stream::{save_stream, StreamError};
use crate::error::{Error, Result};
use crate::format::tree::{valid_name, ChunkRef, Content, Entry, EntryKind, Tree};
use crate::format::{BlobKind, Id};
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::system::{interrupt, Owners};

/// A stream's place: folder names, then the file name.
type StreamPath = Vec<Vec<u8>>;

#[derive(Clone)]
struct Stored {
    chunks: Vec<ChunkRef>,
    size: u64,
}

pub struct StreamSet {
    repo: Arc<Repository>,
    writer: BlobWriter,
    seed: u64,
    draft: Draft,
    owner: (u32, u32, String, String),
    files: Mutex<BTreeMap<StreamPath, Stored>>,
    /// Streams stored in parts, joined in order into one file at commit.
    parts: Mutex<BTreeMap<StreamPath, BTreeMap<usize, Stored>>>,
    /// The last snapshot of the same streams, whose files new chunks are
    /// stored as deltas against.
    like: Option<crate::delta::Parent>,
}

/// Split `a/b/c` into safe components; a stream path is chosen by vault or
/// its caller, so anything unsafe is a caller's mistake reported as input.
fn stream_path(path: &str) -> Result<StreamPath> {
    let parts: Vec<Vec<u8>> = path.split('/').map(|c| c.as_bytes().to_vec()).collect();
    if parts.iter().all(|c| valid_name(c)) {
        return Ok(parts);
    }
    Err(Error::invalid(format!(
        "'{path}' is not a usable stream name (empty parts, '.' or '..')"
    )))
}

impl StreamSet {
    /// Start a snapshot whose `source` kind and `labels` (the paths, stream
    /// or database names a snapshot is grouped by) are recorded as given.
    /// Takes the repository's shared lock: call it before starting a
    /// producer, so a dump is not taken only to be thrown away for want of
    /// a lock.
    pub fn begin(
        repo: &Arc<Repository>,
        source: &'static str,
        labels: Vec<Vec<u8>>,
        opts: &SnapshotOptions,
    ) -> Result<Self> {
        let lock = repo.lock_shared("snapshot")?;
        // SAFETY: these calls have no preconditions.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let mut owners = Owners::default();
        let host = opts.host.clone().unwrap_or_else(crate::system::hostname);
        let like = crate::delta::stream_parent(repo, source, &host, &labels);
        let writer = BlobWriter::new(repo.clone(), opts.compression);
        if let Some(cache) = crate::delta::base_cache(repo, source, &host, &labels) {
            writer.cache_bases(cache);
        }
        Ok(StreamSet {
            like,
            repo: repo.clone(),
            writer,
            seed: repo.keys().chunker_seed(),
            draft: draft(repo, lock, source, labels, None)?,
            owner: (uid, gid, owners.user(uid), owners.group(gid)),
            files: Mutex::new(BTreeMap::new()),
            parts: Mutex::new(BTreeMap::new()),
        })
    }

    /// Check a path before starting the program that will produce it.
    pub fn check_path(path: &str) -> Result<()> {
        stream_path(path).map(|_| ())
    }

    /// Store one stream at `path`. Safe to call from several threads at
    /// once; each call chunks on its own thread and hashes on the rayon pool.
    /// Returns the stream's length.
    pub fn add(&self, path: &str, reader: impl Read + Send, progress: &Progress) -> Result<u64> {
        let (parts, stored) = self.store(path, reader, progress, None)?;
        let size = stored.size;
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if files.insert(parts, stored).is_some() {
            return Err(Error::invalid(format!("stream '{path}' stored twice")));
        }
        // Each stream becomes a file of the snapshot.
        progress
            .files
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(size)
    }

    /// Store part `index` (from 0, without gaps) of the stream at `path`.
    /// Parts are chunked separately, by callers in parallel, and joined in
    /// order into one file at commit. Each part's new chunks are stored as
    /// deltas against the chunks lying in `parent_range` of the parent's
    /// file (the same part of an earlier snapshot). Returns the part's
    /// length.
    pub fn add_part(
        &self,
        path: &str,
        index: usize,
        parent_range: std::ops::Range<u64>,
        reader: impl Read + Send,
        progress: &Progress,
    ) -> Result<u64> {
        let (parts, stored) = self.store(path, reader, progress, Some(parent_range))?;
        let size = stored.size;
        let mut all = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let file = all.entry(parts).or_default();
        if file.is_empty() {
            progress
                .files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if file.insert(index, stored).is_some() {
            return Err(Error::invalid(format!(
                "part {index} of stream '{path}' stored twice"
            )));
        }
        Ok(size)
    }

    fn store(
        &self,
        path: &str,
        reader: impl Read + Send,
        progress: &Progress,
        parent_range: Option<std::ops::Range<u64>>,
    ) -> Result<(StreamPath, Stored)> {
        let parts = stream_path(path)?;
        interrupt::check()?;
        let like = self
            .like
            .as_ref()
            .and_then(|p| p.counterpart_within(&self.repo, &parts, parent_range));
        let (chunks, size) = save_stream(&self.writer, reader, self.seed, progress, like.as_ref())
            .map_err(|e| match e {
                StreamError::Read(e) => Error::io(format!("reading {path}"), e),
                StreamError::Repo(e) => e,
            })?;
        Ok((parts, Stored { chunks, size }))
    }

    /// A fact the parent snapshot (the one deltas are taken against)
    /// recorded under `key` in its meta.
    pub fn parent_meta(&self, key: &str) -> Option<&[u8]> {
        let parent = self.like.as_ref()?;
        parent
            .meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_slice())
    }

    /// Every stream, those stored in parts joined into one file each.
    fn all_files(&self) -> Result<Vec<(StreamPath, Stored)>> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        for (path, pieces) in parts.iter() {
            let name = || String::from_utf8_lossy(&path.join(&b'/')).into_owned();
            if !pieces.keys().copied().eq(0..pieces.len()) {
                return Err(Error::invalid(format!(
                    "stream '{}' is missing a part",
                    name()
                )));
            }
            let joined = Stored {
                chunks: pieces
                    .values()
                    .flat_map(|p| p.chunks.iter().copied())
                    .collect(),
                size: pieces.values().map(|p| p.size).sum(),
            };
            if files.insert(path.clone(), joined).is_some() {
                return Err(Error::invalid(format!("stream '{}' stored twice", name())));
            }
        }
        Ok(files.into_iter().collect())
    }

    fn entry(
        &self,
        name: Vec<u8>,
        kind: EntryKind,
        mode: u32,
        size: u64,
        content: Content,
    ) -> Entry {
        let (uid, gid, user, group) = &self.owner;
        Entry {
            name,
            kind,
            flags: 0,
            mode,
            uid: *uid,
            gid: *gid,
            user: user.clone(),
            group: group.clone(),
            mtime: self.draft.time,
            ctime: self.draft.time,
            inode: 0,
            dev: 0,
            size,
            content,
        }
    }

    /// Save the folder holding `files` (paths relative to it, sorted) and
    /// everything below it; returns its tree id and the number of folders
    /// below it.
    fn save_dir(&self, files: &[(StreamPath, Stored)], depth: usize) -> Result<(Id, u64)> {
        let mut entries = Vec::new();
        let mut dirs = 0;
        let mut i = 0;
        while i < files.len() {
            let name = files[i].0[depth].clone();
            let end = i + files[i..]
                .iter()
                .take_while(|(p, _)| p[depth] == name)
                .count();
            let group = &files[i..end];
            let is_file = group.len() == 1 && group[0].0.len() == depth + 1;
            if is_file {
                let stored = &group[0].1;
                let content = Content::File {
                    chunks: stored.chunks.clone(),
                };
                entries.push(self.entry(name, EntryKind::File, 0o600, stored.size, content));
            } else if group.iter().any(|(p, _)| p.len() == depth + 1) {
                return Err(Error::invalid(format!(
                    "'{}' is both a stream and a folder of streams",
                    String::from_utf8_lossy(&name)
                )));
            } else {
                let (subtree, below) = self.save_dir(group, depth + 1)?;
                dirs += below + 1;
                entries.push(self.entry(name, EntryKind::Dir, 0o700, 0, Content::Dir { subtree }));
            }
            i = end;
        }
        let id = self
            .writer
            .save(BlobKind::Tree, Tree { entries }.encode())?;
        Ok((id, dirs))
    }

    /// Build the trees, flush the data and index, then record the snapshot.
    pub fn commit(self, opts: &SnapshotOptions) -> Result<SnapshotOutcome> {
        self.commit_with_warnings(opts, vec![])
    }

    /// Store the snapshot, reporting what the source could not carry (the
    /// snapshot is recorded; the command exits 3).
    pub fn commit_with_warnings(
        self,
        opts: &SnapshotOptions,
        warnings: Vec<String>,
    ) -> Result<SnapshotOutcome> {
        let files = self.all_files()?;
        let (root, dirs) = self.save_dir(&files, 0)?;
        let counts = ReadCounts {
            files: files.len() as u64,
            dirs,
            bytes_read: files.iter().map(|(_, stored)| stored.size).sum(),
            total_bytes: files.iter().map(|(_, stored)| stored.size).sum(),
        };
        commit(
            &self.repo,
            self.writer,
            self.draft,
            root,
            counts,
            warnings,
            opts,
        )
    }
}
