//! The unlocked WAL key file: a local file (never stored in a repository)
//! that lets `vault wal push` and `fetch` seal and open WAL objects without
//! a password, so PostgreSQL's archive_command pays no key derivation per
//! segment (format-spec/README.md, "WAL key file").
//!
//! ```text
//! "vault wal key 1\n" | repository id [32] | compression u32 LE | key set body
//! ```

use zeroize::Zeroizing;

use super::codec::Reader;
use super::id::Id;
use super::keyfile::KeySet;
use crate::error::{Error, Result};

pub const WAL_KEY_MAGIC: &[u8; 16] = b"vault wal key 1\n";
/// A key set with thousands of epochs is still far below this.
pub const MAX_WAL_KEY_FILE: u64 = 1 << 20;

pub struct WalKey {
    /// The repository the keys open; a push elsewhere is refused.
    pub repo_id: Id,
    /// zstd level for WAL content (the repository's default at creation).
    pub compression: i32,
    pub keys: KeySet,
}

impl WalKey {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::new());
        out.extend_from_slice(WAL_KEY_MAGIC);
        out.extend_from_slice(self.repo_id.as_bytes());
        out.extend_from_slice(&self.compression.to_le_bytes());
        out.extend_from_slice(&self.keys.encode());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let body = bytes
            .strip_prefix(WAL_KEY_MAGIC.as_slice())
            .ok_or_else(|| Error::corrupt("wal key file: wrong magic bytes"))?;
        let mut r = Reader::new(body, "wal key file");
        let repo_id = r.id()?;
        let compression = i32::from_le_bytes(r.array()?);
        if !(0..=22).contains(&compression) {
            return Err(Error::corrupt(format!(
                "wal key file: compression level {compression} is out of range"
            )));
        }
        let keys = KeySet::decode(r.raw(r.remaining())?)?;
        Ok(WalKey {
            repo_id,
            compression,
            keys,
        })
    }
}
