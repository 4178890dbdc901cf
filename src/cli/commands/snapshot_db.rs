//! `vault snapshot redis|mysql|sqlite`. Connection options follow each
//! server's own client (so `-h` is the host, as in redis-cli and mariadb;
//! help is `--help`). Passwords are never options: they come from the
//! environment or the client's option files, where `ps` cannot see them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::{ArgAction, Args};
use vault::ops::db_snapshot::{self, MysqlSelection};
use vault::ops::snapshot::{ParentChoice, SnapshotOutcome};
use vault::ops::Progress;
use vault::sources::mysql::MysqlConnection;
use vault::sources::redis::RedisConnection;
use vault::Repository;

use super::snapshot::snapshot_options;
use crate::cli::args::SnapshotMeta;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RedisArgs {
    /// Server host (redis-cli's default: 127.0.0.1); --host names the
    /// host recorded in the snapshot
    #[arg(short = 'h', long = "server-host", value_name = "HOST")]
    pub server_host: Option<String>,
    /// Server port (redis-cli's default: 6379)
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Unix socket (overrides host and port)
    #[arg(short = 's', long)]
    pub socket: Option<OsString>,
    /// ACL user; the password comes from REDISCLI_AUTH
    #[arg(long)]
    pub user: Option<String>,
    /// The redis-cli program to run
    #[arg(long, default_value = "redis-cli")]
    pub redis_cli: OsString,
    #[command(flatten)]
    pub meta: SnapshotMeta,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct MysqlArgs {
    /// Dump this database (repeatable)
    #[arg(long = "database", value_name = "DB", required_unless_present = "all")]
    pub databases: Vec<String>,
    /// Dump every database except the server's own schemas, and the
    /// users, roles and grants (mariadb-dump --system=users)
    #[arg(long, conflicts_with = "databases")]
    pub all: bool,
    /// With --all, leave the users out (for mysqldump, which cannot dump
    /// them, or a login that may not read them)
    #[arg(long, requires = "all")]
    pub no_users: bool,
    #[command(flatten)]
    pub conn: MysqlConnectionArgs,
    #[command(flatten)]
    pub meta: SnapshotMeta,
    /// Print help
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// How to reach a MariaDB/MySQL server, as its own clients take it (`-h`
/// is the host, so a command using these disables clap's `-h` for help).
#[derive(Args, Debug)]
pub struct MysqlConnectionArgs {
    /// Server host
    #[arg(short = 'h', long = "server-host", value_name = "HOST")]
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
}

impl MysqlConnectionArgs {
    pub fn connection(&self) -> MysqlConnection {
        MysqlConnection {
            client: self.client.clone(),
            dump_program: self.dump_program.clone(),
            defaults_extra_file: self.defaults_extra_file.clone(),
            host: self.server_host.clone(),
            port: self.port,
            socket: self.socket.clone(),
            user: self.user.clone(),
        }
    }
}

#[derive(Args, Debug)]
pub struct SqliteArgs {
    /// The database file
    pub file: PathBuf,
    /// Where the consistent copy is staged while it is stored
    /// [default: the temp folder, $TMPDIR or /tmp]
    #[arg(long)]
    pub temp_dir: Option<PathBuf>,
    #[command(flatten)]
    pub meta: SnapshotMeta,
}

pub(super) fn redis(
    repo: &Arc<Repository>,
    a: &RedisArgs,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let conn = RedisConnection {
        program: Some(a.redis_cli.clone()),
        host: a.server_host.clone(),
        port: a.port,
        socket: a.socket.clone(),
        user: a.user.clone(),
    };
    let opts = snapshot_options(&a.meta, ParentChoice::None);
    Ok(db_snapshot::snapshot_redis(repo, &conn, &opts, progress)?)
}

pub(super) fn mysql(
    repo: &Arc<Repository>,
    a: &MysqlArgs,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let conn = a.conn.connection();
    let selection = MysqlSelection {
        all: a.all,
        databases: a.databases.clone(),
        users: a.all && !a.no_users,
    };
    let opts = snapshot_options(&a.meta, ParentChoice::None);
    Ok(db_snapshot::snapshot_mysql(
        repo, &conn, &selection, &opts, progress,
    )?)
}

pub(super) fn sqlite(
    repo: &Arc<Repository>,
    a: &SqliteArgs,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let staging = a.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let opts = snapshot_options(&a.meta, ParentChoice::None);
    Ok(db_snapshot::snapshot_sqlite(
        repo, &a.file, &staging, &opts, progress,
    )?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        use clap::CommandFactory;
        crate::cli::Cli::command().debug_assert();
    }
}
