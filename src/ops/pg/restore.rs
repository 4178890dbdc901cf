//! `restore pg`: a database, or some of its tables, from a snapshot into a
//! server, streamed from the repository into psql: the schema before the
//! data (one transaction), the tables' rows N at a time, then sequences,
//! then indexes and constraints (one transaction). Nothing is staged on
//! disk; schema files (small) are read into memory to pick single tables.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{check_source, recorded_databases, recorded_tables};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_tables::TableRows;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, EntryKind};
use crate::ops::content::{for_each_chunk, SEQUENTIAL_READAHEAD};
use crate::ops::jobs::run_jobs;
use crate::ops::walk::{resolve, Resolved};
use crate::ops::Progress;
use crate::repo::{BlobReader, Repository};
use crate::sources::command::{spawn, wait_success, StderrTail};
use crate::sources::pg::names::{self, POST_DATA, PRE_DATA, SEQUENCES};
use crate::sources::pg::session::Session;
use crate::sources::pg::toc::{select, select_sequences, Name};
use crate::sources::pg::{program, psql_command, qualified, quote_ident, quote_literal, PgConn};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parts {
    All,
    SchemaOnly,
    DataOnly,
}

#[derive(Debug, Clone)]
pub struct PgRestoreOptions {
    /// The target server (its database field is not used).
    pub conn: PgConn,
    /// The database to restore into.
    pub target: String,
    /// The snapshot's database to restore, when it holds several.
    pub from: Option<String>,
    pub create: bool,
    /// Replace what the target holds (whole database: every schema; tables:
    /// those tables).
    pub clean: bool,
    /// Only these (schema, table); empty for all.
    pub tables: Vec<Name>,
    pub parts: Parts,
    pub jobs: usize,
}

/// What a restore will do, worked out from the snapshot alone.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub source_database: String,
    pub target: String,
    pub create: bool,
    pub clean: bool,
    pub parts: Parts,
    /// Only the named tables' objects, not the whole schema.
    pub partial: bool,
    pub tables: Vec<TableRows>,
}

pub fn plan(snapshot: &Snapshot, opts: &PgRestoreOptions) -> Result<RestorePlan> {
    check_source(snapshot)?;
    let databases = recorded_databases(snapshot);
    let source_database = match (&opts.from, databases.as_slice()) {
        (Some(from), _) if databases.contains(from) => from.clone(),
        (Some(from), _) => {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!(
                    "the snapshot holds no database '{from}' (it has: {})",
                    databases.join(", ")
                ),
            ))
        }
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(Error::invalid(format!(
                "the snapshot holds several databases ({}): choose one with --from",
                databases.join(", ")
            )))
        }
    };
    let all: Vec<TableRows> = recorded_tables(snapshot)?
        .into_iter()
        .filter(|t| t.database == source_database)
        .collect();
    let tables = if opts.tables.is_empty() {
        all
    } else {
        let mut picked = Vec::new();
        for (schema, table) in &opts.tables {
            let found = all
                .iter()
                .find(|t| &t.schema == schema && &t.table == table)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::NotFound,
                        format!("the snapshot has no table {schema}.{table} in database {source_database}"),
                    )
                })?;
            picked.push(found.clone());
        }
        picked
    };
    Ok(RestorePlan {
        source_database,
        target: opts.target.clone(),
        create: opts.create,
        clean: opts.clean,
        parts: opts.parts,
        partial: !opts.tables.is_empty(),
        tables,
    })
}

#[derive(Debug)]
pub struct PgRestoreOutcome {
    pub plan: RestorePlan,
    pub bytes: u64,
    pub duration_ms: u64,
}

