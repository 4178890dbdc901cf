//! Pushing ahead of PostgreSQL's archiver. PostgreSQL runs archive_command
//! for one segment at a time and waits for it, so a push that waits on
//! storage (a remote round trip, compression) caps the archive rate. A push
//! with `--ahead N` stores its own segment and, in parallel, up to N
//! segments PostgreSQL has already marked ready (`archive_status/*.ready`)
//! and leaves a note per segment in a spool folder. When PostgreSQL then
//! asks for one of those, the note answers at once.
//!
//! A note only saves work, it never stands in for durability: it is written
//! after the object is stored, and it names the BLAKE3 hash of the bytes
//! pushed, so a segment whose file changed since (a crash, a restored
//! cluster) is pushed again, where the archive's own check applies. A lost
//! note costs one identical push.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{Error, Result};
use crate::format::wal::WalFile;
use crate::format::Timestamp;
use crate::repo::{Pushed, WalArchive};

/// Notes older than this are left over from segments PostgreSQL never
/// asked for again (it asks for every ready one); they are removed.
const NOTE_LIFETIME: Duration = Duration::from_secs(24 * 3600);

pub struct Spool {
    dir: PathBuf,
}

fn note_body(bytes: &[u8]) -> String {
    format!("{}\n", blake3::hash(bytes).to_hex())
}

impl Spool {
    pub fn new(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("{}: cannot create the spool", dir.display()), e))?;
        Ok(Spool {
            dir: dir.to_path_buf(),
        })
    }

    fn note_path(&self, file: &WalFile) -> PathBuf {
        self.dir.join(format!("{}.ok", file.name()))
    }

    /// Whether a push ahead already stored exactly these bytes; the note
    /// is consumed either way.
    pub fn take_note(&self, file: &WalFile, bytes: &[u8]) -> bool {
        let path = self.note_path(file);
        let Ok(note) = std::fs::read_to_string(&path) else {
            return false;
        };
        let _ = std::fs::remove_file(&path);
        note == note_body(bytes)
    }

    fn has_note(&self, file: &WalFile) -> bool {
        self.note_path(file).exists()
    }

    fn write_note(&self, file: &WalFile, bytes: &[u8]) -> Result<()> {
        let path = self.note_path(file);
        let tmp = path.with_extension("ok.tmp");
        std::fs::write(&tmp, note_body(bytes))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| Error::io(path.display().to_string(), e))
    }

    fn remove_old_notes(&self, now: SystemTime) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > NOTE_LIFETIME);
            if old {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Segments PostgreSQL has marked ready in `pg_wal`, oldest first, that
/// are not `skip` and have no note yet.
fn ready_segments(pg_wal: &Path, skip: &WalFile, spool: &Spool, limit: usize) -> Vec<WalFile> {
    let Ok(entries) = std::fs::read_dir(pg_wal.join("archive_status")) else {
        return Vec::new();
    };
    let mut ready: Vec<WalFile> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name();
            let name = name.to_str()?.strip_suffix(".ready")?.to_string();
            WalFile::parse(&name).ok()
        })
        .filter(|f| f != skip && !spool.has_note(f))
        .collect();
    ready.sort();
    ready.truncate(limit);
    ready
}

/// Push `path` (PostgreSQL's %p), and up to `ahead` ready segments beside
/// it in parallel. Returns once `path`'s own file is durable; failures of
/// the others only cost their notes (PostgreSQL will ask for them).
pub fn push_ahead(
    archive: &WalArchive<'_>,
    path: &Path,
    file: &WalFile,
    bytes: &[u8],
    spool: &Spool,
    ahead: usize,
) -> Result<Pushed> {
    if spool.take_note(file, bytes) {
        return Ok(Pushed::AlreadyArchived);
    }
    spool.remove_old_notes(SystemTime::now());
    let pg_wal = path.parent().unwrap_or(Path::new("."));
    let others = ready_segments(pg_wal, file, spool, ahead);
    std::thread::scope(|s| {
        for other in &others {
            s.spawn(move || {
                let Ok(b) = std::fs::read(pg_wal.join(other.name())) else {
                    return;
                };
                if archive.push(other, &b, Timestamp::now()).is_ok() {
                    let _ = spool.write_note(other, &b);
                }
            });
        }
        archive.push(file, bytes, Timestamp::now())
    })
}
