//! `snapshot pg`: every table of a database from one server snapshot, N
//! tables at a time, each streamed straight into the chunker.
//!
//! A leader session opens a REPEATABLE READ transaction, exports its
//! snapshot and takes ACCESS SHARE locks on every table, as pg_dump does, and
//! holds them to the end. Workers (`psql ... SET TRANSACTION SNAPSHOT; COPY
//! ... TO STDOUT`) and the schema dumps (`pg_dump --snapshot`) all see that
//! one snapshot. Any failure (a worker, pg_dump, the leader's connection)
//! fails the whole run before the set is committed: no snapshot is recorded.
//!
//! A table larger than the split size is read in parts (fixed heap block
//! ranges, `engines::pg::split`), each by its own worker in the same
//! snapshot, and stored as one file: its parts joined in order. The part
//! lengths are recorded (`pg.parts`) so the next snapshot stores each part
//! as a delta against the same part of this one.
//!
//! The schema is what `pg_dump --create` writes (the database's own
//! properties included), its post-data section with the refreshes of
//! materialized views. Large objects are stored one file each, read by
//! psql's `\lo_export` in the same snapshot.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::engines::pg::facts;
use crate::engines::pg::names::{self, GLOBALS, POST_DATA, PRE_DATA, ROLES, SEQUENCES};
use crate::engines::pg::session::Session;
use crate::engines::pg::split;
use crate::engines::pg::toc::sequence_trailer;
use crate::engines::pg::{from_hex, program, qualified, quote_literal, PgConn, CLIENT_ENV};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_facts::{self, DatabaseFacts, PG_FACTS_KEY};
use crate::format::pg_parts::{self, TableParts, PG_PARTS_KEY};
use crate::format::pg_tables::{self, TableRows, PG_SERVER_VERSION_KEY, PG_TABLES_KEY};
use crate::ingest::stream_set::StreamSet;
use crate::ops::jobs::run_jobs;
use crate::ops::snapshot::{
    add_observed_output, add_observed_part, add_process_output, SnapshotOptions, SnapshotOutcome,
};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::Stderr;

#[derive(Debug, Clone)]
pub enum Databases {
    /// The connection's database.
    One,
    /// Every database that accepts connections, and the globals.
    All,
}

#[derive(Debug, Clone)]
pub struct PgSnapshotOptions {
    pub conn: PgConn,
    pub databases: Databases,
    /// Table streams at once.
    pub jobs: usize,
    /// How long to wait for a table lock (a PostgreSQL interval, e.g. `30s`).
    pub lock_wait_timeout: String,
    /// Tables larger than this many bytes (on the server) are read in parts
    /// of this size, in parallel; 0 reads every table whole.
    pub split_size: u64,
}

/// The default split size: parts small enough to keep two workers busy on
/// one large table, large enough that starting a session is noise.
pub const DEFAULT_SPLIT_SIZE: u64 = 64 << 20;

const TABLES_SQL: &str = "SELECT encode(convert_to(n.nspname, 'UTF8'), 'hex'), \
     encode(convert_to(c.relname, 'UTF8'), 'hex') \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND c.relpersistence <> 't' \
     AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_' \
     AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass \
       AND d.objid = c.oid AND d.deptype = 'e') \
     ORDER BY c.relpages DESC, n.nspname, c.relname";

/// Each sequence with the table owning it (serial or identity column).
const SEQUENCES_SQL: &str = "SELECT encode(convert_to(s.schemaname, 'UTF8'), 'hex'), \
     encode(convert_to(s.sequencename, 'UTF8'), 'hex'), \
     coalesce(s.last_value, s.start_value), s.last_value IS NOT NULL, \
     coalesce((SELECT encode(convert_to(tn.nspname, 'UTF8'), 'hex') || '|' || \
        encode(convert_to(t.relname, 'UTF8'), 'hex') \
        FROM pg_depend d JOIN pg_class t ON t.oid = d.refobjid \
        JOIN pg_namespace tn ON tn.oid = t.relnamespace \
        WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass \
        AND d.objid = format('%I.%I', s.schemaname, s.sequencename)::regclass \
        AND d.deptype IN ('a', 'i') LIMIT 1), '-|-') \
     FROM pg_sequences s \
     WHERE s.schemaname <> 'information_schema' AND s.schemaname !~ '^pg_' \
     ORDER BY 1, 2";