fn file_chunks(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Vec<ChunkRef>> {
    match resolve(repo, &snapshot.root, path.as_bytes())? {
        Resolved::Entry { entry, .. } if entry.kind == EntryKind::File => {
            Ok(entry.chunks().to_vec())
        }
        _ => Err(Error::corrupt(format!(
            "{path} in the snapshot is not a file"
        ))),
    }
}

fn read_text(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<String> {
    let mut out = Vec::new();
    stream_file(
        repo,
        &file_chunks(repo, snapshot, path)?,
        path,
        &mut |data| {
            out.extend_from_slice(data);
            Ok(())
        },
    )?;
    String::from_utf8(out).map_err(|_| Error::corrupt(format!("{path} is not UTF-8 text")))
}

fn stream_file(
    repo: &Repository,
    chunks: &[ChunkRef],
    path: &str,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let reader = BlobReader::new(repo, SEQUENTIAL_READAHEAD);
    for_each_chunk(&reader, chunks, &mut |_, data| {
        sink(&data.map_err(|e| e.at(path))?)?;
        Ok(true)
    })
}

/// Run psql against `database` with `args`, writing its standard input with
/// `feed`. psql's own failure explains more than the broken pipe we see
/// when it dies, so it is reported first.
fn psql_fed(
    conn: &PgConn,
    database: &str,
    args: &[&str],
    feed: &mut dyn FnMut(&mut ChildStdin) -> Result<()>,
) -> Result<()> {
    let mut command = psql_command(conn, Some(database))?;
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = spawn(&mut command, "psql")?;
    let stderr = StderrTail::hold(&mut child);
    let mut stdin = child
        .stdin
        .take()
        .ok_or_else(|| Error::new(ErrorKind::Io, "psql: no stdin pipe"))?;
    let fed = feed(&mut stdin);
    drop(stdin);
    if fed.is_err() {
        let _ = child.kill();
    }
    wait_success(&mut child, "psql", stderr)
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    fed
}

fn write_all(stdin: &mut ChildStdin, data: &[u8]) -> Result<()> {
    stdin
        .write_all(data)
        .map_err(|e| Error::io("writing to psql", e))
}

fn run_script(conn: &PgConn, database: &str, sql: &str) -> Result<()> {
    psql_fed(conn, database, &["--single-transaction"], &mut |stdin| {
        write_all(stdin, sql.as_bytes())
    })
}

fn prepare_target(plan: &RestorePlan, conn: &PgConn) -> Result<()> {
    if plan.create {
        let mut s = Session::open(conn, Some(crate::sources::pg::MAINTENANCE_DB))?;
        s.query(&format!("CREATE DATABASE {}", quote_ident(&plan.target)))?;
        s.close()?;
    }
    let mut s = Session::open(conn, Some(&plan.target))?;
    if plan.partial {
        for t in &plan.tables {
            let q = qualified(&t.schema, &t.table);
            if plan.clean && plan.parts != Parts::DataOnly {
                s.query(&format!("DROP TABLE IF EXISTS {q} CASCADE"))?;
            } else if plan.parts != Parts::DataOnly
                && s.value(&format!(
                    "SELECT to_regclass({}) IS NOT NULL",
                    quote_literal(&q)
                ))? == "t"
            {
                return Err(Error::invalid(format!(
                    "table {}.{} already exists in {}: use --clean to replace it",
                    t.schema, t.table, plan.target
                )));
            }
        }
    } else if plan.parts != Parts::DataOnly {
        if plan.clean {
            s.query(
                "DO $$DECLARE s name; BEGIN \
                 FOR s IN SELECT nspname FROM pg_namespace WHERE nspname <> 'information_schema' AND nspname !~ '^pg_' \
                 LOOP EXECUTE format('DROP SCHEMA %I CASCADE', s); END LOOP; \
                 CREATE SCHEMA public; \
                 BEGIN ALTER SCHEMA public OWNER TO pg_database_owner; EXCEPTION WHEN undefined_object THEN NULL; END; \
                 END$$",
            )?;
        } else {
            let used = s.value(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'",
            )?;
            if used != "0" {
                return Err(Error::invalid(format!(
                    "database {} is not empty ({used} tables, indexes or sequences): use --clean to replace its contents",
                    plan.target
                )));
            }
        }
    }
    s.close()
}

/// Load every planned table's rows, `jobs` at a time.
fn restore_data(
    repo: &Repository,
    snapshot: &Snapshot,
    plan: &RestorePlan,
    conn: &PgConn,
    jobs: usize,
    progress: &Progress,
) -> Result<()> {
    // Every table's file first: a missing one fails before any loading,
    // and the progress bar knows the total.
    let files = plan
        .tables
        .iter()
        .map(|t| {
            let path = format!(
                "/{}",
                names::table_data(&plan.source_database, &t.schema, &t.table)
            );
            let chunks = file_chunks(repo, snapshot, &path)?;
            Ok((t, path, chunks))
        })
        .collect::<Result<Vec<_>>>()?;
    let total: u64 = files
        .iter()
        .flat_map(|(_, _, chunks)| chunks.iter().map(|c| u64::from(c.len)))
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    run_jobs(files, jobs, |(t, path, chunks)| {
        let copy = format!("COPY {} FROM STDIN", qualified(&t.schema, &t.table));
        psql_fed(
            conn,
            &plan.target,
            &["-c", "SET client_encoding TO 'UTF8'", "-c", &copy],
            &mut |stdin| {
                stream_file(repo, &chunks, &path, &mut |data| {
                    progress
                        .bytes_written
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    write_all(stdin, data)
                })
            },
        )
        .map_err(|e| e.at(format!("table {}.{}", t.schema, t.table)))
    })
}

pub fn restore_pg(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &PgRestoreOptions,
    progress: &Progress,
) -> Result<PgRestoreOutcome> {
    let started = Instant::now();
    let plan = plan(snapshot, opts)?;
    program("psql")?;
    prepare_target(&plan, &opts.conn)?;
    let db = &plan.source_database;
    let file = |name: &str| format!("/{}", names::database_file(db, name));
    let selected: BTreeSet<Name> = plan
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.table.clone()))
        .collect();
    let (sequences_sql, sequences) = {
        let all = read_text(repo, snapshot, &file(SEQUENCES))?;
        if plan.partial {
            select_sequences(&all, &selected)
        } else {
            (all, BTreeSet::new())
        }
    };
    let schema = |name: &str| -> Result<String> {
        let sql = read_text(repo, snapshot, &file(name))?;
        Ok(if plan.partial {
            select(&sql, &selected, &sequences)
        } else {
            sql
        })
    };
    if plan.parts != Parts::DataOnly {
        run_script(&opts.conn, &plan.target, &schema(PRE_DATA)?)
            .map_err(|e| e.at("restoring the schema (pre-data)"))?;
    }
    if plan.parts != Parts::SchemaOnly {
        restore_data(repo, snapshot, &plan, &opts.conn, opts.jobs, progress)?;
        run_script(&opts.conn, &plan.target, &sequences_sql)
            .map_err(|e| e.at("restoring sequences"))?;
    }
    if plan.parts != Parts::DataOnly {
        run_script(&opts.conn, &plan.target, &schema(POST_DATA)?)
            .map_err(|e| e.at("restoring indexes and constraints (post-data)"))?;
    }
    Ok(PgRestoreOutcome {
        plan,
        bytes: progress.bytes_written.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}
