use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use vault::ops::copy::{self, CopyPlan};
use vault::progress::Progress;
use vault::repo::SnapshotFilter;
use vault::{Id, Repository};

use super::filter::Filter;
use super::{filter, open, print_json};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Repository to copy from [default: --repo]
    #[arg(long)]
    pub from: Option<String>,
    /// Repository to copy to (must exist: create it with init)
    #[arg(long)]
    pub to: String,
    /// Password file of the source repository [default: --password-file]
    #[arg(long, env = "VAULT_FROM_PASSWORD_FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Password file of the target repository [default: --password-file]
    #[arg(long, env = "VAULT_TO_PASSWORD_FILE")]
    pub to_password_file: Option<PathBuf>,
    /// Snapshots to copy (ids, prefixes or 'latest'); all matching the
    /// filters when none are given
    pub snapshots: Vec<String>,
    #[command(flatten)]
    pub filter: Filter,
    /// Print what would be copied, copy nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Only snapshots taken at or after this time (`2026-12-01T03:00`)
    #[arg(long, value_name = "TIME", value_parser = super::filter::parse_time)]
    pub since: Option<vault::format::Timestamp>,
    /// Only the newest of the snapshots chosen
    #[arg(long, conflicts_with = "snapshots")]
    pub latest: bool,
}

/// The global options with one side's repository and password.
fn side(g: &Global, repo: Option<&String>, password_file: Option<&PathBuf>) -> Global {
    let mut side = g.clone();
    if let Some(repo) = repo {
        side.repo = Some(repo.clone());
    }
    if let Some(file) = password_file {
        side.password_file = Some(file.clone());
        side.password_command = None;
    }
    side
}

pub(super) fn copy(g: &Global, a: CopyArgs) -> Result<i32> {
    let source = open(&side(g, a.from.as_ref(), a.from_password_file.as_ref()))
        .context("opening the source repository")?;
    // An off-site copy is a scheduled backup too: it waits out a prune.
    let target = super::open_for_backup(&side(g, Some(&a.to), a.to_password_file.as_ref()))
        .context("opening the target repository")?;
    let mut selected = select(&source, &a.snapshots, &filter(&a.filter))?;
    // A snapshot forgotten on the target is copied again unless left out
    // here: the target keeps no record of what it once held.
    if let Some(since) = a.since {
        selected.retain(|(_, s)| s.time >= since);
    }
    if a.latest {
        let newest = selected.len().saturating_sub(1);
        selected.drain(..newest);
    }
    let plan = copy::plan(&source, &target, selected)?;
    if a.dry_run {
        report(g, &plan, None, &source, &target)?;
        return Ok(exit::OK);
    }
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "copy");
        copy::execute(&source, &target, &plan, &progress)?
    };
    report(g, &plan, Some(&outcome), &source, &target)?;
    Ok(exit::OK)
}

fn select(
    repo: &Repository,
    specs: &[String],
    filter: &SnapshotFilter,
) -> Result<Vec<(Id, vault::format::snapshot::Snapshot)>> {
    if specs.is_empty() {
        return Ok(repo
            .snapshots()?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect());
    }
    specs
        .iter()
        .map(|spec| Ok(repo.find_snapshot(spec, filter)?))
        .collect()
}

fn report(
    g: &Global,
    plan: &CopyPlan,
    outcome: Option<&copy::CopyOutcome>,
    source: &Repository,
    target: &Repository,
) -> Result<()> {
    let pairs = |v: &[(Id, Id)]| {
        v.iter()
            .map(|(s, t)| json!({ "source": s.to_hex(), "target": t.to_hex() }))
            .collect::<Vec<_>>()
    };
    if g.json {
        let stats = outcome.map(|o| &o.stats);
        return print_json(&json!({
            "dry_run": outcome.is_none(),
            "to_copy": plan.to_copy.iter().map(|(id, _)| id.to_hex()).collect::<Vec<_>>(),
            "already_copied": pairs(&plan.already_copied),
            "copied": outcome.map(|o| pairs(&o.copied)).unwrap_or_default(),
            "trees": plan.trees,
            "data_blobs": plan.data_blobs,
            "data_bytes": plan.data_bytes,
            "blobs_added": stats.map(|s| s.blobs_added),
            "raw_bytes_added": stats.map(|s| s.raw_bytes_added),
            "bytes_added": stats.map(|s| s.stored_bytes_added),
            "packs_written": stats.map(|s| s.packs_written),
            "requests": {
                "source": source.backend().requests().to_json(),
                "target": target.backend().requests().to_json(),
            },
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for (s, t) in &plan.already_copied {
        println!("snapshot {} already copied as {}", s.short(), t.short());
    }
    match outcome {
        None => {
            for (id, s) in &plan.to_copy {
                let paths: Vec<_> = s.paths.iter().map(|p| String::from_utf8_lossy(p)).collect();
                println!("would copy snapshot {} ({})", id.short(), paths.join(", "));
            }
            println!(
                "would copy {} snapshots: {} trees, {} data blobs, {} before deduplication",
                plan.to_copy.len(),
                plan.trees,
                plan.data_blobs,
                human_bytes(plan.data_bytes)
            );
        }
        Some(o) => {
            for (s, t) in &o.copied {
                println!("snapshot {} copied as {}", s.short(), t.short());
            }
            println!(
                "copied {} snapshots: {} added ({} stored) to {}",
                o.copied.len(),
                human_bytes(o.stats.raw_bytes_added),
                human_bytes(o.stats.stored_bytes_added),
                target.backend().describe()
            );
        }
    }
    Ok(())
}
