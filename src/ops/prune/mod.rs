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
//! That is the one-phase prune (`--exclusive`): the caller holds the
//! exclusive lock, so no backup runs meanwhile. By default prune deletes in
//! two phases instead (`phases.rs`, `execute_phases`) under the prune lock,
//! beside running backups. Either way it then deletes the archived WAL
//! no kept base backup or window needs (`wal.rs`).

pub mod phases;
pub mod plan;
pub mod wal;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rayon::prelude::*;

pub use phases::{plan_phases, PhaseInput, PhasePlan, Replace, Wait};
pub use plan::{
    index_bodies, new_index_bodies, plan as decide, PlanInput, PrunePlan, PruneRules, Repack,
};
pub use wal::{execute_wal, plan_wal};

use super::reachable::reachable;
use crate::error::{Error, ErrorKind, Result};
use crate::format::index::IndexBody;
use crate::format::marks::{Holder, Marks};
use crate::format::{layout, BlobKind, Id, Timestamp};
use crate::progress::Progress;
use crate::repo::{BlobWriter, LockGuard, ObjectKind, Repository, WriteStats};
use crate::system::hostname;

/// Blobs per index object written by prune (about 2 MiB of index each).
const INDEX_BLOBS_PER_OBJECT: usize = 50_000;

#[derive(Debug, Default)]
pub struct PruneOutcome {
    pub repack: WriteStats,
    pub index_objects_written: u64,
    pub index_objects_deleted: u64,
    pub packs_deleted: u64,
    pub marks_written: u64,
    /// Files left in `tmp/` by killed writers, deleted.
    pub tmp_files_deleted: u64,
}

/// Read everything prune decides on: the snapshots' blobs, the index
/// objects and the packs in storage. Refuses when any tree cannot be read,
/// since what lies below it is unknown and could be deleted.
pub fn plan_prune(repo: &Repository, rules: &PruneRules) -> Result<PrunePlan> {
    Ok(picture(repo, rules)?.plan)
}

/// What prune read, and the one-phase plan made from it.
struct Picture {
    index: Vec<(Id, IndexBody)>,
    plan: PrunePlan,
    /// Sizes of the packs no index names.
    unindexed_sizes: HashMap<Id, u64>,
}

fn picture(repo: &Repository, rules: &PruneRules) -> Result<Picture> {
    let snapshots = repo.snapshots()?;
    // A backup may have stored its index and snapshot since the repository
    // was opened (two-phase prune runs beside backups): its trees are only
    // found in index objects read after the snapshot listing.
    repo.sync_index()?;
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
    let mut plan = decide(
        &PlanInput {
            index: &index,
            stored: &stored,
            used: &used,
            max_delta_links: repo.config().delta_links(),
        },
        rules,
    )?;
    let unindexed_sizes = unindexed_sizes(repo, &plan.unindexed)?;
    plan.unindexed_bytes = unindexed_sizes.values().sum();
    Ok(Picture {
        index,
        plan,
        unindexed_sizes,
    })
}

/// Sizes of packs no index names (one request each; there are few). A
/// pack deleted since the listing is left out.
fn unindexed_sizes(repo: &Repository, packs: &[Id]) -> Result<HashMap<Id, u64>> {
    let mut out = HashMap::new();
    for id in packs {
        match repo.backend().size(&layout::pack(id)) {
            Ok(size) => {
                out.insert(*id, size);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.at(format!("pack {}", id.short()))),
        }
    }
    Ok(out)
}

/// A two-phase prune's plan: what is unused today, and what may go.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TwoPhasePlan {
    pub base: PrunePlan,
    pub phases: PhasePlan,
}

/// Plan a two-phase prune. `grace_secs` is how long a pack stays marked.
pub fn plan_two_phase(
    repo: &Repository,
    rules: &PruneRules,
    grace_secs: i64,
) -> Result<TwoPhasePlan> {
    // Marks and locks before the snapshots: a backup that ends meanwhile
    // then either still counts as a holder or has its snapshot read.
    let marks = repo.read_marks()?;
    let live = live_holders(repo)?;
    let Picture {
        index,
        plan: base,
        unindexed_sizes: sizes,
    } = picture(repo, rules)?;
    let phases = plan_phases(
        &base,
        &PhaseInput {
            index: &index,
            marks: &marks,
            live: &live,
            unindexed_sizes: &sizes,
            now: Timestamp::now(),
            grace_secs,
        },
    );
    Ok(TwoPhasePlan { base, phases })
}

/// Who holds a live lock, other than this process. Unreadable locks need
/// no entry: they conflict with the prune lock, so prune is not running.
fn live_holders(repo: &Repository) -> Result<HashSet<Holder>> {
    let me = (hostname(), std::process::id());
    Ok(repo
        .locks()?
        .into_iter()
        .filter(|l| !l.is_stale())
        .filter_map(|l| l.lock)
        .filter(|l| (l.host.as_str(), l.pid) != (me.0.as_str(), me.1))
        .map(|l| Holder {
            host: l.host,
            pid: l.pid,
            created: l.created,
        })
        .collect())
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
        replace_index(repo, lock, &plan.keep, &plan.supersede, &mut outcome)?;
    }
    let doomed = plan
        .delete
        .iter()
        .map(|(id, _)| *id)
        .chain(plan.repack.iter().map(|r| r.pack))
        .chain(plan.unindexed.iter().copied());
    delete_packs(repo, lock, doomed, progress, &mut outcome)?;
    outcome.tmp_files_deleted = clean_tmp(repo)?;
    // The cache still lists the superseded objects; this rebuilds it.
    repo.sync_index()?;
    Ok(outcome)
}

