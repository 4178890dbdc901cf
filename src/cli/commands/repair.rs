use std::io::Write;
use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::json;
use vault::format::Timestamp;
use vault::ops::check::{check, CheckOptions, DataCheck};
use vault::ops::repair::index::{self, IndexRepairPlan};
use vault::ops::repair::snapshots::{self, SnapshotRepairPlan};
use vault::progress::Progress;
use vault::Id;

use super::check::{capped, damage_json, open_unsynced, print_damage};
use super::print_json;
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::ProgressGuard;

#[derive(Subcommand, Debug)]
pub enum RepairCommand {
    /// Rebuild the index from the pack headers
    Index(RepairIndexArgs),
    /// Rewrite snapshots that reference lost data, marking damaged files
    Snapshots(RepairSnapshotsArgs),
}

#[derive(Args, Debug)]
pub struct RepairIndexArgs {
    /// Print the plan and change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
}

#[derive(Args, Debug)]
pub struct RepairSnapshotsArgs {
    /// Print the plan and change nothing
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Remove the original snapshots once their repaired copies are stored
    #[arg(long)]
    pub forget: bool,
    /// Also download every pack to find damaged blobs (not only lost ones)
    #[arg(long)]
    pub read_data: bool,
}

pub(super) fn repair(g: &Global, c: RepairCommand) -> Result<i32> {
    match c {
        RepairCommand::Index(a) => repair_index(g, a),
        RepairCommand::Snapshots(a) => repair_snapshots(g, a),
    }
}

fn ids(list: &[Id]) -> Vec<String> {
    list.iter().map(Id::to_hex).collect()
}

fn repair_index(g: &Global, a: RepairIndexArgs) -> Result<i32> {
    let repo = open_unsynced(g)?;
    // Planned under the lock: a prune beside it could delete packs the plan
    // still lists.
    let lock = (!a.dry_run)
        .then(|| repo.lock_exclusive("repair index"))
        .transpose()?;
    let progress = Arc::new(Progress::default());
    let plan = {
        let _bar =
            ProgressGuard::counting(progress.clone(), g.quiet || g.json, "read", "pack headers");
        index::plan_repair(&repo, &progress)?
    };
    let (written, tmp_deleted) = match &lock {
        Some(lock) => (
            index::execute(&repo, lock, &plan)?,
            vault::ops::prune::clean_tmp(&repo)?,
        ),
        None => (vec![], 0),
    };
    if g.json {
        print_json(&json!({
            "dry_run": a.dry_run,
            "packs_from_headers": plan.from_headers.len(),
            "packs_from_old_index": ids(&plan.from_old_index.iter().map(|p| p.id).collect::<Vec<_>>()),
            "newly_indexed_packs": ids(&plan.newly_indexed),
            "dropped_packs": ids(&plan.dropped),
            "unrecoverable_packs": plan.unrecoverable.iter().map(|(id, why)| json!({"id": id.to_hex(), "reason": why})).collect::<Vec<_>>(),
            "replaced_index_objects": ids(&plan.replaced),
            "written_index_objects": ids(&written),
            "tmp_files_deleted": tmp_deleted,
        }))?;
    } else if !g.quiet {
        print_index_plan(&plan, a.dry_run, written.len())?;
        if tmp_deleted > 0 {
            println!("deleted {tmp_deleted} files left in tmp/ by killed writers");
        }
    }
    Ok(if plan.unrecoverable.is_empty() {
        exit::OK
    } else {
        exit::DAMAGE
    })
}

fn print_index_plan(plan: &IndexRepairPlan, dry_run: bool, written: usize) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let verb = if dry_run { "would" } else { "did" };
    writeln!(
        out,
        "{} packs described by their headers, {} not indexed before",
        plan.from_headers.len(),
        plan.newly_indexed.len()
    )?;
    capped(&mut out, &plan.from_old_index, |p| {
        format!(
            "  pack {}: header damaged, kept as the old index described it",
            p.id.short()
        )
    })?;
    capped(&mut out, &plan.unrecoverable, |(id, why)| {
        format!(
            "  pack {}: header damaged and no index describes it: {why}",
            id.short()
        )
    })?;
    capped(&mut out, &plan.dropped, |id| {
        format!(
            "  pack {}: gone from storage, dropped from the index",
            id.short()
        )
    })?;
    if dry_run {
        writeln!(
            out,
            "{verb} write {} index objects and remove the {} present",
            plan.new_packs().count().div_ceil(1024),
            plan.replaced.len()
        )?;
    } else {
        writeln!(
            out,
            "wrote {written} index objects, removed {} old ones",
            plan.replaced.len()
        )?;
    }
    Ok(())
}

