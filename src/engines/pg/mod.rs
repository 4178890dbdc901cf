//! PostgreSQL: connection options in libpq's terms, the client
//! programs (psql, pg_dump) vault drives, and SQL quoting. Passwords are
//! never passed on a command line: libpq reads them from `PGPASSWORD` or
//! `~/.pgpass`, which the programs inherit.

pub mod basebackup;
pub mod database;
pub mod facts;
pub mod names;
pub mod session;
pub mod split;
pub mod tablespaces;
pub mod tar;
pub mod toc;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Where to connect, as psql takes it. Unset fields fall back to libpq's
/// defaults and `PG*` environment variables.
#[derive(Debug, Clone, Default)]
pub struct PgConn {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// A database name, a `postgresql://` URI or a `key=value` string.
    pub dbname: Option<String>,
}

impl PgConn {
    /// Arguments for psql, pg_dump and pg_dumpall. `database` overrides the
    /// database of `dbname`, keeping whatever else a URI or connection
    /// string there says (host, port, TLS options).
    pub fn args(&self, database: Option<&str>) -> Vec<OsString> {
        let mut out: Vec<OsString> = Vec::new();
        if let Some(h) = &self.host {
            out.extend(["-h".into(), h.into()]);
        }
        if let Some(p) = self.port {
            out.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(u) = &self.user {
            out.extend(["-U".into(), u.into()]);
        }
        match (database, &self.dbname) {
            (Some(db), Some(base)) => out.extend(["-d".into(), replace_database(base, db).into()]),
            (Some(db), None) => out.extend(["-d".into(), conninfo_dbname(db).into()]),
            (None, Some(d)) => out.extend(["-d".into(), d.into()]),
            (None, None) => {}
        }
        out
    }

    /// The same server, another database.
    pub fn with_database(&self, database: &str) -> PgConn {
        PgConn {
            dbname: Some(conninfo_dbname(database)),
            ..self.clone()
        }
    }
}

/// `base` (a database name, URI or connection string) pointed at another
/// database. In a URI the path is the database; in a connection string a
/// later keyword overrides an earlier one.
fn replace_database(base: &str, database: &str) -> String {
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = base.strip_prefix(scheme) {
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let query = rest[authority_end..]
                .find('?')
                .map_or("", |q| &rest[authority_end + q..]);
            let encoded: String = database
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            return format!("{scheme}{}/{encoded}{query}", &rest[..authority_end]);
        }
    }
    if base.contains('=') {
        return format!("{base} {}", conninfo_dbname(database));
    }
    conninfo_dbname(database)
}

/// `dbname='...'` with libpq's quoting, so a name with `=` or spaces is not
/// read as a connection string.
fn conninfo_dbname(db: &str) -> String {
    format!("dbname='{}'", db.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The database every server has, where databases are created and listed.
pub const MAINTENANCE_DB: &str = "postgres";

/// Environment for every PostgreSQL client vault runs: notices would drown
/// the output of a restore, warnings and errors still show.
pub const CLIENT_ENV: &[(&str, &str)] = &[("PGOPTIONS", "-c client_min_messages=warning")];

/// A PostgreSQL program: from PATH, else from the newest
/// `/usr/lib/postgresql/<major>/bin`. Debian's `pg_wrapper` on PATH is
/// passed over for that newest binary, which is what it would run for a
/// client program unless `PGCLUSTER` names a cluster: the wrapper is a perl
/// script, started again for every session, and a snapshot starts one
/// session per table part (benches/README.md: its cost per start).
pub fn program(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    if std::env::var_os("PGCLUSTER").is_none() {
        dirs.retain(|d| !is_debian_wrapper(&d.join(name)));
    }
    let mut versioned: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|r| {
            r.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let major = e.file_name().to_str()?.parse().ok()?;
                    Some((major, e.path().join("bin")))
                })
                .collect()
        })
        .unwrap_or_default();
    versioned.sort_by_key(|v| std::cmp::Reverse(v.0));
    dirs.extend(versioned.into_iter().map(|(_, d)| d));
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| {
            Error::new(
                ErrorKind::SourceFailed,
                format!("'{name}' not found on PATH or in /usr/lib/postgresql/*/bin: install the PostgreSQL client programs"),
            )
        })
}

