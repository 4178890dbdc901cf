//! A check scoped to one snapshot: every tree it references is read and
//! every data blob downloaded, decrypted and re-hashed. It proves the new
//! snapshot restores without reading the rest of the repository.

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::{BlobKind, Id};
use crate::ops::reachable::reachable;
use crate::repo::Repository;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verified {
    pub trees: u64,
    pub blobs: u64,
    pub bytes: u64,
}

pub fn verify_snapshot(repo: &Repository, root: &Id) -> Result<Verified> {
    let found = reachable(repo, [*root]);
    if let Some((id, e)) = found.unreadable.first() {
        return Err(Error::corrupt(format!(
            "tree {} of the new snapshot is unreadable: {e}",
            id.short()
        )));
    }
    let bytes = found
        .data
        .par_iter()
        .map(|id| {
            repo.read_blob(BlobKind::Data, id)
                .map(|b| b.len() as u64)
                .map_err(|e| e.at(format!("data blob {}", id.short())))
        })
        .try_reduce(|| 0, |a, b| Ok(a + b))?;
    Ok(Verified {
        trees: found.trees.len() as u64,
        blobs: found.data.len() as u64,
        bytes,
    })
}
