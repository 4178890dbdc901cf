//! `vault snapshot redis`: the server's RDB file through redis-cli. The
//! connection options are redis-cli's own (`-h` host, `-p` port, `-s`
//! socket); the password comes from REDISCLI_AUTH, never an option, where
//! `ps` could see it.

use std::ffi::OsString;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use vault::engines::redis::RedisConnection;
use vault::ops;
use vault::ops::snapshot::{ParentChoice, SnapshotOutcome};
use vault::progress::Progress;
use vault::Repository;

use super::snapshot::{snapshot_options, SnapshotMeta};

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

pub(super) fn snapshot(
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
    Ok(ops::redis::snapshot(repo, &conn, &opts, progress)?)
}
