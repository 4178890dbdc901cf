//! Counters a long operation bumps as it goes; the command line polls them
//! for its progress bar.

use std::sync::atomic::AtomicU64;

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
