//! The command line's top level: global options and the list of commands.
//! Each command's own options live beside it in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::commands::{
    check::CheckArgs, copy::CopyArgs, diff::DiffArgs, drill::DrillArgs, dump::DumpArgs,
    find::FindArgs, forget::ForgetArgs, init::InitArgs, key::KeyCommand, ls::LsArgs,
    mount::MountArgs, prune::PruneArgs, repair::RepairCommand, restore::RestoreArgs, run::RunArgs,
    schedule::ScheduleArgs, serve::ServeArgs, snapshot::SnapshotArgs, snapshots::SnapshotsArgs,
    status::StatusArgs, unlock::UnlockArgs, upgrade::UpgradeArgs, wal::WalCommand,
};

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
    /// Bytes of delta bases to keep per source in the cache folder for a
    /// remote repository (`512M`, `4G`; `0` keeps none)
    #[arg(long, global = true, env = "VAULT_BASE_CACHE_SIZE", default_value = "1G", value_parser = vault::units::parse_size, value_name = "SIZE")]
    pub base_cache_size: u64,
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

/// A wait: elapsed time as every option takes it (a plain number is
/// seconds).
pub fn parse_wait(s: &str) -> Result<std::time::Duration, vault::Error> {
    vault::units::parse_elapsed(s).map(std::time::Duration::from_secs)
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
    Find(FindArgs),
    /// What was added, removed and modified between two snapshots
    Diff(DiffArgs),
    /// Browse snapshots as a read-only file system (FUSE)
    Mount(MountArgs),
    /// Manage the passwords that open the repository
    #[command(subcommand)]
    Key(KeyCommand),
    /// Remove snapshots by a retention policy (data stays until prune)
    Forget(ForgetArgs),
    /// Delete data no snapshot uses, and repack half-empty packs
    Prune(PruneArgs),
    /// Remove stale locks (or all locks with --all)
    Unlock(UnlockArgs),
    /// Move the repository to the newest format version (deltas)
    Upgrade(UpgradeArgs),
    /// Prove a snapshot restores: restore it into a scratch server and check it
    Drill(DrillArgs),
    /// Verify the repository and name what any damage touches
    Check(CheckArgs),
    /// Rebuild the index, or rewrite snapshots that reference lost data
    #[command(subcommand)]
    Repair(RepairCommand),
    /// Copy snapshots into another repository (an off-site copy)
    Copy(CopyArgs),
    /// Do what the plan file says is due: back up, verify, copy, forget, drill
    Run(RunArgs),
    /// Each source of the plan against its targets (RPO, RTO, size, success)
    Status(StatusArgs),
    /// Serve /health, /metrics, /api/status and a status page (read-only)
    Serve(ServeArgs),
    /// Print the systemd units or crontab line that drive `vault run`
    Schedule(ScheduleArgs),
    /// PostgreSQL WAL archiving: archive_command and restore_command
    #[command(subcommand)]
    Wal(WalCommand),
}
