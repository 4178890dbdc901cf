use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use vault::ops::restore::{execute, plan, Action, RestoreOptions, RestorePlan};
use vault::progress::Progress;

use vault::repo::SnapshotFilter;

use super::filter::Filter;
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub source: Option<RestoreSource>,
    /// SNAPSHOT or SNAPSHOT:PATH ('latest' works as a snapshot)
    #[arg(required = true)]
    pub snapshot: Option<String>,
    /// Folder to restore into (created if missing)
    #[arg(short, long, required = true)]
    pub target: Option<PathBuf>,
    /// Restore only paths matching this glob (repeatable)
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip paths matching this glob (repeatable)
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Print what would be created, overwritten and replaced; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Subcommand, Debug)]
pub enum RestoreSource {
    /// Replay stored MariaDB/MySQL dumps through the client, database by database
    Mysql(super::mysql::RestoreMysqlArgs),
    /// Write a stored SQLite database to a file, checked before it replaces anything
    Sqlite(super::sqlite::RestoreSqliteArgs),
    /// Restore a PostgreSQL snapshot (or some of its tables) into a server
    Pg(super::pg::restore::PgRestoreArgs),
}

/// `SNAP:PATH` splits at the first colon; a snapshot id never holds one.
pub(super) fn split_snapshot_path(spec: &str) -> (&str, Option<&str>) {
    match spec.split_once(':') {
        Some((snap, path)) => (snap, Some(path)),
        None => (spec, None),
    }
}

pub(super) fn restore_cmd(g: &Global, a: RestoreArgs) -> Result<i32> {
    match a.source {
        Some(RestoreSource::Mysql(m)) => return super::mysql::restore(g, m),
        Some(RestoreSource::Sqlite(s)) => return super::sqlite::restore(g, s),
        Some(RestoreSource::Pg(pg)) => return super::pg::restore::restore_pg_cmd(g, &pg),
        None => {}
    }
    // clap insists on both when no subcommand is given.
    let (Some(spec), Some(target)) = (&a.snapshot, &a.target) else {
        bail!(vault::Error::invalid("give a snapshot and --target DIR"));
    };
    let repo = open(g)?;
    let (snap_spec, sub_path) = split_snapshot_path(spec);
    let scope = SnapshotFilter {
        holding: sub_path.map(|p| p.as_bytes().to_vec()),
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, snap_spec, &scope)?;
    let opts = RestoreOptions {
        target: target.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        sub_path: sub_path.map(|p| p.as_bytes().to_vec()),
    };
    let plan = plan(&repo, &snap.root, &opts)?;
    if a.dry_run {
        show_plan(g, &id, &plan)?;
        return Ok(exit::OK);
    }
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore");
        execute(&repo, &plan, &progress)?
    };
    for e in &outcome.errors {
        eprintln!("error: {e}");
    }
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": target.to_string_lossy(),
            "files": outcome.files,
            "dirs": outcome.dirs,
            "bytes": outcome.bytes,
            "errors": outcome.errors,
            "duration_ms": started.elapsed().as_millis() as u64,
            "requests": repo.backend().requests().to_json(),
        }))?;
    } else if !g.quiet {
        println!(
            "restored snapshot {} to {}: {} files, {} folders, {} in {:.1}s{}",
            id.short(),
            target.display(),
            outcome.files,
            outcome.dirs,
            human_bytes(outcome.bytes),
            started.elapsed().as_secs_f64(),
            if outcome.errors.is_empty() {
                String::new()
            } else {
                format!(", {} errors", outcome.errors.len())
            }
        );
    }
    Ok(match (outcome.errors.is_empty(), outcome.damaged) {
        (true, _) => exit::OK,
        (false, true) => exit::DAMAGE,
        (false, false) => exit::FAILURE,
    })
}

fn show_plan(g: &Global, id: &vault::format::Id, plan: &RestorePlan) -> Result<()> {
    let c = plan.counts();
    let what = |action: Action| match action {
        Action::Replace(existing) => format!("replace {existing:?}").to_lowercase(),
        other => other.name().to_string(),
    };
    if g.json {
        let entries: Vec<_> = plan
            .entries
            .iter()
            .map(|p| {
                json!({
                    "path": plan.target.join(&p.rel).to_string_lossy(),
                    "kind": format!("{:?}", p.entry.kind).to_lowercase(),
                    "size": p.entry.size,
                    "action": p.action.name(),
                    "replaces": match p.action {
                        Action::Replace(e) => Some(format!("{e:?}").to_lowercase()),
                        _ => None,
                    },
                })
            })
            .collect();
        return print_json(&json!({
            "dry_run": true,
            "snapshot": id.to_hex(),
            "target": plan.target.to_string_lossy(),
            "files": c.files,
            "dirs": c.dirs,
            "bytes": c.bytes,
            "created": c.created,
            "kept": c.kept,
            "overwritten": c.overwritten,
            "replaced": c.replaced,
            "entries": entries,
        }));
    }
    if g.quiet {
        return Ok(());
    }
    for p in plan.entries.iter().filter(|p| p.action != Action::Keep) {
        println!(
            "  {:<16} {}",
            what(p.action),
            plan.target.join(&p.rel).display()
        );
    }
    println!(
        "would restore {} files, {} folders, {} to {}: {} created, {} overwritten, {} replaced (dry run: nothing changed)",
        c.files,
        c.dirs,
        human_bytes(c.bytes),
        plan.target.display(),
        c.created,
        c.overwritten,
        c.replaced
    );
    Ok(())
}
