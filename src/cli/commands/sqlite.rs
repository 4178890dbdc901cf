//! `vault snapshot sqlite` and `vault restore sqlite`: a consistent copy
//! through SQLite's backup API; the restore writes the file beside its
//! target, has SQLite check it, then renames it into place. The restore
//! plans first; `--dry-run` prints the plan and changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::ops;
use vault::ops::snapshot::{ParentChoice, SnapshotOutcome};
use vault::ops::sqlite::SqliteRestorePlan;
use vault::ops::walk::file_entry;
use vault::progress::Progress;
use vault::repo::SnapshotFilter;
use vault::Repository;

use super::filter::Filter;
use super::snapshot::{snapshot_options, RetiredHost, SnapshotMeta};
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
pub struct SqliteArgs {
    /// The database file
    pub file: PathBuf,
    /// Where the consistent copy is staged while it is stored
    /// [default: the temp folder, $TMPDIR or /tmp]
    #[arg(long)]
    pub temp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub retired: RetiredHost,
}

pub(super) fn snapshot(
    repo: &Arc<Repository>,
    a: &SqliteArgs,
    meta: &SnapshotMeta,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    a.retired.refuse()?;
    let staging = a.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let opts = snapshot_options(meta, ParentChoice::None);
    Ok(ops::sqlite::snapshot(
        repo, &a.file, &staging, &opts, progress,
    )?)
}

#[derive(Args, Debug)]
pub struct RestoreSqliteArgs {
    /// Snapshot id (or unique prefix), or 'latest'
    pub snapshot: String,
    /// Write the database to this file
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The database file inside the snapshot (needed if it holds several)
    #[arg(long, value_name = "NAME")]
    pub file: Option<String>,
    /// Replace an existing database and remove its journal files
    #[arg(long)]
    pub force: bool,
    /// Print what would be done, and stop
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: Filter,
}

fn describe_sqlite_plan(plan: &SqliteRestorePlan) -> String {
    let mut s = format!(
        "would {} {}",
        if plan.replaces { "replace" } else { "create" },
        plan.target.display()
    );
    for stale in &plan.stale {
        s.push_str(&format!(", remove {}", stale.display()));
    }
    s
}

pub(super) fn restore(g: &Global, a: RestoreSqliteArgs) -> Result<i32> {
    let repo = open(g)?;
    let scope = SnapshotFilter {
        sources: vec![ops::sqlite::SOURCE.into()],
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
    let entry = file_entry(&repo, &snap.root, a.file.as_deref().map(str::as_bytes))?;
    let plan = ops::sqlite::plan_restore(&a.to, a.force)?;
    if a.dry_run {
        if g.json {
            print_json(&json!({
                "snapshot": id.to_hex(),
                "dry_run": true,
                "target": a.to.to_string_lossy(),
                "replaces": plan.replaces,
                "removes": plan.stale.iter().map(|p| p.to_string_lossy()).collect::<Vec<_>>(),
            }))?;
        } else {
            println!("{}", describe_sqlite_plan(&plan));
        }
        return Ok(exit::OK);
    }
    let started = std::time::Instant::now();
    let progress = Arc::new(Progress::default());
    let bytes = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore");
        ops::sqlite::restore(&repo, &entry, &plan, &progress)?
    };
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": a.to.to_string_lossy(),
            "bytes": bytes,
            "duration_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !g.quiet {
        println!(
            "restored {} from snapshot {} to {}: {} in {:.1}s",
            String::from_utf8_lossy(&entry.name),
            id.short(),
            a.to.display(),
            human_bytes(bytes),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(exit::OK)
}
