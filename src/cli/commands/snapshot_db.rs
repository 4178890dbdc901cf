//! `vault snapshot redis|mysql|sqlite`. Connection options follow each
//! server's own client (so `-h` is the host, as in redis-cli and mariadb;
//! help is `--help`, for every command). Passwords are never options: they come from the
//! environment or the client's option files, where `ps` cannot see them.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use vault::engines::mysql::MysqlConnection;
use vault::engines::redis::RedisConnection;
use vault::ops::mysql::MysqlSelection;
use vault::ops::snapshot::{ParentChoice, SnapshotOutcome};
use vault::ops::{mysql, redis, sqlite};
use vault::progress::Progress;
use vault::Repository;

use super::snapshot::snapshot_options;
use super::snapshot::{RetiredHost, SnapshotMeta};

#[derive(Args, Debug)]
pub struct RedisArgs {
    /// Server host (redis-cli's default: 127.0.0.1)
    #[arg(short = 'h', long = "host", alias = "server-host", value_name = "HOST")]
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
    #[arg(short = 'a', long = "pass", hide = true, value_name = "PASSWORD")]
    pub password: Option<String>,
    #[arg(short = 'n', hide = true, value_name = "DB")]
    pub db_number: Option<String>,
}

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

impl RedisArgs {
    /// Refuse redis-cli options that have no safe meaning here.
    pub fn check(&self) -> Result<()> {
        super::refuse_password_option(self.password.is_some(), "-a", "REDISCLI_AUTH")?;
        if self.db_number.is_some() {
            anyhow::bail!(vault::Error::invalid(
                "-n: the RDB file holds every database of the server; leave -n out"
            ));
        }
        Ok(())
    }
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

pub(super) fn redis(
    repo: &Arc<Repository>,
    a: &RedisArgs,
    meta: &SnapshotMeta,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let conn = RedisConnection {
        program: Some(a.redis_cli.clone()),
        host: a.server_host.clone(),
        port: a.port,
        socket: a.socket.clone(),
        user: a.user.clone(),
    };
    let opts = snapshot_options(meta, ParentChoice::None);
    Ok(redis::snapshot(repo, &conn, &opts, progress)?)
}

pub(super) fn mysql(
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
    Ok(mysql::snapshot(repo, &conn, &selection, &opts, progress)?)
}

pub(super) fn sqlite(
    repo: &Arc<Repository>,
    a: &SqliteArgs,
    meta: &SnapshotMeta,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    a.retired.refuse()?;
    let staging = a.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let opts = snapshot_options(meta, ParentChoice::None);
    Ok(sqlite::snapshot(repo, &a.file, &staging, &opts, progress)?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_line_is_well_formed() {
        crate::cli::command().debug_assert();
    }
}
