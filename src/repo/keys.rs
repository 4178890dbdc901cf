//! Key objects: each password wraps the same master keys.

use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{random_nonce, Repository};
use crate::crypto::{derive_wrapping_key, open_with, seal_with, MasterKeys};
use crate::error::{Error, ErrorKind, Result};
use crate::format::keyfile::{KdfLimit, KdfParams, KeyFile, KeyHeader, KeySet, SALT_LEN};
use crate::format::limits::MAX_KEY_OBJECT;
use crate::format::sealed::BoxKind;
use crate::format::{layout, Id, Timestamp};
use crate::storage::Backend;

#[derive(Debug, Clone)]
pub struct KeyInfo {
    pub id: Id,
    pub created: Timestamp,
    pub host: String,
    pub user: String,
    pub current: bool,
}

pub(crate) fn write_key(
    backend: &dyn Backend,
    keys: &MasterKeys,
    password: &[u8],
    kdf: &KdfParams,
) -> Result<Id> {
    // A key this host would refuse to try is not worth writing.
    local_kdf_limit()?
        .admits(kdf)
        .map_err(|e| Error::invalid(format!("new key: {}", e.context())))?;
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let header = KeyHeader {
        kdf: *kdf,
        salt,
        created: Timestamp::now(),
        host: crate::system::hostname(),
        user: crate::system::username(),
    };
    let header_bytes = header.encode();
    let wrapping = derive_wrapping_key(password, &salt, kdf)?;
    let sealed = seal_with(
        &wrapping,
        0,
        BoxKind::KeySet,
        Some(&Id::of_object(&header_bytes)),
        &keys.keyset().encode(),
        random_nonce(),
    );
    let mut bytes = header_bytes;
    bytes.extend_from_slice(&sealed);
    let id = Id::of_object(&bytes);
    backend.write(&layout::key(&id), bytes)?;
    Ok(id)
}

fn try_key(file: &KeyFile<'_>, password: &[u8]) -> Result<MasterKeys> {
    let wrapping = derive_wrapping_key(password, &file.header.salt, &file.header.kdf)?;
    let plain = zeroize::Zeroizing::new(open_with(
        &wrapping,
        BoxKind::KeySet,
        Some(&Id::of_object(file.header_bytes)),
        file.sealed_keyset,
    )?);
    Ok(MasterKeys::from_keyset(KeySet::decode(&plain)?))
}

fn key_ids(backend: &dyn Backend) -> Result<Vec<Id>> {
    Ok(backend
        .list(layout::KEYS)?
        .iter()
        .filter_map(|p| p.rsplit('/').next()?.parse().ok())
        .collect())
}

/// How the password met the key objects: the keys it was tried against, in
/// order, and the keys refused before any KDF ran (damaged, or asking for
/// more than this host spends), with the reason.
#[derive(Debug, Clone)]
pub struct OpenedKey {
    pub id: Id,
    pub tried: Vec<Id>,
    pub refused: Vec<(Id, String)>,
}

/// Variables that raise (or lower) what this host spends on one key.
const LIMIT_MEMORY_VAR: &str = "VAULT_KDF_MAX_MEMORY_MIB";
const LIMIT_PASSES_VAR: &str = "VAULT_KDF_MAX_PASSES";

/// This host's KDF limit: the defaults, or the variables above.
pub fn local_kdf_limit() -> Result<KdfLimit> {
    let mut limit = KdfLimit::default();
    let read = |name: &str| -> Result<Option<u32>> {
        match std::env::var(name) {
            Err(_) => Ok(None),
            Ok(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::invalid(format!("{name}={v:?} is not a whole number"))),
        }
    };
    if let Some(mib) = read(LIMIT_MEMORY_VAR)? {
        limit.max_memory_kib = mib.saturating_mul(1024);
    }
    if let Some(passes) = read(LIMIT_PASSES_VAR)? {
        limit.max_iterations = passes;
    }
    Ok(limit)
}

/// Everything that can be known about a key object without the password:
/// its name, its header, the shape of its sealed box, and whether this
/// host is willing to run its KDF. A planted key costs no argon2 run.
fn check_before_kdf<'a>(id: &Id, bytes: &'a [u8], limit: &KdfLimit) -> Result<KeyFile<'a>> {
    if Id::of_object(bytes) != *id {
        return Err(Error::corrupt("content does not match its name"));
    }
    let file = KeyFile::decode(bytes)?;
    let sealed = crate::format::sealed::split(file.sealed_keyset)?;
    // Key sets are sealed under epoch 0 (write_key).
    if sealed.epoch != 0 {
        return Err(Error::corrupt(format!(
            "key set sealed under epoch {}, not 0",
            sealed.epoch
        )));
    }
    limit
        .admits(&file.header.kdf)
        .map_err(|e| Error::new(ErrorKind::Unsupported, e.context().to_string()))?;
    Ok(file)
}

/// Where this host remembers the key it opened a repository with: named by
/// the hash of the repository's config object, which no two repositories
/// share and which never changes.
fn remembered_path(cache_dir: Option<&Path>, config_bytes: &[u8]) -> Option<PathBuf> {
    cache_dir.map(|d| d.join("keys").join(Id::of_object(config_bytes).to_hex()))
}

fn remembered_key(cache_dir: Option<&Path>, config_bytes: &[u8]) -> Option<Id> {
    let text = std::fs::read_to_string(remembered_path(cache_dir, config_bytes)?).ok()?;
    text.trim().parse().ok()
}

