//! What changed between two snapshots: entries added, removed and modified.
//!
//! Trees are compared by id first: two folders with the same subtree id
//! hold the same things, so a diff of hourly snapshots that differ in one
//! folder reads only the trees on the way to that folder. The comparison
//! takes the tree loader as a function, so it is tested on trees in memory.

use std::cmp::Ordering;

use super::walk::{join, resolve, Resolved};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::format::Id;
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    /// Same name, same kind; content or metadata differ.
    Modified,
    /// Same name, a different kind of entry (a file became a folder).
    TypeChanged,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Modified => "modified",
            ChangeKind::TypeChanged => "type changed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Path inside the snapshots, starting with `/`.
    pub path: Vec<u8>,
    pub kind: ChangeKind,
    /// The entry in the first snapshot (None if added).
    pub old: Option<Entry>,
    /// The entry in the second snapshot (None if removed).
    pub new: Option<Entry>,
    /// Content differs (file chunks, symlink target, device number).
    pub content: bool,
    /// Mode, owner or mtime differ.
    pub metadata: bool,
}

impl Change {
    /// Size in the second snapshot minus size in the first.
    pub fn size_delta(&self) -> i128 {
        let size = |e: &Option<Entry>| e.as_ref().map_or(0, |e| i128::from(e.size));
        size(&self.new) - size(&self.old)
    }
}

/// Entries in a folder of each side; `None` for a side where the folder
/// does not exist.
fn entries(load: &mut dyn FnMut(&Id) -> Result<Tree>, tree: Option<Id>) -> Result<Vec<Entry>> {
    match tree {
        Some(id) => Ok(load(&id)?.entries),
        None => Ok(Vec::new()),
    }
}

/// Compare the folders `old` and `new` (either may be absent), reporting
/// paths below `prefix`. Changes come in path order, a folder before what
/// it holds.
pub fn diff_trees(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    old: Option<Id>,
    new: Option<Id>,
    prefix: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    if old.is_some() && old == new {
        return Ok(());
    }
    let olds = entries(load, old)?;
    let news = entries(load, new)?;
    diff_entries(load, &olds, &news, prefix, out)
}

/// Compare two folders' entry lists (each sorted by name).
pub fn diff_entries(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    olds: &[Entry],
    news: &[Entry],
    prefix: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    let (mut i, mut j) = (0, 0);
    while i < olds.len() || j < news.len() {
        let order = match (olds.get(i), news.get(j)) {
            (Some(a), Some(b)) => a.name.cmp(&b.name),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                one_side(load, &olds[i], prefix, ChangeKind::Removed, out)?;
                i += 1;
            }
            Ordering::Greater => {
                one_side(load, &news[j], prefix, ChangeKind::Added, out)?;
                j += 1;
            }
            Ordering::Equal => {
                both_sides(load, &olds[i], &news[j], prefix, out)?;
                i += 1;
                j += 1;
            }
        }
    }
    Ok(())
}

/// An entry only one side has, and (for a folder) everything below it.
fn one_side(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    entry: &Entry,
    prefix: &[u8],
    kind: ChangeKind,
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = join(prefix, &entry.name);
    let (old, new) = match kind {
        ChangeKind::Removed => (Some(entry.clone()), None),
        _ => (None, Some(entry.clone())),
    };
    out.push(Change {
        path: path.clone(),
        kind,
        old,
        new,
        content: true,
        metadata: false,
    });
    match (kind, entry.subtree()) {
        (ChangeKind::Removed, Some(sub)) => diff_trees(load, Some(sub), None, &path, out),
        (_, Some(sub)) => diff_trees(load, None, Some(sub), &path, out),
        (_, None) => Ok(()),
    }
}

