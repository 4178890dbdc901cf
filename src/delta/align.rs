//! Aligning a new version of a file with its parent: a new chunk at offset
//! `o` most likely resembles the parent's bytes at `o - drift`, where the
//! drift is what inserts and deletes earlier in the file shifted it by.
//! A chunk both versions share fixes the drift exactly. A changed chunk of
//! about its counterpart's length is taken to end where its counterpart
//! ends (content-defined boundaries resynchronise right after a small
//! edit), so the drift follows edits that change every chunk a little,
//! with no chunk left in common. Pure bookkeeping.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::format::tree::ChunkRef;
use crate::format::Id;

pub struct Counterpart {
    /// The parent's chunks, with their start offsets.
    starts: Vec<u64>,
    ids: Vec<Id>,
    len: u64,
    /// Where each parent chunk starts (its first place, if repeated).
    place: HashMap<Id, u64>,
    /// From which new offset on each learnt drift applies. Chunks are
    /// hashed in parallel but nearly in order, so what the chunk before a
    /// new one taught has almost always been learnt.
    drift: Mutex<BTreeMap<u64, i64>>,
}

impl Counterpart {
    /// `None` for an empty parent: nothing to align with.
    pub fn new(parent: &[ChunkRef]) -> Option<Self> {
        if parent.is_empty() {
            return None;
        }
        let mut starts = Vec::with_capacity(parent.len());
        let mut place = HashMap::with_capacity(parent.len());
        let mut pos = 0u64;
        for c in parent {
            starts.push(pos);
            place.entry(c.id).or_insert(pos);
            pos += u64::from(c.len);
        }
        Some(Counterpart {
            starts,
            ids: parent.iter().map(|c| c.id).collect(),
            len: pos,
            place,
            drift: Mutex::new(BTreeMap::new()),
        })
    }

    /// The parent chunk the new chunk `id` of `len` bytes at `offset` most
    /// likely resembles; `None` when the parent holds the chunk itself (it
    /// deduplicates) or nothing lies at that place.
    pub fn like(&self, offset: u64, len: u32, id: &Id) -> Option<Id> {
        let mut drift = self.drift.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&at) = self.place.get(id) {
            drift.insert(offset, offset as i64 - at as i64);
            return None;
        }
        let shift = drift.range(..=offset).next_back().map_or(0, |(_, d)| *d);
        // The middle of the chunk picks the parent chunk it overlaps most.
        let centre = (offset + u64::from(len) / 2) as i64 - shift;
        if centre < 0 || centre as u64 >= self.len {
            return None;
        }
        let i = self
            .starts
            .partition_point(|s| *s <= centre as u64)
            .checked_sub(1)?;
        // Only a chunk about as long as its counterpart is taken to be an
        // edit of it; after a merge, split or insert the drift stays as it
        // was until a shared chunk fixes it.
        let parent_end = self.starts.get(i + 1).copied().unwrap_or(self.len);
        let parent_len = parent_end - self.starts[i];
        if u64::from(len).abs_diff(parent_len) * 8 <= parent_len {
            let end = offset + u64::from(len);
            drift.entry(end).or_insert(end as i64 - parent_end as i64);
        }
        Some(self.ids[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(b: u8, len: u32) -> ChunkRef {
        ChunkRef {
            id: Id::from_bytes([b; 32]),
            len,
        }
    }

    #[test]
    fn a_changed_chunk_meets_the_parent_chunk_at_its_place() {
        let parent = [c(1, 100), c(2, 100), c(3, 100)];
        let cp = Counterpart::new(&parent).unwrap();
        assert_eq!(cp.like(0, 100, &Id::from_bytes([1; 32])), None);
        assert_eq!(
            cp.like(100, 100, &Id::from_bytes([9; 32])),
            Some(parent[1].id)
        );
        assert_eq!(cp.like(300, 50, &Id::from_bytes([8; 32])), None, "appended");
    }

    #[test]
    fn an_insert_earlier_shifts_the_place_by_the_drift() {
        let parent = [c(1, 100), c(2, 100), c(3, 100), c(4, 100)];
        let cp = Counterpart::new(&parent).unwrap();
        // 40 bytes inserted in chunk 1: it changed, chunk 2 moved to 140.
        assert_eq!(
            cp.like(0, 140, &Id::from_bytes([7; 32])),
            Some(parent[0].id)
        );
        assert_eq!(cp.like(140, 100, &Id::from_bytes([2; 32])), None);
        // Chunk 3 changed at 240: without the drift its middle (290) would
        // fall in parent chunk 2; with it, in chunk 3.
        assert_eq!(
            cp.like(240, 100, &Id::from_bytes([9; 32])),
            Some(parent[2].id)
        );
    }

    #[test]
    fn edits_in_every_chunk_keep_the_alignment() {
        // Every parent chunk lost 10 bytes: nothing is shared, but each
        // changed chunk still meets its counterpart, far into the file.
        let parent: Vec<ChunkRef> = (0..50).map(|i| c(i, 100)).collect();
        let cp = Counterpart::new(&parent).unwrap();
        for i in 0..50u8 {
            let id = Id::from_bytes([100 + i; 32]);
            assert_eq!(
                cp.like(u64::from(i) * 90, 90, &id),
                Some(parent[usize::from(i)].id)
            );
        }
    }

    #[test]
    fn no_parent_no_counterpart() {
        assert!(Counterpart::new(&[]).is_none());
    }
}
