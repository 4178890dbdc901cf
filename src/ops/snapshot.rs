//! Snapshots of file trees and of byte streams (stdin, a command's output).
//! Data first, then the index, then the snapshot object: a snapshot is
//! recorded only when everything it references is stored.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::tree::valid_name;
use crate::ingest::draft::{commit, draft, ReadCounts};
pub use crate::ingest::draft::{ParentChoice, SnapshotOptions, SnapshotOutcome};
use crate::ingest::stream_set::StreamSet;
use crate::ingest::tree::{normalize, walk_pool, TreeSaver};
use crate::progress::Progress;
use crate::repo::{BlobWriter, Repository};
use crate::system::hostname;
use crate::system::process::{CommandSource, Observed, Stderr};

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
    let bases = crate::delta::base_cache(repo, "files", &host, &path_bytes);
    let draft = draft(
        repo,
        lock,
        "files",
        path_bytes,
        parent.as_ref().map(|(id, _)| *id),
    )?;
    let writer = BlobWriter::new(repo.clone(), opts.compression);
    if let Some(cache) = bases {
        writer.cache_bases(cache);
    }
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
        total_bytes: walked.bytes,
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
    store_output(cmd, stderr, |stdout| {
        set.add(path, Observed::new(stdout, observe), progress)
    })
}

/// `add_observed_output` for part `index` of the stream at `path` (see
/// `StreamSet::add_part`).
#[allow(clippy::too_many_arguments)]
pub fn add_observed_part(
    set: &StreamSet,
    path: &str,
    (index, parent_range): (usize, std::ops::Range<u64>),
    cmd: Command,
    stderr: Stderr,
    observe: &mut (dyn FnMut(&[u8]) + Send),
    progress: &Progress,
) -> Result<u64> {
    StreamSet::check_path(path)?;
    store_output(cmd, stderr, |stdout| {
        set.add_part(
            path,
            index,
            parent_range,
            Observed::new(stdout, observe),
            progress,
        )
    })
}

/// Start `cmd` and `store` its standard output; the producer's verdict
/// comes before ours.
fn store_output(
    cmd: Command,
    stderr: Stderr,
    store: impl FnOnce(std::process::ChildStdout) -> Result<u64>,
) -> Result<u64> {
    let (child, stdout) = CommandSource::start(cmd, stderr)?;
    match store(stdout) {
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
