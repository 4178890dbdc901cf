//! Pack headers: what a pack says it holds. Check compares them with the
//! index, and repair rebuilds the index from them.

use super::Repository;
use crate::error::{Error, Result};
use crate::format::index::{IndexBlob, IndexPack};
use crate::format::pack::{self, PackEntry, TRAILER_LEN};
use crate::format::sealed::BoxKind;
use crate::format::{layout, payload, Id};

impl Repository {
    /// Read a pack's header with two ranged reads (`size` from a stat or
    /// the index) and describe the pack as an index entry would.
    pub fn read_pack_header(&self, id: &Id, size: u64) -> Result<IndexPack> {
        let path = layout::pack(id);
        let place = |e: Error| e.at(format!("pack {}", id.short()));
        if size < TRAILER_LEN as u64 {
            return Err(place(Error::corrupt("shorter than a pack trailer")));
        }
        let trailer = self
            .backend
            .read_range(&path, size - TRAILER_LEN as u64, TRAILER_LEN as u64)
            .map_err(place)?;
        let (start, len) = pack::header_location(size, &trailer).map_err(place)?;
        let boxed = self
            .backend
            .read_range(&path, start, u64::from(len))
            .map_err(place)?;
        self.describe_pack(id, size, start, &boxed).map_err(place)
    }

    /// The same from a pack's whole bytes (already read to verify them).
    pub fn pack_header_of(&self, id: &Id, bytes: &[u8]) -> Result<IndexPack> {
        let place = |e: Error| e.at(format!("pack {}", id.short()));
        let size = bytes.len() as u64;
        let trailer = bytes
            .get(bytes.len().saturating_sub(TRAILER_LEN)..)
            .filter(|t| t.len() == TRAILER_LEN)
            .ok_or_else(|| place(Error::corrupt("shorter than a pack trailer")))?;
        let (start, len) = pack::header_location(size, trailer).map_err(place)?;
        let boxed = &bytes[start as usize..start as usize + len as usize];
        self.describe_pack(id, size, start, boxed).map_err(place)
    }

    fn describe_pack(&self, id: &Id, size: u64, blob_area: u64, boxed: &[u8]) -> Result<IndexPack> {
        let plain = self.keys.open(BoxKind::PackHeader, None, boxed)?;
        let entries =
            pack::decode_header(&payload::decode(&plain, payload::MAX_OBJECT_PLAINTEXT)?)?;
        let offsets = pack::entry_offsets(&entries, blob_area)?;
        let blobs = entries
            .iter()
            .zip(offsets)
            .map(|(e, offset): (&PackEntry, u64)| {
                Ok(IndexBlob {
                    kind: e.kind,
                    id: e.id,
                    offset: u32::try_from(offset)
                        .map_err(|_| Error::corrupt("blob offset beyond 4 GiB"))?,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                    base: e.base,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(IndexPack {
            id: *id,
            size,
            blobs,
        })
    }

    /// Every pack in storage (whatever any index says), by name.
    pub fn list_packs(&self) -> Result<Vec<Id>> {
        Ok(self
            .backend
            .list(layout::DATA)?
            .iter()
            .filter_map(|p| p.rsplit('/').next()?.parse().ok())
            .collect())
    }
}
