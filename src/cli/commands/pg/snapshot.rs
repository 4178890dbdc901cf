//! `vault snapshot pg`: a consistent, parallel dump of PostgreSQL.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use vault::ops::pg::snapshot::{snapshot_pg, Databases, PgSnapshotOptions};
use vault::ops::snapshot::ParentChoice;
use vault::progress::Progress;

use super::conn::PgConnArgs;
use crate::cli::args::Global;
use crate::cli::commands::snapshot::SnapshotMeta;
use crate::cli::commands::snapshot::{report_snapshot, snapshot_options};
use crate::cli::exit;
use crate::cli::output::ProgressGuard;

#[derive(Args, Debug)]
pub struct PgSnapshotArgs {
    /// Database name, or a postgresql:// URI or key=value connection string (PGDATABASE)
    #[arg(short = 'd', long, conflicts_with = "all")]
    pub dbname: Option<String>,
    /// The database, as pg_dump takes it (same as -d)
    #[arg(value_name = "DBNAME", conflicts_with_all = ["all", "dbname"])]
    pub database: Option<String>,
    /// Every database that accepts connections, and the roles and tablespaces
    #[arg(long)]
    pub all: bool,
    /// A base backup of the whole cluster over the replication protocol
    /// (point-in-time restore with the WAL archive)
    #[arg(long, conflicts_with_all = ["all", "database"])]
    pub physical: bool,
    /// Tables dumped at once
    #[arg(short, long, default_value_t = 2)]
    pub jobs: usize,
    /// Give up when a table lock is not granted within this time
    #[arg(long, default_value = "30s", value_name = "INTERVAL")]
    pub lock_wait_timeout: String,
    /// Read tables larger than this in parts of this size, in parallel (0: every table whole)
    #[arg(long, default_value = "64MiB", value_name = "SIZE", value_parser = vault::units::parse_size)]
    pub split_size: u64,
    #[command(flatten)]
    pub conn: PgConnArgs,
}

pub(crate) fn snapshot_pg_cmd(g: &Global, a: &PgSnapshotArgs, meta: &SnapshotMeta) -> Result<i32> {
    if a.physical {
        return super::physical::snapshot_physical_cmd(g, &a.conn, a.dbname.clone(), meta);
    }
    let conn = a.conn.conn(a.dbname.clone().or(a.database.clone()))?;
    let repo = crate::cli::commands::open_for_backup(g)?;
    let opts = PgSnapshotOptions {
        conn,
        databases: if a.all {
            Databases::All
        } else {
            Databases::One
        },
        jobs: a.jobs.max(1),
        lock_wait_timeout: a.lock_wait_timeout.clone(),
        split_size: a.split_size,
    };
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "snapshot pg");
        snapshot_pg(
            &repo,
            &opts,
            &snapshot_options(meta, ParentChoice::None),
            &progress,
        )?
    };
    report_snapshot(g, &outcome)?;
    Ok(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
