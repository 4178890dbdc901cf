//! `vault snapshot mysql` and `vault restore mysql`: one dump per database
//! (and the users, with `--all`), fed back to the client database by
//! database. Connection options are the clients' own (`-h` host, `-P`
//! port, `-u` user, `-S` socket); passwords come from the environment or
//! the clients' option files, never an option. The restore plans first;
//! `--dry-run` prints the plan and changes nothing.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use serde_json::json;
use vault::engines::mysql::MysqlConnection;
use vault::format::tree::Entry;
use vault::ops;
use vault::ops::mysql::{MysqlRestoreStep, MysqlSelection};
use vault::ops::snapshot::{ParentChoice, SnapshotOutcome};
use vault::progress::Progress;
use vault::repo::SnapshotFilter;
use vault::Repository;

use super::filter::Filter;
use super::snapshot::{snapshot_options, SnapshotMeta};
use super::{filter, open, print_json, resolve_snapshot};
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, ProgressGuard};

#[derive(Args, Debug)]
pub struct MysqlArgs {
    /// Dump this database (repeatable)
    #[arg(
        short = 'D',
        long = "database",
        alias = "databases",
        value_name = "DB",
        required_unless_present = "all"
    )]
    pub databases: Vec<String>,
    /// Dump every database except the server's own schemas, and the
    /// users, roles and grants (mariadb-dump --system=users)
    #[arg(
        short = 'A',
        long,
        alias = "all-databases",
        conflicts_with = "databases"
    )]
    pub all: bool,
    /// With --all, leave the users out (for mysqldump, which cannot dump
    /// them, or a login that may not read them)
    #[arg(long, requires = "all")]
    pub no_users: bool,
    #[command(flatten)]
    pub conn: MysqlConnectionArgs,
}

/// How to reach a MariaDB/MySQL server, as its own clients take it (`-h`
/// host, `-P` port, `-u` user).
#[derive(Args, Debug)]
pub struct MysqlConnectionArgs {
    /// Server host
    #[arg(short = 'h', long = "host", alias = "server-host", value_name = "HOST")]
    pub server_host: Option<String>,
    /// Server port
    #[arg(short = 'P', long)]
    pub port: Option<u16>,
    /// Unix socket
    #[arg(short = 'S', long)]
    pub socket: Option<PathBuf>,
    /// User; the password comes from MYSQL_PWD or an option file
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Option file read after the usual ones (may hold the password)
    #[arg(long)]
    pub defaults_extra_file: Option<PathBuf>,
    /// Query client [default: mariadb, or mysql if that is missing]
    #[arg(long)]
    pub client: Option<OsString>,
    /// Dump program [default: mariadb-dump, or mysqldump if that is missing]
    #[arg(long)]
    pub dump_program: Option<OsString>,
    /// `-p` of the MariaDB clients (ask for, or give, the password)
    #[arg(
        short = 'p',
        long = "password",
        hide = true,
        num_args = 0..=1,
        value_name = "PASSWORD"
    )]
    pub password: Option<Option<String>>,
}

impl MysqlConnectionArgs {
    pub fn connection(&self) -> Result<MysqlConnection> {
        super::refuse_password_option(
            self.password.is_some(),
            "-p/--password",
            "MYSQL_PWD or an option file (--defaults-extra-file)",
        )?;
        Ok(MysqlConnection {
            client: self.client.clone(),
            dump_program: self.dump_program.clone(),
            defaults_extra_file: self.defaults_extra_file.clone(),
            host: self.server_host.clone(),
            port: self.port,
            socket: self.socket.clone(),
            user: self.user.clone(),
        })
    }
}

pub(super) fn snapshot(
    repo: &Arc<Repository>,
    a: &MysqlArgs,
    meta: &SnapshotMeta,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let conn = a.conn.connection()?;
    let selection = MysqlSelection {
        all: a.all,
        databases: a.databases.clone(),
        users: a.all && !a.no_users,
    };
    let opts = snapshot_options(meta, ParentChoice::None);
    Ok(ops::mysql::snapshot(
        repo, &conn, &selection, &opts, progress,
    )?)
}

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

pub(super) fn restore(g: &Global, a: RestoreMysqlArgs) -> Result<i32> {
    let conn = a.conn.connection()?;
    let repo = open(g)?;
    let scope = SnapshotFilter {
        sources: vec![ops::mysql::SOURCE.into()],
        ..filter(&a.filter)
    };
    let (id, snap) = resolve_snapshot(g, &repo, &a.snapshot, &scope)?;
    let plan = ops::mysql::plan_restore(&repo.read_tree(&snap.root)?, &a.databases)?;
    let users = match a.users {
        true => Some(ops::mysql::users_entry(&repo, &snap.root)?),
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
        ops::mysql::restore(&repo, &conn, users.as_ref(), &plan, &progress)?
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
