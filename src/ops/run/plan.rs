//! What is due: a pure function of the plan file, the run records and the
//! clock, so `vault run` every minute does each thing once per schedule and
//! the decision can be tested without running anything.

use std::collections::HashMap;

use crate::config::{Interval, Plan};
use crate::format::run::RunRecord;
use crate::format::Timestamp;

/// The task name of the scheduled repository check in run records.
pub const CHECK_TASK: &str = "@check";
/// The step name of a drill in run records.
pub const DRILL_STEP: &str = "drill";

/// How soon a failed backup is tried again (unless its schedule is shorter).
pub const RETRY_AFTER: Interval = Interval::secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Back up a source: snapshot, verify, copy, forget and prune, and
    /// drill the new snapshot when `drill` is set.
    Backup { source: String, drill: bool },
    /// Drill the newest snapshot of a source whose backup is not due.
    Drill { source: String },
    /// The repository-wide check of `[check]`.
    Check,
}

impl Task {
    /// The name recorded in run records.
    pub fn name(&self) -> &str {
        match self {
            Task::Backup { source, .. } | Task::Drill { source } => source,
            Task::Check => CHECK_TASK,
        }
    }
}

/// The latest times the records show for one task name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Last {
    pub attempt: Option<(Timestamp, bool)>,
    pub drill: Option<Timestamp>,
}

/// Per task name, its newest attempt (and whether it passed) and drill.
pub fn last_times(records: &[RunRecord]) -> HashMap<&str, Last> {
    let mut out: HashMap<&str, Last> = HashMap::new();
    for r in records {
        let last = out.entry(r.task.as_str()).or_default();
        let is_backup = r.steps.iter().any(|s| s.name != DRILL_STEP);
        if is_backup && last.attempt.is_none_or(|(t, _)| t < r.time) {
            last.attempt = Some((r.time, r.passed));
        }
        if r.steps.iter().any(|s| s.name == DRILL_STEP) && last.drill.is_none_or(|t| t < r.time) {
            last.drill = Some(r.time);
        }
    }
    out
}

fn elapsed(since: Timestamp, now: Timestamp) -> u64 {
    u64::try_from(now.secs.saturating_sub(since.secs)).unwrap_or(0)
}

/// The tasks due at `now`, in plan order, the check last. Sources named in
/// `only` are backed up whatever their schedule, and only they are
/// considered; an empty `only` means every source, on schedule.
pub fn due(plan: &Plan, records: &[RunRecord], now: Timestamp, only: &[String]) -> Vec<Task> {
    let last = last_times(records);
    let mut tasks = Vec::new();
    for source in &plan.sources {
        let named = only.contains(&source.name);
        if !only.is_empty() && !named {
            continue;
        }
        let l = last.get(source.name.as_str()).copied().unwrap_or_default();
        let backup = named
            || match l.attempt {
                None => true,
                Some((t, true)) => elapsed(t, now) >= source.schedule.secs,
                Some((t, false)) => elapsed(t, now) >= source.schedule.min(RETRY_AFTER).secs,
            };
        let drill = source
            .drill
            .as_ref()
            .is_some_and(|d| l.drill.is_none_or(|t| elapsed(t, now) >= d.every.secs));
        let has_snapshot = records
            .iter()
            .any(|r| r.task == source.name && r.snapshot.is_some());
        if backup {
            tasks.push(Task::Backup {
                source: source.name.clone(),
                drill,
            });
        } else if drill && has_snapshot {
            tasks.push(Task::Drill {
                source: source.name.clone(),
            });
        }
    }
    if let Some(check) = &plan.check {
        let l = last.get(CHECK_TASK).copied().unwrap_or_default();
        let is_due = l
            .attempt
            .is_none_or(|(t, _)| elapsed(t, now) >= check.every.secs);
        if only.is_empty() && is_due {
            tasks.push(Task::Check);
        }
    }
    tasks
}

/// Run records old enough to delete: older than `keep`, except each task's
/// newest passed and newest failed record, which status always shows.
/// Keeps the `runs/` folder bounded by the schedule times `keep`.
pub fn expired(
    records: &[(crate::Id, RunRecord)],
    now: Timestamp,
    keep: Interval,
) -> Vec<crate::Id> {
    let mut newest: HashMap<(&str, bool), Timestamp> = HashMap::new();
    for (_, r) in records {
        let t = newest.entry((r.task.as_str(), r.passed)).or_insert(r.time);
        if *t < r.time {
            *t = r.time;
        }
    }
    records
        .iter()
        .filter(|(_, r)| elapsed(r.time, now) > keep.secs)
        .filter(|(_, r)| newest.get(&(r.task.as_str(), r.passed)) != Some(&r.time))
        .map(|(id, _)| *id)
        .collect()
}

#[cfg(test)]
mod tests;
