//! The WAL archive: PostgreSQL's archive_command and restore_command
//! (format-spec/README.md, "WAL archive"). Each WAL file is one object
//! under its own name, self-contained, so a push is one write and needs no
//! index, no lock and no pack: prune never touches `wal/` except through
//! WAL retention, and a fetch is one read.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::{open_config, random_nonce, Repository};
use crate::crypto::MasterKeys;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Config;
use crate::format::keyfile::KeySet;
use crate::format::sealed::BoxKind;
use crate::format::wal::{self, WalFile, WalHeader};
use crate::format::wal_key::{WalKey, MAX_WAL_KEY_FILE};
use crate::format::{layout, limits, payload, Id, Timestamp};
use crate::storage::Backend;

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Stored,
    /// The same bytes were already archived under that name.
    AlreadyArchived,
}

/// Bytes read first from an object to find its header: enough for any
/// real header in one request.
const HEADER_PROBE: u64 = 4096;

pub struct WalArchive<'a> {
    backend: &'a dyn Backend,
    keys: &'a MasterKeys,
    compression: i32,
}

/// WAL archiving needs a repository whose tools all know to keep `wal/`.
fn require_version(config: &Config) -> Result<()> {
    if config.repo_version < 2 {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the repository is format version {}: WAL archiving needs version 2; run `vault upgrade` first",
                config.repo_version
            ),
        ));
    }
    Ok(())
}

impl<'a> WalArchive<'a> {
    /// The archive of an open repository.
    pub fn of(repo: &'a Repository) -> Result<Self> {
        require_version(repo.config())?;
        Ok(WalArchive {
            backend: repo.backend().as_ref(),
            keys: repo.keys(),
            compression: repo.config().compression,
        })
    }

    /// The archive opened with an unlocked key file: one read of `config`,
    /// checked to be the repository the key file was made for.
    pub fn with_key(backend: &'a dyn Backend, key: &'a WalKeyFile) -> Result<Self> {
        let bytes = backend.read_capped(layout::CONFIG, limits::MAX_CONFIG_OBJECT)?;
        let config = open_config(&key.keys, &bytes).map_err(|e| match e.kind() {
            ErrorKind::Tampered => Error::new(
                ErrorKind::WrongPassword,
                "the WAL key file does not open this repository's config",
            ),
            _ => e,
        })?;
        if config.repo_id != key.repo_id {
            return Err(Error::new(
                ErrorKind::WrongPassword,
                "the WAL key file belongs to another repository",
            ));
        }
        require_version(&config)?;
        Ok(WalArchive {
            backend,
            keys: &key.keys,
            compression: key.compression,
        })
    }

    /// Store `bytes` as `name`, returning once the object is durable. An
    /// identical file already there is success; a different one is refused.
    pub fn push(&self, file: &WalFile, bytes: &[u8], now: Timestamp) -> Result<Pushed> {
        let name = file.name();
        let size = u64::try_from(bytes.len()).map_err(|_| Error::invalid("file too large"))?;
        if size > wal::MAX_WAL_FILE {
            return Err(Error::invalid(format!(
                "{name}: {size} bytes is more than a WAL file may hold"
            )));
        }
        let content = self.keys.blob_id(bytes);
        if let Some(existing) = self.header(file)? {
            if existing.size == size && existing.content == content {
                return Ok(Pushed::AlreadyArchived);
            }
            return Err(Error::new(
                ErrorKind::Conflict,
                format!(
                    "{name} is already archived with different contents ({} bytes stored, {size} pushed): \
                     refusing to replace it; is another server archiving into this repository?",
                    existing.size
                ),
            ));
        }
        let content_box = self.keys.seal(
            BoxKind::Wal,
            Some(&content),
            &payload::encode(bytes, self.compression),
            random_nonce(),
        );
        let header = WalHeader {
            name: name.clone(),
            size,
            content,
            pushed: now,
            content_box_len: content_box.len() as u64,
        };
        let header_box = self.keys.seal(
            BoxKind::Wal,
            Some(&wal::name_slot(&name)),
            &payload::encode(&header.encode(), 0),
            random_nonce(),
        );
        self.backend
            .write(&wal::path(file), wal::join(&header_box, &content_box)?)
            .map_err(|e| e.at(&name))?;
        Ok(Pushed::Stored)
    }

    /// The header of `file`, or None when it is not archived.
    pub fn header(&self, file: &WalFile) -> Result<Option<WalHeader>> {
        Ok(self.stat(file)?.map(|(header, _)| header))
    }

