//! Storage: a small synchronous trait the repository talks to, implemented
//! over opendal (local folder, memory; S3 and others later through the same
//! operator), plus a fault-injecting wrapper for tests.

mod faulty;
mod opendal_backend;

pub use faulty::FaultyBackend;
pub use opendal_backend::OpendalBackend;

use crate::error::Result;

pub trait Backend: Send + Sync {
    /// A human name for messages: `local:/srv/repo`, `memory`.
    fn describe(&self) -> String;
    fn read(&self, path: &str) -> Result<Vec<u8>>;
    fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// Writes the whole object or nothing: a torn write never becomes visible.
    fn write(&self, path: &str, data: Vec<u8>) -> Result<()>;
    /// Object paths below `dir` (recursive), relative to the repository root.
    fn list(&self, dir: &str) -> Result<Vec<String>>;
    /// Size of an object; a `NotFound` error if it does not exist.
    fn size(&self, path: &str) -> Result<u64>;
    fn exists(&self, path: &str) -> Result<bool>;
    fn delete(&self, path: &str) -> Result<()>;
}

/// Where a repository lives, parsed from `--repo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(std::path::PathBuf),
    Memory,
}

impl Location {
    pub fn parse(s: &str) -> Result<Self> {
        if s == "memory:" {
            return Ok(Location::Memory);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(crate::Error::new(
                crate::ErrorKind::Unsupported,
                format!("repository scheme '{scheme}://' is not supported by this build (use a local path)"),
            ));
        }
        let path = s.strip_prefix("local:").unwrap_or(s);
        if path.is_empty() {
            return Err(crate::Error::invalid("empty repository path"));
        }
        Ok(Location::Local(std::path::PathBuf::from(path)))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "local:{}", p.display()),
            Location::Memory => f.write_str("memory:"),
        }
    }
}
