//! `snapshot pg --physical`: pg_basebackup's tar archives, read member by
//! member, each file of the cluster stored as a file of the snapshot (so
//! an unchanged relation segment dedups to nothing, and a changed one is
//! stored as a delta against the last backup's same file).
//!
//! A cluster without tablespaces is read straight from pg_basebackup's
//! standard output. pg_basebackup writes one archive per tablespace, and
//! only into a folder, so a cluster with tablespaces is first spooled to a
//! temporary folder (checked beforehand to have room for the cluster when
//! the role may read its size), then each archive is read and deleted in
//! turn; the folder is removed however the snapshot ends.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{tablespace_prefix, DATA, DIRECTORIES};
use crate::engines::pg::basebackup::{
    basebackup_command, cluster_bytes, manifest_wal_range, refusal, server_facts,
};
use crate::engines::pg::tablespaces::parse_map;
use crate::engines::pg::tar::{MemberKind, TarReader};
use crate::engines::pg::{program, PgConn};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_base::{BaseBackup, PG_BASE_KEY, PG_PHYSICAL_SOURCE};
use crate::format::pg_tables::PG_SERVER_VERSION_KEY;
use crate::ingest::stream_set::StreamSet;
use crate::ops::snapshot::{SnapshotOptions, SnapshotOutcome};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::{spawn, wait_success, CommandSource, Stderr, StderrTail};

/// The manifest, read whole: it names the WAL range (its size grows by
/// about 150 bytes a file of the cluster).
const MANIFEST: &str = "backup_manifest";
const LABEL: &str = "backup_label";
const TABLESPACE_MAP: &str = "tablespace_map";

fn source_failed(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::SourceFailed, what.into())
}

/// Take a base backup of the server `conn` reaches.
pub fn snapshot_physical(
    repo: &Arc<Repository>,
    conn: &PgConn,
    snapshot_opts: &SnapshotOptions,
    progress: &Progress,
) -> Result<SnapshotOutcome> {
    program("pg_basebackup")?;
    let facts = server_facts(conn)?;
    if let Some(why) = refusal(&facts) {
        return Err(source_failed(why));
    }
    // The cluster is what the snapshot is of: its next backup finds this
    // one as the parent for deltas.
    let labels = vec![format!("cluster-{}", facts.system_identifier).into_bytes()];
    let set = StreamSet::begin(repo, PG_PHYSICAL_SOURCE, labels, snapshot_opts)?;
    progress.set_stage("base backup");
    let manifest = if facts.tablespaces.is_empty() {
        streamed(&set, conn, progress)?
    } else {
        spooled(&set, conn, progress)?
    };
    let range = manifest_wal_range(&manifest)?;
    let base = BaseBackup {
        system_identifier: facts.system_identifier,
        wal_segment_size: facts.wal_segment_size,
        start_timeline: range.start.0,
        start_lsn: range.start.1,
        stop_timeline: range.stop.0,
        stop_lsn: range.stop.1,
    };
    // Checked as a reader will check it, before it is recorded.
    BaseBackup::decode(&base.encode()).map_err(|e| source_failed(format!("base backup: {e}")))?;
    let mut with_meta = snapshot_opts.clone();
    with_meta.meta.push((
        PG_SERVER_VERSION_KEY.to_string(),
        facts.server_version.into_bytes(),
    ));
    with_meta
        .meta
        .push((PG_BASE_KEY.to_string(), base.encode()));
    set.commit(&with_meta)
}

