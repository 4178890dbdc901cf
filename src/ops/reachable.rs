//! Which blobs a set of snapshots references. Prune deletes what is not in
//! this set, check verifies what is, copy transfers it, so all three share
//! this one walk.

use std::collections::HashSet;

use rayon::prelude::*;

use crate::error::Error;
use crate::format::Id;
use crate::repo::Repository;

#[derive(Debug, Default)]
pub struct Reachable {
    pub trees: HashSet<Id>,
    pub data: HashSet<Id>,
    /// Trees that could not be read (missing, damaged) with the reason. What
    /// lies below them is unknown, so a caller that deletes must refuse to
    /// run while this is non-empty.
    pub unreadable: Vec<(Id, Error)>,
}

impl Reachable {
    pub fn is_complete(&self) -> bool {
        self.unreadable.is_empty()
    }
}

/// Walk every tree below `roots`, breadth first, one level at a time with
/// the trees of a level read in parallel. Each tree is read once however
/// many snapshots share it, which is what keeps this cheap on a repository
/// of hourly snapshots that differ in a few folders.
pub fn reachable(repo: &Repository, roots: impl IntoIterator<Item = Id>) -> Reachable {
    let mut out = Reachable::default();
    let mut level: Vec<Id> = roots
        .into_iter()
        .filter(|id| out.trees.insert(*id))
        .collect();
    while !level.is_empty() {
        let read: Vec<_> = level
            .par_iter()
            .map(|id| (*id, repo.read_tree(id)))
            .collect();
        let mut next = Vec::new();
        for (id, tree) in read {
            match tree {
                Ok(tree) => {
                    for entry in &tree.entries {
                        if let Some(sub) = entry.subtree() {
                            if out.trees.insert(sub) {
                                next.push(sub);
                            }
                        }
                        out.data.extend(entry.chunks().iter().map(|c| c.id));
                    }
                }
                Err(e) => out.unreadable.push((id, e)),
            }
        }
        level = next;
    }
    out
}
