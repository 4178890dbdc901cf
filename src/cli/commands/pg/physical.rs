//! `vault snapshot pg --physical` and `vault restore pg --physical`: base
//! backups of a whole cluster, and data directories written back from
//! them that recover from the WAL archive to a point in time.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::engines::pg::basebackup::{format_lsn, parse_lsn};
use vault::engines::pg::tablespaces::parse_mapping;
use vault::format::pg_base::PG_PHYSICAL_SOURCE;
use vault::ops::pg::physical::drill::{drill_physical, PhysicalDrillOptions};
use vault::ops::pg::physical::newest_base_before_lsn;
use vault::ops::pg::physical::restore::{
    restore_command, restore_physical, PhysicalRestoreOptions, RecoveryTarget,
};
use vault::ops::pg::physical::snapshot::snapshot_physical;
use vault::ops::snapshot::ParentChoice;
use vault::progress::Progress;
use vault::repo::SnapshotFilter;

use super::conn::PgConnArgs;
use crate::cli::args::Global;
use crate::cli::commands::drill::{report_drill, DrillPgArgs};
use crate::cli::commands::filter::Filter;
use crate::cli::commands::snapshot::{report_snapshot, snapshot_options, SnapshotMeta};
use crate::cli::commands::{open, print_json, resolve_snapshot};
use crate::cli::exit;
use crate::cli::output::{describe_snapshot, human_bytes, ProgressGuard};

/// The options of `restore pg` that only a physical restore takes (the
/// recovery target and WAL key file also serve `--table` at a point in time).
#[derive(Args, Debug)]
pub struct PhysicalRestoreArgs {
    /// Restore a base backup (`snapshot pg --physical`) as a data directory
    #[arg(long, requires = "target", conflicts_with = "dbname")]
    pub physical: bool,
    /// The new data directory: must be missing or empty
    #[arg(long, value_name = "DIR", requires = "physical")]
    pub target: Option<PathBuf>,
    /// Recover up to this time (as PostgreSQL reads recovery_target_time)
    #[arg(long, value_name = "TIME", group = "recovery_target")]
    pub to_time: Option<String>,
    /// Recover up to this WAL position (X/Y)
    #[arg(long, value_name = "LSN", group = "recovery_target")]
    pub to_lsn: Option<String>,
    /// Recover up to this transaction id
    #[arg(long, value_name = "XID", group = "recovery_target")]
    pub to_xid: Option<u64>,
    /// The WAL key file (`vault wal key-file`) the server's restore_command unlocks the archive with
    #[arg(long, value_name = "FILE")]
    pub wal_key_file: Option<PathBuf>,
    /// Restore the tablespace that lived in OLDDIR into NEWDIR instead (repeatable; absolute paths, `\=` for a literal `=`)
    #[arg(
        short = 'T',
        long = "tablespace-mapping",
        value_name = "OLDDIR=NEWDIR",
        requires = "physical"
    )]
    pub tablespace_mapping: Vec<String>,
}

/// The options of `drill pg` that only a physical drill takes.
#[derive(Args, Debug)]
pub struct PhysicalDrillArgs {
    /// Drill a base backup (`snapshot pg --physical`) and the WAL archive
    #[arg(long, conflicts_with_all = ["scratch_url", "no_roles"])]
    pub physical: bool,
    /// Recover up to this time (default: the end of the archive)
    #[arg(
        long = "to-time",
        value_name = "TIME",
        requires = "physical",
        group = "drill_target"
    )]
    pub drill_to_time: Option<String>,
    /// Recover up to this WAL position (X/Y)
    #[arg(
        long = "to-lsn",
        value_name = "LSN",
        requires = "physical",
        group = "drill_target"
    )]
    pub drill_to_lsn: Option<String>,
    /// Recover up to this transaction id
    #[arg(
        long = "to-xid",
        value_name = "XID",
        requires = "physical",
        group = "drill_target"
    )]
    pub drill_to_xid: Option<u64>,
    /// The WAL key file the scratch server's restore_command unlocks the archive with
    #[arg(long = "wal-key-file", value_name = "FILE", requires = "physical")]
    pub drill_wal_key_file: Option<PathBuf>,
    /// Put the tablespace that lived in OLDDIR into NEWDIR (empty or new; removed after the drill) instead of the scratch folder (repeatable)
    #[arg(
        short = 'T',
        long = "tablespace-mapping",
        value_name = "OLDDIR=NEWDIR",
        requires = "physical"
    )]
    pub drill_tablespace_mapping: Vec<String>,
}

fn tablespace_mapping(args: &[String]) -> Result<Vec<(PathBuf, PathBuf)>> {
    Ok(args
        .iter()
        .map(|a| parse_mapping(a))
        .collect::<vault::Result<_>>()?)
}

