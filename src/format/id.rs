//! 32-byte identifiers: keyed BLAKE3 for blobs, plain BLAKE3 of the stored
//! bytes for objects (so anyone can verify storage without the key).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

pub const ID_LEN: usize = 32;

#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id([u8; ID_LEN]);

impl Id {
    pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
        Id(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; ID_LEN] {
        &self.0
    }

    /// Name of a stored object: unkeyed BLAKE3 of its bytes.
    pub fn of_object(bytes: &[u8]) -> Self {
        Id(*blake3::hash(bytes).as_bytes())
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 8 hex digits, as shown in tables.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }

    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; ID_LEN]>::try_from(bytes).ok().map(Id)
    }
}

impl FromStr for Id {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let mut out = [0u8; ID_LEN];
        // Names are written in lowercase; anything else is a foreign file.
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(Error::invalid(format!("'{s}' is not a lowercase hex id")));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| Error::invalid(format!("'{s}' is not a 64-digit hex id")))?;
        Ok(Id(out))
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}
