//! A backend wrapper that fails on command, for tests of interrupted and
//! failing runs against a real backend underneath.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::Backend;
use crate::error::{Error, ErrorKind, Result};

pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    writes_left: AtomicU64,
}

impl FaultyBackend {
    /// Let `writes_before_failure` writes through, then fail every write
    /// (as a full disk or a lost connection would).
    pub fn failing_writes_after(inner: Arc<dyn Backend>, writes_before_failure: u64) -> Self {
        FaultyBackend {
            inner,
            writes_left: AtomicU64::new(writes_before_failure),
        }
    }
}

impl Backend for FaultyBackend {
    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }

    fn is_local(&self) -> bool {
        self.inner.is_local()
    }
    fn read(&self, path: &str) -> Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        self.inner.read_range(path, offset, len)
    }
    fn read_range_into(&self, path: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        self.inner.read_range_into(path, offset, out)
    }
    fn prefetch(&self, path: &str) {
        self.inner.prefetch(path)
    }
    fn read_capped(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        self.inner.read_capped(path, max)
    }
    fn write(&self, path: &str, data: Vec<u8>) -> Result<()> {
        let allowed = self
            .writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !allowed {
            return Err(Error::new(
                ErrorKind::Io,
                format!("write {path}: injected failure (no space left)"),
            ));
        }
        self.inner.write(path, data)
    }
    fn list(&self, dir: &str) -> Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(path)
    }
    fn exists(&self, path: &str) -> Result<bool> {
        self.inner.exists(path)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)
    }
    fn sync_deletions(&self, dir: &str) -> Result<()> {
        self.inner.sync_deletions(dir)
    }
    fn requests(&self) -> super::RequestCounts {
        self.inner.requests()
    }
}
