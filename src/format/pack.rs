//! Packs (`data/<xx>/<id>`): many sealed blobs, then a sealed header that
//! lists them, then the header's length and a magic number.
//!
//! ```text
//! blob box 0 | ... | blob box n-1 | header box | header box length u32 LE | "VLTP"
//! ```
//! The pack's name is the BLAKE3 hash of all its bytes. The header makes a pack
//! self-describing: the index can be rebuilt from packs alone.

use super::codec::{Reader, Writer};
use super::id::{Id, ID_LEN};
use super::{magic, BlobKind};
use crate::error::{Error, Result};

pub const PACK_HEADER_VERSION: u8 = 1;
/// Bytes after the header box: its length and the magic.
pub const TRAILER_LEN: usize = 8;
const ENTRY_LEN: usize = 1 + ID_LEN + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    /// Length of the sealed box in the pack.
    pub stored_len: u32,
    /// Length of the plaintext blob.
    pub raw_len: u32,
}

/// Encode the header body (sealed by the caller).
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut w = Writer::new();
    w.u8(PACK_HEADER_VERSION);
    w.list(entries, |w, e| {
        w.u8(e.kind as u8);
        w.id(&e.id);
        w.u32(e.stored_len);
        w.u32(e.raw_len);
    });
    w.into_bytes()
}

pub fn decode_header(bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let mut r = Reader::new(bytes, "pack header");
    r.expect_version(PACK_HEADER_VERSION)?;
    let entries = r.list(ENTRY_LEN, |r| {
        let kind = BlobKind::from_u8(r.u8()?).ok_or_else(|| r.error("unknown blob kind"))?;
        Ok(PackEntry {
            kind,
            id: r.id()?,
            stored_len: r.u32()?,
            raw_len: r.u32()?,
        })
    })?;
    r.finish()?;
    Ok(entries)
}

pub fn trailer(header_box_len: u32) -> [u8; TRAILER_LEN] {
    let mut out = [0u8; TRAILER_LEN];
    out[..4].copy_from_slice(&header_box_len.to_le_bytes());
    out[4..].copy_from_slice(magic::PACK);
    out
}

/// Given the pack's total size and its last `TRAILER_LEN` bytes, where does
/// the header box start and how long is it?
pub fn header_location(pack_size: u64, trailer: &[u8]) -> Result<(u64, u32)> {
    if trailer.len() != TRAILER_LEN || &trailer[4..] != magic::PACK {
        return Err(Error::corrupt("pack trailer: wrong magic bytes"));
    }
    let len = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let start = pack_size
        .checked_sub(TRAILER_LEN as u64)
        .and_then(|end| end.checked_sub(u64::from(len)))
        .ok_or_else(|| Error::corrupt("pack trailer: header longer than the pack"))?;
    Ok((start, len))
}

/// Offsets of each entry, checked to lie inside the blob area.
pub fn entry_offsets(entries: &[PackEntry], blob_area_len: u64) -> Result<Vec<u64>> {
    let mut offsets = Vec::with_capacity(entries.len());
    let mut pos = 0u64;
    for e in entries {
        offsets.push(pos);
        pos += u64::from(e.stored_len);
    }
    if pos != blob_area_len {
        return Err(Error::corrupt(format!(
            "pack header lists {pos} bytes of blobs but the pack holds {blob_area_len}"
        )));
    }
    Ok(offsets)
}
