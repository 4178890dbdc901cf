//! Snapshots of file trees and of byte streams (stdin, a command's output).
//! Data first, then the index, then the snapshot object: a snapshot is
//! recorded only when everything it references is stored.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use super::stream_set::StreamSet;
use super::Progress;
use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, Summary};
use crate::format::tree::valid_name;
use crate::format::{Id, Timestamp};
use crate::repo::{BlobWriter, LockGuard, Repository, WriteStats};
use crate::sources::command::{CommandSource, Observed, Stderr};
use crate::sources::files::{normalize, TreeSaver};
use crate::sources::{hostname, username};
use crate::storage::RequestCounts;

#[derive(Debug, Clone, Default)]
pub enum ParentChoice {
    /// The newest snapshot of the same paths from the same host.
    #[default]
    Auto,
    /// Read every file again.
    None,
    Id(Id),
}

#[derive(Debug, Clone, Default)]
pub struct SnapshotOptions {
    pub host: Option<String>,
    pub tags: Vec<String>,
    /// Overrides the repository's zstd level for this run.
    pub compression: Option<i32>,
    pub parent: ParentChoice,
    /// Source-specific facts to record (database sources use this).
    pub meta: Vec<(String, Vec<u8>)>,
}

#[derive(Debug)]
pub struct SnapshotOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
    /// Entries left out because they could not be read.
    pub warnings: Vec<String>,
    pub stats: WriteStats,
    /// Requests made to remote storage by this run, opening included.
    pub requests: RequestCounts,
}

pub(super) struct Draft {
    /// Held from before the parent was chosen until the snapshot is stored.
    lock: LockGuard,
    pub(super) started: Instant,
    pub(super) time: Timestamp,
    source: &'static str,
    paths: Vec<Vec<u8>>,
    parent: Option<Id>,
    written_mark: usize,
}

/// What a snapshot read, for its summary.
pub(super) struct ReadCounts {
    pub(super) files: u64,
    pub(super) dirs: u64,
    pub(super) bytes_read: u64,
}

pub(super) fn commit(
    repo: &Repository,
    writer: BlobWriter,
    draft: Draft,
    root: Id,
    counts: ReadCounts,
    warnings: Vec<String>,
    opts: &SnapshotOptions,
) -> Result<SnapshotOutcome> {
    let stats = writer.finish()?;
    let snapshot = Snapshot {
        time: draft.time,
        host: opts.host.clone().unwrap_or_else(hostname),
        user: username(),
        tags: opts.tags.clone(),
        source: draft.source.to_string(),
        paths: draft.paths,
        root,
        parent: draft.parent,
        summary: Summary {
            files: counts.files,
            dirs: counts.dirs,
            bytes_read: counts.bytes_read,
            bytes_added: stats.stored_bytes_added,
            blobs_added: stats.blobs_added,
            duration_ms: draft.started.elapsed().as_millis() as u64,
            warnings: warnings.len() as u64,
        },
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        meta: opts.meta.clone(),
    };
    // Only a lock held throughout guarantees that no prune deleted data
    // this snapshot references. A lost lock says so first; the index check
    // catches a prune that got past a lock anyway; the lock is checked
    // again right before the snapshot is stored.
    draft.lock.check()?;
    repo.verify_index_kept(draft.written_mark)?;
    draft.lock.check()?;
    let id = repo.save_snapshot(&snapshot)?;
    Ok(SnapshotOutcome {
        id,
        snapshot,
        warnings,
        stats,
        requests: repo.backend().requests(),
    })
}

pub(super) fn draft(
    repo: &Repository,
    lock: LockGuard,
    source: &'static str,
    paths: Vec<Vec<u8>>,
    parent: Option<Id>,
) -> Result<Draft> {
    Ok(Draft {
        written_mark: repo.index_written_mark(),
        lock,
        started: Instant::now(),
        time: Timestamp::now(),
        source,
        paths,
        parent,
    })
}

/// Threads that walk and read file trees. Reading is I/O bound when the
/// page cache is cold (a nightly backup's normal case), and more requests in
/// flight than cores keep the disk busy; the CPU-bound sealing has its own
/// threads.
const WALK_THREADS: usize = 12;

/// Threads for walking trees whose entries may each run `save_stream`:
/// kept apart from rayon's global pool, which the streams' readers use, so
/// walkers blocked on a stream cannot starve the work feeding it.
pub(crate) fn walk_pool() -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(
            WALK_THREADS.max(
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(1),
            ),
        )
        .thread_name(|i| format!("vault-walk-{i}"))
        .stack_size(crate::ops::walk::WALK_STACK)
        .build()
        .map_err(|e| {
            Error::new(
                crate::ErrorKind::Io,
                format!("cannot start walking threads: {e}"),
            )
        })
}