pub(crate) fn drill_physical_cmd(g: &Global, a: &DrillPgArgs) -> Result<i32> {
    let p = &a.physical;
    let opts = PhysicalDrillOptions {
        to: recovery_target(
            p.drill_to_time.as_ref(),
            p.drill_to_lsn.as_ref(),
            p.drill_to_xid,
        )?,
        restore_command: server_restore_command(
            g,
            p.drill_wal_key_file.as_ref(),
            "drill pg --physical",
        )?,
        asserts: a.asserts.clone(),
        assert_database: a.assert_db.clone(),
        tablespace_mapping: tablespace_mapping(&p.drill_tablespace_mapping)?,
    };
    let repo = open(g)?;
    let (id, snap) =
        resolve_base_backup(g, &repo, &a.snapshot, &physical_only(&a.filter), &opts.to)?;
    let progress = Arc::new(Progress::default());
    let (drill_id, d) = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "drill --physical");
        drill_physical(&repo, &id, &snap, &opts, &progress)?
    };
    report_drill(g, &id, &drill_id, &d)
}

/// The base backup `spec` names. `latest` with an LSN target is the
/// newest backup consistent at or before it (one consistent only after
/// the target cannot stop there, an older one replays up to it); else
/// the usual resolution.
pub(super) fn resolve_base_backup(
    g: &Global,
    repo: &vault::Repository,
    spec: &str,
    scope: &SnapshotFilter,
    to: &RecoveryTarget,
) -> Result<(vault::Id, vault::format::snapshot::Snapshot)> {
    let RecoveryTarget::Lsn(lsn) = to else {
        return resolve_snapshot(g, repo, spec, scope);
    };
    if spec != "latest" {
        return resolve_snapshot(g, repo, spec, scope);
    }
    let all = repo.snapshots()?;
    let found = newest_base_before_lsn(all.iter().filter(|(_, s)| scope.matches(s)), *lsn)
        .cloned()
        .ok_or_else(|| {
            vault::Error::new(
                vault::ErrorKind::NotFound,
                format!(
                    "no physical base backup (`snapshot pg --physical`) was consistent at or before LSN {}",
                    format_lsn(*lsn)
                ),
            )
        })?;
    if !g.quiet {
        eprintln!("{}", describe_snapshot(&found.0, &found.1));
    }
    Ok(found)
}

/// Only base backups.
pub(super) fn physical_only(f: &Filter) -> SnapshotFilter {
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

pub(super) fn recovery_target(
    to_time: Option<&String>,
    to_lsn: Option<&String>,
    to_xid: Option<u64>,
) -> Result<RecoveryTarget> {
    Ok(match (to_time, to_lsn, to_xid) {
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

/// restore_command for a restored server: this binary, this repository,
/// unlocked by the WAL key file.
pub(super) fn server_restore_command(
    g: &Global,
    key_file: Option<&PathBuf>,
    what: &str,
) -> Result<String> {
    let Some(key_file) = key_file else {
        anyhow::bail!(vault::Error::invalid(format!(
            "{what} needs --wal-key-file FILE (made by `vault wal key-file`): \
             the restored server fetches WAL with it, and no password goes into the data directory"
        )));
    };
    let key_file = std::path::absolute(key_file)?;
    if !key_file.is_file() {
        anyhow::bail!(vault::Error::invalid(format!(
            "--wal-key-file {}: no such file (make one with `vault wal key-file`)",
            key_file.display()
        )));
    }
    let vault_bin = std::env::current_exe()?;
    Ok(restore_command(
        &vault_bin,
        &repository_for_server(g)?,
        &key_file,
    ))
}

pub(crate) fn restore_physical_cmd(
    g: &Global,
    spec: &str,
    a: &PhysicalRestoreArgs,
    filter: &Filter,
) -> Result<i32> {
    let Some(target) = &a.target else {
        anyhow::bail!(vault::Error::invalid(
            "restore pg --physical needs --target DIR"
        ));
    };
    let opts = PhysicalRestoreOptions {
        target: std::path::absolute(target)?,
        to: recovery_target(a.to_time.as_ref(), a.to_lsn.as_ref(), a.to_xid)?,
        restore_command: server_restore_command(
            g,
            a.wal_key_file.as_ref(),
            "restore pg --physical",
        )?,
        tablespace_mapping: tablespace_mapping(&a.tablespace_mapping)?,
        throwaway_tablespaces: None,
    };
    let repo = open(g)?;
    let (id, snap) = resolve_base_backup(g, &repo, spec, &physical_only(filter), &opts.to)?;
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
            "tablespaces": outcome.tablespaces.iter().map(|t| json!({
                "oid": t.oid,
                "location": t.location,
            })).collect::<Vec<_>>(),
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
