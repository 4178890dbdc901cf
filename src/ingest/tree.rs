//! File trees: walk paths, chunk changed files, reuse the parent snapshot's
//! chunk lists for unchanged ones, and write one tree blob per directory.

use std::collections::{BTreeMap, HashSet};
use std::fs::Metadata;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::delta::Counterpart;
use crate::error::{Error, Result};
use crate::format::tree::{ChunkRef, Content, Entry, EntryKind, Tree};
use crate::format::{BlobKind, Id, Timestamp};
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::system::Owners;

use super::stream::{save_in_turn, save_small, save_stream, StreamError};

/// Walks file trees into a repository. One per snapshot run; the entries of
/// each folder are saved in parallel.
pub struct TreeSaver<'a> {
    writer: &'a BlobWriter,
    seed: u64,
    owners: Mutex<Owners>,
    progress: &'a Progress,
    /// Problems that left an entry out; the snapshot records the rest.
    warnings: Mutex<Vec<String>>,
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
}

/// What a walk saw, for the snapshot's summary.
pub struct WalkReport {
    pub files: u64,
    pub dirs: u64,
    /// Bytes of the files saved, unchanged ones included.
    pub bytes: u64,
    pub warnings: Vec<String>,
}

/// The paths given on the command line, arranged as the directories above
/// them, so `/srv/a` and `/srv/b` share one `srv` tree.
#[derive(Default)]
struct VirtualDir {
    children: BTreeMap<Vec<u8>, VirtualNode>,
}

enum VirtualNode {
    Dir(PathBuf, VirtualDir),
    Real(PathBuf),
}

