//! Naming what damage touches: for a set of lost blobs, the paths in a
//! snapshot whose content or listing depends on them. Each tree is read
//! once however many snapshots share it, and what was found below it is
//! kept, so hourly snapshots of the same folders cost little more than one.

use std::collections::HashMap;
use std::sync::Arc;

use crate::format::tree::Content;
use crate::format::{BlobKind, Id};
use crate::ops::walk::join;
use crate::repo::Repository;

/// Blobs known to be lost, with why.
pub type LostBlobs = HashMap<(BlobKind, Id), String>;

/// A damaged path inside a snapshot; the empty path is the snapshot's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedPath {
    pub path: Vec<u8>,
    pub reason: String,
}

pub struct Attribution<'a> {
    repo: &'a Repository,
    lost: &'a LostBlobs,
    below: HashMap<Id, Arc<Vec<DamagedPath>>>,
}

impl<'a> Attribution<'a> {
    pub fn new(repo: &'a Repository, lost: &'a LostBlobs) -> Self {
        Attribution {
            repo,
            lost,
            below: HashMap::new(),
        }
    }

    /// Damaged paths below `tree`, relative to it (`/a/b`).
    pub fn below(&mut self, tree: &Id) -> Arc<Vec<DamagedPath>> {
        if let Some(found) = self.below.get(tree) {
            return found.clone();
        }
        let found = Arc::new(self.search(tree));
        self.below.insert(*tree, found.clone());
        found
    }

    fn search(&mut self, tree_id: &Id) -> Vec<DamagedPath> {
        let unreadable = |reason: String| {
            vec![DamagedPath {
                path: vec![],
                reason: format!("folder listing lost: {reason}"),
            }]
        };
        if let Some(reason) = self.lost.get(&(BlobKind::Tree, *tree_id)) {
            return unreadable(reason.clone());
        }
        let tree = match self.repo.read_tree(tree_id) {
            Ok(t) => t,
            Err(e) => return unreadable(e.to_string()),
        };
        let mut out = Vec::new();
        for entry in &tree.entries {
            let path = join(b"", &entry.name);
            match &entry.content {
                Content::File { chunks } => {
                    if let Some(reason) = self.file_damage(chunks) {
                        out.push(DamagedPath { path, reason });
                    }
                }
                Content::Dir { subtree } => {
                    for d in self.below(subtree).iter() {
                        let mut full = path.clone();
                        full.extend_from_slice(&d.path);
                        out.push(DamagedPath {
                            path: full,
                            reason: d.reason.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// How many of a file's chunks are lost, and where the first one is.
    fn file_damage(&self, chunks: &[crate::format::tree::ChunkRef]) -> Option<String> {
        let mut offset = 0u64;
        let mut first: Option<(u64, u64, &String)> = None;
        let mut count = 0;
        for c in chunks {
            if let Some(reason) = self.lost.get(&(BlobKind::Data, c.id)) {
                count += 1;
                first.get_or_insert((offset, offset + u64::from(c.len), reason));
            }
            offset += u64::from(c.len);
        }
        let (start, end, reason) = first?;
        Some(format!(
            "{count} of {} chunks lost, the first at bytes {start}..{end}: {reason}",
            chunks.len()
        ))
    }
}