fn is_debian_wrapper(program: &Path) -> bool {
    std::fs::canonicalize(program)
        .is_ok_and(|target| target.file_name().is_some_and(|n| n == "pg_wrapper"))
}

/// psql as vault runs it: without `~/.psqlrc`, quiet, stopping at the
/// first error, connected to `database` (or the connection's own).
pub fn psql_command(conn: &PgConn, database: Option<&str>) -> Result<std::process::Command> {
    let mut command = std::process::Command::new(program("psql")?);
    command
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(conn.args(database))
        .envs(CLIENT_ENV.iter().copied());
    Ok(command)
}

/// An identifier quoted for SQL, whatever characters it holds.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `"schema"."table"`.
pub fn qualified(schema: &str, table: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(table))
}

/// A string literal for SQL (standard_conforming_strings is on since 9.1).
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Text the server sent hex-encoded (`encode(convert_to(x, 'UTF8'), 'hex')`),
/// so names with newlines or separators survive psql's output.
pub fn from_hex(hex: &str) -> Result<String> {
    let bytes = hex::decode(hex.trim()).map_err(|_| {
        Error::new(
            ErrorKind::SourceFailed,
            format!("unexpected reply from the server: '{hex}'"),
        )
    })?;
    String::from_utf8(bytes).map_err(|_| {
        Error::new(
            ErrorKind::SourceFailed,
            "the server sent a name that is not UTF-8",
        )
    })
}

/// `schema.table` as a user writes it on the command line: split at the
/// first dot; without one, the table is in `public`.
pub fn parse_table(spec: &str) -> (String, String) {
    match spec.split_once('.') {
        Some((s, t)) => (s.to_string(), t.to_string()),
        None => ("public".to_string(), spec.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Debian links each client to one perl script; a real binary, or a
    /// link to one, is kept.
    #[test]
    fn only_links_to_debians_wrapper_are_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let wrapper = dir.path().join("pg_wrapper");
        std::fs::write(&wrapper, "#!/usr/bin/perl\n").unwrap();
        let binary = dir.path().join("psql-15");
        std::fs::write(&binary, "\x7fELF").unwrap();
        std::os::unix::fs::symlink(&wrapper, dir.path().join("psql")).unwrap();
        std::os::unix::fs::symlink(&binary, dir.path().join("pg_dump")).unwrap();
        assert!(is_debian_wrapper(&dir.path().join("psql")));
        assert!(!is_debian_wrapper(&dir.path().join("pg_dump")));
        assert!(!is_debian_wrapper(&binary));
        assert!(!is_debian_wrapper(&dir.path().join("missing")));
    }

    #[test]
    fn quoting_doubles_quotes() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(qualified("public", "T x"), "\"public\".\"T x\"");
    }

    #[test]
    fn database_override_is_a_quoted_conninfo() {
        let c = PgConn {
            dbname: Some("postgresql://h/db".into()),
            ..Default::default()
        };
        assert_eq!(
            c.args(Some("a b'c")),
            vec!["-d", "postgresql://h/a%20b%27c"]
        );
        let plain = PgConn::default();
        assert_eq!(plain.args(Some("a b'c")), vec!["-d", "dbname='a b\\'c'"]);
        assert_eq!(c.args(None), vec!["-d", "postgresql://h/db"]);
    }

    #[test]
    fn other_databases_keep_the_rest_of_the_connection() {
        assert_eq!(
            replace_database("postgres://u@h:5433/app?sslmode=require", "x"),
            "postgres://u@h:5433/x?sslmode=require"
        );
        assert_eq!(replace_database("postgresql://h", "x"), "postgresql://h/x");
        assert_eq!(
            replace_database("host=h dbname=app", "x"),
            "host=h dbname=app dbname='x'"
        );
        assert_eq!(replace_database("app", "x"), "dbname='x'");
    }

    #[test]
    fn table_specs_default_to_public() {
        assert_eq!(parse_table("s.t.x"), ("s".into(), "t.x".into()));
        assert_eq!(parse_table("t"), ("public".into(), "t".into()));
    }
}