/// Best effort: the note only orders the keys, so a failure to write it
/// costs time at the next open, never correctness.
fn remember_key(cache_dir: Option<&Path>, config_bytes: &[u8], id: &Id) {
    let Some(path) = remembered_path(cache_dir, config_bytes) else {
        return;
    };
    let tmp = path.with_extension("tmp");
    let written = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| std::fs::write(&tmp, format!("{id}\n")))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

pub(crate) fn open_key_for(
    backend: &dyn Backend,
    password: &[u8],
    cache_dir: Option<&Path>,
    config_bytes: &[u8],
) -> Result<(OpenedKey, MasterKeys)> {
    let mut ids = key_ids(backend)?;
    if ids.is_empty() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("{}: the repository has no key objects", backend.describe()),
        ));
    }
    // Listing order is the storage's; a fixed order makes every open alike.
    ids.sort_unstable();
    if let Some(last) = remembered_key(cache_dir, config_bytes) {
        if let Some(pos) = ids.iter().position(|id| *id == last) {
            ids[..=pos].rotate_right(1);
        }
    }
    let limit = local_kdf_limit()?;
    let mut tried = Vec::new();
    let mut refused = Vec::new();
    let mut damaged = None;
    for id in ids {
        let bytes = match backend.read_capped(&layout::key(&id), MAX_KEY_OBJECT) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) if e.kind() == ErrorKind::Corrupt => {
                damaged.get_or_insert(id);
                refused.push((id, e.context().to_string()));
                continue;
            }
            Err(e) => return Err(e),
        };
        let file = match check_before_kdf(&id, &bytes, &limit) {
            Ok(file) => file,
            Err(e) => {
                if e.kind() != ErrorKind::Unsupported {
                    damaged.get_or_insert(id);
                }
                refused.push((id, e.context().to_string()));
                continue;
            }
        };
        tried.push(id);
        if let Ok(keys) = try_key(&file, password) {
            remember_key(cache_dir, config_bytes, &id);
            return Ok((OpenedKey { id, tried, refused }, keys));
        }
    }
    // With a damaged key in the way, the password may well be right.
    if let Some(id) = damaged {
        return Err(Error::corrupt(format!(
            "key {} is damaged, and no other key opens with this password",
            id.short()
        )));
    }
    let mut message = "wrong password: no key in the repository opens with it".to_string();
    if let Some((id, why)) = refused.first() {
        message.push_str(&format!(
            " (key {} was not tried: {why}; {LIMIT_MEMORY_VAR} and {LIMIT_PASSES_VAR} raise the limit)",
            id.short()
        ));
    }
    Err(Error::new(ErrorKind::WrongPassword, message))
}

/// Key objects whose bytes do not match their name or do not parse. Only
/// the key opened with can be decrypted, but every key can be checked.
pub(crate) fn damaged_keys(backend: &dyn Backend) -> Result<Vec<(Id, Error)>> {
    let mut out = Vec::new();
    for id in key_ids(backend)? {
        let bytes = match backend.read_capped(&layout::key(&id), MAX_KEY_OBJECT) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let problem = if Id::of_object(&bytes) != id {
            Some(Error::corrupt("content does not match its name"))
        } else {
            KeyFile::decode(&bytes).err()
        };
        if let Some(e) = problem {
            out.push((id, e));
        }
    }
    Ok(out)
}

impl Repository {
    /// Key objects that are damaged (see `damaged_keys`), with the reason.
    pub fn damaged_keys(&self) -> Result<Vec<(Id, Error)>> {
        damaged_keys(self.backend.as_ref())
    }

    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for id in key_ids(self.backend.as_ref())? {
            let bytes = self
                .backend
                .read_capped(&layout::key(&id), MAX_KEY_OBJECT)?;
            let file = KeyFile::decode(&bytes).map_err(|e| e.at(format!("key {}", id.short())))?;
            out.push(KeyInfo {
                id,
                created: file.header.created,
                host: file.header.host,
                user: file.header.user,
                current: id == self.key_id,
            });
        }
        out.sort_by_key(|k| k.created);
        Ok(out)
    }

    pub fn add_key(&self, password: &[u8], kdf: &KdfParams) -> Result<Id> {
        write_key(self.backend.as_ref(), &self.keys, password, kdf)
    }

    /// Remove a key object. The key this session opened with cannot be
    /// removed (use `change_password`), so the last key never disappears.
    pub fn remove_key(&self, id: &Id) -> Result<()> {
        if *id == self.key_id {
            return Err(Error::invalid(
                "refusing to remove the key this session opened with; use 'vault key passwd' or open with another password",
            ));
        }
        if !self.backend.exists(&layout::key(id))? {
            return Err(Error::new(ErrorKind::NotFound, format!("no key {id}")));
        }
        self.backend.delete(&layout::key(id))
    }

    /// Add a key for the new password, then remove the old one: at every
    /// moment at least one key opens the repository.
    pub fn change_password(&mut self, new_password: &[u8], kdf: &KdfParams) -> Result<Id> {
        let new_id = self.add_key(new_password, kdf)?;
        let old = std::mem::replace(&mut self.key_id, new_id);
        self.backend.delete(&layout::key(&old))?;
        Ok(new_id)
    }

    /// Resolve a key id prefix.
    pub fn find_key(&self, prefix: &str) -> Result<Id> {
        let prefix = prefix.to_ascii_lowercase();
        let matches: Vec<Id> = key_ids(self.backend.as_ref())?
            .into_iter()
            .filter(|id| id.to_hex().starts_with(&prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(*one),
            [] => Err(Error::new(
                ErrorKind::NotFound,
                format!("no key with id {prefix}"),
            )),
            _ => Err(Error::invalid(format!(
                "key id prefix {prefix} is ambiguous"
            ))),
        }
    }
}
