//! Key objects: each password wraps the same master keys.

use rand::RngCore;

use super::{random_nonce, Repository};
use crate::crypto::{derive_wrapping_key, open_with, seal_with, MasterKeys};
use crate::error::{Error, ErrorKind, Result};
use crate::format::keyfile::{KdfParams, KeyFile, KeyHeader, KeySet, SALT_LEN};
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
    let mut salt = [0u8; SALT_LEN];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let header = KeyHeader {
        kdf: *kdf,
        salt,
        created: Timestamp::now(),
        host: crate::sources::hostname(),
        user: crate::sources::username(),
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

fn try_key(bytes: &[u8], password: &[u8]) -> Result<MasterKeys> {
    let file = KeyFile::decode(bytes)?;
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

/// Try the password against every key object. Damaged key objects are
/// skipped (another key may still open the repository); if none opens, the
/// password is wrong.
pub(crate) fn open_any_key(backend: &dyn Backend, password: &[u8]) -> Result<(Id, MasterKeys)> {
    let ids = key_ids(backend)?;
    if ids.is_empty() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            format!("{}: the repository has no key objects", backend.describe()),
        ));
    }
    let mut damaged = Vec::new();
    for id in ids {
        let bytes = backend.read(&layout::key(&id))?;
        if Id::of_object(&bytes) != id || KeyFile::decode(&bytes).is_err() {
            damaged.push(id);
            continue;
        }
        if let Ok(keys) = try_key(&bytes, password) {
            return Ok((id, keys));
        }
    }
    // With a damaged key in the way, the password may well be right.
    if let Some(id) = damaged.first() {
        return Err(Error::corrupt(format!(
            "key {} is damaged, and no other key opens with this password",
            id.short()
        )));
    }
    Err(Error::new(
        ErrorKind::WrongPassword,
        "wrong password: no key in the repository opens with it",
    ))
}

/// Key objects whose bytes do not match their name or do not parse. Only
/// the key opened with can be decrypted, but every key can be checked.
pub(crate) fn damaged_keys(backend: &dyn Backend) -> Result<Vec<(Id, Error)>> {
    let mut out = Vec::new();
    for id in key_ids(backend)? {
        let bytes = match backend.read(&layout::key(&id)) {
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
            let bytes = self.backend.read(&layout::key(&id))?;
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
