//! `snapshot pg --physical`: pg_basebackup's tar stream, read member by
//! member, each file of the cluster stored as a file of the snapshot (so
//! an unchanged relation segment dedups to nothing, and a changed one is
//! stored as a delta against the last backup's same file).

use std::sync::Arc;

use super::{DATA, DIRECTORIES};
use crate::engines::pg::basebackup::{
    basebackup_command, manifest_wal_range, refusal, server_facts,
};
use crate::engines::pg::tar::{MemberKind, TarReader};
use crate::engines::pg::{program, PgConn};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_base::{BaseBackup, PG_BASE_KEY, PG_PHYSICAL_SOURCE};
use crate::format::pg_tables::PG_SERVER_VERSION_KEY;
use crate::ingest::stream_set::StreamSet;
use crate::ops::snapshot::{SnapshotOptions, SnapshotOutcome};
use crate::progress::Progress;
use crate::repo::Repository;
use crate::system::process::{CommandSource, Stderr};

/// The manifest, read whole: it names the WAL range (its size grows by
/// about 150 bytes a file of the cluster).
const MANIFEST: &str = "backup_manifest";
const LABEL: &str = "backup_label";

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
        return Err(Error::new(ErrorKind::SourceFailed, why));
    }
    // The cluster is what the snapshot is of: its next backup finds this
    // one as the parent for deltas.
    let labels = vec![format!("cluster-{}", facts.system_identifier).into_bytes()];
    let set = StreamSet::begin(repo, PG_PHYSICAL_SOURCE, labels, snapshot_opts)?;
    progress.set_stage("base backup");
    let (child, stdout) = CommandSource::start(basebackup_command(conn)?, Stderr::Hold)?;
    let streamed = match read_stream(&set, TarReader::new(stdout), progress) {
        Ok(s) => s,
        Err(e) => {
            child.kill();
            return Err(e);
        }
    };
    // pg_basebackup's own verdict (the server ending the backup, the
    // archiving of its last segment) comes before the stream's contents.
    child.finish()?;
    let range = manifest_wal_range(&streamed.manifest)?;
    let base = BaseBackup {
        system_identifier: facts.system_identifier,
        wal_segment_size: facts.wal_segment_size,
        start_timeline: range.start.0,
        start_lsn: range.start.1,
        stop_timeline: range.stop.0,
        stop_lsn: range.stop.1,
    };
    // Checked as a reader will check it, before it is recorded.
    BaseBackup::decode(&base.encode())
        .map_err(|e| Error::new(ErrorKind::SourceFailed, format!("base backup: {e}")))?;
    set.add(DIRECTORIES, streamed.directories.as_bytes(), progress)?;
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

struct Streamed {
    manifest: Vec<u8>,
    /// One folder a line.
    directories: String,
}

fn read_stream(
    set: &StreamSet,
    mut tar: TarReader<impl std::io::Read + Send>,
    progress: &Progress,
) -> Result<Streamed> {
    let mut manifest = None;
    let mut label = false;
    let mut directories = String::new();
    while let Some(member) = tar.next_member()? {
        if !super::valid_directory(&member.path) {
            return Err(Error::new(
                ErrorKind::SourceFailed,
                format!(
                    "base backup stream: '{}' is not a path inside a data directory",
                    member.path
                ),
            ));
        }
        match member.kind {
            MemberKind::Dir => {
                directories.push_str(&member.path);
                directories.push('\n');
            }
            MemberKind::File if member.path == MANIFEST => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut tar.content(member.size), &mut bytes)
                    .map_err(|e| Error::io("reading the backup manifest", e))?;
                set.add(&format!("{DATA}/{MANIFEST}"), &bytes[..], progress)?;
                manifest = Some(bytes);
            }
            MemberKind::File => {
                label |= member.path == LABEL;
                let path = format!("{DATA}/{}", member.path);
                let stored = set.add(&path, tar.content(member.size), progress)?;
                if stored != member.size {
                    return Err(Error::new(
                        ErrorKind::SourceFailed,
                        format!("base backup stream: {} ended early", member.path),
                    ));
                }
            }
            // Tablespaces are refused before the backup starts; a link
            // here would be one created meanwhile.
            MemberKind::Symlink(_) => {
                return Err(Error::new(
                    ErrorKind::SourceFailed,
                    format!(
                        "the data directory holds a symlink ({}): a tablespace created \
                         during the backup? physical snapshots hold no tablespaces",
                        member.path
                    ),
                ))
            }
        }
    }
    tar.finish()?;
    if !label {
        return Err(Error::new(
            ErrorKind::SourceFailed,
            "the base backup stream holds no backup_label",
        ));
    }
    let manifest = manifest.ok_or_else(|| {
        Error::new(
            ErrorKind::SourceFailed,
            "the base backup stream holds no backup_manifest (PostgreSQL 13 or later writes one)",
        )
    })?;
    Ok(Streamed {
        manifest,
        directories,
    })
}