/// Absolute, with `.` and `..` resolved lexically (symlinks are not followed:
/// a symlink given on the command line is stored as a symlink).
pub fn normalize(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(format!("{}", path.display()), e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

fn timestamp(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

impl<'a> TreeSaver<'a> {
    pub fn new(writer: &'a BlobWriter, progress: &'a Progress) -> Self {
        let seed = writer.repo().keys().chunker_seed();
        // Chunk-sized buffers (a chunk, its compressed and sealed forms) stay
        // below the threshold and are reused; pack buffers go back to the
        // system when uploaded. Peak memory of a first /usr/lib snapshot:
        // 128 MiB with glibc's moving threshold, see benches/README.md.
        let chunk_max = writer.repo().config().chunker.max as usize;
        crate::system::return_large_blocks_from(2 * chunk_max);
        TreeSaver {
            writer,
            seed,
            owners: Mutex::new(Owners::default()),
            progress,
            warnings: Mutex::new(vec![]),
            files: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    fn owners(&self) -> std::sync::MutexGuard<'_, Owners> {
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn report(self) -> WalkReport {
        WalkReport {
            files: self.files.into_inner(),
            dirs: self.dirs.into_inner(),
            bytes: self.bytes.into_inner(),
            warnings: self
                .warnings
                .into_inner()
                .unwrap_or_else(|p| p.into_inner()),
        }
    }

    fn repo(&self) -> &Repository {
        self.writer.repo()
    }

    /// Save `paths` (already normalized) and return the root tree's id.
    pub fn save_paths(&self, paths: &[PathBuf], parent_root: Option<&Id>) -> Result<Id> {
        let mut root = VirtualDir::default();
        for path in paths {
            let mut dir = &mut root;
            let mut so_far = PathBuf::from("/");
            let names: Vec<_> = path
                .components()
                .filter_map(|c| match c {
                    Component::Normal(n) => Some(n.to_owned()),
                    _ => None,
                })
                .collect();
            if names.is_empty() {
                // Snapshot of "/": the root itself is the real directory.
                return self.save_real_dir(Path::new("/"), parent_root);
            }
            for (i, name) in names.iter().enumerate() {
                so_far.push(name);
                let key = name.as_bytes().to_vec();
                if i + 1 == names.len() {
                    dir.children.insert(key, VirtualNode::Real(so_far.clone()));
                    break;
                }
                let node = dir
                    .children
                    .entry(key)
                    .or_insert_with(|| VirtualNode::Dir(so_far.clone(), VirtualDir::default()));
                match node {
                    VirtualNode::Dir(_, d) => dir = d,
                    // An ancestor was given too: it covers this path already.
                    VirtualNode::Real(_) => break,
                }
            }
        }
        let parent = self.load_parent(parent_root);
        self.save_virtual(&root, parent.as_ref())
    }

    fn load_parent(&self, id: Option<&Id>) -> Option<Tree> {
        let id = id?;
        // A parent we cannot read only costs re-reading files.
        self.repo().read_tree(id).ok()
    }

    fn save_virtual(&self, dir: &VirtualDir, parent: Option<&Tree>) -> Result<Id> {
        let indexed = self.indexed_chunks(parent)?;
        let mut entries = Vec::new();
        for (name, node) in &dir.children {
            let old = parent.and_then(|t| t.find(name));
            let entry = match node {
                VirtualNode::Real(path) => self.entry_for(path, name.clone(), old, &indexed)?,
                VirtualNode::Dir(path, sub) => {
                    let old_tree = old
                        .and_then(|e| e.subtree())
                        .and_then(|id| self.load_parent(Some(&id)));
                    let meta = match std::fs::symlink_metadata(path) {
                        Ok(m) => m,
                        Err(e) => {
                            self.warn(path, &e);
                            continue;
                        }
                    };
                    let subtree = self.save_virtual(sub, old_tree.as_ref())?;
                    self.dirs.fetch_add(1, Ordering::Relaxed);
                    Some(self.make_entry(
                        name.clone(),
                        &meta,
                        EntryKind::Dir,
                        Content::Dir { subtree },
                    ))
                }
            };
            entries.extend(entry);
        }
        self.save_tree(entries)
    }

    fn save_tree(&self, mut entries: Vec<Entry>) -> Result<Id> {
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries.dedup_by(|a, b| a.name == b.name);
        self.writer.save(BlobKind::Tree, Tree { entries }.encode())
    }

    fn save_real_dir(&self, path: &Path, parent: Option<&Id>) -> Result<Id> {
        let parent = self.load_parent(parent);
        let read = match std::fs::read_dir(path) {
            Ok(r) => r,
            Err(e) => {
                self.warn(path, &e);
                return self.save_tree(vec![]);
            }
        };
        let mut names = Vec::new();
        for item in read {
            match item {
                Ok(item) => names.push(item.file_name().into_vec()),
                Err(e) => self.warn(path, &e),
            }
        }
        names.sort();
        // Every entry in parallel, folders included: reading and hashing
        // files is most of a snapshot's work, and many folders hold only a
        // few files each, so parallelism within one folder is not enough.
        use rayon::prelude::*;
        let parent = parent.as_ref();
        let indexed = self.indexed_chunks(parent)?;
        let entries = names
            .into_par_iter()
            .map(|name| {
                let child = path.join(std::ffi::OsStr::from_bytes(&name));
                let old = parent.and_then(|t| t.find(&name));
                self.entry_for(&child, name, old, &indexed)
            })
            .collect::<Result<Vec<Option<Entry>>>>()?;
        self.save_tree(entries.into_iter().flatten().collect())
    }

    /// Which chunks of the files in a parent folder are still indexed, in
    /// one look at the index for the whole folder (none without a parent:
    /// nothing is then reused).
    fn indexed_chunks(&self, parent: Option<&Tree>) -> Result<HashSet<Id>> {
        let Some(parent) = parent else {
            return Ok(HashSet::new());
        };
        let chunks = parent
            .entries
            .iter()
            .filter(|e| e.kind == EntryKind::File)
            .flat_map(|e| e.chunks())
            .map(|c| &c.id);
        self.repo().usable_data_blobs(chunks)
    }

    fn file_entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        meta: &Metadata,
        outcome: FileOutcome,
    ) -> Option<Entry> {
        match outcome {
            FileOutcome::Stored { chunks, size } => {
                self.files.fetch_add(1, Ordering::Relaxed);
                self.bytes.fetch_add(size, Ordering::Relaxed);
                let mut e = self.make_entry(name, meta, EntryKind::File, Content::File { chunks });
                e.size = size;
                Some(e)
            }
            FileOutcome::Unreadable(e) => {
                self.warn(path, &e);
                None
            }
        }
    }

    /// The entry for one real path, or `None` (with a warning) when it
    /// cannot be read. Only repository errors abort the snapshot.
    fn entry_for(
        &self,
        path: &Path,
        name: Vec<u8>,
        old: Option<&Entry>,
        indexed: &HashSet<Id>,
    ) -> Result<Option<Entry>> {
        crate::system::interrupt::check()?;
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.warn(path, &e);
                return Ok(None);
            }
        };
        let ft = meta.file_type();
        let (kind, content) = if ft.is_file() {
            let outcome = file_content(
                self.writer,
                self.seed,
                self.progress,
                path,
                &meta,
                old,
                indexed,
            )?;
            return Ok(self.file_entry(path, name, &meta, outcome));
        } else if ft.is_dir() {
            let subtree = self.save_real_dir(path, old.and_then(|e| e.subtree()).as_ref())?;
            self.dirs.fetch_add(1, Ordering::Relaxed);
            (EntryKind::Dir, Content::Dir { subtree })
        } else if ft.is_symlink() {
            match std::fs::read_link(path) {
                Ok(t) => (
                    EntryKind::Symlink,
                    Content::Symlink {
                        target: t.into_os_string().into_vec(),
                    },
                ),
                Err(e) => {
                    self.warn(path, &e);
                    return Ok(None);
                }
            }
        } else if ft.is_fifo() {
            (EntryKind::Fifo, Content::Other)
        } else if ft.is_socket() {
            (EntryKind::Socket, Content::Other)
        } else if ft.is_char_device() {
            (EntryKind::CharDevice, Content::Device { rdev: meta.rdev() })
        } else {
            (
                EntryKind::BlockDevice,
                Content::Device { rdev: meta.rdev() },
            )
        };
        Ok(Some(self.make_entry(name, &meta, kind, content)))
    }

    fn make_entry(
        &self,
        name: Vec<u8>,
        meta: &Metadata,
        kind: EntryKind,
        content: Content,
    ) -> Entry {
        // One lock for both names: the guard lives to the end of a statement,
        // and locking twice in one would wait on itself.
        let (user, group) = {
            let mut owners = self.owners();
            (owners.user(meta.uid()), owners.group(meta.gid()))
        };
        Entry {
            name,
            kind,
            flags: 0,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            user,
            group,
            mtime: timestamp(meta.mtime(), meta.mtime_nsec()),
            ctime: timestamp(meta.ctime(), meta.ctime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
            size: if matches!(kind, EntryKind::Symlink | EntryKind::Dir) {
                0
            } else {
                meta.size()
            },
            content,
        }
    }

    fn warn(&self, path: &Path, e: &std::io::Error) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(format!("{}: {e}", path.display()));
    }
}

/// What became of one regular file.
enum FileOutcome {
    Stored {
        chunks: Vec<ChunkRef>,
        size: u64,
    },
    /// The file could not be opened or read: left out with a warning.
    Unreadable(std::io::Error),
}

/// Chunk a file, or reuse the parent's chunk list when the file is unchanged
/// (same size, mtime, ctime and inode) and all its chunks are still indexed
/// (`indexed`: what the index holds of its folder's files).
/// Only repository errors are errors; a file we cannot read is an outcome.
fn file_content(
    writer: &BlobWriter,
    seed: u64,
    progress: &Progress,
    path: &Path,
    meta: &Metadata,
    old: Option<&Entry>,
    indexed: &HashSet<Id>,
) -> Result<FileOutcome> {
    if let Some(old) = old {
        let unchanged = old.kind == EntryKind::File
            && old.flags == 0
            && old.size == meta.size()
            && old.mtime == timestamp(meta.mtime(), meta.mtime_nsec())
            && old.ctime == timestamp(meta.ctime(), meta.ctime_nsec())
            && old.inode == meta.ino();
        if unchanged && old.chunks().iter().all(|c| indexed.contains(&c.id)) {
            progress.files.fetch_add(1, Ordering::Relaxed);
            progress
                .bytes_skipped
                .fetch_add(old.size, Ordering::Relaxed);
            return Ok(FileOutcome::Stored {
                chunks: old.chunks().to_vec(),
                size: old.size,
            });
        }
    }
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => return Ok(FileOutcome::Unreadable(e)),
    };
    let min = u64::from(writer.repo().config().chunker.min);
    let like = old
        .filter(|o| o.kind == EntryKind::File)
        .and_then(|o| Counterpart::new(o.chunks()));
    let like = like.as_ref();
    let stored = if meta.size() < min {
        // Smaller than the smallest chunk: one read, one chunk, no chunker.
        save_small(writer, file, min, seed, progress, like)
    } else if meta.size() < PIPELINE_THRESHOLD {
        // Other files are being read alongside: no extra thread needed.
        save_in_turn(writer, file, seed, progress, like)
    } else {
        save_stream(writer, file, seed, progress, like)
    };
    match stored {
        Ok((chunks, size)) => {
            progress.files.fetch_add(1, Ordering::Relaxed);
            Ok(FileOutcome::Stored { chunks, size })
        }
        Err(StreamError::Read(e)) => Ok(FileOutcome::Unreadable(e)),
        Err(StreamError::Repo(e)) => Err(e),
    }
}

/// Files from this size on get a chunking thread of their own
/// (`save_stream`); smaller ones are cut and hashed in turn by the walking
/// thread, which keeps memory down while many files are read at once.
const PIPELINE_THRESHOLD: u64 = 16 << 20;

/// Threads that walk and read file trees. Reading is I/O bound when the
/// page cache is cold (a nightly backup's normal case), and more requests in
/// flight than cores keep the disk busy; the CPU-bound sealing has its own
/// threads.
const WALK_THREADS: usize = 12;

/// Threads for walking trees whose entries may each run `save_stream`:
/// kept apart from rayon's global pool, which the streams' readers use, so
/// walkers blocked on a stream cannot starve the work feeding it.
pub fn walk_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(
            WALK_THREADS.max(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        )
        .thread_name(|i| format!("vault-walk-{i}"))
        .stack_size(crate::system::WALK_STACK)
        .build()
        .map_err(|e| {
            Error::new(
                crate::ErrorKind::Io,
                format!("cannot start walking threads: {e}"),
            )
        })
}
