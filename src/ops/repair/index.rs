//! Rebuild the index from the packs themselves: every pack's header says
//! what it holds, so lost or damaged index objects, and packs a killed
//! backup stored but never indexed, are all recovered.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::{ErrorKind, Result};
use crate::format::index::{IndexBody, IndexPack};
use crate::format::{layout, Id};
use crate::progress::Progress;
use crate::repo::{LockGuard, ObjectKind, Repository};

/// Packs per new index object: a few MiB of index each.
const PACKS_PER_INDEX: usize = 1024;

/// What one stored pack's header said.
#[derive(Debug)]
pub enum HeaderRead {
    Ok(IndexPack),
    Damaged(String),
}

#[derive(Debug, Default)]
pub struct IndexRepairPlan {
    /// Packs described by their own headers.
    pub from_headers: Vec<IndexPack>,
    /// Packs whose header is damaged, kept as a readable index object
    /// described them (their blobs may still be intact).
    pub from_old_index: Vec<IndexPack>,
    /// Packs with a damaged header that no index object describes: nothing
    /// in them can be found.
    pub unrecoverable: Vec<(Id, String)>,
    /// Packs the old index names that storage no longer holds.
    pub dropped: Vec<Id>,
    /// Packs no index object named before (an interrupted backup's).
    pub newly_indexed: Vec<Id>,
    /// Index objects replaced (removed once the new ones are stored).
    pub replaced: Vec<Id>,
}

impl IndexRepairPlan {
    pub fn new_packs(&self) -> impl Iterator<Item = &IndexPack> {
        self.from_headers.iter().chain(&self.from_old_index)
    }
}

/// Decide the new index from what the headers say and what the readable
/// old index objects say. Pure.
pub fn plan(
    headers: Vec<(Id, HeaderRead)>,
    old: &HashMap<Id, IndexPack>,
    replaced: Vec<Id>,
) -> IndexRepairPlan {
    let mut plan = IndexRepairPlan {
        replaced,
        ..Default::default()
    };
    let mut stored = std::collections::HashSet::new();
    for (id, read) in headers {
        stored.insert(id);
        if !old.contains_key(&id) {
            plan.newly_indexed.push(id);
        }
        match read {
            HeaderRead::Ok(pack) => plan.from_headers.push(pack),
            HeaderRead::Damaged(why) => match old.get(&id) {
                Some(pack) => plan.from_old_index.push(pack.clone()),
                None => plan.unrecoverable.push((id, why)),
            },
        }
    }
    plan.dropped = old
        .keys()
        .filter(|id| !stored.contains(id))
        .copied()
        .collect();
    plan.from_headers.sort_by_key(|p| p.id);
    plan.from_old_index.sort_by_key(|p| p.id);
    plan.newly_indexed.sort();
    plan.dropped.sort();
    plan
}

/// Read every pack header and every readable index object, and plan.
pub fn plan_repair(repo: &Repository, progress: &Progress) -> Result<IndexRepairPlan> {
    let replaced = repo.list_objects(ObjectKind::Index)?;
    let mut old = HashMap::new();
    for body in replaced
        .par_iter()
        .map(|id| repo.read_index(id))
        .collect::<Vec<_>>()
    {
        match body {
            Ok(body) => old.extend(body.packs.into_iter().map(|p| (p.id, p))),
            Err(e) if e.kind() == ErrorKind::Io => return Err(e),
            // Damaged or gone: what it said is what we rebuild.
            Err(_) => {}
        }
    }
    let packs = repo.list_packs()?;
    let headers = packs
        .par_iter()
        .filter_map(|id| {
            let read = repo
                .backend()
                .size(&layout::pack(id))
                .and_then(|size| repo.read_pack_header(id, size));
            progress
                .files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match read {
                Ok(pack) => Some(Ok((*id, HeaderRead::Ok(pack)))),
                // Removed since the listing (a concurrent prune).
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) if e.kind() == ErrorKind::Io => Some(Err(e)),
                Err(e) => Some(Ok((*id, HeaderRead::Damaged(e.to_string())))),
            }
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(plan(headers, &old, replaced))
}

/// Store the new index objects, then remove the ones they replace. A run
/// killed in between leaves both, which readers take the union of. `lock`
/// is the exclusive lock the plan was made under, checked before storing
/// and along the deletions, like prune's.
pub fn execute(repo: &Repository, lock: &LockGuard, plan: &IndexRepairPlan) -> Result<Vec<Id>> {
    let packs: Vec<IndexPack> = plan.new_packs().cloned().collect();
    let mut written = Vec::new();
    lock.check()?;
    for batch in packs.chunks(PACKS_PER_INDEX) {
        written.push(repo.save_index(&IndexBody {
            supersedes: vec![],
            packs: batch.to_vec(),
        })?);
    }
    for (i, id) in plan.replaced.iter().enumerate() {
        lock.check_before_delete(i)?;
        match repo.delete_object(ObjectKind::Index, id) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.at(format!("remove replaced index {}", id.short()))),
        }
    }
    repo.sync_index()?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(n: u8) -> IndexPack {
        IndexPack {
            id: Id::from_bytes([n; 32]),
            size: 100 + u64::from(n),
            blobs: vec![],
        }
    }

    #[test]
    fn headers_win_old_entries_cover_damaged_headers_and_gone_packs_drop() {
        let old: HashMap<Id, IndexPack> = [pack(1), pack(2), pack(3)]
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let headers = vec![
            (pack(1).id, HeaderRead::Ok(pack(1))),
            (pack(2).id, HeaderRead::Damaged("bad".into())),
            (pack(4).id, HeaderRead::Ok(pack(4))),
            (pack(5).id, HeaderRead::Damaged("worse".into())),
        ];
        let p = plan(headers, &old, vec![Id::from_bytes([9; 32])]);
        assert_eq!(
            p.from_headers.iter().map(|p| p.id).collect::<Vec<_>>(),
            vec![pack(1).id, pack(4).id]
        );
        assert_eq!(p.from_old_index, vec![pack(2)]);
        assert_eq!(p.unrecoverable, vec![(pack(5).id, "worse".to_string())]);
        assert_eq!(p.dropped, vec![pack(3).id]);
        assert_eq!(p.newly_indexed, vec![pack(4).id, pack(5).id]);
        assert_eq!(p.replaced, vec![Id::from_bytes([9; 32])]);
    }
}
