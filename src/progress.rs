//! Counters a long operation bumps as it goes; the command line polls them
//! for its progress bar.

use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Progress {
    pub files: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Bytes of unchanged files taken from the parent without reading.
    pub bytes_skipped: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Known total, when there is one (restore).
    pub bytes_total: AtomicU64,
    /// What the run is at, in words (a table, a phase), when counters alone
    /// would leave a long step looking stuck.
    stage: Mutex<String>,
}

impl Progress {
    pub fn set_stage(&self, stage: impl Into<String>) {
        *self.stage.lock().unwrap_or_else(|p| p.into_inner()) = stage.into();
    }

    pub fn stage(&self) -> String {
        self.stage.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
