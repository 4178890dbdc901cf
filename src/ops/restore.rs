//! Restore a snapshot (or a path inside it) into a target folder.
//!
//! Entry names were checked when their trees were decoded (no `/`, `..` or
//! empty names), every folder on the way is created by us and checked to be
//! a real folder, and files are opened with O_NOFOLLOW: a hostile repository
//! cannot make a restore write outside its target.

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

use rayon::prelude::*;

use super::content::{for_each_chunk, SEQUENTIAL_READAHEAD};
use super::pattern::Patterns;
use super::walk::{resolve, walk, Resolved};
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Content, Entry, EntryKind, FLAG_DAMAGED};
use crate::format::Id;
use crate::progress::Progress;
use crate::repo::{BlobReader, Repository};

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

struct Item {
    /// Where it goes, relative to the target.
    rel: PathBuf,
    /// Where it was, inside the snapshot (for messages).
    shown: String,
    entry: Entry,
}

pub fn restore(
    repo: &Repository,
    root: &Id,
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    let include = Patterns::new(&opts.include)?;
    let exclude = Patterns::new(&opts.exclude)?;
    let start = resolve(repo, root, opts.sub_path.as_deref().unwrap_or(b"/"))?;
    let mut items: Vec<Item> = Vec::new();
    let mut select = |path: &[u8], rel: &[u8], entry: &Entry| -> bool {
        if exclude.matches_path_or_ancestor(path) {
            return false;
        }
        let wanted = include.is_empty() || include.matches_path_or_ancestor(path);
        // A folder not itself wanted is still walked: something below may be.
        if wanted || entry.kind == EntryKind::Dir {
            items.push(Item {
                rel: PathBuf::from(OsStr::from_bytes(rel.strip_prefix(b"/").unwrap_or(rel))),
                shown: String::from_utf8_lossy(path).into_owned(),
                entry: entry.clone(),
            });
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
    execute(repo, &items, opts, progress)
}

/// Drop folders that were walked only to look for wanted entries but hold
/// none.
fn prune_unwanted_dirs(items: &mut Vec<Item>, include: &Patterns) {
    let wanted: Vec<bool> = items
        .iter()
        .map(|i| include.matches_path_or_ancestor(i.shown.as_bytes()))
        .collect();
    let keep: Vec<bool> = items
        .iter()
        .enumerate()
        .map(|(n, item)| {
            wanted[n]
                || items
                    .iter()
                    .zip(&wanted)
                    .any(|(other, w)| *w && other.rel.starts_with(&item.rel))
        })
        .collect();
    let mut k = keep.into_iter();
    items.retain(|_| k.next().unwrap_or(false));
}

fn execute(
    repo: &Repository,
    items: &[Item],
    opts: &RestoreOptions,
    progress: &Progress,
) -> Result<RestoreOutcome> {
    std::fs::create_dir_all(&opts.target)
        .map_err(|e| Error::io(format!("create target {}", opts.target.display()), e))?;
    let total: u64 = items
        .iter()
        .filter(|i| i.entry.kind == EntryKind::File)
        .map(|i| i.entry.size)
        .sum();
    progress.bytes_total.store(total, Ordering::Relaxed);
    let errors = Mutex::new(Vec::<(String, bool)>::new());
    let report = |item: &Item, e: Error| {
        let damaged = matches!(
            e.kind(),
            ErrorKind::Corrupt | ErrorKind::Tampered | ErrorKind::NotFound
        );
        errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((format!("{}: {e}", item.shown), damaged));
    };
    let mut outcome = RestoreOutcome::default();

    // Folders first, parents before children (walk order).
    let mut failed_dirs: Vec<&Path> = Vec::new();
    for item in items.iter().filter(|i| i.entry.kind == EntryKind::Dir) {
        if failed_dirs.iter().any(|d| item.rel.starts_with(d)) {
            continue;
        }
        match ensure_dir(&opts.target.join(&item.rel)) {
            Ok(()) => outcome.dirs += 1,
            Err(e) => {
                failed_dirs.push(&item.rel);
                report(item, e);
            }
        }
    }
    let usable = |item: &&Item| {
        !failed_dirs
            .iter()
            .any(|d| item.rel.starts_with(d) && item.rel != *d)
    };

    let others: Vec<&Item> = items
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
        let path = opts.target.join(&item.rel);
        let result = match &item.entry.content {
            Content::File { .. } => restore_file(&reader, &path, item, progress),
            Content::Symlink { target } => restore_symlink(&path, target),
            Content::Device { rdev } => make_node(&path, &item.entry, *rdev),
            Content::Other if item.entry.kind == EntryKind::Fifo => {
                make_node(&path, &item.entry, 0)
            }
            // Sockets belong to a running program; there is nothing to restore.
            _ => return,
        };
        match result.and_then(|()| set_metadata(&path, &item.entry)) {
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
                opts.target.display()
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
        if let Err(e) = set_metadata(&opts.target.join(&item.rel), &item.entry) {
            report(item, e);
        }
    }
    for (line, damaged) in errors.into_inner().unwrap_or_else(|p| p.into_inner()) {
        outcome.damaged |= damaged;
        outcome.errors.push(line);
    }
    Ok(outcome)
}

fn ensure_dir(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("replace {}", path.display()), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(format!("{}", path.display()), e)),
    }
    std::fs::create_dir(path).map_err(|e| Error::io(format!("create {}", path.display()), e))
}

