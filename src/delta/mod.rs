//! Storing new chunks as deltas against the parent's: which parent blob a
//! new chunk most likely resembles (`Counterpart`), where a stream's
//! counterpart is found (`parent`), and how a base's bytes are fetched
//! (`base_bytes`). The encoding itself is `format::delta`.

mod align;
mod parent;

pub use align::Counterpart;
pub use parent::{stream_parent, Parent};

use crate::format::{BlobKind, Id};
use crate::repo::Repository;

/// The base a delta of a blob resembling `like` is stored against, with its
/// bytes: `like` itself when stored whole, else its own base (chains are
/// one link long). `None` when there is no usable base: the blob is then
/// stored whole, which is never wrong.
pub fn base_bytes(repo: &Repository, like: &Id) -> Option<(Id, Vec<u8>)> {
    let loc = repo.blob_location(BlobKind::Data, like).ok()??;
    let base = loc.base.unwrap_or(*like);
    let loc = repo.whole_base(&base).ok()??;
    let bytes = repo.read_blob_at(BlobKind::Data, &base, &loc).ok()?;
    Some((base, bytes))
}
