//! Delta chains as the repository resolves them (format-spec "Deltas"): a
//! delta's base may itself be a delta, up to `delta::MAX_LINKS` links from
//! a blob to the whole blob its chain ends at. Readers follow the links the
//! index records; writers reuse a blob only while its whole chain is
//! usable, and pick the link a new version is stored against.

use std::collections::HashSet;

use super::{blob_place, missing_blob, Repository};
use crate::cache::bases::BaseCache;
use crate::cache::{BlobLocation, IndexCache};
use crate::error::{Error, Result};
use crate::format::delta::{self, MAX_LINKS};
use crate::format::{payload, BlobKind, Id};

/// Whether the links of a chain are hashed as they are decoded: only when
/// a delta failed its own id and the culprit is wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Verify {
    No,
    Yes,
}

/// Which link of a chain `delta_base` returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Pick {
    /// The one `delta::choose_base` picks for a new version.
    NewVersion,
    /// The blob named, itself (a repack keeps a delta's base).
    Exactly,
}

/// The blob a new version is stored against, its plaintext, and the new
/// delta's generation (`delta::choose_base`).
pub struct DeltaBase {
    pub id: Id,
    pub bytes: Vec<u8>,
    pub generation: u32,
}

impl Repository {
    /// The chain of data blob `id` as the index has it, `id` first and the
    /// whole blob it ends at last; `None` when a link is not indexed, lies in
    /// a pack marked for deletion, or the chain is longer than `MAX_LINKS`
    /// links (which a loop always is).
    pub(super) fn usable_chain(&self, id: &Id) -> Result<Option<Vec<(Id, BlobLocation)>>> {
        self.usable_chain_in(&self.index(), id)
    }

    fn usable_chain_in(
        &self,
        index: &IndexCache,
        id: &Id,
    ) -> Result<Option<Vec<(Id, BlobLocation)>>> {
        let mut chain = Vec::new();
        let mut link = *id;
        loop {
            let Some(loc) = index.lookup(BlobKind::Data, &link)? else {
                return Ok(None);
            };
            if self.is_marked(&loc.pack) {
                return Ok(None);
            }
            chain.push((link, loc));
            match loc.base {
                None => return Ok(Some(chain)),
                Some(_) if chain.len() > MAX_LINKS => return Ok(None),
                Some(base) => link = base,
            }
        }
    }

