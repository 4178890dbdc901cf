//! `restore pg`: a database, or some of its tables, from a snapshot into a
//! server, streamed from the repository into psql: the schema before the
//! data (one transaction), the tables' rows N at a time, then sequences,
//! then indexes and constraints (one transaction). Nothing is staged on
//! disk; schema files (small) are read into memory to pick single tables.
//!
//! The roles the snapshot's objects need are created first where missing.
//! With `--create`, the database is created as it was dumped (encoding,
//! locale, owner), and its settings, comment and grants are applied last;
//! if anything fails, the database is dropped again, so a retry starts
//! from where this one did.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{ChildStdin, Stdio};
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::dependents::{self, Dependent};
use super::{check_source, recorded_databases, recorded_tables};
use crate::engines::pg::database::{self, DatabaseSql};
use crate::engines::pg::names::{self, LARGE_OBJECTS_DIR, POST_DATA, PRE_DATA, ROLES, SEQUENCES};
use crate::engines::pg::session::Session;
use crate::engines::pg::toc::{select, select_large_objects, select_sequences, Name};
use crate::engines::pg::{program, psql_command, qualified, quote_ident, quote_literal, PgConn};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_tables::TableRows;
use crate::format::snapshot::Snapshot;
use crate::format::tree::{ChunkRef, EntryKind};
use crate::ops::content::{for_each_chunk, SEQUENTIAL_READAHEAD};
use crate::ops::jobs::run_jobs;
use crate::ops::walk::{resolve, Resolved};
use crate::progress::Progress;
use crate::repo::{BlobReader, Repository};
use crate::system::process::{spawn, wait_success, StderrTail};

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
    /// The large objects (alone, or with `tables`); a whole-database
    /// restore always brings them.
    pub large_objects: bool,
    /// Create the roles the snapshot's objects need where missing.
    pub roles: bool,
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
    /// Only the named tables' objects (or the large objects), not the
    /// whole schema.
    pub partial: bool,
    pub tables: Vec<TableRows>,
    /// Oids of the large objects to restore.
    pub large_objects: Vec<u32>,
    pub roles: bool,
}

/// The large objects a snapshot holds for `database` (none in snapshots
/// made before vault stored them).
fn stored_large_objects(
    repo: &Repository,
    snapshot: &Snapshot,
    database: &str,
) -> Result<Vec<u32>> {
    let dir = format!("/{}/{LARGE_OBJECTS_DIR}", names::database_dir(database));
    let tree = match resolve(repo, &snapshot.root, dir.as_bytes()) {
        Ok(found) => match found.tree() {
            Some(id) => repo.read_tree(&id)?,
            None => {
                return Err(Error::corrupt(format!(
                    "{dir} in the snapshot is not a folder"
                )))
            }
        },
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e),
    };
    let mut oids = tree
        .entries
        .iter()
        .map(|e| {
            std::str::from_utf8(&e.name)
                .ok()
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    Error::corrupt(format!(
                        "{dir}/{} in the snapshot is not a large object's oid",
                        String::from_utf8_lossy(&e.name)
                    ))
                })
        })
        .collect::<Result<Vec<u32>>>()?;
    oids.sort_unstable();
    Ok(oids)
}

