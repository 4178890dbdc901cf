//! Key objects (`keys/<id>`): one per password. A plaintext header carries the
//! KDF parameters; a sealed box (KeySet) carries the master keys, sealed with
//! the key the password derives. The box's associated data binds the header
//! (its BLAKE3 hash stands in the id slot), so the header cannot be edited.

use zeroize::Zeroizing;

use super::codec::{Reader, Writer};
use super::{magic, Timestamp};
use crate::error::{Error, Result};

pub const KEYFILE_VERSION: u8 = 1;
pub const KEYSET_VERSION: u8 = 1;
pub const KDF_ARGON2ID: u8 = 1;
pub const SALT_LEN: usize = 32;
pub const KEY_LEN: usize = 32;

/// Upper bounds that keep a hostile key file from making `open` take hours
/// or all memory: 1 GiB and 16 passes is already far beyond any
/// recommendation for interactive use.
pub const MAX_KDF_MEMORY_KIB: u32 = 1 << 20;
pub const MAX_KDF_ITERATIONS: u32 = 16;
pub const MAX_KDF_PARALLELISM: u32 = 16;

/// What one host is willing to spend on one key, below the format's
/// ceilings: a key asking for more is not tried (and not written). The
/// defaults leave room for four times the default parameters' memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfLimit {
    pub max_memory_kib: u32,
    pub max_iterations: u32,
}

impl Default for KdfLimit {
    fn default() -> Self {
        KdfLimit {
            max_memory_kib: 256 << 10,
            max_iterations: 8,
        }
    }
}

impl KdfLimit {
    /// Whether `params` are within this limit; the error says by how much
    /// they are not.
    pub fn admits(&self, params: &KdfParams) -> Result<()> {
        if params.memory_kib > self.max_memory_kib || params.iterations > self.max_iterations {
            return Err(Error::invalid(format!(
                "its KDF asks for {} MiB and {} passes, over this host's limit of {} MiB and {} passes",
                params.memory_kib >> 10,
                params.iterations,
                self.max_memory_kib >> 10,
                self.max_iterations
            )));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl KdfParams {
    pub fn validate(&self) -> Result<()> {
        if !(8..=MAX_KDF_MEMORY_KIB).contains(&self.memory_kib)
            || !(1..=MAX_KDF_ITERATIONS).contains(&self.iterations)
            || !(1..=MAX_KDF_PARALLELISM).contains(&self.parallelism)
            || self.memory_kib < 8 * self.parallelism
        {
            return Err(Error::invalid(format!(
                "KDF parameters {self:?} are out of range"
            )));
        }
        Ok(())
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 << 10,
            iterations: 3,
            parallelism: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHeader {
    pub kdf: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub created: Timestamp,
    pub host: String,
    pub user: String,
}

/// A key object split into its header (bytes as stored, for the associated
/// data) and the sealed key set.
pub struct KeyFile<'a> {
    pub header: KeyHeader,
    pub header_bytes: &'a [u8],
    pub sealed_keyset: &'a [u8],
}

impl KeyHeader {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.raw(magic::KEY);
        w.u8(KEYFILE_VERSION);
        w.u8(KDF_ARGON2ID);
        w.u32(self.kdf.memory_kib);
        w.u32(self.kdf.iterations);
        w.u32(self.kdf.parallelism);
        w.raw(&self.salt);
        self.created.write(&mut w);
        w.str(&self.host);
        w.str(&self.user);
        w.into_bytes()
    }
}

impl<'a> KeyFile<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "key");
        r.expect_magic(magic::KEY)?;
        r.expect_version(KEYFILE_VERSION)?;
        let kdf_kind = r.u8()?;
        if kdf_kind != KDF_ARGON2ID {
            return Err(Error::new(
                crate::ErrorKind::Unsupported,
                format!("key derivation function {kdf_kind} is not supported"),
            ));
        }
        let kdf = KdfParams {
            memory_kib: r.u32()?,
            iterations: r.u32()?,
            parallelism: r.u32()?,
        };
        kdf.validate()
            .map_err(|e| Error::corrupt(format!("key: {}", e.context())))?;
        let salt = r.array()?;
        let created = Timestamp::read(&mut r)?;
        let host = r.string()?;
        let user = r.string()?;
        let header_len = bytes.len() - r.remaining();
        Ok(KeyFile {
            header: KeyHeader {
                kdf,
                salt,
                created,
                host,
                user,
            },
            header_bytes: &bytes[..header_len],
            sealed_keyset: &bytes[header_len..],
        })
    }
}

/// The master keys. `id_key` and `chunker_key` never change (dedup depends on
/// them); data keys are numbered by epoch so a new one can be added and old
/// objects still open (master-key rotation).
pub struct KeySet {
    id_key: SecretKey,
    chunker_key: SecretKey,
    /// Held apart from the others so that a key set always has a data key
    /// to seal with, by construction.
    first_data_key: (u32, SecretKey),
    more_data_keys: Vec<(u32, SecretKey)>,
}

pub type SecretKey = Zeroizing<[u8; KEY_LEN]>;

impl KeySet {
    /// A key set with its first data key: without one nothing could be
    /// sealed, so there is no key set without one.
    pub fn new(id_key: SecretKey, chunker_key: SecretKey, data_key: (u32, SecretKey)) -> Self {
        KeySet {
            id_key,
            chunker_key,
            first_data_key: data_key,
            more_data_keys: Vec::new(),
        }
    }

