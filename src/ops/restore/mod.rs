//! Restore a snapshot (or a path inside it) into a target folder.
//!
//! Entry names were checked when their trees were decoded (no `/`, `..` or
//! empty names), and the target is reached only through folder descriptors
//! opened one name at a time without following symlinks (see `target_fs`):
//! neither a hostile repository nor a symlink swapped into the target can
//! make a restore write outside it.

mod plan;
mod target_fs;

use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rayon::prelude::*;

use super::content::{for_each_chunk_at, SEQUENTIAL_READAHEAD};
use super::pattern::Patterns;
use super::walk::{resolve, walk, Resolved};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Content, Entry, EntryKind, FLAG_DAMAGED};
use crate::format::Id;
use crate::progress::Progress;
use crate::repo::{BlobReader, Repository};
use plan::{decide, prune_unwanted_dirs};
pub use plan::{Action, PlanCounts, Planned, RestorePlan};
pub use target_fs::Existing;
use target_fs::{set_file_metadata, Dir};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Only restore paths matching one of these (and what is below them).
    pub include: Vec<String>,
    /// Never restore paths matching one of these (nor what is below them).
    pub exclude: Vec<String>,
    /// Restore only this path inside the snapshot, into the target itself.
    pub sub_path: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
pub struct RestoreOutcome {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// One line per entry that could not be restored in full.
    pub errors: Vec<String>,
    /// Whether any error was damaged or missing repository data (as opposed
    /// to a local problem such as permissions).
    pub damaged: bool,
}

/// Restore as planned; see `plan` and `execute`.
pub fn restore(
    repo: &Repository,
    root: &Id,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    let plan = plan(repo, root, opts)?;
    execute(repo, &plan, progress)
}

/// What the restore will do, changing nothing: reads the snapshot's trees
/// and looks at the target without following symlinks.
pub fn plan(repo: &Repository, root: &Id, opts: &RestoreOptions) -> Result<RestorePlan> {
    let items = select(repo, root, opts)?;
    let target = Dir::open_target(&opts.target).ok();
    let mut probe = |rel: &Path| -> Option<Existing> {
        let (dir, name) = (target.as_ref()?, rel.file_name()?);
        let parent = dir.open_path(rel.parent()?).ok()?;
        parent.lstat(name).ok().flatten()
    };
    Ok(decide(opts.target.clone(), items, &mut probe))
}

/// The snapshot's entries to restore, in walk order: (where it goes
/// relative to the target, where it was in the snapshot, the entry).
fn select(
    repo: &Repository,
    root: &Id,
    opts: &RestoreOptions,
) -> Result<Vec<(PathBuf, String, Entry)>> {
    let include = Patterns::new(&opts.include)?;
    let exclude = Patterns::new(&opts.exclude)?;
    let start = resolve(repo, root, opts.sub_path.as_deref().unwrap_or(b"/"))?;
    let mut items = Vec::new();
    let mut select = |path: &[u8], rel: &[u8], entry: &Entry| -> bool {
        if exclude.matches_path_or_ancestor(path) {
            return false;
        }
        let wanted = include.is_empty() || include.matches_path_or_ancestor(path);
        // A folder not itself wanted is still walked: something below may be.
        if wanted || entry.kind == EntryKind::Dir {
            items.push((
                PathBuf::from(OsStr::from_bytes(rel.strip_prefix(b"/").unwrap_or(rel))),
                String::from_utf8_lossy(path).into_owned(),
                entry.clone(),
            ));
        }
        true
    };
    match &start {
        Resolved::Entry { parent, entry } if entry.kind != EntryKind::Dir => {
            let path = super::walk::join(parent, &entry.name);
            select(&path, &super::walk::join(b"", &entry.name), entry);
        }
        _ => {
            let base: Vec<u8> = match &start {
                Resolved::Entry { parent, entry } => super::walk::join(parent, &entry.name),
                Resolved::Root(_) => Vec::new(),
            };
            let tree = start
                .tree()
                .ok_or_else(|| Error::invalid("not a directory"))?;
            walk(repo, &tree, &base, &mut |path, entry| {
                let rel = &path[base.len()..];
                Ok(select(path, rel, entry))
            })?;
        }
    }
    if !include.is_empty() {
        prune_unwanted_dirs(&mut items, &include);
    }
    Ok(items)
}