/// The one archive of a cluster without tablespaces, read from
/// pg_basebackup's standard output. Returns the backup manifest.
fn streamed(set: &StreamSet, conn: &PgConn, progress: &Progress) -> Result<Vec<u8>> {
    let (child, stdout) =
        CommandSource::start(basebackup_command(conn, Path::new("-"))?, Stderr::Hold)?;
    let mut archive = match read_archive(set, TarReader::new(stdout), "", progress) {
        Ok(a) => a,
        Err(e) => {
            child.kill();
            return Err(e);
        }
    };
    // pg_basebackup's own verdict (the server ending the backup, the
    // archiving of its last segment) comes before the archive's contents.
    child.finish()?;
    let map = archive.tablespace_map.as_deref().unwrap_or_default();
    if !map.is_empty() {
        return Err(source_failed(
            "the base backup names tablespaces that were created while it started: take it again",
        ));
    }
    let manifest = archive.take_manifest()?;
    set.add(&format!("{DATA}/{MANIFEST}"), &manifest[..], progress)?;
    set.add(DIRECTORIES, archive.directories.as_bytes(), progress)?;
    Ok(manifest)
}

/// Every archive of a cluster with tablespaces: pg_basebackup writes them
/// into a spool folder, then each is stored and deleted. Returns the
/// backup manifest.
fn spooled(set: &StreamSet, conn: &PgConn, progress: &Progress) -> Result<Vec<u8>> {
    let spool = Spool::create()?;
    if let (Some(needed), Some(free)) = (
        cluster_bytes(conn)?,
        crate::system::free_bytes(spool.path()),
    ) {
        if free < needed {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "a cluster with tablespaces is spooled before it is stored: {} needs {needed} bytes free and has {free} (set TMPDIR to a larger folder)",
                    spool.path().display()
                ),
            ));
        }
    }
    let dir = spool.path().join("backup");
    let mut command = basebackup_command(conn, &dir)?;
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = spawn(&mut command, "pg_basebackup")?;
    let stderr = StderrTail::hold(&mut child);
    wait_success(&mut child, "pg_basebackup", stderr)?;

    let mut base = read_spooled(set, &dir.join("base.tar"), "", progress)?;
    if base.manifest.is_none() {
        let path = dir.join(MANIFEST);
        base.manifest =
            Some(std::fs::read(&path).map_err(|e| Error::io(path.display().to_string(), e))?);
    }
    let manifest = base.take_manifest()?;
    let spaces = parse_map(base.tablespace_map.as_deref().unwrap_or_default())
        .map_err(|e| source_failed(format!("base backup: {e}")))?;
    let mut expected: Vec<String> = vec!["base.tar".into(), MANIFEST.into()];
    for t in &spaces {
        let name = format!("{}.tar", t.oid);
        let prefix = tablespace_prefix(t.oid);
        let archive = read_spooled(set, &dir.join(&name), &prefix, progress)?;
        set.add(
            &format!("{prefix}{DIRECTORIES}"),
            archive.directories.as_bytes(),
            progress,
        )?;
        expected.push(name);
    }
    // A tablespace created after the backup began has an archive but no
    // line in the map: recovery would not link it, so refuse the backup.
    for entry in std::fs::read_dir(&dir).map_err(|e| Error::io(dir.display().to_string(), e))? {
        let name = entry
            .map_err(|e| Error::io(dir.display().to_string(), e))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !expected.contains(&name) {
            return Err(source_failed(format!(
                "pg_basebackup wrote {name}, which its tablespace_map does not name"
            )));
        }
    }
    set.add(&format!("{DATA}/{MANIFEST}"), &manifest[..], progress)?;
    set.add(DIRECTORIES, base.directories.as_bytes(), progress)?;
    Ok(manifest)
}

