//! Walking snapshot trees: resolve a path inside a snapshot, and visit every
//! entry below a tree in depth-first, name order.

use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::format::Id;
use crate::repo::Repository;

/// What a path inside a snapshot names: the root, or an entry with the path
/// of the directory holding it.
pub enum Resolved {
    Root(Id),
    Entry { parent: Vec<u8>, entry: Entry },
}

impl Resolved {
    /// The tree to list below this point, if it is a directory.
    pub fn tree(&self) -> Option<Id> {
        match self {
            Resolved::Root(id) => Some(*id),
            Resolved::Entry { entry, .. } => entry.subtree(),
        }
    }
}

/// Split `/a/b/c` (or `a/b/c`) into components; empty components and `.`
/// are dropped.
pub fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .collect()
}

pub fn resolve(repo: &Repository, root: &Id, path: &[u8]) -> Result<Resolved> {
    let parts = components(path);
    let mut tree_id = *root;
    let mut prefix = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let tree = repo.read_tree(&tree_id)?;
        let entry = tree.find(part).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "{}: no such path in the snapshot",
                    String::from_utf8_lossy(path)
                ),
            )
        })?;
        if i + 1 == parts.len() {
            return Ok(Resolved::Entry {
                parent: prefix,
                entry: entry.clone(),
            });
        }
        tree_id = entry.subtree().ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!(
                    "{}: not a directory in the snapshot",
                    String::from_utf8_lossy(path)
                ),
            )
        })?;
        prefix.push(b'/');
        prefix.extend_from_slice(part);
    }
    Ok(Resolved::Root(tree_id))
}

/// The file at `path` in a snapshot, or, without a path, the snapshot's
/// only file (a snapshot of one stream or database file).
pub fn file_entry(repo: &Repository, root: &Id, path: Option<&[u8]>) -> Result<Entry> {
    let entry = match path {
        Some(p) => match resolve(repo, root, p)? {
            Resolved::Entry { entry, .. } => entry,
            Resolved::Root(_) => {
                return Err(Error::invalid("give the path of a file, not the root"))
            }
        },
        None => match repo.read_tree(root)?.entries.as_slice() {
            [only] if only.kind == EntryKind::File => only.clone(),
            _ => {
                return Err(Error::invalid(
                    "this snapshot holds more than one file: name the one you want",
                ))
            }
        },
    };
    if entry.kind != EntryKind::File {
        return Err(Error::invalid(format!(
            "{} is a {}, not a file",
            String::from_utf8_lossy(&entry.name),
            entry.kind.as_str()
        )));
    }
    Ok(entry)
}

pub fn join(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(parent.len() + 1 + name.len());
    p.extend_from_slice(parent);
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

/// Visit every entry below `tree` (depth-first, parents before children).
/// The visitor returns whether to descend into a directory.
pub fn walk(
    repo: &Repository,
    tree: &Id,
    prefix: &[u8],
    visit: &mut dyn FnMut(&[u8], &Entry) -> Result<bool>,
) -> Result<()> {
    let tree: Tree = repo.read_tree(tree)?;
    for entry in &tree.entries {
        let path = join(prefix, &entry.name);
        let descend = visit(&path, entry)?;
        if descend {
            if let Some(sub) = entry.subtree() {
                walk(repo, &sub, &path, visit)?;
            }
        }
    }
    Ok(())
}
