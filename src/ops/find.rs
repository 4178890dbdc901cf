//! Which snapshots hold a path matching a pattern. Snapshots of the same
//! paths share most of their trees, so each folder (tree id at a path) is
//! searched once and its matches reused by every snapshot that holds it.

use std::collections::HashMap;
use std::sync::Arc;

use super::pattern::Patterns;
use super::walk::join;
use crate::error::Result;
use crate::format::snapshot::Snapshot;
use crate::format::tree::Entry;
use crate::format::Id;
use crate::repo::Repository;

#[derive(Debug, Clone)]
pub struct Found {
    /// Path inside the snapshot, starting with `/`.
    pub path: Vec<u8>,
    pub entry: Entry,
}

#[derive(Debug)]
pub struct SnapshotMatches {
    pub id: Id,
    pub snapshot: Snapshot,
    pub found: Arc<Vec<Found>>,
}

struct Search<'a> {
    repo: &'a Repository,
    patterns: &'a Patterns,
    seen: HashMap<(Id, Vec<u8>), Arc<Vec<Found>>>,
}

impl Search<'_> {
    /// Matches at or below the folder `tree` whose path is `prefix`.
    fn folder(&mut self, tree: Id, prefix: &[u8]) -> Result<Arc<Vec<Found>>> {
        let key = (tree, prefix.to_vec());
        if let Some(done) = self.seen.get(&key) {
            return Ok(done.clone());
        }
        let mut found = Vec::new();
        for entry in self.repo.read_tree(&tree)?.entries {
            let path = join(prefix, &entry.name);
            let below = match entry.subtree() {
                Some(sub) => Some(self.folder(sub, &path)?),
                None => None,
            };
            if self.patterns.matches(&path) {
                found.push(Found {
                    path: path.clone(),
                    entry,
                });
            }
            if let Some(below) = below {
                found.extend(below.iter().cloned());
            }
        }
        let found = Arc::new(found);
        self.seen.insert(key, found.clone());
        Ok(found)
    }
}

/// Every entry matching `patterns` in each of `snapshots`, in the order
/// given; snapshots without a match are left out.
pub fn find(
    repo: &Repository,
    snapshots: Vec<(Id, Snapshot)>,
    patterns: &Patterns,
) -> Result<Vec<SnapshotMatches>> {
    let mut search = Search {
        repo,
        patterns,
        seen: HashMap::new(),
    };
    let mut out = Vec::new();
    for (id, snapshot) in snapshots {
        let found = search.folder(snapshot.root, b"")?;
        if !found.is_empty() {
            out.push(SnapshotMatches {
                id,
                snapshot,
                found,
            });
        }
    }
    Ok(out)
}
