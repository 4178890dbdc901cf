//! Command-line types. They convert into the library's option structs and
//! hold no logic of their own.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "vault",
    version,
    about = "Deduplicating, encrypted backups of databases and file trees"
)]
pub struct Cli {
    #[command(flatten, next_help_heading = "Global options")]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Repository location: a local path or s3://, sftp://, webdav://, gcs://,
    /// azblob:// URL [default: $XDG_DATA_HOME/vault/repo]
    #[arg(short, long, global = true, env = "VAULT_REPOSITORY")]
    pub repo: Option<String>,
    /// Read the password from this file (first line)
    #[arg(long, global = true, env = "VAULT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password
    #[arg(long, global = true, env = "VAULT_PASSWORD_COMMAND")]
    pub password_command: Option<String>,
    /// Folder for the local index cache [default: $XDG_CACHE_HOME/vault]
    #[arg(long, global = true, env = "VAULT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Keep no local cache (read the whole index from the repository)
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Print machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress and no summary, only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Requests in flight at once to remote storage [default: 8]
    #[arg(long, global = true, env = "VAULT_CONNECTIONS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub connections: Option<u16>,
    /// Retries of a failed remote request before giving up [default: 8]
    #[arg(long, global = true, env = "VAULT_RETRIES")]
    pub retries: Option<u8>,
    /// Wait this long for a conflicting lock (`90s`, `10m`, `0` to fail at
    /// once) [default: 30m for snapshots, 0 otherwise]
    #[arg(long, global = true, env = "VAULT_LOCK_WAIT", value_name = "DURATION", value_parser = parse_wait)]
    pub lock_wait: Option<std::time::Duration>,
}

/// A wait: a number of seconds, or a number with a unit (`s`, `m`, `h`).
pub fn parse_wait(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a duration (e.g. 90s, 10m, 1h, 0)"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("'{s}': unknown unit '{unit}' (use s, m or h)")),
    };
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a repository
    Init(InitArgs),
    /// Store a snapshot of paths, of standard input, or of a command's output
    Snapshot(SnapshotArgs),
    /// List snapshots
    Snapshots(SnapshotsArgs),
    /// List the contents of a snapshot
    Ls(LsArgs),
    /// Restore a snapshot, or a path inside one, into a folder
    Restore(RestoreArgs),
    /// Write one file or stream of a snapshot to standard output
    Dump(DumpArgs),
    /// Which snapshots hold a path matching a pattern
    Find(crate::cli::commands::find::FindArgs),
    /// What was added, removed and modified between two snapshots
    Diff(crate::cli::commands::diff::DiffArgs),
    /// Browse snapshots as a read-only file system (FUSE)
    Mount(crate::cli::commands::mount::MountArgs),
    /// Manage the passwords that open the repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove snapshots by a retention policy (data stays until prune)
    Forget(crate::cli::commands::forget::ForgetArgs),
    /// Delete data no snapshot uses, and repack half-empty packs
    Prune(crate::cli::commands::prune::PruneArgs),
    /// Remove stale locks (or all locks with --all)
    Unlock(crate::cli::commands::unlock::UnlockArgs),
    /// Prove a snapshot restores: restore it into a scratch server and check it
    Drill(super::commands::drill::DrillArgs),
    /// Verify the repository and name what any damage touches
    Check(super::commands::check::CheckArgs),
    /// Rebuild the index, or rewrite snapshots that reference lost data
    #[command(subcommand)]
    Repair(super::commands::repair::RepairCommand),
    /// Copy snapshots into another repository (an off-site copy)
    Copy(super::commands::copy::CopyArgs),
    /// Do what the plan file says is due: back up, verify, copy, forget, drill
    Run(super::commands::run::RunArgs),
    /// Each source of the plan against its targets (RPO, RTO, size, success)
    Status(super::commands::status::StatusArgs),
    /// Serve /health, /metrics, /api/status and a status page (read-only)
    Serve(super::commands::serve::ServeArgs),
    /// Print the systemd units or crontab line that drive `vault run`
    Schedule(super::commands::schedule::ScheduleArgs),
    /// PostgreSQL WAL archiving: archive_command and restore_command
    #[command(subcommand)]
    Wal(super::commands::wal::WalCommand),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Smallest chunk, in bytes
    #[arg(long)]
    pub chunk_min: Option<u32>,
    /// Average chunk, in bytes (a power of two)
    #[arg(long)]
    pub chunk_avg: Option<u32>,
    /// Largest chunk, in bytes
    #[arg(long)]
    pub chunk_max: Option<u32>,
    /// Target pack size, in MiB
    #[arg(long)]
    pub pack_size_mib: Option<u32>,
    /// Default zstd level, 0 (off) to 22
    #[arg(long)]
    pub compression: Option<i32>,
    #[command(flatten)]
    pub kdf: KdfArgs,
}

