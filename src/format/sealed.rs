//! The sealed box: how every encrypted byte string in the repository is laid
//! out (format-spec/README.md, "Sealed box").
//!
//! ```text
//! version u8 (=1) | key epoch u32 LE | nonce [24] | ciphertext | tag [16]
//! ```
//! The associated data binds what the box is (its kind) and, for blobs, which
//! blob it is, so a box cannot be moved to another place and still open.

use super::id::Id;
use crate::error::{Error, ErrorKind, Result};

pub const SEALED_VERSION: u8 = 1;
pub const NONCE_LEN: usize = 24;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// Bytes a sealed box adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;

/// What a sealed box holds. The numbers are part of the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BoxKind {
    Config = 1,
    KeySet = 2,
    Index = 3,
    Snapshot = 4,
    PackHeader = 5,
    DataBlob = 6,
    TreeBlob = 7,
    Lock = 8,
    Drill = 9,
    /// A verification record of `check --rotate` (`verified/`).
    CheckState = 10,
    /// Packs prune marked for deletion (`marks/`, format version 3).
    Marks = 11,
    /// A run record of `vault run` (`runs/`). Kind 12 stays reserved.
    RunRecord = 13,
    /// Both boxes of an archived WAL file (`wal/`).
    Wal = 14,
}

pub struct SealedParts<'a> {
    pub epoch: u32,
    pub nonce: [u8; NONCE_LEN],
    /// Ciphertext with the tag appended.
    pub ciphertext: &'a [u8],
}

pub fn split(bytes: &[u8]) -> Result<SealedParts<'_>> {
    if bytes.len() < OVERHEAD {
        return Err(Error::corrupt(format!(
            "sealed box of {} bytes is too short",
            bytes.len()
        )));
    }
    if bytes[0] != SEALED_VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("sealed box version {} is not supported", bytes[0]),
        ));
    }
    let epoch = u32::from_le_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[5..HEADER_LEN]);
    Ok(SealedParts {
        epoch,
        nonce,
        ciphertext: &bytes[HEADER_LEN..],
    })
}

pub fn header(epoch: u32, nonce: &[u8; NONCE_LEN]) -> [u8; HEADER_LEN] {
    let mut out = [0u8; HEADER_LEN];
    out[0] = SEALED_VERSION;
    out[1..5].copy_from_slice(&epoch.to_le_bytes());
    out[5..].copy_from_slice(nonce);
    out
}

pub const AAD_LEN: usize = 5 + 1 + 32 + 1 + 4;

/// Associated data: `"vault" | kind u8 | blob id [32] | version u8 | epoch
/// u32 LE`. The id is all zeros for boxes that are not blobs (those are named
/// by the hash of their bytes). Binding the box header's version and epoch
/// means an edited header reads as tampering, like any other edit.
pub fn associated_data(kind: BoxKind, blob_id: Option<&Id>, epoch: u32) -> [u8; AAD_LEN] {
    let mut out = [0u8; AAD_LEN];
    out[..5].copy_from_slice(b"vault");
    out[5] = kind as u8;
    if let Some(id) = blob_id {
        out[6..38].copy_from_slice(id.as_bytes());
    }
    out[38] = SEALED_VERSION;
    out[39..].copy_from_slice(&epoch.to_le_bytes());
    out
}
