//! Forget: delete the snapshot objects a retention plan (`crate::policy`)
//! removes. Data stays until prune.

use crate::error::Result;
use crate::policy::Plan;
use crate::repo::{LockGuard, ObjectKind, Repository};

/// Delete the snapshot objects `plan` removes; returns how many.
pub fn remove_snapshots(repo: &Repository, lock: &LockGuard, plan: &Plan) -> Result<u64> {
    let mut n = 0;
    for r in plan.removed() {
        lock.check_before_delete(n)?;
        repo.delete_object(ObjectKind::Snapshot, &r.id)?;
        n += 1;
    }
    Ok(n as u64)
}
