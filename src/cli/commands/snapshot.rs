use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use vault::ops::snapshot::{self, ParentChoice, SnapshotOptions, SnapshotOutcome};
use vault::progress::Progress;
use vault::repo::SnapshotFilter;

use super::print_json;
use crate::cli::args::Global;
use crate::cli::exit;
use crate::cli::output::{human_bytes, rfc3339_utc, ProgressGuard};

#[derive(Args, Debug)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub source: Option<SnapshotSource>,
    /// Files and folders to store (`vault snapshot files PATH...` is the
    /// unambiguous form)
    #[command(flatten)]
    pub files: FilesArgs,
    /// Store standard input as one stream (needs --name)
    #[arg(long)]
    pub stdin: bool,
    /// Name of the stream stored with --stdin
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub meta: SnapshotMeta,
}

#[derive(Args, Debug, Clone, Default)]
pub struct FilesArgs {
    /// Files and folders to store
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Compare against this snapshot instead of the newest of the same paths
    #[arg(long)]
    pub parent: Option<String>,
    /// Read every file, even those unchanged since the parent snapshot
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub retired: RetiredHost,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotSource {
    /// Store files and folders (PATH...)
    Files(FilesArgs),
    /// Store the standard output of a program; fails if the program fails
    Cmd(CmdArgs),
    /// Store a Redis server's RDB file (redis-cli --rdb)
    Redis(super::redis::RedisArgs),
    /// Store one dump per MariaDB/MySQL database (mariadb-dump --single-transaction)
    Mysql(super::mysql::MysqlArgs),
    /// Store a consistent copy of an SQLite database, safe while it is written
    Sqlite(super::sqlite::SqliteArgs),
    /// Dump PostgreSQL: one snapshot of the server, tables in parallel
    Pg(super::pg::snapshot::PgSnapshotArgs),
}

#[derive(Args, Debug)]
pub struct CmdArgs {
    /// Name of the stream in the snapshot
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub retired: RetiredHost,
    /// The program and its arguments (after --)
    #[arg(last = true, required = true)]
    pub command: Vec<OsString>,
}

/// Options of every snapshot source. They are global to `snapshot`, so they
/// may come before or after the source keyword.
#[derive(Args, Debug, Clone)]
pub struct SnapshotMeta {
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag", global = true)]
    pub tags: Vec<String>,
    /// Record this host name in the snapshot instead of the machine's
    #[arg(long, global = true, value_name = "NAME")]
    pub record_host: Option<String>,
    /// zstd level for this run, 0 (off) to 22
    #[arg(long, global = true)]
    pub compression: Option<i32>,
}

/// `--host` once named the host recorded in a snapshot; it now names a
/// database server. Where no server is involved, it is refused rather than
/// silently read either way.
#[derive(Args, Debug, Clone, Default)]
pub struct RetiredHost {
    #[arg(long = "host", hide = true, value_name = "HOST")]
    pub host: Option<String>,
}

impl RetiredHost {
    pub fn refuse(&self) -> Result<(), vault::Error> {
        match &self.host {
            None => Ok(()),
            Some(_) => Err(vault::Error::invalid(
                "--host names a database server (`vault snapshot pg --host HOST`); \
                 the host recorded in a snapshot is --record-host NAME",
            )),
        }
    }
}

pub(super) fn snapshot_options(meta: &SnapshotMeta, parent: ParentChoice) -> SnapshotOptions {
    SnapshotOptions {
        host: meta.record_host.clone(),
        tags: meta.tags.clone(),
        compression: meta.compression,
        parent,
        meta: vec![],
    }
}

/// The names of `snapshot`'s sources: a plain path spelled like one of
/// them is ambiguous.
fn source_keywords() -> Vec<String> {
    use clap::CommandFactory;
    let cli = crate::cli::Cli::command();
    cli.find_subcommand("snapshot")
        .map(|c| {
            c.get_subcommands()
                .map(|s| s.get_name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Plain paths without the `files` keyword, kept for old scripts: only
/// when none of them could be read as a source.
fn legacy_paths(files: &FilesArgs) -> Result<()> {
    let keywords = source_keywords();
    if let Some(p) = files
        .paths
        .iter()
        .find(|p| keywords.iter().any(|k| p.as_os_str() == k.as_str()))
    {
        bail!(vault::Error::invalid(format!(
            "'{}' is a source keyword and a path here: write `vault snapshot files ./{}` \
             for the folder, or put the source first (`vault snapshot {} ...`)",
            p.display(),
            p.display(),
            p.display()
        )));
    }
    Ok(())
}

pub(super) fn snapshot(g: &Global, a: SnapshotArgs) -> Result<i32> {
    a.files.retired.refuse()?;
    let files_given_before_source = a.files.force || a.files.parent.is_some();
    if a.source.is_some() && (a.stdin || a.name.is_some()) {
        bail!(vault::Error::invalid(
            "--stdin and --name go without a source keyword (`vault snapshot --stdin --name NAME`)"
        ));
    }
    // Options that cannot work are refused before the repository is opened.
    match &a.source {
        Some(SnapshotSource::Redis(r)) => r.check()?,
        Some(SnapshotSource::Mysql(m)) => drop(m.conn.connection()?),
        _ => {}
    }
    if let Some(SnapshotSource::Pg(pg)) = &a.source {
        return super::pg::snapshot::snapshot_pg_cmd(g, pg, &a.meta);
    }
    if files_given_before_source && !matches!(a.source, None | Some(SnapshotSource::Files(_))) {
        bail!(vault::Error::invalid(
            "--parent and --force apply to file trees (`vault snapshot files PATH...`)"
        ));
    }
    let repo = super::open_for_backup(g)?;
    let progress = Arc::new(Progress::default());
    let outcome = {
        let _bar = ProgressGuard::start(progress.clone(), g.quiet || g.json, "snapshot");
        match (&a.source, a.stdin) {
            (Some(SnapshotSource::Pg(_)), _) => unreachable!("dispatched above"),
            (Some(SnapshotSource::Cmd(c)), _) => {
                c.retired.refuse()?;
                let opts = snapshot_options(&a.meta, ParentChoice::None);
                let (program, args) = c
                    .command
                    .split_first()
                    .context("no program given after --")?;
                snapshot::snapshot_command(&repo, &c.name, program, args, &opts, &progress)?
            }
            (Some(SnapshotSource::Redis(r)), _) => {
                super::redis::snapshot(&repo, r, &a.meta, &progress)?
            }
            (Some(SnapshotSource::Mysql(m)), _) => {
                super::mysql::snapshot(&repo, m, &a.meta, &progress)?
            }
            (Some(SnapshotSource::Sqlite(s)), _) => {
                super::sqlite::snapshot(&repo, s, &a.meta, &progress)?
            }
            (Some(SnapshotSource::Files(f)), _) => {
                f.retired.refuse()?;
                let merged = FilesArgs {
                    paths: f.paths.clone(),
                    parent: f.parent.clone().or(a.files.parent.clone()),
                    force: f.force || a.files.force,
                    retired: RetiredHost::default(),
                };
                files(&repo, &merged, &a.meta, &progress)?
            }
            (None, true) => {
                if !a.files.paths.is_empty() {
                    bail!(vault::Error::invalid("--stdin takes no paths"));
                }
                let name = a
                    .name
                    .as_deref()
                    .ok_or_else(|| vault::Error::invalid("--stdin needs --name NAME"))?;
                let opts = snapshot_options(&a.meta, ParentChoice::None);
                // The descriptor itself, unbuffered: the chunker reads in
                // large blocks, and reads on another thread.
                use std::os::fd::AsFd;
                let stdin = std::io::stdin()
                    .as_fd()
                    .try_clone_to_owned()
                    .map(std::fs::File::from)
                    .context("reading standard input")?;
                snapshot::snapshot_stream(&repo, name, stdin, "stdin", &opts, &progress)?
            }
            (None, false) => {
                legacy_paths(&a.files)?;
                files(&repo, &a.files, &a.meta, &progress)?
            }
        }
    };
    report_snapshot(g, &outcome)?;
    Ok(if outcome.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}

fn files(
    repo: &Arc<vault::Repository>,
    f: &FilesArgs,
    meta: &SnapshotMeta,
    progress: &Arc<Progress>,
) -> Result<SnapshotOutcome> {
    if f.paths.is_empty() {
        bail!(vault::Error::invalid(
            "nothing to snapshot: give `files PATH...`, a source (pg, redis, mysql, sqlite, cmd), \
             or --stdin --name NAME"
        ));
    }
    let parent = match (&f.parent, f.force) {
        (_, true) => ParentChoice::None,
        (Some(p), false) => ParentChoice::Id(repo.find_snapshot(p, &SnapshotFilter::default())?.0),
        (None, false) => ParentChoice::Auto,
    };
    Ok(snapshot::snapshot_files(
        repo,
        &f.paths,
        &snapshot_options(meta, parent),
        progress,
    )?)
}

pub(super) fn report_snapshot(g: &Global, o: &SnapshotOutcome) -> Result<()> {
    for w in &o.warnings {
        eprintln!("warning: {w}");
    }
    let s = &o.snapshot.summary;
    if g.json {
        print_json(&json!({
            "snapshot": o.id.to_hex(),
            "time": rfc3339_utc(o.snapshot.time),
            "files": s.files,
            "dirs": s.dirs,
            "total_bytes": o.snapshot.total_bytes(),
            "bytes_read": s.bytes_read,
            "bytes_added": s.bytes_added,
            "raw_bytes_added": o.stats.raw_bytes_added,
            "blobs_added": s.blobs_added,
            "packs_written": o.stats.packs_written,
            "delta_blobs": o.stats.delta_blobs,
            "delta_saved_bytes": o.stats.delta_saved_bytes,
            "duration_ms": s.duration_ms,
            "requests": o.requests.to_json(),
            "warnings": o.warnings,
        }))?;
    } else if !g.quiet {
        let deltas = if o.stats.delta_blobs == 0 {
            String::new()
        } else {
            format!(
                ", {} as deltas saving {}",
                o.stats.delta_blobs,
                human_bytes(o.stats.delta_saved_bytes)
            )
        };
        println!(
            "snapshot {} saved: {} files ({}), {} read, {} added ({} stored{deltas}) in {:.1}s{}",
            o.id.short(),
            s.files,
            o.snapshot
                .total_bytes()
                .map_or("-".to_string(), human_bytes),
            human_bytes(s.bytes_read),
            human_bytes(o.stats.raw_bytes_added),
            human_bytes(s.bytes_added),
            s.duration_ms as f64 / 1000.0,
            if o.warnings.is_empty() {
                String::new()
            } else {
                format!(", {} warnings", o.warnings.len())
            }
        );
    }
    Ok(())
}