struct Table {
    schema: String,
    name: String,
    /// How the table is read in parts, if it is.
    split: Option<Split>,
}

struct Split {
    /// The columns `COPY table TO` writes, quoted, comma-separated.
    columns: String,
    part_blocks: u64,
    count: u64,
}

/// Each large table's size in heap blocks and its columns (generated ones
/// left out, as `COPY table TO` does), for heap tables over `min_blocks`.
fn large_tables_sql(min_blocks: u64) -> String {
    format!(
        "SELECT encode(convert_to(n.nspname, 'UTF8'), 'hex'), \
         encode(convert_to(c.relname, 'UTF8'), 'hex'), \
         pg_relation_size(c.oid) / current_setting('block_size')::bigint, \
         coalesce((SELECT encode(convert_to(string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum), 'UTF8'), 'hex') \
           FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
           AND a.attgenerated = ''), '') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'heap') \
         AND pg_relation_size(c.oid) / current_setting('block_size')::bigint > {min_blocks}"
    )
}

/// Decide which tables are read in parts, from their size in the dump's
/// transaction (locked, so no rewrite moves their rows).
fn plan_splits(session: &mut Session, tables: &mut [Table], split_size: u64) -> Result<()> {
    let version: u32 = session
        .value("SHOW server_version_num")?
        .parse()
        .map_err(|_| Error::new(ErrorKind::SourceFailed, "unexpected server_version_num"))?;
    let block_size: u64 = session
        .value("SHOW block_size")?
        .parse()
        .map_err(|_| Error::new(ErrorKind::SourceFailed, "unexpected block_size"))?;
    let Some(part_blocks) = split::part_blocks(split_size, block_size, version) else {
        return Ok(());
    };
    for row in session.query(&large_tables_sql(part_blocks))? {
        let f: Vec<&str> = row.split('|').collect();
        let [schema, name, blocks, columns] = f[..] else {
            return Err(Error::new(
                ErrorKind::SourceFailed,
                format!("unexpected table size row '{row}'"),
            ));
        };
        let (schema, name, columns) = (from_hex(schema)?, from_hex(name)?, from_hex(columns)?);
        let blocks: u64 = blocks.parse().map_err(|_| {
            Error::new(
                ErrorKind::SourceFailed,
                format!("unexpected table size row '{row}'"),
            )
        })?;
        // A table without columns has nothing to select: read it whole.
        let Some(t) = tables
            .iter_mut()
            .find(|t| t.schema == schema && t.name == name && !columns.is_empty())
        else {
            continue;
        };
        t.split = Some(Split {
            columns,
            part_blocks,
            count: split::part_count(blocks, part_blocks),
        });
    }
    Ok(())
}

/// The leader's view of one database, taken inside its transaction.
struct Plan {
    snapshot_id: String,
    tables: Vec<Table>,
    sequences_sql: String,
    large_objects: Vec<u32>,
    roles_sql: String,
    fingerprint: String,
    matviews: Vec<(String, String)>,
    /// What the database holds that the snapshot will not.
    uncarried: Vec<String>,
}

fn lead(session: &mut Session, lock_wait_timeout: &str, split_size: u64) -> Result<Plan> {
    session.query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")?;
    let snapshot_id = session.value("SELECT pg_export_snapshot()")?;
    let mut tables = Vec::new();
    for row in session.query(TABLES_SQL)? {
        let (s, t) = row.split_once('|').unwrap_or((&row, ""));
        tables.push(Table {
            schema: from_hex(s)?,
            name: from_hex(t)?,
            split: None,
        });
    }
    if !tables.is_empty() {
        let list: Vec<String> = tables
            .iter()
            .map(|t| qualified(&t.schema, &t.name))
            .collect();
        session.query(&format!(
            "SET LOCAL lock_timeout = {}",
            quote_literal(lock_wait_timeout)
        ))?;
        session
            .query(&format!(
                "LOCK TABLE {} IN ACCESS SHARE MODE",
                list.join(", ")
            ))
            .map_err(|e| {
                Error::new(
                    ErrorKind::SourceFailed,
                    format!("cannot lock the tables to dump: {e}"),
                )
            })?;
        plan_splits(session, &mut tables, split_size)?;
    }
    let mut sequences_sql = String::new();
    for row in session.query(SEQUENCES_SQL)? {
        let f: Vec<&str> = row.split('|').collect();
        let [schema, name, value, called, owner_schema, owner_table] = f[..] else {
            return Err(Error::new(
                ErrorKind::SourceFailed,
                format!("unexpected sequence row '{row}'"),
            ));
        };
        let seq = (from_hex(schema)?, from_hex(name)?);
        let owner = match (owner_schema, owner_table) {
            ("-", "-") => None,
            (s, t) => Some((from_hex(s)?, from_hex(t)?)),
        };
        sequences_sql.push_str(&format!(
            "SELECT pg_catalog.setval({}, {value}, {});{}\n",
            quote_literal(&qualified(&seq.0, &seq.1)),
            called == "t",
            sequence_trailer(&seq, owner.as_ref())
        ));
    }
    Ok(Plan {
        snapshot_id,
        tables,
        sequences_sql,
        large_objects: facts::large_objects(session)?,
        roles_sql: facts::roles_sql(session)?,
        fingerprint: facts::fingerprint(session)?,
        matviews: facts::populated_matviews(session)?,
        uncarried: facts::uncarried(session)?,
    })
}

