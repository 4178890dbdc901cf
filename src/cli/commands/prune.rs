use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::Timestamp;
use vault::ops::prune::{self, PruneOutcome, PrunePlan, PruneRules, TwoPhasePlan, Wait};
use vault::ops::wal_retention::{WalPlan, WalRules};
use vault::progress::Progress;
use vault::repo::LockGuard;
use vault::units;
use vault::Repository;

use super::{open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug, Clone)]
pub struct PruneOptions {
    /// Unused space to tolerate in packs rather than repack them: a
    /// percentage of the repository (`5%`), or `unlimited`
    #[arg(long, default_value = "5%", value_parser = parse_max_unused)]
    pub max_unused: f64,
    /// Repack at most this much per run (`500M`, `2G`; bytes without a unit)
    #[arg(long, value_parser = units::parse_size)]
    pub max_repack_size: Option<u64>,
    /// How long a pack stays marked before a later prune may delete it
    /// (`30m`, `1h`, `2d`; seconds without a unit)
    #[arg(long, default_value = "1h", value_parser = parse_grace, value_name = "DURATION")]
    pub grace: i64,
    /// Keep all WAL pushed within DURATION (`7d`, `36h`): the window for
    /// point-in-time recovery, beside the WAL each kept base backup needs
    #[arg(long, value_parser = parse_grace, value_name = "DURATION")]
    pub keep_wal_within: Option<i64>,
    /// Delete at once under an exclusive lock, as in format version 2:
    /// backups cannot run (or wait) until prune ends
    #[arg(long)]
    pub exclusive: bool,
}

impl PruneOptions {
    /// The lock prune runs under: the prune lock (backups go on) or, with
    /// `--exclusive`, the exclusive one.
    pub(super) fn take_lock(&self, repo: &Arc<Repository>, purpose: &str) -> Result<LockGuard> {
        Ok(if self.exclusive {
            repo.lock_exclusive(purpose)?
        } else {
            repo.lock_prune(purpose)?
        })
    }

    pub(super) fn rules(&self) -> PruneRules {
        PruneRules {
            max_unused: self.max_unused,
            max_repack_bytes: self.max_repack_size,
        }
    }

    /// WAL retention: the window, and the grace that also protects WAL a
    /// base backup being taken now starts from.
    pub(super) fn wal_rules(&self) -> WalRules {
        WalRules {
            keep_within_secs: self.keep_wal_within.map(|s| s.max(0) as u64),
            grace_secs: self.grace.max(0) as u64,
        }
    }
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Print what would be deleted and repacked, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub options: PruneOptions,
}

fn parse_max_unused(s: &str) -> Result<f64, String> {
    if s == "unlimited" {
        return Ok(1.0);
    }
    units::parse_percent(s)
        .map(|p| p / 100.0)
        .map_err(|_| format!("'{s}' is not a percentage from 0% to 100% or 'unlimited'"))
}

fn parse_grace(s: &str) -> Result<i64, vault::Error> {
    let secs = units::parse_elapsed(s)?;
    i64::try_from(secs).map_err(|_| vault::Error::invalid(format!("'{s}' is too long a grace")))
}

pub(super) fn prune_cmd(g: &Global, a: PruneArgs) -> Result<i32> {
    let repo = open(g)?;
    if a.dry_run {
        let value = if a.options.exclusive {
            report(g, &prune::plan_prune(&repo, &a.options.rules())?, None)
        } else {
            let plan = prune::plan_two_phase(&repo, &a.options.rules(), a.options.grace)?;
            report_phases(g, &plan, None)
        };
        let wal = prune::plan_wal(&repo, &a.options.wal_rules(), Timestamp::now())?;
        let value = with_wal(value, report_wal(g, wal.as_ref(), None));
        if g.json {
            print_json(&value)?;
        }
        return Ok(exit::OK);
    }
    super::unlock::warn_stale_locks(g, &repo)?;
    let mode = if a.options.exclusive {
        vault::format::lock::LockMode::Exclusive
    } else {
        vault::format::lock::LockMode::Prune
    };
    super::unlock::announce_lock_wait(g, &repo, mode, super::lock_wait(g, super::WaitFor::Other))?;
    let lock = a.options.take_lock(&repo, "prune")?;
    let value = run(g, &repo, &lock, &a.options)?;
    if g.json {
        print_json(&value)?;
    }
    Ok(exit::OK)
}

