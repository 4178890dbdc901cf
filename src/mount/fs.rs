//! The FUSE file system: made-up folders from the snapshot list (layout.rs)
//! and, below each snapshot, its trees. Trees are read when a folder is
//! looked into, file data only when a file is read, and then only the
//! chunks covering the bytes asked for.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEntry, ReplyOpen, ReplyXattr, Request,
};

use super::chunks::{chunk_starts, chunks_covering, ChunkCache, Counters};
use super::layout::{self, Layout};
use super::MountStats;
use crate::error::{ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::tree::{Content, Entry, EntryKind, Tree};
use crate::format::{BlobKind, Id, Timestamp};
use crate::repo::{ObjectKind, Repository};

/// Snapshot contents never change: the kernel may keep their attributes.
const TTL_FIXED: Duration = Duration::from_secs(3600);
/// Made-up folders follow the snapshot list.
const TTL_LIVE: Duration = Duration::from_secs(1);
/// Decrypted chunks kept for random reads and read-ahead.
const CHUNK_CACHE_BYTES: u64 = 64 << 20;
/// Decoded trees kept, so listing and looking up in one big folder reads
/// its tree once.
const TREE_CACHE: usize = 64;
/// Chunks fetched ahead of a sequential reader.
const PREFETCH: usize = 3;
/// The extended attribute on the mount's root that reports counters.
pub const STATS_XATTR: &str = "user.vault.stats";

enum Node {
    /// A made-up folder, by its path in the layout.
    Virtual(String),
    /// A made-up symlink: its folder and name in the layout, and its
    /// target when last looked up (a `latest` link moves; readlink asks
    /// the layout again).
    Link {
        dir: String,
        name: String,
        target: String,
    },
    SnapshotRoot {
        root: Id,
        time: Timestamp,
    },
    Entry(Entry),
}

#[derive(Hash, PartialEq, Eq)]
enum Key {
    Virtual(String),
    Child(u64, Vec<u8>),
}

/// Inode numbers are handed out as names are first seen and kept for the
/// life of the mount, so the same path always has the same number.
struct Inodes {
    nodes: Vec<Arc<Node>>,
    keys: HashMap<Key, u64>,
}

impl Inodes {
    fn get(&self, ino: u64) -> Option<Arc<Node>> {
        self.nodes
            .get(usize::try_from(ino).ok()?.checked_sub(1)?)
            .cloned()
    }

    /// The inode for `key`; a made-up node is replaced (a `latest` link
    /// moves), a snapshot entry never changes.
    fn intern(&mut self, key: Key, node: impl FnOnce() -> Node) -> u64 {
        if let Some(&ino) = self.keys.get(&key) {
            if matches!(key, Key::Virtual(_)) {
                self.nodes[ino as usize - 1] = Arc::new(node());
            }
            return ino;
        }
        self.nodes.push(Arc::new(node()));
        let ino = self.nodes.len() as u64;
        self.keys.insert(key, ino);
        ino
    }
}

struct SnapshotList {
    known: HashMap<Id, Snapshot>,
    layout: Arc<Layout>,
    checked: Instant,
}

#[derive(Debug, Default)]
pub struct Stats {
    pub trees_loaded: AtomicU64,
    pub reads: AtomicU64,
}

#[derive(Clone)]
pub struct StatsHandle {
    chunks: Arc<Counters>,
    fs: Arc<Stats>,
}

impl StatsHandle {
    pub fn read(&self) -> MountStats {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MountStats {
            chunks_fetched: load(&self.chunks.fetched),
            bytes_fetched: load(&self.chunks.fetched_bytes),
            chunk_cache_hits: load(&self.chunks.hits),
            trees_loaded: load(&self.fs.trees_loaded),
            reads: load(&self.fs.reads),
        }
    }
}

/// What file reads share, also with read-ahead running on other threads.
struct Reader {
    repo: Arc<Repository>,
    chunks: ChunkCache,
}

impl Reader {
    fn chunk(&self, id: &Id) -> std::result::Result<Arc<Vec<u8>>, String> {
        self.chunks
            .get(id, || self.repo.read_blob(BlobKind::Data, id))
    }
}

struct OpenFile {
    entry: Entry,
    starts: Vec<u64>,
    /// Where the last read ended, to spot sequential reading.
    next: AtomicU64,
}

pub struct VaultFs {
    reader: Arc<Reader>,
    inodes: RwLock<Inodes>,
    snapshots: Mutex<SnapshotList>,
    trees: Mutex<Vec<(Id, Arc<Tree>)>>,
    handles: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    refresh: Duration,
    owner: (u32, u32),
    started: SystemTime,
    stats: Arc<Stats>,
}

fn system_time(t: Timestamp) -> SystemTime {
    if t.secs >= 0 {
        UNIX_EPOCH + Duration::new(t.secs as u64, t.nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(t.secs.unsigned_abs())
            + Duration::from_nanos(t.nanos.into())
    }
}

fn file_type(kind: EntryKind) -> FileType {
    match kind {
        EntryKind::File => FileType::RegularFile,
        EntryKind::Dir => FileType::Directory,
        EntryKind::Symlink => FileType::Symlink,
        EntryKind::Fifo => FileType::NamedPipe,
        EntryKind::CharDevice => FileType::CharDevice,
        EntryKind::BlockDevice => FileType::BlockDevice,
        EntryKind::Socket => FileType::Socket,
    }
}

fn errno(e: &crate::Error) -> Errno {
    match e.kind() {
        ErrorKind::NotFound => Errno::ENOENT,
        _ => Errno::EIO,
    }
}

impl VaultFs {
    pub fn new(repo: Arc<Repository>, refresh: Duration) -> Result<Self> {
        let stats = Arc::new(Stats::default());
        // SAFETY: getuid and getgid have no preconditions.
        let owner = unsafe { (libc::getuid(), libc::getgid()) };
        let fs = VaultFs {
            reader: Arc::new(Reader {
                repo,
                chunks: ChunkCache::new(CHUNK_CACHE_BYTES),
            }),
            inodes: RwLock::new(Inodes {
                nodes: Vec::new(),
                keys: HashMap::new(),
            }),
            snapshots: Mutex::new(SnapshotList {
                known: HashMap::new(),
                layout: Arc::new(Layout::default()),
                checked: Instant::now(),
            }),
            trees: Mutex::new(Vec::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            refresh,
            owner,
            started: SystemTime::now(),
            stats,
        };
        fs.inodes_mut()
            .intern(Key::Virtual(String::new()), || Node::Virtual(String::new()));
        {
            let mut list = fs.snapshots.lock().unwrap_or_else(|p| p.into_inner());
            fs.reload(&mut list)?;
        }
        Ok(fs)
    }

    fn inodes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Inodes> {
        self.inodes.write().unwrap_or_else(|p| p.into_inner())
    }

    fn node(&self, ino: INodeNo) -> Option<Arc<Node>> {
        self.inodes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(ino.0)
    }

    /// Pick up snapshots written or removed since the last look; new ones
    /// bring new index objects, read before their files are.
    fn reload(&self, list: &mut SnapshotList) -> Result<()> {
        let repo = &self.reader.repo;
        let stored: HashSet<Id> = repo
            .list_objects(ObjectKind::Snapshot)?
            .into_iter()
            .collect();
        let before = list.known.len();
        list.known.retain(|id, _| stored.contains(id));
        let mut changed = list.known.len() != before;
        let new: Vec<Id> = stored
            .iter()
            .filter(|id| !list.known.contains_key(id))
            .copied()
            .collect();
        if !new.is_empty() {
            repo.sync_index()?;
            for id in new {
                // One unreadable snapshot should not hide the others.
                match repo.load_snapshot(&id) {
                    Ok(s) => {
                        list.known.insert(id, s);
                        changed = true;
                    }
                    Err(e) => eprintln!("vault: skipping snapshot {}: {e}", id.short()),
                }
            }
        }
        if changed || list.layout.children("").is_none() {
            let mut all: Vec<(Id, Snapshot)> =
                list.known.iter().map(|(i, s)| (*i, s.clone())).collect();
            all.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
            list.layout = Arc::new(Layout::build(&all));
        }
        Ok(())
    }

    fn layout(&self) -> Arc<Layout> {
        let mut list = self.snapshots.lock().unwrap_or_else(|p| p.into_inner());
        if list.checked.elapsed() >= self.refresh {
            if let Err(e) = self.reload(&mut list) {
                eprintln!("vault: cannot refresh the snapshot list: {e}");
            }
            list.checked = Instant::now();
        }
        list.layout.clone()
    }

    fn tree(&self, id: &Id) -> Result<Arc<Tree>> {
        {
            let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(at) = trees.iter().position(|(t, _)| t == id) {
                let hit = trees.remove(at);
                let tree = hit.1.clone();
                trees.push(hit);
                return Ok(tree);
            }
        }
        let tree = Arc::new(self.reader.repo.read_tree(id)?);
        self.stats.trees_loaded.fetch_add(1, Ordering::Relaxed);
        let mut trees = self.trees.lock().unwrap_or_else(|p| p.into_inner());
        if trees.len() >= TREE_CACHE {
            trees.remove(0);
        }
        trees.push((*id, tree.clone()));
        Ok(tree)
    }

    /// The tree a folder node lists, if it is a snapshot folder.
    fn tree_of(node: &Node) -> Option<Id> {
        match node {
            Node::SnapshotRoot { root, .. } => Some(*root),
            Node::Entry(e) => e.subtree(),
            _ => None,
        }
    }

    fn virtual_node(dir: &str, name: &str, node: &layout::Node) -> Node {
        match node {
            layout::Node::Dir if dir.is_empty() => Node::Virtual(name.to_string()),
            layout::Node::Dir => Node::Virtual(format!("{dir}/{name}")),
            layout::Node::Snapshot { root, time, .. } => Node::SnapshotRoot {
                root: *root,
                time: *time,
            },
            layout::Node::Link(target) => Node::Link {
                dir: dir.to_string(),
                name: name.to_string(),
                target: target.clone(),
            },
        }
    }

    /// Where a made-up link points now; the kernel may hold on to the
    /// inode longer than the snapshot list stays the same.
    fn link_target(&self, node: &Node) -> Option<String> {
        let Node::Link { dir, name, target } = node else {
            return None;
        };
        match self.layout().child(dir, name) {
            Some(layout::Node::Link(now)) => Some(now.clone()),
            Some(_) => None,
            // Gone from the list (forgotten): still the last known target.
            None => Some(target.clone()),
        }
    }

    /// Attributes of a node; EOVERFLOW for a device number FUSE cannot
    /// carry (its `rdev` is the kernel's 32-bit encoding, which a host
    /// `dev_t` below 2^32 already is).
    fn attr(&self, ino: u64, node: &Node) -> std::result::Result<(Duration, FileAttr), Errno> {
        let mut attr = FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind: FileType::Directory,
            perm: 0o555,
            nlink: 2,
            uid: self.owner.0,
            gid: self.owner.1,
            rdev: 0,
            blksize: 128 << 10,
            flags: 0,
        };
        match node {
            Node::Virtual(_) => Ok((TTL_LIVE, attr)),
            Node::Link { .. } => {
                attr.kind = FileType::Symlink;
                attr.perm = 0o777;
                attr.nlink = 1;
                attr.size = self.link_target(node).map_or(0, |t| t.len() as u64);
                Ok((TTL_LIVE, attr))
            }
            Node::SnapshotRoot { time, .. } => {
                let t = system_time(*time);
                (attr.atime, attr.mtime, attr.ctime) = (t, t, t);
                Ok((TTL_FIXED, attr))
            }
            Node::Entry(e) => {
                attr.kind = file_type(e.kind);
                attr.perm = (e.mode & 0o7777) as u16;
                attr.nlink = if e.kind == EntryKind::Dir { 2 } else { 1 };
                (attr.uid, attr.gid) = (e.uid, e.gid);
                attr.size = match &e.content {
                    Content::Symlink { target } => target.len() as u64,
                    Content::Dir { .. } => 0,
                    _ => e.size,
                };
                attr.blocks = attr.size.div_ceil(512);
                attr.mtime = system_time(e.mtime);
                attr.atime = attr.mtime;
                attr.ctime = system_time(e.ctime);
                if let Content::Device { rdev } = e.content {
                    attr.rdev = u32::try_from(rdev).map_err(|_| Errno::EOVERFLOW)?;
                }
                Ok((TTL_FIXED, attr))
            }
        }
    }

    /// The children of a folder node from `start` on, as (inode, kind, name).
    fn list(&self, ino: u64, node: &Node, start: usize) -> Result<Vec<(u64, FileType, Vec<u8>)>> {
        let mut out = Vec::new();
        match node {
            Node::Virtual(path) => {
                let layout = self.layout();
                let Some(children) = layout.children(path) else {
                    return Ok(out);
                };
                let mut inodes = self.inodes_mut();
                for (name, child) in children.iter().skip(start) {
                    let kind = match child {
                        layout::Node::Link(_) => FileType::Symlink,
                        _ => FileType::Directory,
                    };
                    let key = Key::Virtual(if path.is_empty() {
                        name.clone()
                    } else {
                        format!("{path}/{name}")
                    });
                    let child_ino = inodes.intern(key, || Self::virtual_node(path, name, child));
                    out.push((child_ino, kind, name.as_bytes().to_vec()));
                }
            }
            other => {
                let Some(tree) = Self::tree_of(other) else {
                    return Ok(out);
                };
                let tree = self.tree(&tree)?;
                let mut inodes = self.inodes_mut();
                for e in tree.entries.iter().skip(start) {
                    let child_ino =
                        inodes.intern(Key::Child(ino, e.name.clone()), || Node::Entry(e.clone()));
                    out.push((child_ino, file_type(e.kind), e.name.clone()));
                }
            }
        }
        Ok(out)
    }

    fn lookup_child(
        &self,
        parent: u64,
        name: &OsStr,
    ) -> std::result::Result<(u64, Arc<Node>), Errno> {
        let node = self.node(INodeNo(parent)).ok_or(Errno::ENOENT)?;
        let ino = match &*node {
            Node::Virtual(path) => {
                let layout = self.layout();
                let name = name.to_str().ok_or(Errno::ENOENT)?;
                let child = layout.child(path, name).ok_or(Errno::ENOENT)?;
                let key = Key::Virtual(if path.is_empty() {
                    name.to_string()
                } else {
                    format!("{path}/{name}")
                });
                self.inodes_mut()
                    .intern(key, || Self::virtual_node(path, name, child))
            }
            Node::Link { .. } => return Err(Errno::ENOTDIR),
            other => {
                let tree = Self::tree_of(other).ok_or(Errno::ENOTDIR)?;
                let tree = self.tree(&tree).map_err(|e| {
                    eprintln!("vault: {e}");
                    errno(&e)
                })?;
                let entry = tree.find(name.as_bytes()).ok_or(Errno::ENOENT)?;
                self.inodes_mut()
                    .intern(Key::Child(parent, entry.name.clone()), || {
                        Node::Entry(entry.clone())
                    })
            }
        };
        let node = self.node(INodeNo(ino)).ok_or(Errno::ENOENT)?;
        Ok((ino, node))
    }

    /// A handle on the counters that outlives handing the file system
    /// to the kernel session.
    pub fn stats_handle(&self) -> StatsHandle {
        StatsHandle {
            chunks: self.reader.chunks.counters.clone(),
            fs: self.stats.clone(),
        }
    }

    fn read_range(
        &self,
        file: &OpenFile,
        offset: u64,
        size: u32,
    ) -> std::result::Result<Vec<u8>, String> {
        let end = offset.saturating_add(u64::from(size)).min(file.entry.size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut out = Vec::with_capacity((end - offset) as usize);
        let chunks = file.entry.chunks();
        let span = chunks_covering(&file.starts, offset, end);
        for i in span.clone() {
            let data = self.reader.chunk(&chunks[i].id)?;
            let from = offset.max(file.starts[i]) - file.starts[i];
            let to = end.min(file.starts[i + 1]) - file.starts[i];
            let (from, to) = (from as usize, (to as usize).min(data.len()));
            out.extend_from_slice(&data[from.min(to)..to]);
        }
        // Content a repair marked lost reads as zeros, as a restore leaves it.
        out.resize((end - offset) as usize, 0);
        let sequential = file.next.swap(end, Ordering::Relaxed) == offset;
        if sequential {
            self.prefetch(file, span.end);
        }
        Ok(out)
    }

    /// Start fetching the chunks after `from` that are not cached yet.
    fn prefetch(&self, file: &OpenFile, from: usize) {
        let chunks = file.entry.chunks();
        for c in chunks.iter().skip(from).take(PREFETCH) {
            if self.reader.chunks.has(&c.id) {
                continue;
            }
            let reader = self.reader.clone();
            let id = c.id;
            rayon::spawn(move || {
                // A failure shows when the reader gets there.
                let _ = reader.chunk(&id);
            });
        }
    }
}

impl Filesystem for VaultFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Larger kernel read-ahead means fewer, larger reads; the kernel
        // caps it at what it supports.
        if let Err(nearest) = config.set_max_readahead(1 << 20) {
            let _ = config.set_max_readahead(nearest);
        }
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.lookup_child(parent.0, name) {
            Ok((ino, node)) => match self.attr(ino, &node) {
                Ok((ttl, attr)) => reply.entry(&ttl, &attr, Generation(0)),
                Err(e) => reply.error(e),
            },
            Err(e) => reply.error(e),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.node(ino) {
            Some(node) => match self.attr(ino.0, &node) {
                Ok((ttl, attr)) => reply.attr(&ttl, &attr),
                Err(e) => reply.error(e),
            },
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.node(ino).as_deref() {
            Some(link @ Node::Link { .. }) => match self.link_target(link) {
                Some(target) => reply.data(target.as_bytes()),
                None => reply.error(Errno::ENOENT),
            },
            Some(Node::Entry(Entry {
                content: Content::Symlink { target },
                ..
            })) => reply.data(target),
            Some(_) => reply.error(Errno::EINVAL),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if flags.acc_mode() != OpenAccMode::O_RDONLY {
            return reply.error(Errno::EROFS);
        }
        let entry = match self.node(ino).as_deref() {
            Some(Node::Entry(e)) if e.kind == EntryKind::File => e.clone(),
            Some(Node::Entry(_)) => return reply.error(Errno::EACCES),
            Some(_) => return reply.error(Errno::EISDIR),
            None => return reply.error(Errno::ENOENT),
        };
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let file = OpenFile {
            starts: chunk_starts(entry.chunks()),
            entry,
            next: AtomicU64::new(0),
        };
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::new(file));
        // Content never changes, so the page cache may keep it across opens.
        reply.opened(FileHandle(fh), FopenFlags::FOPEN_KEEP_CACHE);
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.stats.reads.fetch_add(1, Ordering::Relaxed);
        let file = self
            .handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh.0)
            .cloned();
        let Some(file) = file else {
            return reply.error(Errno::EBADF);
        };
        match self.read_range(&file, offset, size) {
            Ok(data) => reply.data(&data),
            Err(e) => {
                eprintln!(
                    "vault: reading {} at {offset}: {e}",
                    String::from_utf8_lossy(&file.entry.name)
                );
                reply.error(Errno::EIO)
            }
        }
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: fuser::ReplyEmpty,
    ) {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some(node) = self.node(ino) else {
            return reply.error(Errno::ENOENT);
        };
        // An offset says where to resume: 0 is the start, 1 is after ".",
        // 2 after "..", and i + 3 after child i.
        let dots: [(u64, &[u8]); 2] = [(ino.0, b"."), (1, b"..")];
        for (i, (dot_ino, name)) in dots.iter().enumerate().skip(offset as usize) {
            if reply.add(
                INodeNo(*dot_ino),
                i as u64 + 1,
                FileType::Directory,
                OsStr::from_bytes(name),
            ) {
                return reply.ok();
            }
        }
        let start = (offset as usize).saturating_sub(2);
        match self.list(ino.0, &node, start) {
            Ok(children) => {
                for (i, (child, kind, name)) in children.iter().enumerate() {
                    let next = (start + i) as u64 + 3;
                    if reply.add(INodeNo(*child), next, *kind, OsStr::from_bytes(name)) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => {
                eprintln!("vault: {e}");
                reply.error(errno(&e));
            }
        }
    }

    fn getxattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        if ino != INodeNo::ROOT || name.as_bytes() != STATS_XATTR.as_bytes() {
            return reply.error(Errno::NO_XATTR);
        }
        let value = self.stats_handle().read().to_json().to_string();
        reply_xattr(reply, size, value.as_bytes());
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        let names: Vec<u8> = if ino == INodeNo::ROOT {
            [STATS_XATTR.as_bytes(), b"\0"].concat()
        } else {
            Vec::new()
        };
        reply_xattr(reply, size, &names);
    }
}

/// The xattr protocol: size 0 asks how big the value is.
fn reply_xattr(reply: ReplyXattr, size: u32, value: &[u8]) {
    if size == 0 {
        match u32::try_from(value.len()) {
            Ok(len) => reply.size(len),
            Err(_) => reply.error(Errno::E2BIG),
        }
    } else if value.len() > size as usize {
        reply.error(Errno::ERANGE);
    } else {
        reply.data(value);
    }
}