/// Store one spooled archive, then delete it: the spool holds at most
/// what pg_basebackup wrote, and shrinks as the snapshot goes on.
fn read_spooled(
    set: &StreamSet,
    path: &Path,
    prefix: &str,
    progress: &Progress,
) -> Result<Archive> {
    let file = std::fs::File::open(path).map_err(|e| {
        source_failed(format!(
            "pg_basebackup wrote no {}: {e}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ))
    })?;
    let archive = read_archive(
        set,
        TarReader::new(std::io::BufReader::new(file)),
        prefix,
        progress,
    )?;
    std::fs::remove_file(path).map_err(|e| Error::io(path.display().to_string(), e))?;
    Ok(archive)
}

/// A private temporary folder, removed with everything in it when
/// dropped: on success, on error and on unwinding alike.
struct Spool(PathBuf);

impl Spool {
    fn create() -> Result<Spool> {
        let dir = std::env::temp_dir().join(format!(
            "vault-basebackup-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| Error::io(format!("creating the spool folder {}", dir.display()), e))?;
        Ok(Spool(dir))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What one archive held besides its stored files.
struct Archive {
    /// The base archive's backup_manifest, when pg_basebackup put it there
    /// (on standard output; in a folder it is a file beside the archives).
    manifest: Option<Vec<u8>>,
    tablespace_map: Option<Vec<u8>>,
    label: bool,
    /// One folder a line.
    directories: String,
}

impl Archive {
    /// The base archive's manifest, once it is known to be a base backup.
    fn take_manifest(&mut self) -> Result<Vec<u8>> {
        if !self.label {
            return Err(source_failed("the base backup holds no backup_label"));
        }
        self.manifest.take().ok_or_else(|| {
            source_failed(
                "the base backup holds no backup_manifest (PostgreSQL 13 or later writes one)",
            )
        })
    }
}

/// Store an archive's files under `{prefix}data/`; the base archive
/// (`prefix` empty) also yields its manifest (stored by the caller, which
/// may find it beside the archive instead), label and tablespace map.
fn read_archive(
    set: &StreamSet,
    mut tar: TarReader<impl std::io::Read + Send>,
    prefix: &str,
    progress: &Progress,
) -> Result<Archive> {
    let base = prefix.is_empty();
    let mut archive = Archive {
        manifest: None,
        tablespace_map: None,
        label: false,
        directories: String::new(),
    };
    while let Some(member) = tar.next_member()? {
        if !super::valid_directory(&member.path) {
            return Err(source_failed(format!(
                "base backup stream: '{}' is not a path inside a data directory",
                member.path
            )));
        }
        match member.kind {
            MemberKind::Dir => {
                archive.directories.push_str(&member.path);
                archive.directories.push('\n');
            }
            MemberKind::File if base && member.path == MANIFEST => {
                archive.manifest = Some(read_small(&mut tar, member.size, MANIFEST)?);
            }
            MemberKind::File => {
                if base && member.path == TABLESPACE_MAP {
                    let bytes = read_small(&mut tar, member.size, TABLESPACE_MAP)?;
                    set.add(&format!("{DATA}/{TABLESPACE_MAP}"), &bytes[..], progress)?;
                    archive.tablespace_map = Some(bytes);
                    continue;
                }
                archive.label |= base && member.path == LABEL;
                let path = format!("{prefix}{DATA}/{}", member.path);
                let stored = set.add(&path, tar.content(member.size), progress)?;
                if stored != member.size {
                    return Err(source_failed(format!(
                        "base backup stream: {} ended early",
                        member.path
                    )));
                }
            }
            // With a tablespace_map (always asked for in tar format) the
            // server sends pg_tblspc empty; any other link is not a data
            // directory's.
            MemberKind::Symlink(_) => {
                return Err(source_failed(format!(
                    "the data directory holds a symlink ({}), which a base backup never holds",
                    member.path
                )))
            }
        }
    }
    tar.finish()?;
    Ok(archive)
}

/// A small member read whole (manifest: about 150 bytes a file of the
/// cluster; tablespace map: a line a tablespace).
fn read_small(
    tar: &mut TarReader<impl std::io::Read + Send>,
    size: u64,
    name: &str,
) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut tar.content(size), &mut bytes)
        .map_err(|e| Error::io(format!("reading the {name}"), e))?;
    if bytes.len() as u64 != size {
        return Err(source_failed(format!(
            "base backup stream: {name} ended early"
        )));
    }
    Ok(bytes)
}
