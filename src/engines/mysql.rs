//! MariaDB and MySQL: one `mariadb-dump --single-transaction` (or
//! `mysqldump`) per database, each stored as `<database>.sql`. A file per
//! database dedups better (an unchanged database is an unchanged file) and
//! restores one database with one pipeline. Each database is consistent in
//! itself (its own transaction); databases are dumped one after another.
//!
//! Passwords come from `MYSQL_PWD` or an option file (`~/.my.cnf`,
//! `--defaults-extra-file`), which the client programs read themselves;
//! vault never puts one on a command line.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::error::{Error, Result};
use crate::system::process::query;

/// Where the server's users, roles and grants are stored in a snapshot: in
/// a folder, so no database's `<database>.sql` can take the name.
pub const USERS_STREAM: &str = "system/users.sql";

/// Schemas the server maintains itself: not user data, and not restorable
/// into another server as plain SQL.
pub const SYSTEM_SCHEMAS: &[&str] = &["information_schema", "performance_schema", "mysql", "sys"];

/// Where and as whom to connect; unset fields are the client's defaults
/// (which include its option files).
#[derive(Debug, Clone, Default)]
pub struct MysqlConnection {
    /// Query client (`mariadb` or `mysql`; the first on PATH by default).
    pub client: Option<OsString>,
    /// Dump program (`mariadb-dump` or `mysqldump`; the first on PATH).
    pub dump_program: Option<OsString>,
    /// An option file read after the usual ones (may hold the password).
    pub defaults_extra_file: Option<PathBuf>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub socket: Option<PathBuf>,
    pub user: Option<String>,
}

/// What the server said about itself before the dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerListing {
    pub version: String,
    pub databases: Vec<String>,
}

impl MysqlConnection {
    /// Connection arguments shared by the client and the dump program.
    pub fn connection_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        // The client insists that this one comes first.
        if let Some(f) = &self.defaults_extra_file {
            let mut a = OsString::from("--defaults-extra-file=");
            a.push(f);
            args.push(a);
        }
        if let Some(h) = &self.host {
            args.push(format!("--host={h}").into());
        }
        if let Some(p) = self.port {
            args.push(format!("--port={p}").into());
        }
        if let Some(s) = &self.socket {
            let mut a = OsString::from("--socket=");
            a.push(s);
            args.push(a);
        }
        if let Some(u) = &self.user {
            args.push(format!("--user={u}").into());
        }
        args
    }

    fn client(&self) -> OsString {
        self.client
            .clone()
            .unwrap_or_else(|| first_on_path(&["mariadb", "mysql"]))
    }

    fn dump_program(&self) -> OsString {
        self.dump_program
            .clone()
            .unwrap_or_else(|| first_on_path(&["mariadb-dump", "mysqldump"]))
    }

    /// The server's version and databases; also the connection check.
    pub fn listing(&self) -> Result<ServerListing> {
        let mut cmd = Command::new(self.client());
        cmd.args(self.connection_args()).args([
            "--batch",
            "--skip-column-names",
            "--execute=SELECT VERSION(); SHOW DATABASES",
        ]);
        let (out, _) = query(cmd)?;
        parse_listing(&out).ok_or_else(|| {
            Error::new(
                crate::ErrorKind::SourceFailed,
                "the server's answer to SELECT VERSION() was empty; no snapshot was recorded",
            )
        })
    }

    /// The client that reads a dump on its standard input and replays it.
    pub fn restore_command(&self) -> Command {
        let mut cmd = Command::new(self.client());
        cmd.args(self.connection_args());
        cmd
    }

    /// The command whose standard output is one database's dump. The dump
    /// creates the database if missing (`--databases`), so a restore is
    /// `vault dump SNAP DB.sql | mariadb`.
    pub fn dump_command(&self, database: &str) -> Command {
        let mut cmd = self.dump_base();
        cmd.args([
            "--single-transaction",
            "--routines",
            "--events",
            "--triggers",
            "--databases",
        ]);
        // After `--`, a name starting with '-' stays a name.
        cmd.arg("--").arg(database);
        cmd
    }

    /// The command whose standard output is the server's users, roles and
    /// grants as SQL (`mariadb-dump --system=users`; MySQL's `mysqldump`
    /// has no such option and fails, naming it). `--insert-ignore` makes
    /// it `CREATE USER IF NOT EXISTS`, so replaying it onto a server that
    /// has some of the accounts (root at least) does not stop at the first;
    /// their GRANTs still carry the stored password.
    pub fn users_dump_command(&self) -> Command {
        let mut cmd = self.dump_base();
        cmd.args(["--system=users", "--insert-ignore"]);
        cmd
    }

    fn dump_base(&self) -> Command {
        let mut cmd = Command::new(self.dump_program());
        cmd.args(self.connection_args()).arg("--skip-dump-date");
        cmd
    }
}

