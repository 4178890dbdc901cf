//! vault: content-addressed, deduplicating, compressed and encrypted backups
//! of database dumps and file trees.
//!
//! The modules stand in layers; each imports only from layers below it
//! (ARCHITECTURE.md draws the map, and `tests/architecture.rs` enforces it):
//!
//! - `error`, `format`, `chunker`, `crypto`, `policy`, `progress`, `units`:
//!   pure;
//! - `system`, `storage`, `cache`, `config`: the machine and its services;
//! - `engines`: the database servers and their client programs;
//! - `repo`: the repository, its objects, locks and the write pipeline;
//! - `delta`: which parent chunk a new chunk is stored against;
//! - `ingest`: bytes in, trees and snapshots out;
//! - `ops`: every command as a library call; `mount`, `serve` beside it.

pub mod cache;
pub mod chunker;
pub mod config;
pub mod crypto;
pub mod delta;
pub mod engines;
pub mod error;
pub mod format;
pub mod ingest;
pub mod mount;
pub mod ops;
pub mod policy;
pub mod progress;
pub mod repo;
pub mod serve;
pub mod storage;
pub mod system;
pub mod units;

pub use error::{Error, ErrorKind, Result};
pub use format::Id;
pub use repo::Repository;