/// Plan and carry out a prune under `lock` (also used by `forget --prune`).
pub(super) fn run(
    g: &Global,
    repo: &Arc<Repository>,
    lock: &LockGuard,
    options: &PruneOptions,
) -> Result<serde_json::Value> {
    let progress = Arc::new(Progress::default());
    let value = if !options.exclusive {
        let plan = prune::plan_two_phase(repo, &options.rules(), options.grace)?;
        let outcome = {
            let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "prune");
            prune::execute_phases(repo, lock, &plan, &progress)?
        };
        report_phases(g, &plan, Some(&outcome))
    } else {
        let plan = prune::plan_prune(repo, &options.rules())?;
        let outcome = {
            let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "prune");
            prune::execute(repo, lock, &plan, &progress)?
        };
        report(g, &plan, Some(&outcome))
    };
    // Planned after the packs' work, from the snapshots as they are now.
    let wal = prune::plan_wal(repo, &options.wal_rules(), Timestamp::now())?;
    let deleted = match &wal {
        Some(plan) => Some(prune::execute_wal(repo, lock, plan)?),
        None => None,
    };
    Ok(with_wal(value, report_wal(g, wal.as_ref(), deleted)))
}

fn with_wal(mut value: serde_json::Value, wal: serde_json::Value) -> serde_json::Value {
    value["wal"] = wal;
    value
}

/// Print the WAL retention plan (and what was deleted); returns the JSON
/// form. Null when the repository has no WAL archive.
fn report_wal(g: &Global, plan: Option<&WalPlan>, deleted: Option<u64>) -> serde_json::Value {
    let Some(plan) = plan else {
        return serde_json::Value::Null;
    };
    let timelines = plan.by_timeline();
    let value = json!({
        "files_to_delete": plan.delete.len(),
        "bytes_to_delete": plan.bytes(),
        "files_kept": plan.kept,
        "held": plan.held,
        "unreadable": plan.unreadable.iter().map(|f| f.name()).collect::<Vec<_>>(),
        "timelines": timelines,
        "files_deleted": deleted,
    });
    if g.json || g.quiet {
        return value;
    }
    let verb = if deleted.is_some() { "" } else { "would " };
    if let Some(why) = plan.held {
        println!("prune: WAL archive left as it is: {why}");
        return value;
    }
    if plan.kept == 0 && plan.delete.is_empty() {
        return value;
    }
    println!(
        "prune: WAL archive: {verb}delete {} files ({}), keep {}",
        plan.delete.len(),
        human_bytes(plan.bytes()),
        plan.kept
    );
    for t in &timelines {
        println!(
            "prune:   timeline {}: {} to {} ({} files, {})",
            t.timeline,
            t.first,
            t.last,
            t.files,
            human_bytes(t.bytes)
        );
    }
    if !plan.unreadable.is_empty() {
        println!(
            "prune: WAL archive: {} files kept because their header does not read (first: {}); run check",
            plan.unreadable.len(),
            plan.unreadable[0].name()
        );
    }
    value
}

/// Print the plan (and what was done) for people; returns the JSON form.
pub(super) fn report(
    g: &Global,
    plan: &PrunePlan,
    done: Option<&PruneOutcome>,
) -> serde_json::Value {
    let total = plan.used_bytes + plan.unused_kept_bytes;
    let value = json!({
        "dry_run": done.is_none(),
        "packs_to_delete": plan.delete.len(),
        "packs_to_repack": plan.repack.len(),
        "unindexed_packs": plan.unindexed.len(),
        "vanished_packs": plan.vanished.len(),
        "index_objects_replaced": if plan.rewrite_index { plan.supersede.len() } else { 0 },
        "repack_bytes": plan.repack_bytes(),
        "repack_keep_bytes": plan.repack_keep_bytes(),
        "bytes_freed": plan.freed_bytes(),
        "used_bytes": plan.used_bytes,
        "unused_bytes_left": plan.unused_kept_bytes,
        "packs_deleted": done.map(|d| d.packs_deleted),
        "packs_written": done.map(|d| d.repack.packs_written),
        "index_objects_written": done.map(|d| d.index_objects_written),
        "tmp_files_deleted": done.map(|d| d.tmp_files_deleted),
    });
    if g.json || g.quiet {
        return value;
    }
    print_tmp(done);
    let verb = if done.is_some() { "" } else { "would " };
    if plan.is_empty() {
        println!(
            "prune: nothing to do ({} used)",
            human_bytes(plan.used_bytes)
        );
        return value;
    }
    println!(
        "prune: {verb}delete {} unused packs and {} packs no index names; {verb}repack {} packs ({} of which {} still used)",
        plan.delete.len(),
        plan.unindexed.len(),
        plan.repack.len(),
        human_bytes(plan.repack_bytes()),
        human_bytes(plan.repack_keep_bytes()),
    );
    if plan.rewrite_index {
        println!(
            "prune: {verb}replace {} index objects",
            plan.supersede.len()
        );
    }
    let unused_share = if total == 0 {
        0.0
    } else {
        plan.unused_kept_bytes as f64 * 100.0 / total as f64
    };
    println!(
        "prune: {} {}; {} used, {} unused left ({unused_share:.1}%)",
        human_bytes(plan.freed_bytes()),
        if done.is_some() {
            "freed"
        } else {
            "would be freed"
        },
        human_bytes(plan.used_bytes),
        human_bytes(plan.unused_kept_bytes),
    );
    value
}