    /// Which of `ids` are data blobs a snapshot may refer to (`has_blob`),
    /// answered in one read of the index cache: an unchanged folder's files
    /// are checked together rather than each taking the cache on its own.
    pub fn usable_data_blobs<'i>(
        &self,
        ids: impl IntoIterator<Item = &'i Id>,
    ) -> Result<HashSet<Id>> {
        let index = self.index();
        index.reading(|index| {
            let mut usable = HashSet::new();
            for id in ids {
                if !usable.contains(id) && self.usable_chain_in(index, id)?.is_some() {
                    usable.insert(*id);
                }
            }
            Ok(usable)
        })
    }

    /// A delta's base, decoded through its own chain, which may have at
    /// most `MAX_LINKS - 1` more links. Decrypted (which authenticates each
    /// link) and decompressed; hashed only under `Verify::Yes`, since a
    /// delta decoded against anything but its base fails its own id.
    pub(super) fn read_base(&self, base: &Id, verify: Verify) -> Result<Vec<u8>> {
        self.read_link(base, MAX_LINKS - 1, verify)
    }

    fn read_link(&self, id: &Id, links_left: usize, verify: Verify) -> Result<Vec<u8>> {
        let place = |e: Error| e.at(format!("base {}", id.short()));
        let loc = self
            .blob_location(BlobKind::Data, id)?
            .ok_or_else(|| place(missing_blob(id)))?;
        let (loc, boxed) = self.read_boxed(BlobKind::Data, id, &loc).map_err(place)?;
        if loc.kind != BlobKind::Data {
            return Err(place(Error::corrupt(
                "the index no longer lists it as a data blob",
            )));
        }
        let payload_bytes = self
            .keys
            .open(BlobKind::Data.box_kind(), Some(id), &boxed)
            .map_err(|e| place(e.at(blob_place(id, &loc))))?;
        let base_bytes = match loc.base {
            None => None,
            Some(_) if links_left == 0 => {
                return Err(place(Error::corrupt(format!(
                    "a delta chain longer than {MAX_LINKS} links"
                ))))
            }
            Some(base) => Some(self.read_link(&base, links_left - 1, verify)?),
        };
        let data =
            payload::decode_with_base(&payload_bytes, loc.raw_len as usize, base_bytes.as_deref())
                .map_err(|e| place(e.at(blob_place(id, &loc))))?;
        let wrong = data.len() != loc.raw_len as usize
            || (verify == Verify::Yes && self.keys.blob_id(&data) != *id);
        if wrong {
            return Err(place(Error::corrupt("content does not match its id")));
        }
        Ok(data)
    }

    /// The base a new version of a blob resembling `like` is stored
    /// against: a link of `like`'s chain chosen as `pick` says, within
    /// chains of at most `max_links` links. `None` when there is no
    /// usable base: the blob is then stored whole, which is never wrong.
    ///
    /// With a cache, each link's box is taken from it when it opens, else
    /// read from the repository and cached. The index still decides which
    /// links exist: a cached box of a pruned blob is never used.
    pub fn delta_base(
        &self,
        like: &Id,
        cache: Option<&BaseCache>,
        max_links: usize,
        pick: Pick,
    ) -> Option<DeltaBase> {
        let chain = self.usable_chain(like).ok()??;
        let payloads = chain
            .iter()
            .map(|(id, loc)| self.link_payload(id, loc, cache))
            .collect::<Option<Vec<_>>>()?;
        let generations = payloads
            .iter()
            .map(|p| delta::generation(p).ok())
            .collect::<Option<Vec<_>>>()?;
        let (pick, generation) = match pick {
            Pick::NewVersion => delta::choose_base(&generations, max_links)?,
            Pick::Exactly => {
                (chain.len() <= max_links).then(|| (0, generations[0].saturating_add(1)))?
            }
        };
        // Decoded from the whole blob down to the pick only.
        let mut bytes: Option<Vec<u8>> = None;
        for ((_, loc), p) in chain[pick..].iter().zip(&payloads[pick..]).rev() {
            let raw_len = loc.raw_len as usize;
            let data = payload::decode_with_base(p, raw_len, bytes.as_deref()).ok()?;
            bytes = Some(data).filter(|d| d.len() == raw_len);
        }
        let (id, bytes) = (chain[pick].0, bytes?);
        // A base must be exactly the blob it is named for, or every reader
        // of the new delta would fail.
        (self.keys.blob_id(&bytes) == id).then_some(DeltaBase {
            id,
            bytes,
            generation,
        })
    }

    /// One link's payload, opened from the cache or read and cached.
    fn link_payload(
        &self,
        id: &Id,
        loc: &BlobLocation,
        cache: Option<&BaseCache>,
    ) -> Option<Vec<u8>> {
        let open = |boxed: &[u8]| self.keys.open(BlobKind::Data.box_kind(), Some(id), boxed);
        if let Some(boxed) = cache.and_then(|c| c.get(id)) {
            match open(&boxed) {
                Ok(p) => return Some(p),
                Err(_) => cache?.reject(id),
            }
        }
        let (_, boxed) = self.read_boxed(BlobKind::Data, id, loc).ok()?;
        let payload = open(&boxed).ok()?;
        if let Some(cache) = cache {
            cache.put(id, &boxed);
        }
        Some(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{in_memory, BlobWriter};

    /// The answer for a whole folder agrees with asking blob by blob.
    #[test]
    fn usable_data_blobs_are_the_ones_has_blob_accepts() {
        let repo = in_memory();
        let writer = BlobWriter::new(repo.clone(), None);
        let stored: Vec<Id> = (0..5u8)
            .map(|i| writer.save(BlobKind::Data, vec![i; 100 + usize::from(i)]))
            .collect::<Result<_>>()
            .unwrap();
        let tree = writer.save(BlobKind::Tree, b"not data".to_vec()).unwrap();
        writer.finish().unwrap();
        let asked: Vec<Id> = stored
            .iter()
            .copied()
            .chain([Id::default(), tree])
            .collect();
        let usable = repo.usable_data_blobs(&asked).unwrap();
        for id in &asked {
            assert_eq!(
                usable.contains(id),
                repo.has_blob(BlobKind::Data, id).unwrap()
            );
        }
        assert_eq!(usable, stored.into_iter().collect());
    }
}
