//! `restore pg --table S.T --to-time T -d DB`: single tables as they were
//! at a point in time, taken from a physical base backup recovered with
//! the WAL archive in a scratch server, and loaded into a live database.
//!
//! Only the named tables change in the live database, in one transaction:
//! a table that exists there is refused unless `clean` replaces it; then
//! the views and foreign keys of other tables that depend on it are
//! dropped and re-created as they were at the target, as the logical
//! single-table restore does, and anything the recovered schema cannot
//! re-create is refused before anything changes. The scratch server is
//! stopped and removed however the restore ends.

use std::collections::BTreeSet;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::dependents::{self, Dependent};
use super::physical::drill::wait_for_promotion;
use super::physical::restore::{restore_physical, PhysicalRestoreOptions, RecoveryTarget};
use super::restore::{psql_fed, write_all};
use super::scratch::ScratchServer;
use crate::engines::pg::session::Session;
use crate::engines::pg::toc::Name;
use crate::engines::pg::{program, qualified, quote_literal, PgConn, CLIENT_ENV};
use crate::error::{Error, ErrorKind, Result};
use crate::format::snapshot::Snapshot;
use crate::format::Timestamp;
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::{spawn, wait_success, StderrTail};

#[derive(Debug, Clone)]
pub struct TableAtOptions {
    /// The live server (its database field is not used).
    pub live: PgConn,
    /// The live database the tables are loaded into.
    pub target: String,
    /// The cluster's database the tables come from [default: `target`].
    pub from: Option<String>,
    pub tables: Vec<Name>,
    pub to: RecoveryTarget,
    /// The `restore_command` the scratch server fetches WAL with.
    pub restore_command: String,
    /// Replace tables that exist in the live database.
    pub clean: bool,
}

/// What the restore will change in the live database.
#[derive(Debug, Clone)]
pub struct TableAtPlan {
    /// The tables that exist there and will be replaced.
    pub replaced: Vec<Name>,
    /// The tables that do not and will be created.
    pub created: Vec<Name>,
    /// Objects of other tables dropped and re-created around the replaced.
    pub recreated: Vec<Dependent>,
}

#[derive(Debug)]
pub struct TableAtOutcome {
    pub plan: TableAtPlan,
    /// Bytes of dump loaded into the live database.
    pub bytes: u64,
    pub duration_ms: u64,
}

impl TableAtOptions {
    fn source_database(&self) -> &str {
        self.from.as_deref().unwrap_or(&self.target)
    }
}

fn name(t: &Name) -> String {
    format!("{}.{}", t.0, t.1)
}

/// `--to-time` as an instant, read by the live server as recovery reads
/// it (same syntax, and its time zone): base backups taken after it
/// cannot recover to it. Also proves the live server answers before any
/// work starts.
pub fn target_instant(
    live: &PgConn,
    target: &str,
    to: &RecoveryTarget,
) -> Result<Option<Timestamp>> {
    let mut s = Session::open(live, Some(target))?;
    let RecoveryTarget::Time(time) = to else {
        s.close()?;
        return Ok(None);
    };
    let micros = s
        .value(&format!(
            "SELECT (extract(epoch FROM {}::timestamptz) * 1000000)::bigint",
            quote_literal(time)
        ))
        .map_err(|e| {
            Error::invalid(format!(
                "--to-time '{time}' is not a time PostgreSQL reads ({e})"
            ))
        })?;
    s.close()?;
    let micros: i64 = micros.parse().map_err(|_| {
        Error::invalid(format!(
            "--to-time '{time}': the server read it as '{micros}'"
        ))
    })?;
    Ok(Some(Timestamp {
        secs: micros.div_euclid(1_000_000),
        // Below 1e9, so the cast is exact.
        nanos: (micros.rem_euclid(1_000_000) * 1000) as u32,
    }))
}

/// What the restore will do to the live database; refuses (before the
/// scratch server starts) an existing table without `clean`.
pub fn plan(opts: &TableAtOptions) -> Result<TableAtPlan> {
    let mut s = Session::open(&opts.live, Some(&opts.target))?;
    let mut replaced = Vec::new();
    let mut created = Vec::new();
    for t in &opts.tables {
        let q = quote_literal(&qualified(&t.0, &t.1));
        if s.value(&format!("SELECT to_regclass({q}) IS NOT NULL"))? == "t" {
            if !opts.clean {
                return Err(Error::invalid(format!(
                    "table {} already exists in {}: use --clean to replace it, or drop or rename it first",
                    name(t),
                    opts.target
                )));
            }
            replaced.push(t.clone());
        } else {
            created.push(t.clone());
        }
    }
    let recreated = dependents::find(&mut s, &replaced.iter().cloned().collect::<BTreeSet<_>>())?;
    s.close()?;
    Ok(TableAtPlan {
        replaced,
        created,
        recreated,
    })
}

