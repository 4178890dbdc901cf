//! Redis: the server's own point-in-time RDB file, fetched the way a replica
//! fetches it (`redis-cli --rdb -`: the server forks and serialises its
//! memory as of that instant, so writes during the transfer do not tear it).
//! Connection options mirror redis-cli's; the password travels in
//! `REDISCLI_AUTH`, which redis-cli reads itself, never on a command line.

use std::ffi::OsString;
use std::process::Command;

use crate::error::{Error, ErrorKind, Result};
use crate::system::process::query;

/// The name the RDB file gets in a snapshot (the server's default name).
pub const RDB_NAME: &str = "dump.rdb";

/// Where and as whom to connect; unset fields are redis-cli's defaults.
#[derive(Debug, Clone, Default)]
pub struct RedisConnection {
    /// The redis-cli program to run.
    pub program: Option<OsString>,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// A unix socket; takes precedence over host and port, as in redis-cli.
    pub socket: Option<OsString>,
    /// ACL user (Redis 6 and later).
    pub user: Option<String>,
}

impl RedisConnection {
    fn program(&self) -> OsString {
        self.program.clone().unwrap_or_else(|| "redis-cli".into())
    }

    /// redis-cli's connection arguments.
    pub fn cli_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if let Some(s) = &self.socket {
            args.extend(["-s".into(), s.clone()]);
        }
        if let Some(h) = &self.host {
            args.extend(["-h".into(), h.into()]);
        }
        if let Some(p) = self.port {
            args.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(u) = &self.user {
            args.extend(["--user".into(), u.into()]);
        }
        args
    }

    fn command(&self, rest: &[&str]) -> Command {
        let mut cmd = Command::new(self.program());
        cmd.args(self.cli_args()).args(rest);
        cmd
    }

    /// The server's version. This is also the connection check: a refused
    /// password or an unreachable server is reported before any dump.
    pub fn server_version(&self) -> Result<String> {
        let (out, said) = query(self.command(&["INFO", "server"]))?;
        parse_version(&out).ok_or_else(|| {
            // redis-cli exits 0 after a refused password and prints the
            // server's refusal as the reply.
            let reply = crate::system::process::last_line(&out);
            let detail = [reply.as_str(), said.as_str()]
                .iter()
                .filter(|s| !s.is_empty())
                .copied()
                .collect::<Vec<_>>()
                .join("; ");
            Error::new(
                ErrorKind::SourceFailed,
                format!("redis refused to answer ({detail}); no snapshot was recorded"),
            )
        })
    }

    /// The command whose standard output is the RDB file.
    pub fn rdb_command(&self) -> Command {
        self.command(&["--rdb", "-"])
    }
}

/// `redis_version` from the reply to `INFO server`.
pub fn parse_version(info: &[u8]) -> Option<String> {
    String::from_utf8_lossy(info)
        .lines()
        .find_map(|l| l.trim().strip_prefix("redis_version:"))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_is_read_from_info() {
        let info = b"# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(parse_version(info).as_deref(), Some("7.0.15"));
        assert_eq!(parse_version(b"NOAUTH Authentication required.\n"), None);
        assert_eq!(parse_version(b"redis_version:\r\n"), None);
    }

    #[test]
    fn arguments_follow_redis_cli() {
        let c = RedisConnection {
            socket: Some("/run/redis.sock".into()),
            user: Some("backup".into()),
            port: Some(6380),
            ..Default::default()
        };
        let args: Vec<String> = c
            .cli_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            ["-s", "/run/redis.sock", "-p", "6380", "--user", "backup"]
        );
        assert!(RedisConnection::default().cli_args().is_empty());
    }
}