/// Carry out a plan. The target is looked at again as it goes: what
/// changed since the plan is handled the same way, never followed.
pub fn execute(
    repo: &Repository,
    plan: &RestorePlan,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    let items = &plan.entries;
    std::fs::create_dir_all(&plan.target)
        .map_err(|e| Error::io(format!("create target {}", plan.target.display()), e))?;
    let root = Dir::open_target(&plan.target)
        .map_err(|e| Error::io(format!("open target {}", plan.target.display()), e))?;
    let total: u64 = items
        .iter()
        .filter(|i| i.entry.kind == EntryKind::File)
        .map(|i| i.entry.size)
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let errors = Mutex::new(Vec::<(String, bool)>::new());
    let report = |item: &Planned, e: Error| {
        let damaged = matches!(
            e.kind(),
            ErrorKind::Corrupt | ErrorKind::Tampered | ErrorKind::NotFound
        );
        errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((format!("{}: {e}", item.shown), damaged));
    };
    let shown = |rel: &Path| plan.target.join(rel).display().to_string();
    let mut outcome = RestoreOutcome::default();

    // Folders first, parents before children (walk order). The open folders
    // on the way down stay open, so each is reached from its parent's
    // descriptor.
    let mut failed_dirs: Vec<&Path> = Vec::new();
    let mut open: Vec<(&Path, Dir)> = Vec::new();
    for item in items.iter().filter(|i| i.entry.kind == EntryKind::Dir) {
        if failed_dirs.iter().any(|d| item.rel.starts_with(d)) {
            continue;
        }
        let Some(name) = item.rel.file_name() else {
            continue;
        };
        while open
            .last()
            .is_some_and(|(rel, _)| Some(*rel) != item.rel.parent())
        {
            open.pop();
        }
        let parent = open.last().map_or(&root, |(_, dir)| dir);
        match parent.ensure_dir(name) {
            Ok(dir) => {
                outcome.dirs += 1;
                open.push((&item.rel, dir));
            }
            Err(e) => {
                failed_dirs.push(&item.rel);
                report(item, Error::io(format!("create {}", shown(&item.rel)), e));
            }
        }
    }
    drop(open);
    let usable = |item: &&Planned| {
        !failed_dirs
            .iter()
            .any(|d| item.rel.starts_with(d) && item.rel != *d)
    };

    let others: Vec<&Planned> = items
        .iter()
        .filter(|i| i.entry.kind != EntryKind::Dir)
        .filter(usable)
        .collect();
    let reader = BlobReader::new(repo, SEQUENTIAL_READAHEAD);
    // A full disk fails every later file too: stop at the first.
    let full = Mutex::new(None::<Error>);
    others.par_iter().for_each(|item| {
        if full.lock().map_or(true, |f| f.is_some()) {
            return;
        }
        let result = restore_other(&reader, &root, item, progress, &shown(&item.rel));
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NoSpace => {
                if let Ok(mut f) = full.lock() {
                    f.get_or_insert(e);
                }
            }
            Err(e) => report(item, e),
        }
    });
    if let Some(e) = full.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(Error::new(
            ErrorKind::NoSpace,
            format!(
                "restore target {}: no space left on device ({e})",
                plan.target.display()
            ),
        ));
    }
    for item in others.iter().filter(|i| i.entry.kind == EntryKind::File) {
        outcome.files += 1;
        outcome.bytes += item.entry.size;
    }
    // Folder metadata last, deepest first: restoring a read-only mode or an
    // mtime early would be undone or blocked by writing their contents.
    for item in items
        .iter()
        .filter(|i| i.entry.kind == EntryKind::Dir)
        .filter(usable)
        .rev()
    {
        let result = root
            .open_path(&item.rel)
            .and_then(|dir| dir.set_own_metadata(&item.entry));
        if let Err(e) = result {
            report(
                item,
                Error::io(format!("set metadata of {}", shown(&item.rel)), e),
            );
        }
    }
    for (line, damaged) in errors.into_inner().unwrap_or_else(|p| p.into_inner()) {
        outcome.damaged |= damaged;
        outcome.errors.push(line);
    }
    Ok(outcome)
}

