//! SQLite: a consistent copy through SQLite's online backup API, safe while
//! applications write to the database.
//!
//! The copy is made in one backup step, inside one read transaction of the
//! source: in WAL mode writers carry on meanwhile, in rollback-journal mode
//! they wait (their busy timeout) for the length of the copy. Copying in
//! many small steps would let writers in between, but every write restarts
//! the backup, so a busy database might never finish.
//!
//! The backup API writes into another database, not into a stream, so the
//! copy is staged: in a private folder under the temp folder, unlinked as
//! soon as it is complete and read back from the open descriptor. One copy
//! of the database on local disk, for the length of a snapshot, is the price
//! of consistency; an in-memory copy (`serialize`) would put the whole
//! database in RAM instead, which is worse for the large ones.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{Error, ErrorKind, Result};

/// How long to wait for writers to let the copy take its read lock.
const LOCK_WAIT: Duration = Duration::from_secs(60);

/// Facts about the copy, recorded with the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteFacts {
    pub sqlite_version: String,
    pub page_size: u64,
    pub pages: u64,
}

/// A private folder removed with everything in it when dropped.
struct StagingDir(PathBuf);

impl StagingDir {
    fn create(under: &Path) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt;
        let template = under.join("vault-sqlite-XXXXXX");
        let mut bytes = template.as_os_str().as_bytes().to_vec();
        bytes.push(0);
        // SAFETY: bytes is a NUL-terminated, writable template that mkdtemp
        // fills in place; it creates the folder with mode 0700.
        let made = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
        if made.is_null() {
            return Err(Error::io(
                format!("creating a staging folder in {}", under.display()),
                std::io::Error::last_os_error(),
            ));
        }
        bytes.pop();
        Ok(StagingDir(PathBuf::from(std::ffi::OsStr::from_bytes(
            &bytes,
        ))))
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn failed(db: &Path, e: rusqlite::Error) -> Error {
    Error::with_source(
        ErrorKind::SourceFailed,
        format!("copying {}; no snapshot was recorded", db.display()),
        e,
    )
}

/// Copy `db` consistently into a staging folder under `staging`; returns the
/// copy, open for reading and already unlinked, and facts about it.
pub fn consistent_copy(db: &Path, staging: &Path) -> Result<(File, SqliteFacts)> {
    let meta = std::fs::metadata(db).map_err(|e| Error::io(db.display().to_string(), e))?;
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{} is not a database file",
            db.display()
        )));
    }
    // Read-only, and never created: a mistyped path must not become an
    // empty database that is then backed up.
    let source = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| failed(db, e))?;
    source.busy_timeout(LOCK_WAIT).map_err(|e| failed(db, e))?;

    let dir = StagingDir::create(staging)?;
    let copy_path = dir.0.join("copy.db");
    let mut copy = Connection::open(&copy_path).map_err(|e| failed(db, e))?;
    // A throwaway copy needs no journal of its own.
    copy.pragma_update(None, "journal_mode", "OFF")
        .map_err(|e| failed(db, e))?;
    {
        let backup = Backup::new(&source, &mut copy).map_err(|e| failed(db, e))?;
        let deadline = Instant::now() + LOCK_WAIT;
        loop {
            match backup.step(-1).map_err(|e| failed(db, e))? {
                StepResult::Done => break,
                // Cannot happen with -1 (all pages); step again regardless.
                StepResult::More => {}
                StepResult::Busy | StepResult::Locked if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                StepResult::Busy | StepResult::Locked => {
                    return Err(Error::new(
                        ErrorKind::SourceFailed,
                        format!(
                            "{} stayed locked for {}s; no snapshot was recorded",
                            db.display(),
                            LOCK_WAIT.as_secs()
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    let pragma = |name: &str| -> Result<u64> {
        copy.pragma_query_value(None, name, |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u64)
            .map_err(|e| failed(db, e))
    };
    let facts = SqliteFacts {
        sqlite_version: rusqlite::version().to_string(),
        page_size: pragma("page_size")?,
        pages: pragma("page_count")?,
    };
    copy.close().map_err(|(_, e)| failed(db, e))?;
    let file = File::open(&copy_path)
        .map_err(|e| Error::io(format!("reading the copy of {}", db.display()), e))?;
    drop(dir);
    Ok((file, facts))
}

/// Have SQLite check a restored file from end to end before it replaces
/// anything.
pub fn check_integrity(db: &Path) -> Result<()> {
    let damaged = |detail: String| {
        Error::corrupt(format!(
            "{}: the restored database fails SQLite's integrity check: {detail}",
            db.display()
        ))
    };
    let c = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .map_err(|e| damaged(e.to_string()))?;
    let verdict: String = c
        .query_row("PRAGMA integrity_check(1)", [], |r| r.get(0))
        .map_err(|e| damaged(e.to_string()))?;
    c.close().map_err(|(_, e)| damaged(e.to_string()))?;
    if verdict == "ok" {
        Ok(())
    } else {
        Err(damaged(verdict))
    }
}

/// The name a database file gets in its snapshot: its own file name.
pub fn stream_name(db: &Path) -> Result<String> {
    db.file_name()
        .and_then(|n| n.to_str())
        .map(String::from)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{}: give a database file with a UTF-8 name",
                db.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_is_complete_and_staging_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        let db = tmp.join("app.db");
        let c = Connection::open(&db).unwrap();
        c.execute_batch(
            "PRAGMA journal_mode=WAL; CREATE TABLE t(x); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i<5000) \
             INSERT INTO t SELECT i FROM n;",
        )
        .unwrap();
        let staging = tmp.join("staging");
        std::fs::create_dir(&staging).unwrap();
        let (mut file, facts) = consistent_copy(&db, &staging).unwrap();
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut bytes).unwrap();
        assert_eq!(bytes.len() as u64, facts.page_size * facts.pages);
        let restored = tmp.join("restored.db");
        std::fs::write(&restored, &bytes).unwrap();
        let r = Connection::open(&restored).unwrap();
        let n: i64 = r
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 5000);
        drop((c, r));
    }

    #[test]
    fn missing_file_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        let err = consistent_copy(&missing, dir.path()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(!missing.exists());
    }

    #[test]
    fn other_files_are_refused_as_source_failures() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path();
        let notes = tmp.join("notes.txt");
        std::fs::write(&notes, vec![b'x'; 8192]).unwrap();
        let err = consistent_copy(&notes, tmp).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::SourceFailed, "{err}");
        // Only the file itself: no staging folder left behind.
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 1);
    }
}