/// Recover `snapshot` to the target in a scratch server and load the
/// tables from it into the live database.
pub fn restore_table_at(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &TableAtOptions,
    progress: &Progress,
) -> Result<TableAtOutcome> {
    let started = Instant::now();
    let plan = plan(opts)?;
    program("pg_dump")?;
    progress.set_stage("base backup");
    let server = ScratchServer::start_from(&[], |data| {
        restore_physical(
            repo,
            snapshot,
            &PhysicalRestoreOptions {
                target: data.to_path_buf(),
                to: opts.to.clone(),
                restore_command: opts.restore_command.clone(),
                tablespace_mapping: Vec::new(),
                throwaway_tablespaces: Some(ScratchServer::tablespaces_beside(data)),
            },
            progress,
        )
        .map(|_| ())
    })?;
    progress.set_stage("recovery");
    let scratch = server.conn();
    let db = opts.source_database();
    let recovered =
        Session::open(&scratch, Some(crate::engines::pg::MAINTENANCE_DB)).and_then(|mut s| {
            wait_for_promotion(&mut s)?;
            s.close()
        });
    if let Err(e) = recovered {
        return Err(e.at(format!(
            "recovering the base backup (server log: {})",
            server.log_tail(2).replace('\n', " | ")
        )));
    }
    check_present(&scratch, db, &opts.tables)?;
    let (pre_data, post_data) = if plan.recreated.is_empty() {
        (String::new(), String::new())
    } else {
        let pre = dump_text(&scratch, db, &["--schema-only", "--section=pre-data"])?;
        let post = dump_text(&scratch, db, &["--schema-only", "--section=post-data"])?;
        let missing = dependents::missing(&plan.recreated, &pre, &post);
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
            return Err(Error::invalid(format!(
                "replacing the tables would drop {}, which did not exist at the target: drop or change them first",
                names.join(", ")
            )));
        }
        (pre, post)
    };
    let mut before = dependents::drop_sql(&plan.recreated);
    for t in &plan.replaced {
        before.push_str(&format!("DROP TABLE {};\n", qualified(&t.0, &t.1)));
    }
    let mut after = dependents::recreate(&pre_data, &plan.recreated);
    after.push_str(&dependents::recreate(&post_data, &plan.recreated));
    progress.set_stage("loading the tables");
    let bytes = load(&scratch, db, opts, &before, &after)?;
    drop(server);
    Ok(TableAtOutcome {
        plan,
        bytes,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// One clear line when the database or a table did not exist at the target.
fn check_present(scratch: &PgConn, db: &str, tables: &[Name]) -> Result<()> {
    let mut s = Session::open(scratch, Some(crate::engines::pg::MAINTENANCE_DB))?;
    if s.value(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = {}",
        quote_literal(db)
    ))? == "0"
    {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("database {db} did not exist at the recovery target: name the cluster's database with --from"),
        ));
    }
    s.close()?;
    let mut s = Session::open(scratch, Some(db))?;
    for t in tables {
        let q = quote_literal(&qualified(&t.0, &t.1));
        if s.value(&format!(
            "SELECT count(*) FROM pg_class WHERE oid = to_regclass({q}) AND relkind IN ('r', 'p')"
        ))? == "0"
        {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "table {} did not exist in {db} at the recovery target",
                    name(t)
                ),
            ));
        }
    }
    s.close()
}

fn pg_dump(scratch: &PgConn, db: &str, args: &[&str]) -> Result<Command> {
    let mut command = Command::new(program("pg_dump")?);
    command
        .args(scratch.args(Some(db)))
        .args(args)
        .envs(CLIENT_ENV.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Ok(command)
}

fn dump_text(scratch: &PgConn, db: &str, args: &[&str]) -> Result<String> {
    let mut child = spawn(&mut pg_dump(scratch, db, args)?, "pg_dump")?;
    let stderr = StderrTail::hold(&mut child);
    let mut text = String::new();
    let read = child
        .stdout
        .take()
        .ok_or_else(|| Error::new(ErrorKind::Io, "pg_dump: no stdout pipe"))?
        .read_to_string(&mut text);
    wait_success(&mut child, "pg_dump", stderr)?;
    read.map_err(|e| Error::io("reading pg_dump", e))?;
    Ok(text)
}

/// A `pg_dump -t` pattern matching exactly one name: quoted parts are
/// taken literally.
fn exact_pattern(t: &Name) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    format!("{}.{}", quote(&t.0), quote(&t.1))
}

/// The tables' dump streamed from the scratch server into the live
/// database, between `before` and `after`, in one transaction. COMMIT is
/// sent only once pg_dump has succeeded: a dump that fails, even before
/// its first byte, leaves the transaction open when psql's input ends, and
/// the server rolls it back, so the replaced tables stay as they were.
fn load(
    scratch: &PgConn,
    db: &str,
    opts: &TableAtOptions,
    before: &str,
    after: &str,
) -> Result<u64> {
    let mut args = vec!["--strict-names".to_string()];
    for t in &opts.tables {
        args.push("-t".into());
        args.push(exact_pattern(t));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut child = spawn(&mut pg_dump(scratch, db, &args)?, "pg_dump")?;
    let mut stderr = Some(StderrTail::hold(&mut child));
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| Error::new(ErrorKind::Io, "pg_dump: no stdout pipe"))?;
    let mut bytes = 0u64;
    let fed = psql_fed(&opts.live, &opts.target, &[], &mut |stdin| {
        write_all(stdin, b"BEGIN;\n")?;
        write_all(stdin, before.as_bytes())?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = stdout
                .read(&mut buf)
                .map_err(|e| Error::io("reading pg_dump", e))?;
            if n == 0 {
                break;
            }
            write_all(stdin, &buf[..n])?;
            bytes += n as u64;
        }
        let tail = stderr
            .take()
            .ok_or_else(|| Error::new(ErrorKind::Internal, "pg_dump waited for twice"))?;
        wait_success(&mut child, "pg_dump", tail)?;
        write_all(stdin, after.as_bytes())?;
        write_all(stdin, b"COMMIT;\n")
    });
    if let Some(tail) = stderr.take() {
        // The load failed before pg_dump was done: stop it.
        let _ = child.kill();
        let _ = wait_success(&mut child, "pg_dump", tail);
    }
    fed.map_err(|e| e.at(format!("loading into {}", opts.target)))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_pattern_takes_names_literally() {
        assert_eq!(
            exact_pattern(&("public".into(), "t".into())),
            "\"public\".\"t\""
        );
        assert_eq!(
            exact_pattern(&("odd\"s".into(), "a*b.c".into())),
            "\"odd\"\"s\".\"a*b.c\""
        );
    }
}