pub fn plan(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &PgRestoreOptions,
) -> Result<RestorePlan> {
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
    let tables = if opts.tables.is_empty() && opts.large_objects {
        vec![]
    } else if opts.tables.is_empty() {
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
    let partial = !opts.tables.is_empty() || opts.large_objects;
    let large_objects = if !partial || opts.large_objects {
        stored_large_objects(repo, snapshot, &source_database)?
    } else {
        vec![]
    };
    if opts.large_objects && large_objects.is_empty() {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!("the snapshot holds no large objects of database {source_database}"),
        ));
    }
    Ok(RestorePlan {
        source_database,
        target: opts.target.clone(),
        create: opts.create,
        clean: opts.clean,
        parts: opts.parts,
        partial,
        tables,
        large_objects,
        roles: opts.roles,
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
pub(crate) fn psql_fed(
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

pub(crate) fn write_all(stdin: &mut ChildStdin, data: &[u8]) -> Result<()> {
    stdin
        .write_all(data)
        .map_err(|e| Error::io("writing to psql", e))
}

fn run_script(conn: &PgConn, database: &str, sql: &str) -> Result<()> {
    psql_fed(conn, database, &["--single-transaction"], &mut |stdin| {
        write_all(stdin, sql.as_bytes())
    })
}

/// Run SQL in the maintenance database (roles, databases).
fn on_server(conn: &PgConn, sql: &str) -> Result<()> {
    run_script(conn, crate::engines::pg::MAINTENANCE_DB, sql)
}

/// Create the target as the snapshot's database was (or plainly, for a
/// snapshot that did not record it).
fn create_database(plan: &RestorePlan, conn: &PgConn, db: &DatabaseSql) -> Result<()> {
    let mut s = Session::open(conn, Some(crate::engines::pg::MAINTENANCE_DB))?;
    let exists = s.value(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = {}",
        quote_literal(&plan.target)
    ))?;
    s.close()?;
    if exists != "0" {
        return Err(Error::invalid(format!(
            "database {} already exists: restore into it without --create, or drop it first",
            plan.target
        )));
    }
    let sql = if db.create.trim().is_empty() {
        format!("CREATE DATABASE {};", quote_ident(&plan.target))
    } else {
        database::rename(&db.create, &plan.source_database, &plan.target)
    };
    // CREATE DATABASE cannot run inside a transaction block. The owner is
    // set by a second statement, which may fail (a missing role): the
    // database made by the first must not stay behind.
    psql_fed(
        conn,
        crate::engines::pg::MAINTENANCE_DB,
        &[],
        &mut |stdin| write_all(stdin, sql.as_bytes()),
    )
    .map_err(|e| match drop_created(conn, &plan.target) {
        Ok(()) => e,
        Err(dropped) => e.at(format!(
            "and database {} could not be dropped again ({dropped})",
            plan.target
        )),
    })
}

/// Drop a database this restore created and could not finish.
fn drop_created(conn: &PgConn, target: &str) -> Result<()> {
    let mut s = Session::open(conn, Some(crate::engines::pg::MAINTENANCE_DB))?;
    s.query(&format!(
        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
        quote_ident(target)
    ))?;
    s.close()
}

fn prepare_target(plan: &RestorePlan, conn: &PgConn, dependents: &[Dependent]) -> Result<()> {
    let mut s = Session::open(conn, Some(&plan.target))?;
    if plan.partial {
        if plan.parts != Parts::DataOnly && !plan.large_objects.is_empty() {
            let list: Vec<String> = plan.large_objects.iter().map(u32::to_string).collect();
            let present = s.value(&format!(
                "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata WHERE oid IN ({})",
                list.join(", ")
            ))?;
            if present != "0" && !plan.clean {
                return Err(Error::invalid(format!(
                    "{present} of the snapshot's large objects already exist in {}: use --clean to replace them",
                    plan.target
                )));
            }
            if present != "0" {
                s.query(&format!(
                    "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE oid IN ({})",
                    list.join(", ")
                ))?;
            }
        }
        if plan.clean && plan.parts != Parts::DataOnly && !plan.tables.is_empty() {
            // Dependents first, then the tables without CASCADE: should
            // anything else still depend on them, the drop fails rather
            // than taking it along. One transaction: all or nothing.
            let mut sql = dependents::drop_sql(dependents);
            for t in &plan.tables {
                sql.push_str(&format!(
                    "DROP TABLE IF EXISTS {};\n",
                    qualified(&t.schema, &t.table)
                ));
            }
            run_script(conn, &plan.target, &sql)
                .map_err(|e| e.at("dropping the tables to replace"))?;
        }
        for t in &plan.tables {
            let q = qualified(&t.schema, &t.table);
            if plan.clean {
                continue;
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
                 PERFORM pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata; \
                 CREATE SCHEMA public; \
                 BEGIN ALTER SCHEMA public OWNER TO pg_database_owner; EXCEPTION WHEN undefined_object THEN NULL; END; \
                 END$$",
            )?;
        } else {
            let used = s.value(
                "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname <> 'information_schema' AND n.nspname !~ '^pg_') \
                 + (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)",
            )?;
            if used != "0" {
                return Err(Error::invalid(format!(
                    "database {} is not empty ({used} tables, indexes, sequences or large objects): use --clean to replace its contents",
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

/// The statements that load the large objects' bytes, streamed into psql:
/// each object is created where the schema did not already create it
/// (data-only restores), then written a piece at a time.
fn restore_large_objects(
    repo: &Repository,
    snapshot: &Snapshot,
    plan: &RestorePlan,
    conn: &PgConn,
    progress: &Progress,
) -> Result<()> {
    if plan.large_objects.is_empty() {
        return Ok(());
    }
    // Hex doubles the bytes; pieces stay well below psql's line limits.
    const PIECE: usize = 256 * 1024;
    psql_fed(
        conn,
        &plan.target,
        &["--single-transaction"],
        &mut |stdin| {
            for &oid in &plan.large_objects {
                let path = format!("/{}", names::large_object(&plan.source_database, oid));
                let chunks = file_chunks(repo, snapshot, &path)?;
                write_all(
                    stdin,
                    format!(
                        "SELECT pg_catalog.lo_create({oid}) WHERE NOT EXISTS \
                     (SELECT 1 FROM pg_catalog.pg_largeobject_metadata WHERE oid = {oid});\n"
                    )
                    .as_bytes(),
                )?;
                let mut offset = 0u64;
                stream_file(repo, &chunks, &path, &mut |data| {
                    for piece in data.chunks(PIECE) {
                        write_all(
                            stdin,
                            format!(
                                "SELECT pg_catalog.lo_put({oid}, {offset}, '\\x{}'::bytea);\n",
                                hex::encode(piece)
                            )
                            .as_bytes(),
                        )?;
                        offset += piece.len() as u64;
                    }
                    progress
                        .bytes_written
                        .fetch_add(data.len() as u64, Ordering::Relaxed);
                    Ok(())
                })?;
            }
            Ok(())
        },
    )
    .map_err(|e| e.at("restoring large objects"))
}

/// A stored SQL file the snapshot may lack (made by an older vault).
fn read_optional(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Option<String>> {
    match read_text(repo, snapshot, path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn restore_pg(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &PgRestoreOptions,
    progress: &Progress,
) -> Result<PgRestoreOutcome> {
    let started = Instant::now();
    let plan = plan(repo, snapshot, opts)?;
    program("psql")?;
    let db = &plan.source_database;
    let file = |name: &str| format!("/{}", names::database_file(db, name));
    let (database_sql, pre_data) = database::split(&read_text(repo, snapshot, &file(PRE_DATA))?);
    if plan.roles {
        if let Some(roles) = read_optional(repo, snapshot, &file(ROLES))? {
            on_server(&opts.conn, &roles)
                .map_err(|e| e.at("creating the roles the snapshot needs"))?;
        }
    }
    if plan.create {
        create_database(&plan, &opts.conn, &database_sql)?;
    }
    let restored = restore_into(repo, snapshot, &plan, opts, &pre_data, progress).and_then(|()| {
        if plan.create && !database_sql.properties.is_empty() {
            let sql = database::rename(&database_sql.properties, db, &plan.target);
            on_server(&opts.conn, &sql)
                .map_err(|e| e.at("restoring the database's settings and grants"))?;
        }
        Ok(())
    });
    if let Err(e) = restored {
        if plan.create {
            if let Err(dropped) = drop_created(&opts.conn, &plan.target) {
                return Err(e.at(format!(
                    "and database {} could not be dropped again ({dropped})",
                    plan.target
                )));
            }
        }
        return Err(e);
    }
    Ok(PgRestoreOutcome {
        plan,
        bytes: progress.bytes_written.load(Ordering::Relaxed),
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// Everything inside the target database, in pg_dump's order.
fn restore_into(
    repo: &Repository,
    snapshot: &Snapshot,
    plan: &RestorePlan,
    opts: &PgRestoreOptions,
    pre_data: &str,
    progress: &Progress,
) -> Result<()> {
    let db = &plan.source_database;
    let file = |name: &str| format!("/{}", names::database_file(db, name));
    let post_data = read_text(repo, snapshot, &file(POST_DATA))?;
    let dependents = replaced_dependents(plan, &opts.conn, pre_data, &post_data)?;
    prepare_target(plan, &opts.conn, &dependents)?;
    let selected = selected_tables(plan);
    let (sequences_sql, sequences) = {
        let all = read_text(repo, snapshot, &file(SEQUENCES))?;
        if plan.partial {
            select_sequences(&all, &selected)
        } else {
            (all, BTreeSet::new())
        }
    };
    let pick = |sql: &str| -> String {
        if plan.partial {
            let mut out = select(sql, &selected, &sequences);
            if !plan.large_objects.is_empty() {
                out.push_str(&select_large_objects(sql));
            }
            out
        } else {
            sql.to_string()
        }
    };
    if plan.parts != Parts::DataOnly {
        progress.set_stage("creating the schema");
        run_script(&opts.conn, &plan.target, &pick(pre_data))
            .map_err(|e| e.at("restoring the schema (pre-data)"))?;
    }
    if plan.parts != Parts::SchemaOnly {
        progress.set_stage("loading table data");
        restore_data(repo, snapshot, plan, &opts.conn, opts.jobs, progress)?;
        restore_large_objects(repo, snapshot, plan, &opts.conn, progress)?;
        run_script(&opts.conn, &plan.target, &sequences_sql)
            .map_err(|e| e.at("restoring sequences"))?;
    }
    if plan.parts != Parts::DataOnly {
        progress.set_stage("building indexes and constraints");
        run_script(&opts.conn, &plan.target, &pick(&post_data))
            .map_err(|e| e.at("restoring indexes and constraints (post-data)"))?;
    }
    if !dependents.is_empty() {
        let mut sql = dependents::recreate(pre_data, &dependents);
        sql.push_str(&dependents::recreate(&post_data, &dependents));
        run_script(&opts.conn, &plan.target, &sql).map_err(|e| {
            e.at("re-creating the views and foreign keys that depend on the restored tables")
        })?;
    }
    Ok(())
}

fn selected_tables(plan: &RestorePlan) -> BTreeSet<Name> {
    plan.tables
        .iter()
        .map(|t| (t.schema.clone(), t.table.clone()))
        .collect()
}

/// What replacing the planned tables (`--table ... --clean`) drops and
/// re-creates besides them; an error naming those the snapshot cannot
/// re-create.
fn replaced_dependents(
    plan: &RestorePlan,
    conn: &PgConn,
    pre_data: &str,
    post_data: &str,
) -> Result<Vec<Dependent>> {
    if !plan.partial || !plan.clean || plan.parts == Parts::DataOnly || plan.tables.is_empty() {
        return Ok(vec![]);
    }
    let found = {
        let mut s = Session::open(conn, Some(&plan.target))?;
        let found = dependents::find(&mut s, &selected_tables(plan))?;
        s.close()?;
        found
    };
    let missing = dependents::missing(&found, pre_data, post_data);
    if !missing.is_empty() {
        let names: Vec<String> = missing.iter().map(|d| d.to_string()).collect();
        return Err(Error::invalid(format!(
            "replacing the tables would drop {}, which the snapshot cannot re-create: drop or change them first",
            names.join(", ")
        )));
    }
    Ok(found)
}

/// The objects outside the planned tables that the restore will drop and
/// re-create (for `--dry-run`); refuses as the restore would.
pub fn plan_dependents(
    repo: &Repository,
    snapshot: &Snapshot,
    plan: &RestorePlan,
    conn: &PgConn,
) -> Result<Vec<Dependent>> {
    if !plan.partial || !plan.clean {
        return Ok(vec![]);
    }
    let file = |name: &str| format!("/{}", names::database_file(&plan.source_database, name));
    let (_, pre_data) = database::split(&read_text(repo, snapshot, &file(PRE_DATA))?);
    let post_data = read_text(repo, snapshot, &file(POST_DATA))?;
    replaced_dependents(plan, conn, &pre_data, &post_data)
}
