//! Index objects (`index/<id>`): `"VLTI" | sealed box (Index)`. The body maps
//! every blob of some packs to its place. An index object may list older
//! index objects it supersedes (written by prune and repair), so readers can
//! skip those.

use super::codec::{Reader, Writer};
use super::id::{Id, ID_LEN};
use super::pack::{read_base, write_base};
use super::BlobKind;
use crate::error::Result;

pub const INDEX_VERSION: u8 = 1;
/// Index version whose blobs may name a delta's base (format version 4),
/// written only when some blob is a delta.
pub const INDEX_VERSION_DELTAS: u8 = 2;
const BLOB_LEN: usize = 1 + ID_LEN + 4 + 4 + 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexBlob {
    pub kind: BlobKind,
    pub id: Id,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
    /// For a blob stored as a delta: its base (a data blob stored whole).
    pub base: Option<Id>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPack {
    pub id: Id,
    pub size: u64,
    pub blobs: Vec<IndexBlob>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IndexBody {
    pub supersedes: Vec<Id>,
    pub packs: Vec<IndexPack>,
}

impl IndexBody {
    pub fn encode(&self) -> Vec<u8> {
        let deltas = self
            .packs
            .iter()
            .any(|p| p.blobs.iter().any(|b| b.base.is_some()));
        let mut w = Writer::new();
        w.u8(if deltas {
            INDEX_VERSION_DELTAS
        } else {
            INDEX_VERSION
        });
        w.list(&self.supersedes, |w, id| w.id(id));
        w.list(&self.packs, |w, p| {
            w.id(&p.id);
            w.u64(p.size);
            w.list(&p.blobs, |w, b| {
                w.u8(b.kind as u8);
                w.id(&b.id);
                w.u32(b.offset);
                w.u32(b.stored_len);
                w.u32(b.raw_len);
                if deltas {
                    write_base(w, b.base.as_ref());
                }
            });
        });
        w.into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "index");
        let deltas = r.expect_version(INDEX_VERSION_DELTAS)? == INDEX_VERSION_DELTAS;
        let blob_len = BLOB_LEN + usize::from(deltas);
        let supersedes = r.list(ID_LEN, |r| r.id())?;
        let packs = r.list(ID_LEN + 8 + 1, |r| {
            let id = r.id()?;
            let size = r.u64()?;
            let blobs = r.list(blob_len, |r| {
                let kind =
                    BlobKind::from_u8(r.u8()?).ok_or_else(|| r.error("unknown blob kind"))?;
                let id = r.id()?;
                let offset = r.u32()?;
                let stored_len = r.u32()?;
                let raw_len = r.u32()?;
                let base = if deltas {
                    read_base(r, kind, &id)?
                } else {
                    None
                };
                let blob = IndexBlob {
                    kind,
                    id,
                    offset,
                    stored_len,
                    raw_len,
                    base,
                };
                if u64::from(blob.offset) + u64::from(blob.stored_len) > size {
                    return Err(r.error("blob lies beyond the end of its pack"));
                }
                Ok(blob)
            })?;
            let mut spans: Vec<(u64, u64)> = blobs
                .iter()
                .map(|b| {
                    (
                        u64::from(b.offset),
                        u64::from(b.offset) + u64::from(b.stored_len),
                    )
                })
                .collect();
            spans.sort_unstable();
            if spans.windows(2).any(|w| w[1].0 < w[0].1) {
                return Err(r.error("blobs of a pack overlap"));
            }
            Ok(IndexPack { id, size, blobs })
        })?;
        r.finish()?;
        Ok(IndexBody { supersedes, packs })
    }
}
