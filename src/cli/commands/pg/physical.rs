//! `vault snapshot pg --physical` and `vault restore pg --physical`: base
//! backups of a whole cluster, and data directories written back from
//! them that recover from the WAL archive to a point in time.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::engines::pg::basebackup::{format_lsn, parse_lsn};
use vault::format::pg_base::PG_PHYSICAL_SOURCE;
use vault::ops::pg::physical::restore::{
    restore_command, restore_physical, PhysicalRestoreOptions, RecoveryTarget,
};
use vault::ops::pg::physical::snapshot::snapshot_physical;
use vault::ops::snapshot::ParentChoice;
use vault::progress::Progress;
use vault::repo::SnapshotFilter;

use super::conn::PgConnArgs;
use crate::cli::args::Global;
use crate::cli::commands::filter::Filter;
use crate::cli::commands::snapshot::{report_snapshot, snapshot_options, SnapshotMeta};
use crate::cli::commands::{open, print_json, resolve_snapshot};
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

/// The options of `restore pg` that only a physical restore takes.
#[derive(Args, Debug)]
pub struct PhysicalRestoreArgs {
    /// Restore a base backup (`snapshot pg --physical`) as a data directory
    #[arg(long, requires = "target", conflicts_with = "dbname")]
    pub physical: bool,
    /// The new data directory: must be missing or empty
    #[arg(long, value_name = "DIR", requires = "physical")]
    pub target: Option<PathBuf>,
    /// Recover up to this time (as PostgreSQL reads recovery_target_time)
    #[arg(
        long,
        value_name = "TIME",
        requires = "physical",
        group = "recovery_target"
    )]
    pub to_time: Option<String>,
    /// Recover up to this WAL position (X/Y)
    #[arg(
        long,
        value_name = "LSN",
        requires = "physical",
        group = "recovery_target"
    )]
    pub to_lsn: Option<String>,
    /// Recover up to this transaction id
    #[arg(
        long,
        value_name = "XID",
        requires = "physical",
        group = "recovery_target"
    )]
    pub to_xid: Option<u64>,
    /// The WAL key file (`vault wal key-file`) the server's restore_command unlocks the archive with
    #[arg(long, value_name = "FILE", requires = "physical")]
    pub wal_key_file: Option<PathBuf>,
}

/// Only base backups.
fn physical_only(f: &Filter) -> SnapshotFilter {
    SnapshotFilter {
        sources: vec![PG_PHYSICAL_SOURCE.into()],
        ..crate::cli::commands::filter(f)
    }
}

pub(crate) fn snapshot_physical_cmd(
    g: &Global,
    conn: &PgConnArgs,
    dbname: Option<String>,
    meta: &SnapshotMeta,
) -> Result<i32> {
    let conn = conn.conn(dbname)?;
    let repo = crate::cli::commands::open_for_backup(g)?;
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(
            progress.clone(),
            g.quiet || g.json,
            "snapshot pg --physical",
        );
        snapshot_physical(
            &repo,
            &conn,
            &snapshot_options(meta, ParentChoice::None),
            &progress,
        )?
    };
    report_snapshot(g, &outcome)?;
    Ok(exit::OK)
}

fn recovery_target(a: &PhysicalRestoreArgs) -> Result<RecoveryTarget> {
    Ok(match (&a.to_time, &a.to_lsn, a.to_xid) {
        (Some(t), _, _) => RecoveryTarget::Time(t.clone()),
        (_, Some(l), _) => RecoveryTarget::Lsn(parse_lsn(l).ok_or_else(|| {
            vault::Error::invalid(format!(
                "--to-lsn '{l}' is not a WAL position like 0/3000028"
            ))
        })?),
        (_, _, Some(x)) => RecoveryTarget::Xid(x),
        _ => RecoveryTarget::End,
    })
}

/// Where the server finds the repository: a local path made absolute (the
/// server runs restore_command in its data directory).
fn repository_for_server(g: &Global) -> Result<String> {
    let Some(repo) = &g.repo else {
        anyhow::bail!(vault::Error::invalid(
            "restore pg --physical needs the repository (-r or VAULT_REPOSITORY) to write restore_command"
        ));
    };
    if repo.contains("://") {
        return Ok(repo.clone());
    }
    Ok(std::path::absolute(repo)?.to_string_lossy().into_owned())
}

pub(crate) fn restore_physical_cmd(
    g: &Global,
    spec: &str,
    a: &PhysicalRestoreArgs,
    filter: &Filter,
) -> Result<i32> {
    let (Some(target), Some(key_file)) = (&a.target, &a.wal_key_file) else {
        anyhow::bail!(vault::Error::invalid(
            "restore pg --physical needs --target DIR and --wal-key-file FILE (made by `vault wal key-file`): \
             the restored server fetches WAL with it, and no password goes into the data directory"
        ));
    };
    let key_file = std::path::absolute(key_file)?;
    if !key_file.is_file() {
        anyhow::bail!(vault::Error::invalid(format!(
            "--wal-key-file {}: no such file (make one with `vault wal key-file`)",
            key_file.display()
        )));
    }
    let vault_bin = std::env::current_exe()?;
    let opts = PhysicalRestoreOptions {
        target: std::path::absolute(target)?,
        to: recovery_target(a)?,
        restore_command: restore_command(&vault_bin, &repository_for_server(g)?, &key_file),
    };
    let repo = open(g)?;
    let (id, snap) = resolve_snapshot(g, &repo, spec, &physical_only(filter))?;
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar =
            ProgressGuard::start(progress.clone(), g.quiet || g.json, "restore pg --physical");
        restore_physical(&repo, &snap, &opts, &progress)?
    };
    if g.json {
        print_json(&json!({
            "snapshot": id.to_hex(),
            "target": opts.target,
            "files": outcome.files,
            "bytes": outcome.bytes,
            "start_lsn": format_lsn(outcome.base.start_lsn),
            "stop_lsn": format_lsn(outcome.base.stop_lsn),
            "timeline": outcome.base.stop_timeline,
            "duration_ms": outcome.duration_ms,
        }))?;
    } else if !g.quiet {
        println!(
            "restored base backup {} ({}, consistent from {}) into {} in {:.1}s; \
             start the server there to recover {}",
            id.short(),
            human_bytes(outcome.bytes),
            format_lsn(outcome.base.stop_lsn),
            opts.target.display(),
            outcome.duration_ms as f64 / 1000.0,
            match &opts.to {
                RecoveryTarget::End => "to the end of the archive".to_string(),
                RecoveryTarget::Time(t) => format!("to {t}"),
                RecoveryTarget::Lsn(l) => format!("to LSN {}", format_lsn(*l)),
                RecoveryTarget::Xid(x) => format!("to transaction {x}"),
            }
        );
    }
    Ok(exit::OK)
}