/// Whatever is in the way of a new file, symlink or node (but never a
/// folder with contents) is removed first; symlinks are removed, not followed.
fn clear_way(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(path)
            .map_err(|e| Error::io(format!("replace {}", path.display()), e)),
        Ok(_) => std::fs::remove_file(path)
            .map_err(|e| Error::io(format!("replace {}", path.display()), e)),
        Err(_) => Ok(()),
    }
}

fn restore_file(
    reader: &BlobReader<'_>,
    path: &Path,
    item: &Item,
    progress: &Progress,
) -> Result<()> {
    clear_way(path)?;
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    let mut first_error: Option<Error> = None;
    let mut offset = 0u64;
    for_each_chunk(reader, item.entry.chunks(), &mut |chunk, data| {
        match data {
            Ok(data) => file
                .write_all(&data)
                .map_err(|e| Error::io(format!("write {}", path.display()), e))?,
            Err(e) => {
                // Leave a hole where the chunk was and go on: the rest of the
                // file is still worth having, and the error names the range.
                file.seek(SeekFrom::Current(i64::from(chunk.len)))
                    .map_err(|e| Error::io(format!("seek {}", path.display()), e))?;
                if first_error.is_none() {
                    first_error = Some(e.at(format!(
                        "bytes {}..{}",
                        offset,
                        offset + u64::from(chunk.len)
                    )));
                }
            }
        }
        offset += u64::from(chunk.len);
        progress
            .bytes_written
            .fetch_add(u64::from(chunk.len), Ordering::Relaxed);
        Ok(true)
    })?;
    if offset != item.entry.size {
        file.set_len(item.entry.size)
            .map_err(|e| Error::io(format!("truncate {}", path.display()), e))?;
    }
    progress.files.fetch_add(1, Ordering::Relaxed);
    if item.entry.flags & FLAG_DAMAGED != 0 && first_error.is_none() {
        first_error = Some(Error::corrupt(
            "marked damaged by repair: some of its content was lost",
        ));
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn restore_symlink(path: &Path, target: &[u8]) -> Result<()> {
    clear_way(path)?;
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path)
        .map_err(|e| Error::io(format!("symlink {}", path.display()), e))
}

fn cstring(path: &Path) -> Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::invalid("path contains NUL"))
}

fn make_node(path: &Path, entry: &Entry, rdev: u64) -> Result<()> {
    clear_way(path)?;
    let c = cstring(path)?;
    let kind = match entry.kind {
        EntryKind::Fifo => libc::S_IFIFO,
        EntryKind::CharDevice => libc::S_IFCHR,
        _ => libc::S_IFBLK,
    };
    // SAFETY: c is a valid NUL-terminated path.
    let rc = unsafe { libc::mknod(c.as_ptr(), kind | 0o600, rdev as libc::dev_t) };
    if rc != 0 {
        return Err(Error::io(
            format!("mknod {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn set_metadata(path: &Path, entry: &Entry) -> Result<()> {
    let c = cstring(path)?;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // SAFETY: c is a valid NUL-terminated path; lchown does not follow symlinks.
        if unsafe { libc::lchown(c.as_ptr(), entry.uid, entry.gid) } != 0 {
            return Err(Error::io(
                format!("chown {}", path.display()),
                std::io::Error::last_os_error(),
            ));
        }
    }
    if entry.kind != EntryKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(entry.mode & 0o7777))
            .map_err(|e| Error::io(format!("chmod {}", path.display()), e))?;
    }
    let t = libc::timespec {
        tv_sec: entry.mtime.secs as libc::time_t,
        tv_nsec: entry.mtime.nanos as libc::c_long,
    };
    let times = [t, t];
    // SAFETY: c is valid and times points at two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        return Err(Error::io(
            format!("set times of {}", path.display()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}