fn both_sides(
    load: &mut dyn FnMut(&Id) -> Result<Tree>,
    old: &Entry,
    new: &Entry,
    prefix: &[u8],
    out: &mut Vec<Change>,
) -> Result<()> {
    let path = join(prefix, &old.name);
    if old.kind != new.kind {
        out.push(Change {
            path: path.clone(),
            kind: ChangeKind::TypeChanged,
            old: Some(old.clone()),
            new: Some(new.clone()),
            content: true,
            metadata: true,
        });
        // What was below the old folder is gone; what is below the new one
        // is new.
        return diff_trees(load, old.subtree(), new.subtree(), &path, out);
    }
    let metadata = metadata_differs(old, new);
    // A folder's content is what is below it, reported entry by entry.
    let content = old.kind != EntryKind::Dir && old.content != new.content;
    if content || metadata {
        out.push(Change {
            path: path.clone(),
            kind: ChangeKind::Modified,
            old: Some(old.clone()),
            new: Some(new.clone()),
            content,
            metadata,
        });
    }
    match (old.subtree(), new.subtree()) {
        (Some(a), Some(b)) if a != b => diff_trees(load, Some(a), Some(b), &path, out),
        _ => Ok(()),
    }
}

/// Mode, owner and mtime; a folder's mtime changes with every file added
/// or removed in it, so for folders only mode and owner count. Inode,
/// device and ctime differ after any restore and say nothing about content.
fn metadata_differs(old: &Entry, new: &Entry) -> bool {
    let owner = |e: &Entry| (e.mode, e.uid, e.gid);
    owner(old) != owner(new) || (old.kind != EntryKind::Dir && old.mtime != new.mtime)
}

/// What `path` names in a snapshot: the root's entries, one entry, or
/// nothing.
enum Side {
    Root(Id),
    Entry(Vec<u8>, Entry),
    Absent,
}

fn side(repo: &Repository, root: &Id, path: &[u8]) -> Result<Side> {
    match resolve(repo, root, path) {
        Ok(Resolved::Root(id)) => Ok(Side::Root(id)),
        Ok(Resolved::Entry { parent, entry }) => Ok(Side::Entry(parent, entry)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Side::Absent),
        Err(e) => Err(e),
    }
}

/// The changes below `path` (`/` for everything) from the snapshot with
/// root tree `old_root` to the one with `new_root`. A path that exists in
/// one snapshot only is reported as added or removed with all it holds.
pub fn diff_snapshots(
    repo: &Repository,
    old_root: &Id,
    new_root: &Id,
    path: &[u8],
) -> Result<Vec<Change>> {
    let mut load = |id: &Id| repo.read_tree(id);
    let mut out = Vec::new();
    match (side(repo, old_root, path)?, side(repo, new_root, path)?) {
        (Side::Root(a), Side::Root(b)) => diff_trees(&mut load, Some(a), Some(b), b"", &mut out)?,
        (Side::Absent, Side::Absent) => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("{}: in neither snapshot", String::from_utf8_lossy(path)),
            ))
        }
        (old, new) => {
            let mut parent = Vec::new();
            let mut list = |s: Side| match s {
                Side::Entry(p, e) => {
                    parent = p;
                    vec![e]
                }
                _ => Vec::new(),
            };
            let (olds, news) = (list(old), list(new));
            diff_entries(&mut load, &olds, &news, &parent, &mut out)?;
        }
    }
    Ok(out)
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    pub added: u64,
    pub removed: u64,
    pub modified: u64,
    pub type_changed: u64,
    /// Bytes of files in the second snapshot minus the first, over changes.
    pub size_delta: i128,
}

