//! Connection options shared by the PostgreSQL commands, named after
//! psql's where they do not clash with vault's own (`--host` is the host a
//! snapshot records). Unset options fall back to `PG*` variables; the
//! password comes only from `PGPASSWORD` or `~/.pgpass`.

use clap::Args;
use vault::sources::pg::PgConn;

#[derive(Args, Debug, Clone)]
pub struct PgConnArgs {
    /// Server host or socket folder (PGHOST)
    #[arg(long = "pg-host", value_name = "HOST")]
    pub pg_host: Option<String>,
    /// Server port (PGPORT)
    #[arg(long = "pg-port", value_name = "PORT")]
    pub pg_port: Option<u16>,
    /// User name to connect as (PGUSER)
    #[arg(short = 'U', long = "username", value_name = "USER")]
    pub pg_user: Option<String>,
}

impl PgConnArgs {
    pub fn conn(&self, dbname: Option<String>) -> PgConn {
        PgConn {
            host: self.pg_host.clone(),
            port: self.pg_port,
            user: self.pg_user.clone(),
            dbname,
        }
    }
}
