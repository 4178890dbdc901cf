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
/// Header version whose entries may name a delta's base (format version 4).
/// Writers use it only for packs that hold a delta, so packs without one
/// stay byte-identical to version 1.
pub const PACK_HEADER_VERSION_DELTAS: u8 = 2;
/// Bytes after the header box: its length and the magic.
pub const TRAILER_LEN: usize = 8;
const ENTRY_LEN: usize = 1 + ID_LEN + 4 + 4;
/// Shortest version 2 entry: a whole blob (base flag 0, no base id).
const ENTRY_LEN_V2: usize = ENTRY_LEN + 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    pub kind: BlobKind,
    pub id: Id,
    /// Length of the sealed box in the pack.
    pub stored_len: u32,
    /// Length of the plaintext blob.
    pub raw_len: u32,
    /// For a blob stored as a delta: the whole blob it is a delta against.
    pub base: Option<Id>,
}

/// Encode the header body (sealed by the caller).
pub fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let deltas = entries.iter().any(|e| e.base.is_some());
    let mut w = Writer::new();
    w.u8(if deltas {
        PACK_HEADER_VERSION_DELTAS
    } else {
        PACK_HEADER_VERSION
    });
    w.list(entries, |w, e| {
        w.u8(e.kind as u8);
        w.id(&e.id);
        w.u32(e.stored_len);
        w.u32(e.raw_len);
        if deltas {
            write_base(w, e.base.as_ref());
        }
    });
    w.into_bytes()
}

pub fn decode_header(bytes: &[u8]) -> Result<Vec<PackEntry>> {
    let mut r = Reader::new(bytes, "pack header");
    let deltas = r.expect_version(PACK_HEADER_VERSION_DELTAS)? == PACK_HEADER_VERSION_DELTAS;
    let min = if deltas { ENTRY_LEN_V2 } else { ENTRY_LEN };
    let entries = r.list(min, |r| {
        let kind = BlobKind::from_u8(r.u8()?).ok_or_else(|| r.error("unknown blob kind"))?;
        let id = r.id()?;
        let stored_len = r.u32()?;
        let raw_len = r.u32()?;
        let base = if deltas {
            read_base(r, kind, &id)?
        } else {
            None
        };
        Ok(PackEntry {
            kind,
            id,
            stored_len,
            raw_len,
            base,
        })
    })?;
    r.finish()?;
    Ok(entries)
}

/// `flag u8 (0 = stored whole, 1 = delta) | base id [32] if the flag is 1`,
/// shared by pack header and index entries.
pub(crate) fn write_base(w: &mut Writer, base: Option<&Id>) {
    match base {
        Some(b) => {
            w.u8(1);
            w.id(b);
        }
        None => w.u8(0),
    }
}

/// Only data blobs are stored as deltas, never against themselves.
pub(crate) fn read_base(r: &mut Reader<'_>, kind: BlobKind, id: &Id) -> Result<Option<Id>> {
    match r.u8()? {
        0 => Ok(None),
        1 => {
            let base = r.id()?;
            if kind != BlobKind::Data {
                return Err(r.error("a tree blob stored as a delta"));
            }
            if base == *id {
                return Err(r.error("a blob stored as a delta against itself"));
            }
            Ok(Some(base))
        }
        _ => Err(r.error("unknown base flag")),
    }
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