/// The first program on PATH among `names`, or the first name (whose
/// failure to start then names it).
fn first_on_path(names: &[&str]) -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    names
        .iter()
        .find(|n| std::env::split_paths(&path).any(|d| d.join(n).is_file()))
        .unwrap_or(&names[0])
        .into()
}

/// `SELECT VERSION(); SHOW DATABASES` in batch mode: the version, then one
/// database a line.
pub fn parse_listing(out: &[u8]) -> Option<ServerListing> {
    let text = String::from_utf8_lossy(out);
    let mut lines = text.lines();
    let version = lines.next()?.trim().to_string();
    if version.is_empty() {
        return None;
    }
    Some(ServerListing {
        version,
        databases: lines.filter(|l| !l.is_empty()).map(String::from).collect(),
    })
}

/// The databases to dump: every non-system database with `all`, or the
/// `wanted` ones, each of which must exist in `holder` (the server, or the
/// snapshot on restore).
pub fn choose_databases(
    available: &[String],
    wanted: &[String],
    all: bool,
    holder: &str,
) -> Result<Vec<String>> {
    match (all, wanted.is_empty()) {
        (true, false) => Err(Error::invalid("give either --all or --database, not both")),
        (false, true) => Err(Error::invalid(
            "name the databases to dump (--database DB, repeatable) or give --all",
        )),
        (true, true) => {
            let user: Vec<String> = available
                .iter()
                .filter(|d| !SYSTEM_SCHEMAS.contains(&d.as_str()))
                .cloned()
                .collect();
            if user.is_empty() {
                return Err(Error::invalid(
                    "the server holds no databases besides its own",
                ));
            }
            Ok(user)
        }
        (false, false) => {
            let mut chosen = Vec::new();
            for w in wanted {
                if !available.contains(w) {
                    return Err(Error::invalid(format!("{holder} has no database '{w}'")));
                }
                if !chosen.contains(w) {
                    chosen.push(w.clone());
                }
            }
            Ok(chosen)
        }
    }
}

/// Where a database's dump is stored in the snapshot.
pub fn stream_name(database: &str) -> String {
    format!("{database}.sql")
}

/// The database whose dump is stored under `file`, if it is one.
pub fn database_of(file: &str) -> Option<&str> {
    file.strip_suffix(".sql").filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn listing_parses_version_then_databases() {
        let out = b"10.11.6-MariaDB-0+deb12u1\ninformation_schema\nmysql\nshop\n";
        let l = parse_listing(out).unwrap();
        assert_eq!(l.version, "10.11.6-MariaDB-0+deb12u1");
        assert_eq!(l.databases, names(&["information_schema", "mysql", "shop"]));
        assert_eq!(parse_listing(b""), None);
    }

    #[test]
    fn all_leaves_out_system_schemas() {
        let avail = names(&[
            "information_schema",
            "mysql",
            "performance_schema",
            "shop",
            "sys",
            "crm",
        ]);
        assert_eq!(
            choose_databases(&avail, &[], true, "the server").unwrap(),
            names(&["shop", "crm"])
        );
        let only_system = names(&["mysql", "sys"]);
        assert!(choose_databases(&only_system, &[], true, "the server").is_err());
    }

    #[test]
    fn named_databases_must_exist_and_are_taken_once() {
        let avail = names(&["shop", "crm"]);
        assert_eq!(
            choose_databases(&avail, &names(&["crm", "crm"]), false, "the server").unwrap(),
            names(&["crm"])
        );
        let err = choose_databases(&avail, &names(&["nope"]), false, "the server").unwrap_err();
        assert!(err
            .to_string()
            .contains("the server has no database 'nope'"));
        assert_eq!(database_of("shop.sql"), Some("shop"));
        assert_eq!(database_of(".sql"), None);
        assert_eq!(database_of("dump.rdb"), None);
        assert!(choose_databases(&avail, &[], false, "the server").is_err());
        assert!(choose_databases(&avail, &names(&["shop"]), true, "the server").is_err());
    }

    #[test]
    fn password_never_among_arguments_and_option_file_first() {
        let c = MysqlConnection {
            defaults_extra_file: Some("/etc/vault/my.cnf".into()),
            user: Some("backup".into()),
            socket: Some("/run/mysqld/mysqld.sock".into()),
            ..Default::default()
        };
        let args: Vec<String> = c
            .dump_command("shop")
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "--defaults-extra-file=/etc/vault/my.cnf");
        assert!(args.contains(&"--single-transaction".to_string()));
        assert!(args.contains(&"--skip-dump-date".to_string()));
        assert_eq!(&args[args.len() - 2..], ["--", "shop"]);
        assert!(!args.iter().any(|a| a.contains("password")));
        let users: Vec<String> = c
            .users_dump_command()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(users[0], "--defaults-extra-file=/etc/vault/my.cnf");
        assert!(users.contains(&"--system=users".to_string()));
        // Without it a restore stops at the first account the target has.
        assert!(users.contains(&"--insert-ignore".to_string()));
    }
}
