//! vault: content-addressed, deduplicating, compressed and encrypted backups
//! of database dumps and file trees.

pub mod chunker;
pub mod config;
pub mod crypto;
pub mod error;
pub mod format;
pub mod storage;

pub use error::{Error, ErrorKind, Result};
pub use format::Id;
pub mod cache;
pub mod delta;
pub mod mount;
pub mod ops;
pub mod policy;
pub mod repo;
pub mod serve;
pub mod sources;

pub use repo::Repository;
