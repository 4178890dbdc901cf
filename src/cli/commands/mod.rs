use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use vault::format::keyfile::KdfParams;
use vault::format::lock::LockMode;
use vault::repo::{IndexView, OpenOptions, SealedRepository, SnapshotFilter};
use vault::storage::{Backend, Location, OpendalBackend, Transport};
use vault::Repository;

use self::filter::Filter;
use self::key::KdfArgs;
use super::args::{Cli, Command, Global};

pub(crate) mod check;
pub(crate) mod copy;
pub(crate) mod diff;
pub(crate) mod drill;
pub(crate) mod dump;
pub(crate) mod filter;
pub(crate) mod find;
pub(crate) mod forget;
pub(crate) mod init;
pub(crate) mod key;
pub(crate) mod ls;
pub(crate) mod mount;
pub(crate) mod mysql;
pub(crate) mod pg;
pub(crate) mod prune;
pub(crate) mod redis;
pub(crate) mod repair;
pub(crate) mod restore;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod serve;
pub(crate) mod snapshot;
pub(crate) mod snapshots;
pub(crate) mod sqlite;
pub(crate) mod status;
pub(crate) mod unlock;
pub(crate) mod upgrade;
pub(crate) mod wal;

use super::output;
use super::password::repository_password;

fn data_home(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(fallback)))
}

fn location(global: &Global) -> Result<Location> {
    match &global.repo {
        Some(r) => Ok(Location::parse(r)?),
        None => {
            let base = data_home("XDG_DATA_HOME", ".local/share").context(
                "no repository given and no home folder: use --repo or VAULT_REPOSITORY",
            )?;
            Ok(Location::Local(base.join("vault").join("repo")))
        }
    }
}

/// What a command wants of the repository it opens, from the global
/// options: decided here, once, for every command.
pub(super) fn open_options(global: &Global, who: WaitFor) -> OpenOptions {
    let mut transport = Transport::default();
    if let Some(n) = global.connections {
        transport.connections = usize::from(n);
    }
    if let Some(n) = global.retries {
        transport.retries = usize::from(n);
    }
    transport.announce_retries =
        !global.quiet && !global.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    OpenOptions {
        cache_dir: if global.no_cache {
            None
        } else {
            global
                .cache_dir
                .clone()
                .or_else(|| data_home("XDG_CACHE_HOME", ".cache").map(|d| d.join("vault")))
        },
        index: IndexView::Effective,
        lock_wait: lock_wait(global, who),
        transport,
        base_cache_size: global.base_cache_size,
    }
}

/// Storage at `loc`, reached as `transport` says.
fn storage(loc: &Location, create: bool, transport: &Transport) -> Result<Arc<OpendalBackend>> {
    Ok(Arc::new(OpendalBackend::open_with(loc, create, transport)?))
}

/// Open the repository for a command that fails at once on a conflicting
/// lock unless `--lock-wait` says otherwise.
fn open(global: &Global) -> Result<Arc<Repository>> {
    open_with(global, &open_options(global, WaitFor::Other))
}

/// Open the repository the global options name. It is found before the
/// password is asked for: a wrong location costs no typing.
pub(super) fn open_with(global: &Global, options: &OpenOptions) -> Result<Arc<Repository>> {
    open_deriving(global, options, None)
}

/// Work that needs no key, run beside the password's key derivation (one
/// core, a few tenths of a second): given the storage and a flag set once
/// the key is derived.
pub(super) type Meanwhile = fn(&dyn Backend, &AtomicBool);

/// `open_with`, with `meanwhile` on a thread of its own while the key is
/// derived. The thread is not waited for: work that outlasts the derivation
/// (a slow listing) must not delay what comes after.
pub(super) fn open_deriving(
    global: &Global,
    options: &OpenOptions,
    meanwhile: Option<Meanwhile>,
) -> Result<Arc<Repository>> {
    let backend = storage(&location(global)?, false, &options.transport)?;
    let found = SealedRepository::find(backend.clone())?;
    let password = repository_password(global)?;
    let derived = Arc::new(AtomicBool::new(false));
    if let Some(work) = meanwhile {
        let derived = derived.clone();
        // Only a head start: without the thread the work is not done.
        let _ = std::thread::Builder::new().spawn(move || work(backend.as_ref(), &derived));
    }
    let repo = found.open(&password, options);
    derived.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(Arc::new(repo?))
}