/// A file, symlink or node, made inside its parent folder's descriptor.
fn restore_other(
    reader: &BlobReader<'_>,
    root: &Dir,
    item: &Planned,
    progress: &Progress,
    shown: &str,
) -> Result<()> {
    let (parent, name) = match (item.rel.parent(), item.rel.file_name()) {
        (Some(parent), Some(name)) => (parent, name),
        _ => return Err(Error::invalid("empty name")),
    };
    let io = |what: &'static str| move |e: std::io::Error| Error::io(format!("{what} {shown}"), e);
    let dir = root.open_path(parent).map_err(io("open folder of"))?;
    match &item.entry.content {
        Content::File { .. } => {
            dir.clear(name).map_err(io("replace"))?;
            let file = dir.create_file(name).map_err(io("create"))?;
            let damage = restore_file(reader, &file, item, progress, shown)?;
            set_file_metadata(&file, &item.entry).map_err(io("set metadata of"))?;
            match damage {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        Content::Symlink { target } => {
            dir.clear(name).map_err(io("replace"))?;
            dir.symlink(name, target).map_err(io("symlink"))?;
            dir.set_metadata(name, &item.entry)
                .map_err(io("set metadata of"))
        }
        Content::Device { rdev } => {
            dir.clear(name).map_err(io("replace"))?;
            dir.mknod(name, item.entry.kind, *rdev)
                .map_err(io("mknod"))?;
            dir.set_metadata(name, &item.entry)
                .map_err(io("set metadata of"))
        }
        Content::Other if item.entry.kind == EntryKind::Fifo => {
            dir.clear(name).map_err(io("replace"))?;
            dir.mknod(name, item.entry.kind, 0).map_err(io("mknod"))?;
            dir.set_metadata(name, &item.entry)
                .map_err(io("set metadata of"))
        }
        // Sockets belong to a running program; there is nothing to restore.
        _ => Ok(()),
    }
}

/// Writes the content, each chunk at its offset as soon as it is decoded;
/// returns the first damaged range, which leaves a hole rather than
/// stopping the file.
fn restore_file(
    reader: &BlobReader<'_>,
    file: &File,
    item: &Planned,
    progress: &Progress,
    shown: &str,
) -> Result<Option<Error>> {
    // The damaged chunk nearest the start, whatever order chunks come in.
    let first_error = Mutex::new(None::<(u64, Error)>);
    for_each_chunk_at(reader, item.entry.chunks(), &|offset, chunk, data| {
        match data {
            Ok(data) => file
                .write_all_at(&data, offset)
                .map_err(|e| Error::io(format!("write {shown}"), e))?,
            Err(e) => {
                // Leave a hole where the chunk was and go on: the rest of the
                // file is still worth having, and the error names the range.
                let mut first = first_error.lock().unwrap_or_else(|p| p.into_inner());
                if first.as_ref().is_none_or(|(at, _)| offset < *at) {
                    let range = format!("bytes {}..{}", offset, offset + u64::from(chunk.len));
                    *first = Some((offset, e.at(range)));
                }
            }
        }
        progress
            .bytes_written
            .fetch_add(u64::from(chunk.len), Ordering::Relaxed);
        Ok(())
    })?;
    let mut first_error = first_error
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .map(|(_, e)| e);
    let written: u64 = item.entry.chunks().iter().map(|c| u64::from(c.len)).sum();
    // A hole at the end is not written at all; the length still must be.
    if written != item.entry.size || first_error.is_some() {
        file.set_len(item.entry.size)
            .map_err(|e| Error::io(format!("truncate {shown}"), e))?;
    }
    progress.files.fetch_add(1, Ordering::Relaxed);
    if item.entry.flags & FLAG_DAMAGED != 0 && first_error.is_none() {
        first_error = Some(Error::corrupt(
            "marked damaged by repair: some of its content was lost",
        ));
    }
    Ok(first_error)
}