/// Snapshot file trees.
pub fn snapshot_files(
    repo: &Arc<Repository>,
    paths: &[PathBuf],
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    if paths.is_empty() {
        return Err(Error::invalid(
            "nothing to snapshot: give at least one path",
        ));
    }
    let mut normalized = Vec::new();
    for p in paths {
        let n = normalize(p)?;
        std::fs::symlink_metadata(&n).map_err(|e| Error::io(format!("{}", p.display()), e))?;
        normalized.push(n);
    }
    normalized.sort();
    normalized.dedup();
    // Before choosing the parent: its data must not be pruned under us.
    let lock = repo.lock_shared("snapshot")?;
    let path_bytes: Vec<Vec<u8>> = normalized
        .iter()
        .map(|p| std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str()).to_vec())
        .collect();
    let host = opts.host.clone().unwrap_or_else(hostname);
    let parent = match &opts.parent {
        ParentChoice::None => None,
        ParentChoice::Id(id) => Some((*id, repo.load_snapshot(id)?)),
        ParentChoice::Auto => repo
            .snapshots()?
            .into_iter()
            .rev()
            .find(|(_, s)| s.source == "files" && s.host == host && s.paths == path_bytes),
    };
    let draft = draft(
        repo,
        lock,
        "files",
        path_bytes,
        parent.as_ref().map(|(id, _)| *id),
    )?;
    let writer = BlobWriter::new(repo.clone(), opts.compression);
    let saver = TreeSaver::new(&writer, progress);
    let root = walk_pool()?
        .install(|| saver.save_paths(&normalized, parent.as_ref().map(|(_, s)| &s.root)))?;
    let walked = saver.report();
    let counts = ReadCounts {
        files: walked.files,
        dirs: walked.dirs,
        bytes_read: progress
            .bytes_read
            .load(std::sync::atomic::Ordering::Relaxed),
    };
    let warnings = walked.warnings;
    commit(repo, writer, draft, root, counts, warnings, opts)
}

/// Snapshot one byte stream as a single file named `name`. Streams never
/// take a parent: their bytes are always read and chunked.
pub fn snapshot_stream(
    repo: &Arc<Repository>,
    name: &str,
    reader: impl Read + Send,
    source: &'static str,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    check_stream_name(name)?;
    let set = StreamSet::begin(repo, source, vec![name.as_bytes().to_vec()], opts)?;
    set.add(name, reader, progress)?;
    set.commit(opts)
}

/// A stream of its own becomes one file in the snapshot's root: its name
/// must be one safe path component. Checked before a command is started.
fn check_stream_name(name: &str) -> Result<()> {
    if valid_name(name.as_bytes()) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "'{name}' is not a usable stream name (no '/', not empty)"
    )))
}

/// Store the standard output of a command prepared by the caller
/// (arguments, environment) as the stream at `path` of `set`. If the program
/// fails, so does this, before the set could be committed: a truncated dump
/// from a dying program must not become a snapshot. A database client's
/// stderr is usually captured and quoted only if it fails.
pub fn add_process_output(
    set: &StreamSet,
    path: &str,
    cmd: Command,
    stderr: Stderr,
    progress: &Progress,
) -> Result<u64> {
    add_observed_output(set, path, cmd, stderr, &mut |_| {}, progress)
}

/// `add_process_output` with `observe` seeing every byte of the stream as
/// it passes (database sources count rows this way without a second read).
pub fn add_observed_output(
    set: &StreamSet,
    path: &str,
    cmd: Command,
    stderr: Stderr,
    observe: &mut (dyn FnMut(&[u8]) + Send),
    progress: &Progress,
) -> Result<u64> {
    StreamSet::check_path(path)?;
    let (child, stdout) = CommandSource::start(cmd, stderr)?;
    match set.add(path, Observed::new(stdout, observe), progress) {
        // The producer's verdict comes before ours.
        Ok(size) => child.finish().map(|()| size),
        Err(e) => {
            child.kill();
            Err(e)
        }
    }
}

/// Snapshot a program's standard output. If the program fails, no snapshot
/// is recorded (data already stored is indexed and reused next time).
pub fn snapshot_command(
    repo: &Arc<Repository>,
    name: &str,
    program: &OsString,
    args: &[OsString],
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    check_stream_name(name)?;
    let set = StreamSet::begin(repo, "command", vec![name.as_bytes().to_vec()], opts)?;
    let mut cmd = Command::new(program);
    cmd.args(args);
    add_process_output(&set, name, cmd, Stderr::Inherit, progress)?;
    set.commit(opts)
}