/// Open for a backup, which waits out a prune by default and says so when
/// it has to.
pub(super) fn open_for_backup(global: &Global) -> Result<Arc<Repository>> {
    let options = open_options(global, WaitFor::Backup);
    let repo = open_with(global, &options)?;
    unlock::announce_lock_wait(global, &repo, LockMode::Shared, options.lock_wait)?;
    Ok(repo)
}

/// How long a scheduled backup waits by default for a conflicting lock
/// (a prune) before it gives up: long enough for a routine prune, short
/// enough that a stuck one is noticed the same day.
pub(super) const BACKUP_LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30 * 60);

/// Who is waiting, which decides the default wait.
#[derive(Clone, Copy)]
pub(super) enum WaitFor {
    /// Snapshots and copies: they run unattended and should not fail
    /// because a prune happened to run.
    Backup,
    /// Everything else fails at once unless told to wait.
    Other,
}

pub(super) fn lock_wait(global: &Global, who: WaitFor) -> std::time::Duration {
    global.lock_wait.unwrap_or(match who {
        WaitFor::Backup => BACKUP_LOCK_WAIT,
        WaitFor::Other => std::time::Duration::ZERO,
    })
}

fn kdf(args: &KdfArgs) -> KdfParams {
    let d = KdfParams::default();
    KdfParams {
        memory_kib: args.kdf_memory_kib.unwrap_or(d.memory_kib),
        iterations: args.kdf_iterations.unwrap_or(d.iterations),
        parallelism: d.parallelism,
    }
}

fn filter(f: &Filter) -> SnapshotFilter {
    SnapshotFilter {
        hosts: f.hosts.clone(),
        tags: f.tags.clone(),
        paths: f.paths.iter().map(|p| p.as_bytes().to_vec()).collect(),
        at: f.at,
        ..SnapshotFilter::default()
    }
}

/// A database client's password option, typed out of habit: refused with
/// where the password goes instead, since a command line shows in `ps`.
fn refuse_password_option(given: bool, option: &str, instead: &str) -> Result<()> {
    if given {
        anyhow::bail!(vault::Error::invalid(format!(
            "{option}: vault takes no password on the command line (other users see it in `ps`); \
             use {instead}"
        )));
    }
    Ok(())
}

/// The filter of a command that reads PostgreSQL snapshots only.
fn postgres_only(f: &Filter) -> SnapshotFilter {
    SnapshotFilter {
        sources: vec![vault::ops::pg::SOURCE.into()],
        ..filter(f)
    }
}

/// Resolve a snapshot reference among the snapshots `scope` admits, and
/// say on stderr which snapshot that is: `latest` changes meaning as
/// backups run, and a restore should never surprise.
fn resolve_snapshot(
    g: &Global,
    repo: &Repository,
    spec: &str,
    scope: &SnapshotFilter,
) -> Result<(vault::Id, vault::format::snapshot::Snapshot)> {
    let found = repo.find_snapshot(spec, scope)?;
    if !g.quiet {
        eprintln!("{}", output::describe_snapshot(&found.0, &found.1));
    }
    Ok(found)
}

fn print_json(value: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Run a command; the returned code is for a run that finished (warnings or
/// damage found); errors are mapped by the caller.
pub fn run(cli: Cli) -> Result<i32> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => init::init(g, a),
        Command::Snapshot(a) => snapshot::snapshot(g, a),
        Command::Snapshots(a) => snapshots::snapshots(g, a),
        Command::Ls(a) => ls::ls(g, a),
        Command::Restore(a) => restore::restore_cmd(g, a),
        Command::Dump(a) => dump::dump(g, a),
        Command::Find(a) => find::find_cmd(g, a),
        Command::Diff(a) => diff::diff_cmd(g, a),
        Command::Mount(a) => mount::mount_cmd(g, a),
        Command::Key(k) => key::key(g, k),
        Command::Drill(a) => drill::drill(g, a),
        Command::Forget(a) => forget::forget(g, a),
        Command::Prune(a) => prune::prune_cmd(g, a),
        Command::Unlock(a) => unlock::unlock(g, a),
        Command::Upgrade(a) => upgrade::upgrade_cmd(g, a),
        Command::Check(a) => check::check_cmd(g, a),
        Command::Repair(c) => repair::repair(g, c),
        Command::Copy(a) => copy::copy(g, a),
        Command::Run(a) => run::run_cmd(g, a),
        Command::Status(a) => status::status_cmd(g, a),
        Command::Serve(a) => serve::serve_cmd(g, a),
        Command::Schedule(a) => schedule::schedule_cmd(g, a),
        Command::Wal(c) => wal::wal(g, c),
    }
}