#[derive(Args, Debug, Clone)]
pub struct KdfArgs {
    /// argon2id memory for this password's key, in KiB
    #[arg(long)]
    pub kdf_memory_kib: Option<u32>,
    /// argon2id passes for this password's key
    #[arg(long)]
    pub kdf_iterations: Option<u32>,
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
    Redis(super::commands::snapshot_db::RedisArgs),
    /// Store one dump per MariaDB/MySQL database (mariadb-dump --single-transaction)
    Mysql(super::commands::snapshot_db::MysqlArgs),
    /// Store a consistent copy of an SQLite database, safe while it is written
    Sqlite(super::commands::snapshot_db::SqliteArgs),
    /// Dump PostgreSQL: one snapshot of the server, tables in parallel
    Pg(super::commands::snapshot_pg::PgSnapshotArgs),
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

#[derive(Args, Debug, Clone, Default)]
pub struct Filter {
    /// Only snapshots recorded from this host (repeatable)
    #[arg(long = "host", value_name = "NAME")]
    pub hosts: Vec<String>,
    /// Only snapshots with this tag (repeatable; all must match)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only snapshots of this path or stream name (repeatable)
    #[arg(long = "path")]
    pub paths: Vec<String>,
    /// Only snapshots taken at or before this time (`2026-12-01T03:00`,
    /// `2026-12-01`, local time unless an offset is given)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub at: Option<vault::format::Timestamp>,
}

/// A point in time as people write it: RFC 3339, or a local date and time
/// (`2026-12-01T03:00`, `2026-12-01 03:00`, `2026-12-01` for its end).
pub fn parse_time(s: &str) -> Result<vault::format::Timestamp, String> {
    let bad = || format!("'{s}' is not a time (e.g. 2026-12-01T03:00 or 2026-12-01)");
    let t = s.trim();
    let ts = if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        ts
    } else if let Ok(dt) = t.replacen(' ', "T", 1).parse::<jiff::civil::DateTime>() {
        dt.to_zoned(jiff::tz::TimeZone::system())
            .map_err(|_| bad())?
            .timestamp()
    } else if let Ok(d) = t.parse::<jiff::civil::Date>() {
        // A day means the whole day: its last second.
        d.at(23, 59, 59, 999_999_999)
            .to_zoned(jiff::tz::TimeZone::system())
            .map_err(|_| bad())?
            .timestamp()
    } else {
        return Err(bad());
    };
    Ok(vault::format::Timestamp {
        secs: ts.as_second(),
        nanos: ts.subsec_nanosecond().max(0) as u32,
    })
}

#[derive(Args, Debug)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Snapshot id (or unique prefix), or 'latest'
    pub snapshot: String,
    /// Folder inside the snapshot
    pub path: Option<String>,
    /// Show mode, owner, size and modification time
    #[arg(short, long)]
    pub long: bool,
    /// List everything below, not just one folder
    #[arg(short = 'R', long)]
    pub recursive: bool,
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct RestoreArgs {
    #[command(subcommand)]
    pub source: Option<RestoreSource>,
    /// SNAPSHOT or SNAPSHOT:PATH ('latest' works as a snapshot)
    #[arg(required = true)]
    pub snapshot: Option<String>,
    /// Folder to restore into (created if missing)
    #[arg(short, long, required = true)]
    pub target: Option<PathBuf>,
    /// Restore only paths matching this glob (repeatable)
    #[arg(long)]
    pub include: Vec<String>,
    /// Skip paths matching this glob (repeatable)
    #[arg(long)]
    pub exclude: Vec<String>,
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Subcommand, Debug)]
pub enum RestoreSource {
    /// Replay stored MariaDB/MySQL dumps through the client, database by database
    Mysql(super::commands::restore_db::RestoreMysqlArgs),
    /// Write a stored SQLite database to a file, checked before it replaces anything
    Sqlite(super::commands::restore_db::RestoreSqliteArgs),
    /// Restore a PostgreSQL snapshot (or some of its tables) into a server
    Pg(super::commands::restore_pg::PgRestoreArgs),
}

#[derive(Args, Debug)]
pub struct DumpArgs {
    pub snapshot: String,
    /// File inside the snapshot; may be left out for a snapshot of one stream
    pub path: Option<String>,
    #[command(flatten)]
    pub filter: Filter,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// List key objects (one per password)
    List,
    /// Add a password
    Add {
        /// Read the new password from this file
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a password's key (not the one used to open)
    Remove {
        /// Key id or unique prefix
        id: String,
    },
    /// Change the password used to open the repository
    Passwd {
        #[arg(long)]
        new_password_file: Option<PathBuf>,
        #[command(flatten)]
        kdf: KdfArgs,
    },
}
