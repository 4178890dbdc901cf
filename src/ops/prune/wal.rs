//! WAL retention carried out: read what the planner (`ops::wal_retention`)
//! judges, then delete in the archive's order. Every file deleted is one
//! no kept base backup needs, so a prune killed at any point has lost
//! nothing needed; the next one finishes the job.

use std::collections::HashMap;

use rayon::prelude::*;

use crate::error::{ErrorKind, Result};
use crate::format::wal::WalFile;
use crate::format::Timestamp;
use crate::ops::wal_retention::{self, kept_bases, Stat, WalPlan, WalRules};
use crate::repo::{LockGuard, Repository, WalArchive};

/// Plan WAL retention from the snapshots as they are now. None when the
/// repository's format has no WAL archive.
pub fn plan_wal(repo: &Repository, rules: &WalRules, now: Timestamp) -> Result<Option<WalPlan>> {
    let Ok(archive) = WalArchive::of(repo) else {
        return Ok(None);
    };
    // Snapshots before the archive's listing: a base backup committed in
    // between starts from WAL pushed recently, which the grace keeps.
    let bases = kept_bases(&repo.snapshots()?)?;
    let files = archive.list()?;
    let undecided = wal_retention::undecided(&files, &bases);
    let stats = read_stats(&archive, &undecided)?;
    Ok(Some(wal_retention::plan(
        &files, &bases, &stats, rules, now,
    )))
}

fn read_stats(archive: &WalArchive<'_>, files: &[WalFile]) -> Result<HashMap<WalFile, Stat>> {
    let read: Vec<Option<(WalFile, Stat)>> = files
        .par_iter()
        .map(|f| match archive.stat(f) {
            Ok(Some((header, bytes))) => Ok(Some((
                *f,
                Stat::Read {
                    pushed: header.pushed,
                    bytes,
                },
            ))),
            Ok(None) => Ok(None),
            Err(e) if matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::Tampered) => {
                Ok(Some((*f, Stat::Unreadable)))
            }
            Err(e) => Err(e),
        })
        .collect::<Result<_>>()?;
    Ok(read.into_iter().flatten().collect())
}

/// Delete what `plan` deletes, oldest first, checking `lock` on the way.
/// Returns how many files went.
pub fn execute_wal(repo: &Repository, lock: &LockGuard, plan: &WalPlan) -> Result<u64> {
    if plan.delete.is_empty() {
        return Ok(0);
    }
    let archive = WalArchive::of(repo)?;
    for (i, (file, _)) in plan.delete.iter().enumerate() {
        lock.check_before_delete(i)?;
        archive.delete(file)?;
    }
    Ok(plan.delete.len() as u64)
}
