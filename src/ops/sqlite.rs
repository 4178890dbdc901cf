//! SQLite: a consistent copy of the database file through SQLite's backup
//! API, stored under its own name; the restore writes it beside its
//! target, has SQLite check it, then renames it into place. The restore
//! plans first (what will be replaced), so `--dry-run` can show the plan.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use std::sync::atomic::Ordering;

use super::content::{write_file, Counted};
use super::snapshot::{SnapshotOptions, SnapshotOutcome};
use crate::engines::sqlite;
use crate::error::{Error, Result};
use crate::format::tree::Entry;
use crate::ingest::stream_set::StreamSet;
use crate::progress::Progress;
use crate::repo::Repository;

/// What a SQLite snapshot records as its source.
pub const SOURCE: &str = "sqlite";

/// A consistent copy of the database file `db`, stored under its own file
/// name; the copy is staged under `staging` while it is stored.
pub fn snapshot(
    repo: &Arc<Repository>,
    db: &Path,
    staging: &Path,
    opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    let name = sqlite::stream_name(db)?;
    StreamSet::check_path(&name)?;
    let absolute =
        std::path::absolute(db).map_err(|e| crate::Error::io(db.display().to_string(), e))?;
    let (copy, facts) = sqlite::consistent_copy(db, staging)?;
    let opts = opts.with_facts(&[
        ("sqlite_version", facts.sqlite_version),
        ("page_size", facts.page_size.to_string()),
        ("pages", facts.pages.to_string()),
    ]);
    use std::os::unix::ffi::OsStrExt;
    let label = absolute.as_os_str().as_bytes().to_vec();
    let set = StreamSet::begin(repo, SOURCE, vec![label], &opts)?;
    set.add(&name, copy, progress)?;
    set.commit(&opts)
}

/// What a SQLite restore will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteRestorePlan {
    pub target: PathBuf,
    /// An existing database is replaced (only with `force`).
    pub replaces: bool,
    /// Journal files of the replaced database: SQLite would replay them
    /// onto the restored file and corrupt it, so they go.
    pub stale: Vec<PathBuf>,
}

/// The files SQLite keeps beside a database.
fn companions(target: &Path) -> Vec<PathBuf> {
    ["-wal", "-shm", "-journal"]
        .iter()
        .map(|suffix| {
            let mut p = target.as_os_str().to_owned();
            p.push(suffix);
            PathBuf::from(p)
        })
        .collect()
}

pub fn plan_restore(target: &Path, force: bool) -> Result<SqliteRestorePlan> {
    let replaces = target.exists();
    let stale: Vec<PathBuf> = companions(target)
        .into_iter()
        .filter(|p| p.exists())
        .collect();
    if (replaces || !stale.is_empty()) && !force {
        let what = if replaces {
            target.display().to_string()
        } else {
            stale[0].display().to_string()
        };
        return Err(Error::invalid(format!(
            "{what} exists; stop the application and give --force to replace it"
        )));
    }
    Ok(SqliteRestorePlan {
        target: target.to_path_buf(),
        replaces,
        stale,
    })
}

/// Removes a half-written file unless it was put in place.
struct Pending(Option<PathBuf>);

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            for c in companions(&p) {
                let _ = std::fs::remove_file(c);
            }
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Write the stored database beside its target, have SQLite check it, and
/// only then replace the target: a failed restore leaves the old database
/// as it was.
pub fn restore(
    repo: &Repository,
    entry: &Entry,
    plan: &SqliteRestorePlan,
    progress: &Progress,
) -> Result<u64> {
    progress.bytes_total.store(entry.size, Ordering::Relaxed);
    let target = &plan.target;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .ok_or_else(|| Error::invalid(format!("{} is not a file path", target.display())))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".vault-restore-{}", std::process::id()));
    let temp = dir.join(temp_name);
    let mut pending = Pending(Some(temp.clone()));
    let io = |what: &str, e| Error::io(format!("{what} {}", temp.display()), e);
    let file = File::options()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| io("creating", e))?;
    let mut out = Counted {
        inner: file,
        progress,
    };
    let size = write_file(repo, entry, &mut out, &temp.display().to_string())?;
    out.inner.sync_all().map_err(|e| io("syncing", e))?;
    drop(out);
    crate::engines::sqlite::check_integrity(&temp)?;
    // Checking a WAL-mode file may leave an empty WAL beside it.
    for c in companions(&temp) {
        let _ = std::fs::remove_file(c);
    }
    for stale in &plan.stale {
        match std::fs::remove_file(stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("removing {}", stale.display()), e)),
        }
    }
    std::fs::rename(&temp, target).map_err(|e| {
        Error::io(
            format!("moving the restored file to {}", target.display()),
            e,
        )
    })?;
    pending.0 = None;
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", dir.display()), e))?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_plan_refuses_to_replace_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.db");
        let fresh = plan_restore(&target, false).unwrap();
        assert!(!fresh.replaces && fresh.stale.is_empty());

        std::fs::write(dir.path().join("app.db-wal"), b"old").unwrap();
        let err = plan_restore(&target, false).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("app.db-wal"), "{err}");

        std::fs::write(&target, b"old").unwrap();
        let forced = plan_restore(&target, true).unwrap();
        assert!(forced.replaces);
        assert_eq!(forced.stale, [dir.path().join("app.db-wal")]);
    }
}