/// Store index objects listing `keep`, the last superseding `supersede`,
/// then delete those.
fn replace_index(
    repo: &Repository,
    lock: &LockGuard,
    keep: &[crate::format::index::IndexPack],
    supersede: &[Id],
    outcome: &mut PruneOutcome,
) -> Result<()> {
    lock.check()?;
    for body in index_bodies(keep, supersede, INDEX_BLOBS_PER_OBJECT) {
        repo.save_index(&body)?;
        outcome.index_objects_written += 1;
    }
    for (i, id) in supersede.iter().enumerate() {
        lock.check_before_delete(i)?;
        repo.delete_object(ObjectKind::Index, id)?;
        outcome.index_objects_deleted += 1;
    }
    // A superseded index object that power loss brought back would name
    // the packs deleted next, and readers would trust it again.
    repo.backend().sync_deletions(layout::INDEX)?;
    Ok(())
}

fn delete_packs(
    repo: &Repository,
    lock: &LockGuard,
    packs: impl Iterator<Item = Id>,
    progress: &Progress,
    outcome: &mut PruneOutcome,
) -> Result<()> {
    for (i, id) in packs.enumerate() {
        lock.check_before_delete(i)?;
        match repo.backend().delete(&layout::pack(&id)) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(e.at(format!("delete pack {}", id.short())))
            }
            _ => outcome.packs_deleted += 1,
        }
        progress.files.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// Carry out a two-phase `plan` under the prune lock, in the order that
/// keeps every step safe to interrupt and every running backup safe:
///
/// 1. repack, as the one-phase prune does (new packs, new index objects);
/// 2. store the new mark (unsealed), so every backup from now on sees it;
/// 3. list the locks and seal it, and any unsealed mark left by a killed
///    prune, with their holders;
/// 4. store the index without the packs to delete, delete the index
///    objects it supersedes, then delete the packs;
/// 5. rewrite the sealed marks that lost packs (deleted or used again).
///
/// A pack leaves its mark only after it is deleted (step 5 after 4), so no
/// backup can start relying on it in between.
pub fn execute_phases(
    repo: &Arc<Repository>,
    lock: &LockGuard,
    plan: &TwoPhasePlan,
    progress: &Progress,
) -> Result<PruneOutcome> {
    let (base, phases) = (&plan.base, &plan.phases);
    let mut outcome = PruneOutcome::default();
    progress
        .bytes_total
        .store(base.repack_bytes(), Ordering::Relaxed);
    if !base.repack.is_empty() {
        lock.check()?;
        outcome.repack = repack(repo, &base.repack, progress)?;
    }
    let mut to_seal = phases.seal.clone();
    if !phases.mark.is_empty() {
        lock.check()?;
        let fresh = Marks::new(Timestamp::now(), vec![], None, phases.mark.clone());
        let id = repo.write_object(ObjectKind::Marks, &fresh.encode())?;
        outcome.marks_written += 1;
        to_seal.push((id, fresh));
    }
    if !to_seal.is_empty() {
        // Listed after the marks are stored: a backup missing from this
        // list took its lock later, so it read the marks and honours them.
        let holders: Vec<Holder> = live_holders(repo)?.into_iter().collect();
        for (old, mark) in to_seal {
            lock.check()?;
            if !mark.packs.is_empty() {
                let sealed = Marks::new(mark.time, vec![old], Some(holders.clone()), mark.packs);
                repo.write_object(ObjectKind::Marks, &sealed.encode())?;
                outcome.marks_written += 1;
            }
            delete_mark(repo, &old)?;
        }
    }
    if phases.rewrite_index {
        replace_index(repo, lock, &phases.keep, &phases.supersede, &mut outcome)?;
    }
    delete_packs(
        repo,
        lock,
        phases.delete.iter().map(|(id, _)| *id),
        progress,
        &mut outcome,
    )?;
    for r in &phases.replace {
        lock.check()?;
        if let Some(new) = &r.new {
            repo.write_object(ObjectKind::Marks, &new.encode())?;
            outcome.marks_written += 1;
        }
        delete_mark(repo, &r.old)?;
    }
    outcome.tmp_files_deleted = clean_tmp(repo)?;
    repo.sync_index()?;
    Ok(outcome)
}

/// Delete what killed writers left in `tmp/` (local storage only), once it
/// is older than any write takes.
pub fn clean_tmp(repo: &Repository) -> Result<u64> {
    repo.backend().clean_tmp(crate::storage::TMP_STALE_AFTER)
}

fn delete_mark(repo: &Repository, id: &Id) -> Result<()> {
    match repo.delete_object(ObjectKind::Marks, id) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e.at(format!("delete marks {}", id.short())))
        }
        _ => Ok(()),
    }
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
                .open_blob(b.kind, &b.id, boxed, b.raw_len, b.base.as_ref())
                .map_err(|e| e.at(format!("blob {} in {place}", b.id.short())))?;
            writer.save_against(b.kind, data, b.base)?;
        }
        progress
            .bytes_written
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    }
    writer.finish()
}
