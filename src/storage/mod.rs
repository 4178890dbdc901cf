//! Storage: a small synchronous trait the repository talks to, implemented
//! over opendal (local folder, memory, S3, sftp, WebDAV, GCS, Azure Blob
//! through the same operator), plus a fault-injecting wrapper for tests
//! (feature `fault-injection`, which the integration tests enable).

#[cfg(feature = "fault-injection")]
mod faulty;
mod location;
mod opendal_backend;
mod remote;
mod requests;

#[cfg(feature = "fault-injection")]
pub use faulty::FaultyBackend;
pub use location::{Location, Remote, Service};
pub use opendal_backend::OpendalBackend;
pub use remote::Transport;
pub use requests::RequestCounts;

use crate::error::{Error, Result};

pub trait Backend: Send + Sync {
    /// A human name for messages: `local:/srv/repo`, `memory`.
    fn describe(&self) -> String;
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// `read_range` into a buffer the caller keeps: a loop reading many
    /// ranges reuses one buffer instead of faulting in fresh pages for each.
    fn read_range_into(&self, path: &str, offset: u64, out: &mut [u8]) -> Result<()> {
        read_range_copied(self, path, offset, out)
    }
    /// A hint that `path` will be read soon: a local file starts coming into
    /// the page cache while other work goes on. Does nothing elsewhere (a
    /// download ahead of its use would have to be held in memory).
    fn prefetch(&self, _path: &str) {}
    /// Read a whole object of at most `max` bytes. Its size is asked first
    /// (a stat, a HEAD), so an object over the limit is refused before any
    /// of its bytes are read; one that grows meanwhile is read only up to
    /// the size seen.
    fn read_capped(&self, path: &str, max: u64) -> Result<Vec<u8>> {
        let size = self.size(path)?;
        if size > max {
            return Err(Error::corrupt(format!(
                "{path} is {size} bytes, over the {max} bytes such an object may have"
            )));
        }
        if size == 0 {
            return Ok(Vec::new());
        }
        self.read_range(path, 0, size)
    }
    /// Writes the whole object or nothing: a torn write never becomes visible.
    fn write(&self, path: &str, data: Vec<u8>) -> Result<()>;
    /// Object paths below `dir` (recursive), relative to the repository root.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Size of an object; a `NotFound` error if it does not exist.
    fn size(&self, path: &str) -> Result<u64>;
    fn exists(&self, path: &str) -> Result<bool>;
    fn delete(&self, path: &str) -> Result<()>;
    /// Make the deletions in `dir` so far survive power loss (local
    /// folders; object stores make a completed delete durable themselves).
    fn sync_deletions(&self, _dir: &str) -> Result<()> {
        Ok(())
    }
    /// Whether the objects are files on this machine (reading one back
    /// costs no download).
    fn is_local(&self) -> bool {
        false
    }
    /// Requests made to a remote service so far (zero for local storage).
    fn requests(&self) -> RequestCounts {
        RequestCounts::default()
    }
    /// Delete files in the local `tmp/` folder last modified before
    /// `older_than` ago (left by killed writers); how many were deleted.
    /// Storage without such a folder has nothing to clean.
    fn clean_tmp(&self, _older_than: std::time::Duration) -> Result<u64> {
        Ok(0)
    }
}

/// `read_range_into` for storage that cannot read into a given buffer: the
/// range is read and copied.
fn read_range_copied<B: Backend + ?Sized>(
    backend: &B,
    path: &str,
    offset: u64,
    out: &mut [u8],
) -> Result<()> {
    let bytes = backend.read_range(path, offset, out.len() as u64)?;
    if bytes.len() != out.len() {
        return Err(Error::corrupt(format!(
            "read {path}: wanted {} bytes at {offset}, got {}",
            out.len(),
            bytes.len()
        )));
    }
    out.copy_from_slice(&bytes);
    Ok(())
}

/// How old a file in `tmp/` must be before it is deleted: far longer than
/// any write into it takes, so no running writer loses its file.
pub const TMP_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(24 * 3600);
