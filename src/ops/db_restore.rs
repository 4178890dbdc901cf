//! Restores of database snapshots: MariaDB/MySQL dumps fed to the client,
//! one database after another; SQLite files written beside their target,
//! checked by SQLite, then renamed into place. Each plans first (what will
//! be replaced), so `--dry-run` can show the plan.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use super::content::write_file;
use super::walk::file_entry;
use super::Progress;
use crate::error::{Error, ErrorKind, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::format::Id;
use crate::repo::Repository;
use crate::sources::command::CommandSource;
use crate::sources::mysql::{self, MysqlConnection};

/// Counts what passes through into `Progress::bytes_written`.
struct Counted<'a, W> {
    inner: W,
    progress: &'a Progress,
}

impl<W: Write> Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress
            .bytes_written
            .fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Stream a stored file into a program's standard input. When the program
/// dies, our write fails with a broken pipe and its own error says why; when
/// the repository fails (a damaged chunk), the program is killed rather
/// than left to run the truncated end of the dump.
pub fn feed_command(
    repo: &Repository,
    entry: &Entry,
    cmd: Command,
    progress: &Progress,
) -> Result<u64> {
    let (sink, stdin) = CommandSource::start_fed(cmd)?;
    let mut stdin = Counted {
        inner: stdin,
        progress,
    };
    let written = write_file(repo, entry, &mut stdin, "the client");
    drop(stdin);
    match written {
        Err(e) if e.kind() != ErrorKind::Io => {
            sink.kill();
            Err(e)
        }
        Ok(n) => sink.finish().map(|()| n),
        Err(e) => {
            sink.finish()?;
            // It exited 0 without reading everything: not a full restore.
            // Reported without the broken pipe, which is no error when the
            // reader is a user's `head`.
            Err(Error::new(
                ErrorKind::SourceFailed,
                format!(
                    "the client stopped reading {} before its end ({})",
                    String::from_utf8_lossy(&entry.name),
                    e.context()
                ),
            ))
        }
    }
}

/// One database to restore from its dump file.
#[derive(Debug, Clone)]
pub struct MysqlRestoreStep {
    pub database: String,
    pub entry: Entry,
}

/// The databases stored in a snapshot's root (`<db>.sql` files), and the
/// ones to restore: `wanted`, or all of them.
pub fn plan_mysql_restore(root: &Tree, wanted: &[String]) -> Result<Vec<MysqlRestoreStep>> {
    let stored: Vec<(String, &Entry)> = root
        .entries
        .iter()
        .filter(|e| e.kind == EntryKind::File)
        .filter_map(|e| {
            let name = std::str::from_utf8(&e.name).ok()?;
            Some((mysql::database_of(name)?.to_string(), e))
        })
        .collect();
    if stored.is_empty() {
        return Err(Error::invalid(
            "this snapshot holds no database dumps (<database>.sql)",
        ));
    }
    let names: Vec<String> = stored.iter().map(|(d, _)| d.clone()).collect();
    let chosen = if wanted.is_empty() {
        names
    } else {
        mysql::choose_databases(&names, wanted, false, "the snapshot")?
    };
    Ok(chosen
        .into_iter()
        .filter_map(|d| {
            stored
                .iter()
                .find(|(name, _)| *name == d)
                .map(|(_, e)| MysqlRestoreStep {
                    database: d.clone(),
                    entry: (*e).clone(),
                })
        })
        .collect())
}

/// The stored users, roles and grants of a snapshot taken with them.
pub fn mysql_users_entry(repo: &Repository, root: &Id) -> Result<Entry> {
    file_entry(repo, root, Some(mysql::USERS_STREAM.as_bytes())).map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            Error::invalid(format!(
                "this snapshot holds no users ({}): it was taken without --all, or with --no-users",
                mysql::USERS_STREAM
            ))
        } else {
            e
        }
    })
}

/// Feed the users (when given) and then each planned dump to the client;
/// stops at the first failure, naming what failed (what came before it is
/// restored). Users go first, so the accounts named as views' and
/// routines' definers exist when those are created.
pub fn restore_mysql(
    repo: &Repository,
    conn: &MysqlConnection,
    users: Option<&Entry>,
    plan: &[MysqlRestoreStep],
    progress: &Progress,
) -> Result<u64> {
    let sizes: u64 = plan.iter().map(|s| s.entry.size).sum::<u64>() + users.map_or(0, |u| u.size);
    progress.bytes_total.store(sizes, Ordering::Relaxed);
    let mut total = 0;
    if let Some(users) = users {
        total += feed_command(repo, users, conn.restore_command(), progress)
            .map_err(|e| e.at("restoring the users"))?;
    }
    for step in plan {
        total += feed_command(repo, &step.entry, conn.restore_command(), progress)
            .map_err(|e| e.at(format!("restoring database {}", step.database)))?;
    }
    Ok(total)
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

pub fn plan_sqlite_restore(target: &Path, force: bool) -> Result<SqliteRestorePlan> {
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
pub fn restore_sqlite(
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
    crate::sources::sqlite::check_integrity(&temp)?;
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
    use crate::format::tree::Content;
    use crate::format::Timestamp;

    fn file(name: &str) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::File,
            flags: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
            user: String::new(),
            group: String::new(),
            mtime: Timestamp { secs: 0, nanos: 0 },
            ctime: Timestamp { secs: 0, nanos: 0 },
            inode: 0,
            dev: 0,
            size: 0,
            content: Content::File { chunks: vec![] },
        }
    }

    #[test]
    fn mysql_plan_takes_all_or_the_named_databases() {
        let root = Tree {
            entries: vec![file("crm.sql"), file("notes.txt"), file("shop.sql")],
        };
        let all: Vec<String> = plan_mysql_restore(&root, &[])
            .unwrap()
            .into_iter()
            .map(|s| s.database)
            .collect();
        assert_eq!(all, ["crm", "shop"]);
        let one = plan_mysql_restore(&root, &["shop".to_string()]).unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].entry.name, b"shop.sql");
        let err = plan_mysql_restore(&root, &["nope".to_string()]).unwrap_err();
        assert!(
            err.to_string().contains("snapshot has no database 'nope'"),
            "{err}"
        );
        let empty = Tree {
            entries: vec![file("dump.rdb")],
        };
        assert!(plan_mysql_restore(&empty, &[]).is_err());
    }

    #[test]
    fn sqlite_plan_refuses_to_replace_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("app.db");
        let fresh = plan_sqlite_restore(&target, false).unwrap();
        assert!(!fresh.replaces && fresh.stale.is_empty());

        std::fs::write(dir.path().join("app.db-wal"), b"old").unwrap();
        let err = plan_sqlite_restore(&target, false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("app.db-wal"), "{err}");

        std::fs::write(&target, b"old").unwrap();
        let forced = plan_sqlite_restore(&target, true).unwrap();
        assert!(forced.replaces);
        assert_eq!(forced.stale, [dir.path().join("app.db-wal")]);
    }
}
