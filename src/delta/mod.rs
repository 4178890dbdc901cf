//! Storing new chunks as deltas against the parent's: which parent blob a
//! new chunk most likely resembles (`Counterpart`), where a stream's
//! counterpart is found (`parent`). How a base's bytes are fetched is the
//! repository's (`Repository::delta_base`), from a per-source local cache
//! first for remote repositories (`base_cache`); the encoding is
//! `format::delta`.

mod align;
mod parent;

pub use align::Counterpart;
pub use parent::{base_cache, stream_parent, Parent};