enum Job<'a> {
    Schema(&'static str, &'static str),
    Table(&'a Table),
    /// Part k of a table read in parts.
    Part(&'a Table, &'a Split, u64),
    LargeObject(u32),
}

/// What every worker of one database's dump shares.
struct Dump<'a> {
    set: &'a StreamSet,
    database: &'a str,
    conn_args: &'a [OsString],
    snapshot_id: &'a str,
    progress: &'a Progress,
    /// How the parent snapshot read its tables in parts.
    parent_parts: &'a [TableParts],
}

impl Dump<'_> {
    /// One schema section, by pg_dump from the leader's snapshot.
    fn schema(
        &self,
        file: &str,
        section: &str,
        pg_dump: &Path,
        lock_wait_timeout: &str,
    ) -> Result<()> {
        // Not --schema-only: the sections then also hold the large objects'
        // metadata and the refreshes of materialized views, and no rows.
        let mut args: Vec<OsString> = vec![
            format!("--section={section}").into(),
            format!("--snapshot={}", self.snapshot_id).into(),
            format!("--lock-wait-timeout={lock_wait_timeout}").into(),
        ];
        if section == "pre-data" {
            // The database's own statements, once.
            args.push("--create".into());
        }
        args.extend(self.conn_args.iter().cloned());
        let path = names::database_file(self.database, file);
        add_process_output(
            self.set,
            &path,
            client(pg_dump, &args),
            Stderr::Hold,
            self.progress,
        )
        .map(|_| ())
    }

    /// psql arguments that run `last` in the leader's snapshot.
    fn in_snapshot(&self, last: &[String]) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "-X".into(),
            "-q".into(),
            "-v".into(),
            "ON_ERROR_STOP=1".into(),
        ];
        args.extend(self.conn_args.iter().cloned());
        let first = [
            "SET client_encoding TO 'UTF8'".to_string(),
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY".to_string(),
            format!(
                "SET TRANSACTION SNAPSHOT {}",
                quote_literal(self.snapshot_id)
            ),
        ];
        for sql in first.iter().chain(last) {
            args.extend(["-c".into(), sql.into()]);
        }
        args
    }

    /// One table's rows, by psql in the leader's snapshot; returns the
    /// number of rows.
    fn table(&self, t: &Table, psql: &Path) -> Result<u64> {
        let args = self.in_snapshot(&[format!("COPY {} TO STDOUT", qualified(&t.schema, &t.name))]);
        let path = names::table_data(self.database, &t.schema, &t.name);
        self.progress
            .set_stage(format!("table {}", qualified(&t.schema, &t.name)));
        let mut rows = 0u64;
        add_observed_output(
            self.set,
            &path,
            client(psql, &args),
            Stderr::Hold,
            &mut |bytes| rows += count_rows(bytes),
            self.progress,
        )?;
        Ok(rows)
    }

    /// Part `k` of a table read in parts; returns its rows and length.
    fn table_part(&self, t: &Table, split: &Split, k: u64, psql: &Path) -> Result<(u64, u64)> {
        let table = qualified(&t.schema, &t.name);
        let args = self.in_snapshot(&split::part_query(
            &table,
            &split.columns,
            split.part_blocks,
            k,
            split.count,
        ));
        let path = names::table_data(self.database, &t.schema, &t.name);
        self.progress
            .set_stage(format!("table {table} (part {} of {})", k + 1, split.count));
        let index = usize::try_from(k)
            .map_err(|_| Error::invalid(format!("table {table} has too many parts")))?;
        let parent = self
            .parent_parts
            .iter()
            .find(|p| p.database == self.database && p.schema == t.schema && p.table == t.name);
        let mut rows = 0u64;
        let size = add_observed_part(
            self.set,
            &path,
            (index, split::parent_range(parent, split.part_blocks, index)),
            client(psql, &args),
            Stderr::Hold,
            &mut |bytes| rows += count_rows(bytes),
            self.progress,
        )?;
        Ok((rows, size))
    }

    /// One large object's bytes, as they are: psql's `\lo_export` writes
    /// them to its standard output (quiet, it writes nothing else there).
    fn large_object(&self, oid: u32, psql: &Path) -> Result<u64> {
        let args = self.in_snapshot(&[format!("\\lo_export {oid} /dev/stdout")]);
        add_process_output(
            self.set,
            &names::large_object(self.database, oid),
            client(psql, &args),
            Stderr::Hold,
            self.progress,
        )
    }
}

