//! `vault restore mysql` (each stored dump fed to the client) and `vault
//! restore sqlite` (the file checked, then renamed into place). Both plan
//! first; `--dry-run` prints the plan and changes nothing.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::format::tree::Entry;
use vault::ops::mysql::{self, MysqlRestoreStep};
use vault::ops::sqlite::{self, SqliteRestorePlan};
use vault::ops::walk::file_entry;
use vault::progress::Progress;

use super::snapshot_db::MysqlConnectionArgs;
use vault::repo::SnapshotFilter;

use super::filter::Filter;
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
pub struct RestoreMysqlArgs {
    /// Snapshot id (or unique prefix), or 'latest'
    pub snapshot: String,
    /// Restore only this database (repeatable; all by default)
    #[arg(short = 'D', long = "database", value_name = "DB")]
    pub databases: Vec<String>,
    /// Also create the stored users and roles that the server lacks, and
    /// add their stored grants (first, before the databases)
    #[arg(long)]
    pub users: bool,
    /// Print what would be restored, and stop
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub conn: MysqlConnectionArgs,
    #[command(flatten)]
    pub filter: Filter,
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

fn print_mysql_plan(users: Option<&Entry>, plan: &[MysqlRestoreStep]) {
    if let Some(u) = users {
        println!(
            "would restore users and grants from {} ({})",
            vault::engines::mysql::USERS_STREAM,
            human_bytes(u.size)
        );
    }
    for step in plan {
        println!(
            "would restore database {} from {} ({})",
            step.database,
            String::from_utf8_lossy(&step.entry.name),
            human_bytes(step.entry.size)
        );
    }
}

pub(super) fn mysql(g: &Global, a: RestoreMysqlArgs) -> Result<i32> {
    let conn = a.conn.connection()?;
    let repo = open(g)?;
    let scope = SnapshotFilter {
        sources: vec![mysql::SOURCE.into()],
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
    let plan = mysql::plan_restore(&repo.read_tree(&snap.root)?, &a.databases)?;
    let users = match a.users {
        true => Some(mysql::users_entry(&repo, &snap.root)?),
        false => None,
    };
    let databases: Vec<&str> = plan.iter().map(|s| s.database.as_str()).collect();
    if a.dry_run {
        if g.json {
            print_json(&json!({
                "snapshot": id.to_hex(),
                "dry_run": true,
                "users": a.users,
                "databases": databases,
            }))?;
        } else {
            print_mysql_plan(users.as_ref(), &plan);
        }
        return Ok(exit::OK);
    }
    let started = std::time::Instant::now();
    let progress = Arc::new(Progress::default());
    let bytes = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore");
        mysql::restore(&repo, &conn, users.as_ref(), &plan, &progress)?
    };
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "users": a.users,
            "databases": databases,
            "bytes": bytes,
            "duration_ms": started.elapsed().as_millis() as u64,
        }))?;
    } else if !g.quiet {
        let users = if a.users { "users and grants, " } else { "" };
        println!(
            "restored {users}{} from snapshot {}: {} in {:.1}s",
            databases.join(", "),
            id.short(),
            human_bytes(bytes),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(exit::OK)
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

pub(super) fn sqlite(g: &Global, a: RestoreSqliteArgs) -> Result<i32> {
    let repo = open(g)?;
    let scope = SnapshotFilter {
        sources: vec![sqlite::SOURCE.into()],
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
    let entry = file_entry(&repo, &snap.root, a.file.as_deref().map(str::as_bytes))?;
    let plan = sqlite::plan_restore(&a.to, a.force)?;
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
        sqlite::restore(&repo, &entry, &plan, &progress)?
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
