//! Forget: apply a retention policy to the snapshot list and delete the
//! snapshot objects it removes. Data stays until prune.

use jiff::tz::TimeZone;

use crate::error::Result;
use crate::format::Timestamp;
use crate::policy::{self, GroupBy, KeepRules, Plan, Selection};
use crate::repo::{LockGuard, ObjectKind, Repository};

/// Which snapshots `rules` keep and remove, as of `now` in `tz`.
pub fn plan_forget(
    repo: &Repository,
    rules: &KeepRules,
    selection: &Selection,
    group_by: GroupBy,
    now: Timestamp,
    tz: &TimeZone,
) -> Result<Plan> {
    policy::apply(&repo.snapshots()?, rules, selection, group_by, now, tz)
}

/// Delete the snapshot objects `plan` removes; returns how many.
pub fn remove_snapshots(repo: &Repository, lock: &LockGuard, plan: &Plan) -> Result<u64> {
    lock.check()?;
    let mut n = 0;
    for r in plan.removed() {
        repo.delete_object(ObjectKind::Snapshot, &r.id)?;
        n += 1;
    }
    Ok(n)
}