/// COPY text ends every row with a newline and escapes newlines inside
/// values, so newlines count rows.
fn count_rows(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

/// A PostgreSQL client program run with the environment every client gets.
fn client(program: &Path, args: &[OsString]) -> std::process::Command {
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).envs(CLIENT_ENV.iter().copied());
    cmd
}

/// Each part's length, by part number.
type PartSizes = BTreeMap<u64, u64>;

/// What one database's dump recorded.
struct Dumped {
    tables: Vec<TableRows>,
    parts: Vec<TableParts>,
    facts: DatabaseFacts,
    warnings: Vec<String>,
}

/// Dump one database into `set`.
fn dump_database(
    set: &StreamSet,
    opts: &PgSnapshotOptions,
    database: &str,
    parent_parts: &[TableParts],
    progress: &Progress,
) -> Result<Dumped> {
    let psql = program("psql")?;
    let pg_dump = program("pg_dump")?;
    let mut leader = Session::open(&opts.conn, Some(database))?;
    let plan = lead(&mut leader, &opts.lock_wait_timeout, opts.split_size)?;
    set.add(
        &names::database_file(database, SEQUENCES),
        plan.sequences_sql.as_bytes(),
        progress,
    )?;
    set.add(
        &names::database_file(database, ROLES),
        plan.roles_sql.as_bytes(),
        progress,
    )?;
    let mut jobs = vec![
        Job::Schema(PRE_DATA, "pre-data"),
        Job::Schema(POST_DATA, "post-data"),
    ];
    // Largest tables first, each large one as its parts.
    for t in &plan.tables {
        match &t.split {
            Some(split) => jobs.extend((0..split.count).map(|k| Job::Part(t, split, k))),
            None => jobs.push(Job::Table(t)),
        }
    }
    jobs.extend(plan.large_objects.iter().copied().map(Job::LargeObject));
    let large_object_bytes = std::sync::atomic::AtomicU64::new(0);
    // Rows per table, and each part's length, summed as parts finish.
    let counted: Mutex<BTreeMap<(&str, &str), u64>> = Mutex::new(BTreeMap::new());
    let part_sizes: Mutex<BTreeMap<(&str, &str), PartSizes>> = Mutex::new(BTreeMap::new());
    let dump = Dump {
        set,
        database,
        conn_args: &opts.conn.args(Some(database)),
        snapshot_id: &plan.snapshot_id,
        progress,
        parent_parts,
    };
    run_jobs(jobs, opts.jobs, |job| match job {
        Job::Schema(file, section) => dump.schema(file, section, &pg_dump, &opts.lock_wait_timeout),
        Job::Table(t) => {
            let rows = dump.table(t, &psql)?;
            *counted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((&t.schema, &t.name))
                .or_default() += rows;
            Ok(())
        }
        Job::Part(t, split, k) => {
            let (rows, size) = dump.table_part(t, split, k, &psql)?;
            *counted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((&t.schema, &t.name))
                .or_default() += rows;
            part_sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((&t.schema, &t.name))
                .or_default()
                .insert(k, size);
            Ok(())
        }
        Job::LargeObject(oid) => {
            let size = dump
                .large_object(oid, &psql)
                .map_err(|e| e.at(format!("large object {oid}")))?;
            large_object_bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        }
    })
    .map_err(|e| e.at(format!("database {database}")))?;
    // The leader held the snapshot to the end; its session ending cleanly
    // proves the server stayed up throughout.
    leader.query("COMMIT")?;
    leader.close()?;
    let tables = counted
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|((schema, table), rows)| TableRows {
            database: database.to_string(),
            schema: schema.to_string(),
            table: table.to_string(),
            rows,
        })
        .collect();
    let parts = plan
        .tables
        .iter()
        .filter_map(|t| {
            let split = t.split.as_ref()?;
            let sizes = part_sizes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&(t.schema.as_str(), t.name.as_str()))?;
            Some(TableParts {
                database: database.to_string(),
                schema: t.schema.clone(),
                table: t.name.clone(),
                part_blocks: split.part_blocks,
                parts: sizes.into_values().collect(),
            })
        })
        .collect();
    Ok(Dumped {
        tables,
        parts,
        facts: DatabaseFacts {
            database: database.to_string(),
            fingerprint: plan.fingerprint,
            large_objects: plan.large_objects.len() as u64,
            large_object_bytes: large_object_bytes.into_inner(),
            matviews: plan.matviews,
        },
        warnings: plan
            .uncarried
            .into_iter()
            .map(|w| format!("database {database}: {w}"))
            .collect(),
    })
}

