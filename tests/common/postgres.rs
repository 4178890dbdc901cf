//! A real PostgreSQL cluster for tests: initdb in a temp dir, listening on a
//! unix socket there only, trust authentication, durability off. As root the
//! cluster runs as the `postgres` account (initdb refuses root). Stopped on
//! drop. Independent of vault's own scratch server code on purpose: the
//! tests check that code against this one.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::services::{find_binary, require};

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    owner: Option<(u32, u32)>,
    running: bool,
}

/// The `postgres` account's uid and gid (tests run as root need one).
fn postgres_account() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a postgres account to run the test cluster as")
    };
    (id("-u"), id("-g"))
}

fn check(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    /// A running cluster, or None (after a loud message) when PostgreSQL is
    /// not installed and VAULT_REQUIRE_SERVICES is not set.
    pub fn start() -> Option<Postgres> {
        Self::start_with(&[])
    }

    /// Like `start`, with extra server settings (`name=value`, passed as
    /// `-c` options: archiving, timeouts).
    pub fn start_with(settings: &[&str]) -> Option<Postgres> {
        let found = require(
            "PostgreSQL tests",
            &["initdb", "pg_ctl", "postgres", "pg_dump", "psql", "pgbench"],
        )?;
        // The server's own folder, where initdb finds `postgres`.
        let bin = std::fs::canonicalize(&found[0])
            .expect("initdb path")
            .parent()
            .expect("bin folder")
            .to_path_buf();
        let dir = tempfile::Builder::new()
            .prefix("vault-pg-")
            .tempdir()
            .expect("temp dir");
        // SAFETY: geteuid has no preconditions.
        let owner = (unsafe { libc::geteuid() } == 0).then(postgres_account);
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        let mut pg = Postgres {
            dir,
            bin,
            owner,
            running: false,
        };
        let data = pg.data_dir();
        check(
            pg.as_owner("initdb")
                .args([
                    "-A",
                    "trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data)
                .output()
                .expect("initdb"),
            "initdb",
        );
        pg.launch(settings);
        Some(pg)
    }

    fn launch(&mut self, settings: &[&str]) {
        let mut opts = format!(
            "-k {} -c listen_addresses= -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.socket_dir().display()
        );
        for s in settings {
            opts.push_str(&format!(" -c {s}"));
        }
        check(
            self.as_owner("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.dir.path().join("log"))
                .args(["-o", &opts, "-w", "-t", "120", "start"])
                .output()
                .expect("pg_ctl start"),
            "pg_ctl start",
        );
        self.running = true;
    }

    /// A base backup of the running cluster, as plain files in a folder of
    /// its temp dir (`pg_basebackup -X none`: the WAL comes from an archive).
    pub fn base_backup(&self) -> PathBuf {
        let target = self.dir.path().join("base-backup");
        check(
            self.as_owner("pg_basebackup")
                .arg("-h")
                .arg(self.socket_dir())
                .args(["-U", "postgres", "-X", "none", "-c", "fast", "-D"])
                .arg(&target)
                .output()
                .expect("pg_basebackup"),
            "pg_basebackup",
        );
        target
    }

    /// A second cluster started from a copy of `data` (a base backup)
    /// after `prepare` has written its recovery settings into the copy.
    pub fn start_from(
        &self,
        data: &Path,
        settings: &[&str],
        prepare: impl FnOnce(&Path),
    ) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("vault-pg-")
            .tempdir()
            .expect("temp dir");
        let mut pg = Postgres {
            dir,
            bin: self.bin.clone(),
            owner: self.owner,
            running: false,
        };
        if let Some((uid, gid)) = pg.owner {
            std::os::unix::fs::chown(pg.dir.path(), Some(uid), Some(gid)).expect("chown");
        }
        check(
            Command::new("cp")
                .arg("-a")
                .arg(data)
                .arg(pg.data_dir())
                .output()
                .expect("cp"),
            "copy of the base backup",
        );
        prepare(&pg.data_dir());
        if let Some((uid, gid)) = pg.owner {
            check(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(pg.data_dir())
                    .output()
                    .expect("chown"),
                "chown",
            );
        }
        pg.launch(settings);
        pg
    }

    /// The account the server runs as (None: the current user).
    pub fn owner(&self) -> Option<(u32, u32)> {
        self.owner
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    fn as_owner(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.current_dir(self.dir.path()).stdin(Stdio::null());
        if let Some((uid, gid)) = self.owner {
            c.uid(uid).gid(gid);
        }
        c
    }

    /// A client program connected to `db` (as the superuser).
    pub fn client(&self, program: &str, db: &str) -> Command {
        let path = find_binary(program).unwrap_or_else(|| self.bin.join(program));
        let mut c = Command::new(path);
        c.env("PGHOST", self.socket_dir())
            .env("PGUSER", "postgres")
            .env("PGDATABASE", db)
            .env_remove("PGPORT")
            .env_remove("PGPASSWORD")
            .stdin(Stdio::null());
        c
    }

    /// How vault's library reaches this server, as the superuser.
    pub fn conn(&self) -> vault::engines::pg::PgConn {
        vault::engines::pg::PgConn {
            host: Some(self.socket_dir().display().to_string()),
            user: Some("postgres".to_string()),
            ..Default::default()
        }
    }

    /// The environment `vault` needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.socket_dir().display().to_string()),
            ("PGUSER", "postgres".to_string()),
        ]
    }

    /// `vault ARGS...` on `v`'s repository, reaching this server through
    /// the PG* variables.
    pub fn vault(&self, v: &super::Vault, args: &[&str]) -> Command {
        let mut c = v.cmd(args);
        c.envs(self.env());
        c
    }

    /// `vault --json ARGS...`, expected to succeed; its output parsed.
    pub fn vault_json(&self, v: &super::Vault, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.vault(v, &all).output().expect("run vault");
        super::assert_success(&out, &args.join(" "));
        super::parse_json(&out)
    }

    /// The server's clock, a second clear of the writes before and after:
    /// a recovery target that falls between them at any timestamp
    /// resolution.
    pub fn moment_apart(&self) -> String {
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let now = self.sql("postgres", "SELECT clock_timestamp()::text");
        std::thread::sleep(std::time::Duration::from_millis(1100));
        now
    }

    /// Run SQL; rows unaligned, `|`-separated.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        check(
            self.client("psql", db)
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
                .output()
                .expect("psql"),
            sql,
        )
        .trim()
        .to_string()
    }

    pub fn createdb(&self, db: &str) {
        self.sql("postgres", &format!("CREATE DATABASE \"{db}\""));
    }

    pub fn dropdb(&self, db: &str) {
        self.sql("postgres", &format!("DROP DATABASE \"{db}\""));
    }

    pub fn pgbench(&self, db: &str, args: &[&str]) {
        check(
            self.client("pgbench", db)
                .args(args)
                .arg(db)
                .output()
                .expect("pgbench"),
            "pgbench",
        );
    }

    /// A plain schema-and-data dump, for comparing databases. The random
    /// `\restrict` keys of newer pg_dump releases are left out.
    pub fn pg_dump(&self, db: &str) -> String {
        self.pg_dump_with(db, &["--no-owner", "--no-privileges"])
    }

    /// Everything `pg_dump --create` writes: the database's own properties,
    /// owners, grants, large objects.
    pub fn pg_dump_create(&self, db: &str) -> String {
        self.pg_dump_with(db, &["--create"])
    }

    fn pg_dump_with(&self, db: &str, args: &[&str]) -> String {
        let dump = check(
            self.client("pg_dump", db)
                .args(args)
                .output()
                .expect("pg_dump"),
            "pg_dump",
        );
        dump.lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Panic naming the first line where two dumps differ (not the whole
    /// dump, which can be megabytes).
    pub fn assert_same_dump(left: &str, right: &str) {
        if left == right {
            return;
        }
        let (i, (a, b)) = left
            .lines()
            .zip(right.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, ("(length differs)", "")));
        panic!("dumps differ at line {}: {a:.200} vs {b:.200}", i + 1);
    }

    /// Each user table's row count and md5 of its rows in a fixed order.
    pub fn table_checksums(&self, db: &str) -> BTreeMap<String, String> {
        let tables = self.sql(
            db,
            "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables \
             WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1",
        );
        tables
            .lines()
            .map(|t| {
                let sum = self.sql(
                    db,
                    &format!("SELECT count(*) || ':' || coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') FROM {t} x"),
                );
                (t.to_string(), sum)
            })
            .collect()
    }

    /// Stop the server at once, as a crash would.
    pub fn kill(&mut self) {
        let out = self
            .as_owner("pg_ctl")
            .arg("-D")
            .arg(self.data_dir())
            .args(["-m", "immediate", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        check(out, "pg_ctl stop");
        self.running = false;
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self
                .as_owner("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "stop"])
                .output();
        }
    }
}
