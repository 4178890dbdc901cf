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

    /// The same from the header box already read (`boxed`, the bytes from
    /// `start`, the header's place by the trailer, to the end of the pack)
    /// while verifying the pack.
    pub fn pack_header_in(&self, id: &Id, size: u64, start: u64, tail: &[u8]) -> Result<IndexPack> {
        let place = |e: Error| e.at(format!("pack {}", id.short()));
        let boxed = tail
            .len()
            .checked_sub(TRAILER_LEN)
            .map(|end| &tail[..end])
            .ok_or_else(|| place(Error::corrupt("shorter than a pack trailer")))?;
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