/// Snapshot one database or all of them.
pub fn snapshot_pg(
    repo: &Arc<Repository>,
    opts: &PgSnapshotOptions,
    snapshot_opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    // Fail on a missing program before connecting to anything.
    program("psql")?;
    program("pg_dump")?;
    let (databases, server_version) = {
        let maintenance = match opts.databases {
            Databases::One => None,
            Databases::All => Some(crate::engines::pg::MAINTENANCE_DB),
        };
        let mut s = Session::open(&opts.conn, maintenance)?;
        let version = s.value("SHOW server_version")?;
        let dbs = match opts.databases {
            Databases::One => vec![from_hex(&s.value("SELECT encode(convert_to(current_database(), 'UTF8'), 'hex')")?)?],
            Databases::All => s
                .query("SELECT encode(convert_to(datname, 'UTF8'), 'hex') FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY datname")?
                .iter()
                .map(|h| from_hex(h))
                .collect::<Result<_>>()?,
        };
        s.close()?;
        (dbs, version)
    };
    let labels = databases.iter().map(|d| d.as_bytes().to_vec()).collect();
    let set = StreamSet::begin(repo, super::SOURCE, labels, snapshot_opts)?;
    if let Databases::All = opts.databases {
        let pg_dumpall = program("pg_dumpall")?;
        let mut args: Vec<OsString> = vec!["--globals-only".into()];
        args.extend(opts.conn.args(None));
        add_process_output(
            &set,
            GLOBALS,
            client(&pg_dumpall, &args),
            Stderr::Hold,
            progress,
        )?;
    }
    // A parent's part list that cannot be read only costs the deltas.
    let parent_parts = set
        .parent_meta(PG_PARTS_KEY)
        .and_then(|bytes| pg_parts::decode(bytes).ok())
        .unwrap_or_default();
    let mut tables = Vec::new();
    let mut parts = Vec::new();
    let mut facts = Vec::new();
    let mut warnings = Vec::new();
    for db in &databases {
        let dumped = dump_database(&set, opts, db, &parent_parts, progress)?;
        tables.extend(dumped.tables);
        parts.extend(dumped.parts);
        facts.push(dumped.facts);
        warnings.extend(dumped.warnings);
    }
    let mut with_meta = snapshot_opts.clone();
    with_meta.meta.push((
        PG_SERVER_VERSION_KEY.to_string(),
        server_version.into_bytes(),
    ));
    with_meta
        .meta
        .push((PG_TABLES_KEY.to_string(), pg_tables::encode(&tables)));
    with_meta
        .meta
        .push((PG_FACTS_KEY.to_string(), pg_facts::encode(&facts)));
    parts.sort();
    with_meta
        .meta
        .push((PG_PARTS_KEY.to_string(), pg_parts::encode(&parts)));
    set.commit_with_warnings(&with_meta, warnings)
}
