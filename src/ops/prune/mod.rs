//! Prune: delete what no snapshot uses. Plan first (`plan_prune`, which
//! `--dry-run` prints), then `execute` in the order that keeps every step
//! safe to interrupt:
//!
//! 1. copy the used blobs of packs to repack into new packs, and index them;
//! 2. store the new index, which lists every pack that stays and supersedes
//!    every index object read;
//! 3. delete the superseded index objects;
//! 4. delete the packs no index names any more.
//!
//! A kill between any two steps leaves every snapshot readable: until step
//! 3 the old index still names the old packs, and step 4 only removes packs
//! that no index names. The next prune finds what is left (unindexed packs,
//! superfluous index objects, copies made twice) and finishes the job.
//! The caller holds the exclusive lock, so no backup runs meanwhile.

pub mod plan;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

pub use plan::{new_index_bodies, plan as decide, PlanInput, PrunePlan, PruneRules, Repack};

use super::reachable::reachable;
use super::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexBody;
use crate::format::{layout, BlobKind, Id};
use crate::repo::{BlobWriter, LockGuard, ObjectKind, Repository, WriteStats};

/// Blobs per index object written by prune (about 2 MiB of index each).
const INDEX_BLOBS_PER_OBJECT: usize = 50_000;
/// Deletions between checks that our lock is still held and fresh.
const DELETES_PER_LOCK_CHECK: usize = 64;

#[derive(Debug, Default)]
pub struct PruneOutcome {
    pub repack: WriteStats,
    pub index_objects_written: u64,
    pub index_objects_deleted: u64,
    pub packs_deleted: u64,
}

/// Read everything prune decides on: the snapshots' blobs, the index
/// objects and the packs in storage. Refuses when any tree cannot be read,
/// since what lies below it is unknown and could be deleted.
pub fn plan_prune(repo: &Repository, rules: &PruneRules) -> Result<PrunePlan> {
    let snapshots = repo.snapshots()?;
    let reach = reachable(repo, snapshots.iter().map(|(_, s)| s.root));
    if let Some((tree, e)) = reach.unreadable.first() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!(
                "{} trees of the snapshots cannot be read (first: tree {}: {e}); refusing to delete anything",
                reach.unreadable.len(),
                tree.short()
            ),
        ));
    }
    let used: HashSet<(BlobKind, Id)> = reach
        .trees
        .iter()
        .map(|id| (BlobKind::Tree, *id))
        .chain(reach.data.iter().map(|id| (BlobKind::Data, *id)))
        .collect();
    let index: Vec<(Id, IndexBody)> = repo
        .list_objects(ObjectKind::Index)?
        .par_iter()
        .map(|id| Ok((*id, repo.read_index(id)?)))
        .collect::<Result<_>>()?;
    let stored = stored_packs(repo)?;
    decide(
        &PlanInput {
            index: &index,
            stored: &stored,
            used: &used,
        },
        rules,
    )
}

fn stored_packs(repo: &Repository) -> Result<HashSet<Id>> {
    Ok(repo
        .backend()
        .list(layout::DATA)?
        .iter()
        .filter_map(|path| path.rsplit('/').next()?.parse::<Id>().ok())
        .collect())
}

/// Carry out `plan`. `lock` must be the exclusive lock the plan was made
/// under; it is checked before every step that deletes.
pub fn execute(
    repo: &Arc<Repository>,
    lock: &LockGuard,
    plan: &PrunePlan,
    progress: &Progress,
) -> Result<PruneOutcome> {
    let mut outcome = PruneOutcome::default();
    progress
        .bytes_total
        .store(plan.repack_bytes(), Ordering::Relaxed);
    if !plan.repack.is_empty() {
        lock.check()?;
        outcome.repack = repack(repo, &plan.repack, progress)?;
    }
    if plan.rewrite_index {
        lock.check()?;
        for body in new_index_bodies(plan, INDEX_BLOBS_PER_OBJECT) {
            repo.save_index(&body)?;
            outcome.index_objects_written += 1;
        }
        for (i, id) in plan.supersede.iter().enumerate() {
            if i % DELETES_PER_LOCK_CHECK == 0 {
                lock.check()?;
            }
            repo.delete_object(ObjectKind::Index, id)?;
            outcome.index_objects_deleted += 1;
        }
        // A superseded index object that power loss brought back would name
        // the packs deleted next, and readers would trust it again.
        repo.backend().sync_deletions(layout::INDEX)?;
    }
    let doomed = plan
        .delete
        .iter()
        .map(|(id, _)| *id)
        .chain(plan.repack.iter().map(|r| r.pack))
        .chain(plan.unindexed.iter().copied());
    for (i, id) in doomed.enumerate() {
        if i % DELETES_PER_LOCK_CHECK == 0 {
            lock.check()?;
        }
        match repo.backend().delete(&layout::pack(&id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(e.at(format!("delete pack {}", id.short())))
            }
            _ => outcome.packs_deleted += 1,
        }
        progress.files.fetch_add(1, Ordering::Relaxed);
    }
    // The cache still lists the superseded objects; this rebuilds it.
    repo.sync_index()?;
    Ok(outcome)
}

/// Copy the used blobs of `packs` into new packs, verifying each on the way.
fn repack(repo: &Arc<Repository>, packs: &[Repack], progress: &Progress) -> Result<WriteStats> {
    let writer = BlobWriter::for_repack(repo.clone());
    for r in packs {
        let place = format!("pack {}", r.pack.short());
        let bytes = repo
            .backend()
            .read(&layout::pack(&r.pack))
            .map_err(|e| e.at(&place))?;
        for b in &r.keep {
            let start = b.offset as usize;
            let boxed = bytes
                .get(start..start + b.stored_len as usize)
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "{place}: blob {} lies beyond the end of the pack",
                        b.id.short()
                    ))
                })?;
            let data = repo
                .open_blob(b.kind, &b.id, boxed, b.raw_len)
                .map_err(|e| e.at(format!("blob {} in {place}", b.id.short())))?;
            writer.save(b.kind, data)?;
        }
        progress
            .bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    writer.finish()
}
