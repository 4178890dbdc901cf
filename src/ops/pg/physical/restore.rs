//! `restore pg --physical`: a data directory written back from a base
//! backup snapshot, ready to start: recovery.signal, and recovery settings
//! in postgresql.auto.conf whose restore_command fetches WAL from the
//! vault archive, up to a target (a time, an LSN, a transaction) or to
//! the end of the archive, on the newest timeline. Each tablespace goes
//! back to where it lived, or where a mapping sends it, and the restored
//! tablespace_map names where it went (recovery links it from there).

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{base_backup_of, tablespace_prefix, valid_directory, DATA, DIRECTORIES};
use crate::engines::pg::basebackup::format_lsn;
use crate::engines::pg::tablespaces::{encode_map, parse_map, relocate, Tablespace};
use crate::error::{Error, ErrorKind, Result};
use crate::format::pg_base::BaseBackup;
use crate::format::snapshot::Snapshot;
use crate::ops::restore::{restore, RestoreOptions};
use crate::progress::Progress;
use crate::repo::Repository;

/// Where recovery stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryTarget {
    /// Replay the whole archive.
    End,
    /// A timestamp as PostgreSQL reads `recovery_target_time`.
    Time(String),
    Lsn(u64),
    Xid(u64),
}

#[derive(Debug, Clone)]
pub struct PhysicalRestoreOptions {
    /// An empty or missing folder.
    pub target: PathBuf,
    pub to: RecoveryTarget,
    /// The `restore_command` the server runs (see [`restore_command`]).
    pub restore_command: String,
    /// `OLDDIR=NEWDIR` pairs: the tablespace at OLDDIR goes to NEWDIR.
    pub tablespace_mapping: Vec<(PathBuf, PathBuf)>,
    /// For a throwaway restore (a drill, a single table): the folder under
    /// which each unmapped tablespace goes, as `<oid>`; no tablespace is
    /// then written where one lives. `None`: unmapped tablespaces go back
    /// to where they lived.
    pub throwaway_tablespaces: Option<PathBuf>,
}

#[derive(Debug)]
pub struct PhysicalRestoreOutcome {
    pub base: BaseBackup,
    /// Where each tablespace was restored.
    pub tablespaces: Vec<Tablespace>,
    pub files: u64,
    pub bytes: u64,
    pub duration_ms: u64,
}

/// A word for `/bin/sh`, which runs restore_command: single-quoted, and
/// `%` doubled, since PostgreSQL expands `%f`/`%p` before the shell runs.
fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''").replace('%', "%%"))
}

/// A value in postgresql.conf syntax.
fn conf_value(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `vault wal fetch` for this repository, unlocked by the WAL key file:
/// the server runs it without a password, and no password is written to
/// the data directory.
pub fn restore_command(vault: &Path, repo: &str, key_file: &Path) -> String {
    format!(
        "{} -q -r {} wal fetch --key-file {} %f %p",
        shell_word(&vault.to_string_lossy()),
        shell_word(repo),
        shell_word(&key_file.to_string_lossy())
    )
}

/// The lines appended to postgresql.auto.conf (later lines win there).
pub fn recovery_settings(restore_command: &str, to: &RecoveryTarget) -> String {
    let mut out = String::from("\n# Written by vault restore pg --physical\n");
    out.push_str(&format!(
        "restore_command = {}\n",
        conf_value(restore_command)
    ));
    out.push_str("recovery_target_timeline = 'latest'\n");
    let target = match to {
        RecoveryTarget::End => None,
        RecoveryTarget::Time(t) => Some(("recovery_target_time", t.clone())),
        RecoveryTarget::Lsn(l) => Some(("recovery_target_lsn", format_lsn(*l))),
        RecoveryTarget::Xid(x) => Some(("recovery_target_xid", x.to_string())),
    };
    if let Some((name, value)) = target {
        out.push_str(&format!("{name} = {}\n", conf_value(&value)));
        out.push_str("recovery_target_action = 'promote'\n");
    }
    out
}

/// Whether a folder is missing or empty: a restore never mixes its files
/// with what a folder holds.
pub(crate) fn is_free(target: &Path) -> Result<bool> {
    match std::fs::read_dir(target) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(Error::io(format!("target {}", target.display()), e)),
    }
}