fn repair_snapshots(g: &Global, a: RepairSnapshotsArgs) -> Result<i32> {
    let repo = open_unsynced(g)?;
    let _lock = (!a.dry_run)
        .then(|| repo.lock_exclusive("repair snapshots"))
        .transpose()?;
    let progress = Arc::new(Progress::default());
    let opts = CheckOptions {
        data: if a.read_data {
            DataCheck::All
        } else {
            DataCheck::Headers
        },
        now: Timestamp::now(),
        ..Default::default()
    };
    let report = {
        let _bar = ProgressGuard::counting(progress.clone(), g.quiet || g.json, "check", "packs");
        check(&repo, &opts, &progress)?
    };
    // Rewriting snapshots over data that is only unindexed would throw
    // away what repair index can still recover.
    if report.index_incomplete() && !report.lost.is_empty() {
        anyhow::bail!(
            "the index is damaged or misses packs, so some data counted as lost may still be stored: run 'vault repair index' first"
        );
    }
    let plan = snapshots::plan(&report);
    let nothing_to_do = plan.repair.is_empty() && (plan.already_repaired.is_empty() || !a.forget);
    let outcome = if a.dry_run || nothing_to_do {
        Default::default()
    } else {
        snapshots::execute(&repo, &plan, &report.lost, a.forget)?
    };
    if g.json {
        print_json(&json!({
            "dry_run": a.dry_run,
            "repair": plan.repair.iter().map(damage_json).collect::<Vec<_>>(),
            "beyond_repair": plan.beyond_repair.iter().map(|(id, why)| json!({"id": id.to_hex(), "reason": why})).collect::<Vec<_>>(),
            "unreadable": plan.unreadable.iter().map(|(id, why)| json!({"id": id.to_hex(), "reason": why})).collect::<Vec<_>>(),
            "already_repaired": plan.already_repaired.iter().map(|(o, c)| json!({"original": o.to_hex(), "repaired": c.to_hex()})).collect::<Vec<_>>(),
            "written": outcome.written.iter().map(|(o, n)| json!({"original": o.to_hex(), "repaired": n.to_hex()})).collect::<Vec<_>>(),
            "forgotten": ids(&outcome.forgotten),
        }))?;
    } else if !g.quiet {
        print_snapshot_plan(&plan, a.dry_run, &outcome)?;
    }
    Ok(
        if plan.beyond_repair.is_empty() && plan.unreadable.is_empty() {
            exit::OK
        } else {
            exit::DAMAGE
        },
    )
}

fn print_snapshot_plan(
    plan: &SnapshotRepairPlan,
    dry_run: bool,
    outcome: &snapshots::RepairOutcome,
) -> Result<()> {
    let mut out = std::io::stdout().lock();
    for (original, copy) in &plan.already_repaired {
        writeln!(
            out,
            "snapshot {} was repaired before, as {}",
            original.short(),
            copy.short()
        )?;
    }
    if plan.repair.is_empty()
        && plan.beyond_repair.is_empty()
        && plan.unreadable.is_empty()
        && plan.already_repaired.is_empty()
    {
        writeln!(out, "no snapshot references lost data")?;
        return Ok(());
    }
    if !plan.repair.is_empty() {
        writeln!(
            out,
            "{} snapshots to repair; these paths will be marked damaged:",
            plan.repair.len()
        )?;
        print_damage(&mut out, &plan.repair)?;
    }
    for (id, why) in &plan.beyond_repair {
        writeln!(out, "snapshot {}: beyond repair: {why}", id.short())?;
    }
    for (id, why) in &plan.unreadable {
        writeln!(out, "snapshot {}: unreadable: {why}", id.short())?;
    }
    if dry_run {
        writeln!(out, "dry run: nothing written")?;
    }
    for (original, repaired) in &outcome.written {
        writeln!(
            out,
            "snapshot {} repaired as {}",
            original.short(),
            repaired.short()
        )?;
    }
    for id in &outcome.forgotten {
        writeln!(out, "snapshot {} forgotten", id.short())?;
    }
    Ok(())
}
