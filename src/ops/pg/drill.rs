//! `drill pg`: prove a snapshot restores. Restore it into a scratch server
//! (or a given one), compare every table's row count with the count taken
//! at dump time, and the schema's fingerprint, the large objects and the
//! materialized views with what the snapshot recorded, run the caller's
//! assertions, time the restore, and store the outcome as a drill record.

use std::time::Instant;

use super::restore::{restore_pg, Parts, PgRestoreOptions};
use super::{recorded_databases, recorded_facts, recorded_tables};
use crate::engines::pg::session::Session;
use crate::engines::pg::{facts, qualified, PgConn};
use crate::error::Result;
use crate::format::drill::{Check, Drill};
use crate::format::pg_facts::DatabaseFacts;
use crate::format::snapshot::Snapshot;
use crate::format::{Id, Timestamp};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::hostname;

#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// The server to restore into; a scratch server is started when None.
    /// Drill databases are created there and dropped afterwards.
    pub server: Option<PgConn>,
    /// SQL that must return true, run in the first restored database (or
    /// `assert_database`).
    pub asserts: Vec<String>,
    pub assert_database: Option<String>,
    pub jobs: usize,
    /// Create the roles the snapshot needs where missing (`--no-roles`
    /// turns this off, for a server that has them all).
    pub roles: bool,
}

/// The database a snapshot's database is restored into during a drill.
fn drill_database(index: usize) -> String {
    format!("vault_drill_{}_{index}", std::process::id())
}

fn check(name: String, outcome: Result<(bool, String)>) -> Check {
    match outcome {
        Ok((passed, detail)) => Check {
            name,
            passed,
            detail,
        },
        Err(e) => Check {
            name,
            passed: false,
            detail: e.to_string(),
        },
    }
}

/// Restore every database of the snapshot and check it; the checks so far
/// are kept even when a later step fails.
fn restore_and_check(
    repo: &Repository,
    snapshot: &Snapshot,
    conn: &PgConn,
    opts: &DrillOptions,
    created: &mut Vec<String>,
    checks: &mut Vec<Check>,
    progress: &Progress,
) -> Result<u64> {
    let started = Instant::now();
    let databases = recorded_databases(snapshot);
    for (i, db) in databases.iter().enumerate() {
        let target = drill_database(i);
        created.push(target.clone());
        let restore = restore_pg(
            repo,
            snapshot,
            &PgRestoreOptions {
                conn: conn.clone(),
                target: target.clone(),
                from: Some(db.clone()),
                create: true,
                clean: false,
                tables: vec![],
                parts: Parts::All,
                large_objects: false,
                roles: opts.roles,
                jobs: opts.jobs,
            },
            progress,
        );
        checks.push(check(
            format!("restore {db}"),
            restore.map(|o| {
                (
                    true,
                    format!("{} bytes of rows in {} ms", o.bytes, o.duration_ms),
                )
            }),
        ));
        if !checks.last().is_some_and(|c| c.passed) {
            return Ok(started.elapsed().as_millis() as u64);
        }
    }
    let restore_ms = started.elapsed().as_millis() as u64;
    let tables = recorded_tables(snapshot)?;
    let recorded = recorded_facts(snapshot)?;
    for (i, db) in databases.iter().enumerate() {
        let mut session = match Session::open(conn, Some(&drill_database(i))) {
            Ok(s) => s,
            Err(e) => {
                checks.push(check(format!("connect {db}"), Err(e)));
                continue;
            }
        };
        for t in tables.iter().filter(|t| &t.database == db) {
            // ONLY: a parent's COPY held its own rows, not its children's.
            let found = session.value(&format!(
                "SELECT count(*) FROM ONLY {}",
                qualified(&t.schema, &t.table)
            ));
            checks.push(check(
                format!("rows {db}.{}.{}", t.schema, t.table),
                found.map(|n| {
                    (
                        n == t.rows.to_string(),
                        format!("expected {}, found {n}", t.rows),
                    )
                }),
            ));
        }
        if let Some(f) = recorded.iter().find(|f| &f.database == db) {
            checks.extend(verify_database(&mut session, f));
        }
        let assert_here = match &opts.assert_database {
            Some(a) => a == db,
            None => i == 0,
        };
        if assert_here {
            for sql in &opts.asserts {
                let got = session.value(&format!("SELECT ({sql})::boolean"));
                checks.push(check(
                    format!("assert {sql}"),
                    got.map(|v| {
                        (
                            v == "t",
                            format!("returned {}", if v.is_empty() { "null" } else { &v }),
                        )
                    }),
                ));
            }
        }
        let _ = session.close();
    }
    Ok(restore_ms)
}

/// Compare a restored database with what its snapshot recorded at dump
/// time: the schema's fingerprint, the large objects' count and total
/// size, and which materialized views hold data.
pub fn verify_database(session: &mut Session, recorded: &DatabaseFacts) -> Vec<Check> {
    let db = &recorded.database;
    let mut checks = vec![
        check(
            format!("schema {db}"),
            facts::fingerprint(session).map(|found| {
                (
                    found == recorded.fingerprint,
                    format!(
                        "fingerprint expected {}, found {found}",
                        recorded.fingerprint
                    ),
                )
            }),
        ),
        check(
            format!("large objects {db}"),
            facts::large_object_totals(session).map(|(count, bytes)| {
                (
                    (count, bytes) == (recorded.large_objects, recorded.large_object_bytes),
                    format!(
                        "expected {} objects of {} bytes, found {count} of {bytes}",
                        recorded.large_objects, recorded.large_object_bytes
                    ),
                )
            }),
        ),
    ];
    for (schema, name) in &recorded.matviews {
        checks.push(check(
            format!("materialized view {db}.{schema}.{name}"),
            facts::matview_populated(session, schema, name).map(|found| match found {
                Some(true) => (true, "populated".to_string()),
                Some(false) => (false, "not populated".to_string()),
                None => (false, "missing".to_string()),
            }),
        ));
    }
    checks
}

/// Drop the drill's databases from a server that outlives the drill.
fn drop_databases(conn: &PgConn, created: &[String]) {
    if let Ok(mut s) = Session::open(conn, Some(crate::engines::pg::MAINTENANCE_DB)) {
        for db in created {
            let _ = s.query(&format!(
                "DROP DATABASE IF EXISTS {}",
                crate::engines::pg::quote_ident(db)
            ));
        }
        let _ = s.close();
    }
}

/// Run a drill and store its record (also when it failed).
pub fn drill_pg(
    repo: &Repository,
    snapshot_id: &Id,
    snapshot: &Snapshot,
    opts: &DrillOptions,
    progress: &Progress,
) -> Result<(Id, Drill)> {
    super::check_source(snapshot)?;
    let time = Timestamp::now();
    let mut checks = Vec::new();
    let mut created = Vec::new();
    let restore_ms = match &opts.server {
        Some(conn) => {
            let r = restore_and_check(
                repo,
                snapshot,
                conn,
                opts,
                &mut created,
                &mut checks,
                progress,
            );
            drop_databases(conn, &created);
            r?
        }
        None => {
            let server = super::scratch::ScratchServer::start()?;
            restore_and_check(
                repo,
                snapshot,
                &server.conn(),
                opts,
                &mut created,
                &mut checks,
                progress,
            )?
        }
    };
    let drill = Drill {
        snapshot: *snapshot_id,
        time,
        host: hostname(),
        source: snapshot.source.clone(),
        passed: !checks.is_empty() && checks.iter().all(|c| c.passed),
        restore_ms,
        checks,
    };
    let id = repo.save_drill(&drill)?;
    Ok((id, drill))
}