    /// Add a data key (a new epoch, or an old one kept to open old objects).
    pub fn add_data_key(&mut self, epoch: u32, key: SecretKey) {
        self.more_data_keys.push((epoch, key));
    }

    pub fn id_key(&self) -> &SecretKey {
        &self.id_key
    }

    pub fn chunker_key(&self) -> &SecretKey {
        &self.chunker_key
    }

    /// The data keys with their epochs, in stored order.
    pub fn data_keys(&self) -> impl Iterator<Item = &(u32, SecretKey)> {
        std::iter::once(&self.first_data_key).chain(&self.more_data_keys)
    }

    /// The epoch new objects are sealed under: the newest data key.
    pub fn current(&self) -> (u32, &SecretKey) {
        let (epoch, key) = self
            .more_data_keys
            .iter()
            .fold(&self.first_data_key, |newest, k| {
                if k.0 >= newest.0 {
                    k
                } else {
                    newest
                }
            });
        (*epoch, key)
    }

    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.u8(KEYSET_VERSION);
        w.raw(&self.id_key[..]);
        w.raw(&self.chunker_key[..]);
        let data_keys: Vec<&(u32, SecretKey)> = self.data_keys().collect();
        w.list(&data_keys, |w, (epoch, key)| {
            w.u32(*epoch);
            w.raw(&key[..]);
        });
        Zeroizing::new(w.into_bytes())
    }

    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(bytes, "key set");
        r.expect_version(KEYSET_VERSION)?;
        let id_key = Zeroizing::new(r.array()?);
        let chunker_key = Zeroizing::new(r.array()?);
        let data_keys = r.list(4 + KEY_LEN, |r| Ok((r.u32()?, Zeroizing::new(r.array()?))))?;
        r.finish()?;
        let mut epochs: Vec<u32> = data_keys.iter().map(|(e, _)| *e).collect();
        epochs.sort_unstable();
        if epochs.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::corrupt("key set holds two data keys for one epoch"));
        }
        let mut data_keys = data_keys.into_iter();
        let first = data_keys
            .next()
            .ok_or_else(|| Error::corrupt("key set holds no data key"))?;
        let mut set = KeySet::new(id_key, chunker_key, first);
        for (epoch, key) in data_keys {
            set.add_data_key(epoch, key);
        }
        Ok(set)
    }
}