    /// The header of `file` and the bytes its object takes in storage, or
    /// None when it is not archived.
    pub fn stat(&self, file: &WalFile) -> Result<Option<(WalHeader, u64)>> {
        let path = wal::path(file);
        let size = match self.backend.size(&path) {
            Ok(s) => s,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let name = file.name();
        let prefix = self
            .backend
            .read_range(&path, 0, size.min(HEADER_PROBE))
            .map_err(|e| e.at(&name))?;
        let len = wal::header_box_len(&prefix).map_err(|e| e.at(&name))?;
        let end = (wal::PREFIX_LEN + len) as u64;
        if end > size {
            return Err(Error::corrupt(format!(
                "{name}: shorter than its header box"
            )));
        }
        let header_box = if end <= prefix.len() as u64 {
            prefix[wal::PREFIX_LEN..wal::PREFIX_LEN + len].to_vec()
        } else {
            self.backend
                .read_range(&path, wal::PREFIX_LEN as u64, len as u64)
                .map_err(|e| e.at(&name))?
        };
        let header = self.open_header(&name, &header_box)?;
        if header.content_box_len != size - end {
            return Err(Error::corrupt(format!(
                "{name}: the object is {size} bytes, its header says {}",
                end + header.content_box_len
            )));
        }
        Ok(Some((header, size)))
    }

    /// Delete `file` from the archive (WAL retention); one already gone
    /// is no error.
    pub fn delete(&self, file: &WalFile) -> Result<()> {
        match self.backend.delete(&wal::path(file)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.at(file.name())),
            _ => Ok(()),
        }
    }

    fn open_header(&self, name: &str, header_box: &[u8]) -> Result<WalHeader> {
        let plain = self
            .keys
            .open(BoxKind::Wal, Some(&wal::name_slot(name)), header_box)
            .map_err(|e| e.at(name))?;
        let header = WalHeader::decode(&payload::decode(&plain, wal::MAX_HEADER_BOX as usize)?)
            .map_err(|e| e.at(name))?;
        if header.name != name {
            return Err(Error::corrupt(format!(
                "{name}: the object holds {}",
                header.name
            )));
        }
        Ok(header)
    }

    /// The bytes of `file`, checked against their keyed hash; None when it
    /// is not archived.
    pub fn fetch(&self, file: &WalFile) -> Result<Option<Vec<u8>>> {
        let name = file.name();
        let object = match self
            .backend
            .read_capped(&wal::path(file), limits::MAX_WAL_OBJECT)
        {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.at(&name)),
        };
        let (header_box, content_box) = wal::split(&object).map_err(|e| e.at(&name))?;
        let header = self.open_header(&name, header_box)?;
        if header.content_box_len != content_box.len() as u64 {
            return Err(Error::corrupt(format!(
                "{name}: content box of {} bytes, the header says {}",
                content_box.len(),
                header.content_box_len
            )));
        }
        let plain = self
            .keys
            .open(BoxKind::Wal, Some(&header.content), content_box)
            .map_err(|e| e.at(&name))?;
        let size = usize::try_from(header.size).map_err(|_| Error::corrupt("wal size"))?;
        let bytes = payload::decode(&plain, size).map_err(|e| e.at(&name))?;
        if bytes.len() != size || self.keys.blob_id(&bytes) != header.content {
            return Err(Error::corrupt(format!(
                "{name}: content does not match its header"
            )));
        }
        Ok(Some(bytes))
    }

    /// Every archived file, in PostgreSQL's order (timeline, position).
    /// Names that are not WAL file names are not part of the archive.
    pub fn list(&self) -> Result<Vec<WalFile>> {
        let mut files: Vec<WalFile> = self
            .backend
            .list(layout::WAL)?
            .iter()
            .filter_map(|p| p.strip_prefix(layout::WAL))
            .filter_map(|n| WalFile::parse(n).ok())
            .collect();
        files.sort();
        Ok(files)
    }
}

/// The master keys and repository id, read from an unlocked key file.
pub struct WalKeyFile {
    keys: MasterKeys,
    repo_id: Id,
    compression: i32,
}

impl WalKeyFile {
    /// Write the key file for `repo` at `path`: created new (never over an
    /// existing file), readable and writable by its owner only, synced.
    pub fn create(repo: &Repository, path: &Path) -> Result<()> {
        require_version(repo.config())?;
        let set = repo.keys().keyset();
        let body = WalKey {
            repo_id: repo.config().repo_id,
            compression: repo.config().compression,
            keys: KeySet::decode(&set.encode())?,
        }
        .encode();
        let place = path.display().to_string();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| Error::io(format!("{place}: cannot create the key file"), e))?;
        // The mode above is masked by the umask; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(0o600))
            .and_then(|_| f.write_all(&body))
            .and_then(|_| f.sync_all())
            .map_err(|e| Error::io(place, e))?;
        Ok(())
    }

    /// Read a key file, refusing one that others than its owner could read
    /// or that belongs to another user (it holds the master keys).
    pub fn load(path: &Path) -> Result<Self> {
        let place = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(place.clone(), e))?;
        if meta.mode() & 0o077 != 0 {
            return Err(Error::invalid(format!(
                "{place}: the WAL key file is readable by others (mode {:o}); chmod 600 it",
                meta.mode() & 0o777
            )));
        }
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        if meta.uid() != uid {
            return Err(Error::invalid(format!(
                "{place}: the WAL key file belongs to uid {}, not to this user ({uid})",
                meta.uid()
            )));
        }
        if meta.len() > MAX_WAL_KEY_FILE {
            return Err(Error::corrupt(format!("{place}: too large for a key file")));
        }
        let bytes =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(place.clone(), e))?);
        let key = WalKey::decode(&bytes).map_err(|e| e.at(&place))?;
        Ok(WalKeyFile {
            keys: MasterKeys::from_keyset(key.keys),
            repo_id: key.repo_id,
            compression: key.compression,
        })
    }
}
