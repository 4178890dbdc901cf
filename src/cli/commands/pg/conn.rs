//! Connection options shared by the PostgreSQL commands, spelled as psql
//! and pg_dump spell them (`-h` host, `-p` port, `-U` user, `-d` database).
//! Unset options fall back to `PG*` variables; the password comes only from
//! `PGPASSWORD` or `~/.pgpass`.

use clap::Args;
use vault::engines::pg::PgConn;

#[derive(Args, Debug, Clone)]
pub struct PgConnArgs {
    /// Server host or socket folder (PGHOST)
    #[arg(short = 'h', long = "host", alias = "pg-host", value_name = "HOST")]
    pub pg_host: Option<String>,
    /// Server port (PGPORT)
    #[arg(short = 'p', long = "port", alias = "pg-port", value_name = "PORT")]
    pub pg_port: Option<u16>,
    /// User name to connect as (PGUSER)
    #[arg(
        short = 'U',
        long = "user",
        visible_alias = "username",
        value_name = "USER"
    )]
    pub pg_user: Option<String>,
    /// Never prompt for a password (vault never does)
    #[arg(short = 'w', long = "no-password", hide = true)]
    pub no_password: bool,
    #[arg(short = 'W', long = "password", hide = true)]
    pub password_prompt: bool,
}

impl PgConnArgs {
    pub fn conn(&self, dbname: Option<String>) -> anyhow::Result<PgConn> {
        crate::cli::commands::refuse_password_option(
            self.password_prompt,
            "-W/--password",
            "PGPASSWORD or ~/.pgpass",
        )?;
        Ok(PgConn {
            host: self.pg_host.clone(),
            port: self.pg_port,
            user: self.pg_user.clone(),
            dbname,
        })
    }
}
