//! Commands as library calls. Each takes an open repository and option
//! structs; the command-line layer only parses and prints.

pub mod check;
pub mod content;
pub mod copy;
pub mod db_restore;
pub mod db_snapshot;
pub mod diff;
pub mod find;
pub mod forget;
pub mod jobs;
pub mod pattern;
pub mod pg;
pub mod prune;
pub mod reachable;
pub mod repair;
pub mod restore;
pub mod run;
pub mod snapshot;
pub mod stream_set;
pub mod wal_ahead;
pub mod wal_status;
pub mod walk;

use std::sync::atomic::AtomicU64;

/// Counters a long operation bumps as it goes; the command line polls them
/// for its progress bar.
#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Bytes of unchanged files taken from the parent without reading.
    pub bytes_skipped: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Known total, when there is one (restore).
    pub bytes_total: AtomicU64,
}