pub fn summarize(changes: &[Change]) -> DiffSummary {
    let mut s = DiffSummary::default();
    for c in changes {
        match c.kind {
            ChangeKind::Added => s.added += 1,
            ChangeKind::Removed => s.removed += 1,
            ChangeKind::Modified => s.modified += 1,
            ChangeKind::TypeChanged => s.type_changed += 1,
        }
        let is_file = |e: &Option<Entry>| e.as_ref().is_some_and(|e| e.kind == EntryKind::File);
        if is_file(&c.old) || is_file(&c.new) {
            s.size_delta += c.size_delta();
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::format::tree::{ChunkRef, Content};
    use crate::format::Timestamp;

    fn file(name: &str, data: u8, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            flags: 0,
            mode: 0o644,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp { secs: 1, nanos: 0 },
            ctime: Timestamp::default(),
            inode: 0,
            dev: 0,
            size,
            content: Content::File {
                chunks: vec![ChunkRef {
                    id: Id::from_bytes([data; 32]),
                    len: size as u32,
                }],
            },
        }
    }

    fn dir(name: &str, subtree: Id) -> Entry {
        Entry {
            kind: EntryKind::Dir,
            mode: 0o755,
            size: 0,
            content: Content::Dir { subtree },
            ..file(name, 0, 0)
        }
    }

    /// Trees in memory, each named by a made-up id; counts reads.
    struct Store {
        trees: HashMap<Id, Tree>,
        reads: Vec<Id>,
    }

    impl Store {
        fn new() -> Self {
            Store {
                trees: HashMap::new(),
                reads: Vec::new(),
            }
        }

        fn add(&mut self, tag: u8, entries: Vec<Entry>) -> Id {
            let id = Id::from_bytes([tag; 32]);
            self.trees.insert(id, Tree { entries });
            id
        }

        fn diff(&mut self, a: Id, b: Id) -> Vec<(String, ChangeKind)> {
            let mut out = Vec::new();
            let trees = &self.trees;
            let reads = &mut self.reads;
            let mut load = |id: &Id| {
                reads.push(*id);
                Ok(trees[id].clone())
            };
            diff_trees(&mut load, Some(a), Some(b), b"", &mut out).unwrap();
            out.into_iter()
                .map(|c| (String::from_utf8(c.path).unwrap(), c.kind))
                .collect()
        }
    }

    #[test]
    fn reports_exact_changes_and_skips_shared_subtrees() {
        let mut s = Store::new();
        let shared = s.add(1, vec![file("big", 9, 100)]);
        let old_sub = s.add(2, vec![file("a", 1, 10), file("gone", 2, 5)]);
        let new_sub = s.add(3, vec![file("a", 7, 12), file("new", 3, 4)]);
        let removed_dir = s.add(4, vec![file("inside", 4, 1)]);
        let old_root = s.add(
            10,
            vec![
                dir("keep", shared),
                dir("old_only", removed_dir),
                dir("sub", old_sub),
                file("x", 5, 1),
            ],
        );
        let mut touched = file("x", 5, 1);
        touched.mode = 0o600;
        let new_root = s.add(11, vec![dir("keep", shared), dir("sub", new_sub), touched]);
        let changes = s.diff(old_root, new_root);
        use ChangeKind::*;
        assert_eq!(
            changes,
            vec![
                ("/old_only".to_string(), Removed),
                ("/old_only/inside".to_string(), Removed),
                ("/sub/a".to_string(), Modified),
                ("/sub/gone".to_string(), Removed),
                ("/sub/new".to_string(), Added),
                ("/x".to_string(), Modified),
            ]
        );
        assert!(
            !s.reads.contains(&shared),
            "a subtree both sides share was read"
        );
    }

    #[test]
    fn identical_roots_read_nothing() {
        let mut s = Store::new();
        let root = s.add(1, vec![file("a", 1, 1)]);
        assert!(s.diff(root, root).is_empty());
        assert!(s.reads.is_empty());
    }

    #[test]
    fn summary_counts_kinds_and_bytes() {
        let mut s = Store::new();
        let a = s.add(1, vec![file("t1", 1, 100), file("t2", 2, 50)]);
        let b = s.add(2, vec![file("t1", 3, 130), file("t3", 4, 7)]);
        let mut out = Vec::new();
        let trees = s.trees.clone();
        diff_trees(
            &mut |id| Ok(trees[id].clone()),
            Some(a),
            Some(b),
            b"",
            &mut out,
        )
        .unwrap();
        let sum = summarize(&out);
        assert_eq!((sum.added, sum.removed, sum.modified), (1, 1, 1));
        assert_eq!(sum.size_delta, 30 - 50 + 7);
        assert_eq!(out[0].size_delta(), 30);
    }
}