fn print_tmp(done: Option<&PruneOutcome>) {
    if let Some(n) = done.map(|d| d.tmp_files_deleted).filter(|n| *n > 0) {
        println!("prune: deleted {n} files left in tmp/ by killed writers");
    }
}

/// Print a two-phase plan (and what was done); returns the JSON form.
pub(super) fn report_phases(
    g: &Global,
    plan: &TwoPhasePlan,
    done: Option<&PruneOutcome>,
) -> serde_json::Value {
    let (base, ph) = (&plan.base, &plan.phases);
    let count = |f: fn(&Wait) -> bool| ph.waiting.iter().filter(|(_, w)| f(w)).count();
    let waiting_grace = count(|w| matches!(w, Wait::Grace(_)));
    let waiting_backups = count(|w| matches!(w, Wait::Holder));
    let waiting_other = ph.waiting.len() - waiting_grace - waiting_backups;
    let value = json!({
        "dry_run": done.is_none(),
        "two_phase": true,
        "packs_to_mark": ph.mark.len(),
        "packs_to_delete": ph.delete.len(),
        "packs_resurrected": ph.resurrect.len(),
        "packs_waiting_grace": waiting_grace,
        "packs_waiting_backups": waiting_backups,
        "packs_waiting_other": waiting_other,
        "packs_to_repack": base.repack.len(),
        "unindexed_packs": base.unindexed.len(),
        "vanished_packs": base.vanished.len(),
        "index_objects_replaced": if ph.rewrite_index { ph.supersede.len() } else { 0 },
        "repack_bytes": base.repack_bytes(),
        "repack_keep_bytes": base.repack_keep_bytes(),
        "bytes_freed": ph.freed_bytes(),
        "used_bytes": base.used_bytes,
        "packs_deleted": done.map(|d| d.packs_deleted),
        "packs_written": done.map(|d| d.repack.packs_written),
        "index_objects_written": done.map(|d| d.index_objects_written),
        "marks_written": done.map(|d| d.marks_written),
        "tmp_files_deleted": done.map(|d| d.tmp_files_deleted),
    });
    if g.json || g.quiet {
        return value;
    }
    print_tmp(done);
    let verb = if done.is_some() { "" } else { "would " };
    if ph.is_empty() && base.repack.is_empty() && ph.waiting.is_empty() {
        println!(
            "prune: nothing to do ({} used)",
            human_bytes(base.used_bytes)
        );
        return value;
    }
    println!(
        "prune: {verb}mark {} packs for deletion ({} of them unindexed); {verb}repack {} packs ({} of which {} still used)",
        ph.mark.len(),
        base.unindexed.iter().filter(|id| ph.mark.contains(id)).count(),
        base.repack.len(),
        human_bytes(base.repack_bytes()),
        human_bytes(base.repack_keep_bytes()),
    );
    println!(
        "prune: {verb}delete {} marked packs, {} freed; {} packs used again {verb}leave their marks",
        ph.delete.len(),
        human_bytes(ph.freed_bytes()),
        ph.resurrect.len(),
    );
    if !ph.waiting.is_empty() {
        println!(
            "prune: {} marked packs wait: {waiting_grace} for the grace period, {waiting_backups} for backups that started before they were marked, {waiting_other} until the next prune",
            ph.waiting.len()
        );
    }
    if ph.rewrite_index {
        println!("prune: {verb}replace {} index objects", ph.supersede.len());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse() {
        assert_eq!(parse_max_unused("5%"), Ok(0.05));
        assert_eq!(parse_max_unused("0"), Ok(0.0));
        assert_eq!(parse_max_unused("unlimited"), Ok(1.0));
        assert!(parse_max_unused("101%").is_err());
        assert!(parse_max_unused("x").is_err());
        assert_eq!(parse_grace("0").unwrap(), 0);
        assert_eq!(parse_grace("90").unwrap(), 90);
        assert_eq!(parse_grace("1H").unwrap(), 3600);
        assert!(parse_grace("-1").is_err());
        assert!(parse_grace("").is_err());
        assert!(parse_grace("99999999999999w").is_err());
    }
}