fn check_target(target: &Path) -> Result<()> {
    if is_free(target)? {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "{} is not empty: a physical restore writes a whole data directory into an empty or new folder",
        target.display()
    )))
}

fn check_tablespace_target(t: &Tablespace) -> Result<()> {
    if is_free(&t.location)? {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "tablespace {} would be restored into {}, which is not empty: map it to an empty or new folder with -T OLDDIR=NEWDIR",
        t.oid,
        t.location.display()
    )))
}

fn private_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}

/// Restore `snapshot` into `opts.target` and configure its recovery.
pub fn restore_physical(
    repo: &Repository,
    snapshot: &Snapshot,
    opts: &PhysicalRestoreOptions,
    progress: &Progress,
) -> Result<PhysicalRestoreOutcome> {
    let started = Instant::now();
    let base = base_backup_of(snapshot)?;
    if let RecoveryTarget::Lsn(lsn) = opts.to {
        if lsn < base.stop_lsn {
            return Err(Error::invalid(format!(
                "--to-lsn {} is before this backup became consistent ({}): choose a later target or an older backup",
                format_lsn(lsn),
                format_lsn(base.stop_lsn)
            )));
        }
    }
    check_target(&opts.target)?;
    let directories = read_directories(repo, snapshot, "")?;
    let spaces = relocate(
        &read_tablespace_map(repo, snapshot)?,
        &opts.tablespace_mapping,
        opts.throwaway_tablespaces.as_deref(),
    )?;
    let mut space_directories = Vec::new();
    for t in &spaces {
        if t.location.starts_with(&opts.target) {
            return Err(Error::invalid(format!(
                "tablespace {} would be restored into {}, inside the data directory: map it elsewhere with -T OLDDIR=NEWDIR",
                t.oid,
                t.location.display()
            )));
        }
        check_tablespace_target(t)?;
        space_directories.push(read_directories(repo, snapshot, &tablespace_prefix(t.oid))?);
    }
    private_dir(&opts.target)?;
    progress.set_stage("data directory");
    let (mut files, mut bytes) =
        restore_tree(repo, snapshot, "", &opts.target, &directories, progress)?;
    for (t, dirs) in spaces.iter().zip(&space_directories) {
        progress.set_stage("tablespaces");
        let (f, b) = restore_tree(
            repo,
            snapshot,
            &tablespace_prefix(t.oid),
            &t.location,
            dirs,
            progress,
        )?;
        files += f;
        bytes += b;
    }
    if !spaces.is_empty() {
        write_private(
            &opts.target.join(TABLESPACE_MAP),
            &encode_map(&spaces),
            false,
        )?;
    }
    write_private(&opts.target.join("recovery.signal"), b"", false)?;
    write_private(
        &opts.target.join("postgresql.auto.conf"),
        recovery_settings(&opts.restore_command, &opts.to).as_bytes(),
        true,
    )?;
    Ok(PhysicalRestoreOutcome {
        base,
        tablespaces: spaces,
        files,
        bytes,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

const TABLESPACE_MAP: &str = "tablespace_map";

/// `{prefix}data` written into `dest` (made 0700), then each folder of
/// `{prefix}directories`. Returns the files and bytes written.
fn restore_tree(
    repo: &Repository,
    snapshot: &Snapshot,
    prefix: &str,
    dest: &Path,
    directories: &[String],
    progress: &Progress,
) -> Result<(u64, u64)> {
    private_dir(dest)?;
    let restored = restore(
        repo,
        &snapshot.root,
        &RestoreOptions {
            target: dest.to_path_buf(),
            sub_path: Some(format!("/{prefix}{DATA}").into_bytes()),
            ..RestoreOptions::default()
        },
        progress,
    )?;
    if let Some(first) = restored.errors.first() {
        let kind = if restored.damaged {
            ErrorKind::Corrupt
        } else {
            ErrorKind::Io
        };
        return Err(Error::new(
            kind,
            format!(
                "{} file(s) could not be restored, the first: {first}",
                restored.errors.len()
            ),
        ));
    }
    for dir in directories {
        private_dir(&dest.join(dir))?;
    }
    // The restore set each folder's mode from the snapshot; the data
    // directory and each tablespace must be the owner's alone or the
    // server refuses them.
    private_dir(dest)?;
    Ok((restored.files, restored.bytes))
}

/// One file of the snapshot, read whole (a folder list, the tablespace
/// map); `None` when the snapshot does not hold it.
fn read_small(repo: &Repository, snapshot: &Snapshot, path: &str) -> Result<Option<Vec<u8>>> {
    let entry = match crate::ops::walk::file_entry(repo, &snapshot.root, Some(path.as_bytes())) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut bytes = Vec::new();
    crate::ops::content::write_file(repo, &entry, &mut bytes, "memory")?;
    Ok(Some(bytes))
}

/// The tablespaces the backup holds, from its tablespace_map.
pub(crate) fn read_tablespace_map(
    repo: &Repository,
    snapshot: &Snapshot,
) -> Result<Vec<Tablespace>> {
    let bytes = read_small(repo, snapshot, &format!("/{DATA}/{TABLESPACE_MAP}"))?;
    parse_map(bytes.as_deref().unwrap_or_default())
        .map_err(|e| Error::corrupt(format!("physical snapshot: {e}")))
}

/// A folder list of the snapshot (`{prefix}directories`), checked line by
/// line.
fn read_directories(repo: &Repository, snapshot: &Snapshot, prefix: &str) -> Result<Vec<String>> {
    let path = format!("/{prefix}{DIRECTORIES}");
    let bytes = read_small(repo, snapshot, &path)?
        .ok_or_else(|| Error::corrupt(format!("physical snapshot: {path} is missing")))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::corrupt("physical snapshot: its folder list is not UTF-8"))?;
    text.lines()
        .map(|line| {
            if valid_directory(line) {
                Ok(line.to_string())
            } else {
                Err(Error::corrupt(format!(
                    "physical snapshot: '{line}' in its folder list is not a path inside a data directory"
                )))
            }
        })
        .collect()
}

fn write_private(path: &Path, bytes: &[u8], append: bool) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(append)
        .write(true)
        .truncate(!append)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_command_survives_quotes_and_percent_signs() {
        let cmd = restore_command(
            Path::new("/usr/bin/vault"),
            "/srv/it's 100%",
            Path::new("/etc/vault/wal.key"),
        );
        assert_eq!(
            cmd,
            "'/usr/bin/vault' -q -r '/srv/it'\\''s 100%%' wal fetch --key-file '/etc/vault/wal.key' %f %p"
        );
        let conf = recovery_settings(&cmd, &RecoveryTarget::End);
        assert!(conf.contains("restore_command = '''/usr/bin/vault'' -q -r ''/srv/it''\\''''s"));
        assert!(conf.contains("recovery_target_timeline = 'latest'"));
        assert!(!conf.contains("recovery_target_action"));
    }

    #[test]
    fn each_target_sets_its_setting_and_promotes() {
        let time = recovery_settings("x", &RecoveryTarget::Time("2026-12-01 10:00:00+00".into()));
        assert!(time.contains("recovery_target_time = '2026-12-01 10:00:00+00'\n"));
        assert!(time.contains("recovery_target_action = 'promote'\n"));
        let lsn = recovery_settings("x", &RecoveryTarget::Lsn(0x1_0000_0028));
        assert!(lsn.contains("recovery_target_lsn = '1/28'\n"));
        let xid = recovery_settings("x", &RecoveryTarget::Xid(742));
        assert!(xid.contains("recovery_target_xid = '742'\n"));
    }

    #[test]
    fn refuses_a_folder_that_holds_anything() {
        let dir = tempfile::tempdir().unwrap();
        assert!(is_free(dir.path()).unwrap());
        assert!(check_target(dir.path()).is_ok());
        assert!(check_target(&dir.path().join("new")).is_ok());
        std::fs::write(dir.path().join("x"), b"").unwrap();
        let e = check_target(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
