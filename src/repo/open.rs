//! Creating and opening repositories. What a command wants of an open
//! repository (cache, index, lock wait, transport) is decided once, by the
//! caller, in `OpenOptions`; every entry point builds the `Repository`
//! through `assemble`. Opening is two steps, finding the repository
//! (`SealedRepository::find`) and opening it with a password.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;

use super::keys::OpenedKey;
use super::{keys, random_nonce, Repository};
use crate::cache::IndexCache;
use crate::crypto::MasterKeys;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::{ChunkerParams, Config, DEFAULT_COMPRESSION, DEFAULT_PACK_TARGET};
use crate::format::keyfile::KdfParams;
use crate::format::limits::MAX_CONFIG_OBJECT;
use crate::format::sealed::BoxKind;
use crate::format::{layout, magic, payload, Id, Timestamp, MIN_REPO_VERSION, REPO_VERSION};
use crate::storage::{Backend, Transport};

/// The parameters a new repository is created with.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub chunker: ChunkerParams,
    pub pack_target: u32,
    pub compression: i32,
    pub kdf: KdfParams,
    /// `REPO_VERSION`, or an older one still read and written.
    pub repo_version: u32,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            pack_target: DEFAULT_PACK_TARGET,
            compression: DEFAULT_COMPRESSION,
            kdf: KdfParams::default(),
            repo_version: REPO_VERSION,
        }
    }
}

/// How the local index cache relates to the index objects in storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IndexView {
    /// Brought up to the effective index at open, and again whenever a lock
    /// is taken or a pack turns out to be gone.
    #[default]
    Effective,
    /// Nothing read: check and repair read the index objects themselves and
    /// must get past damaged ones, which a sync would refuse.
    Unread,
}

/// What a command wants of the repository it opens.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Folder of the local caches (one index database per repository, and
    /// the note of the key last used); `None` keeps the index in memory
    /// for this run and remembers nothing.
    pub cache_dir: Option<PathBuf>,
    pub index: IndexView,
    /// How long taking a lock waits for a conflicting one to go away
    /// (default: not at all).
    pub lock_wait: Duration,
    /// Connections and retries for remote storage.
    pub transport: Transport,
    /// Bytes of delta bases kept per source below the cache folder, for
    /// remote repositories (`cache::bases`); 0 keeps none.
    pub base_cache_size: u64,
}

impl OpenOptions {
    fn index_cache_path(&self, repo_id: &Id) -> Option<PathBuf> {
        self.cache_dir
            .as_ref()
            .map(|d| d.join(repo_id.to_hex()).join("index.sqlite"))
    }

    pub(super) fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// The folder of per-source base caches and their bound, if any.
    fn base_caches(&self, repo_id: &Id) -> Option<(PathBuf, u64)> {
        let dir = self
            .cache_dir
            .as_ref()?
            .join(repo_id.to_hex())
            .join("bases");
        (self.base_cache_size > 0).then_some((dir, self.base_cache_size))
    }
}

impl Repository {
    /// Create a repository in `backend`, which must hold none.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        init: &InitOptions,
        options: &OpenOptions,
    ) -> Result<Repository> {
        if !(MIN_REPO_VERSION..=REPO_VERSION).contains(&init.repo_version) {
            return Err(Error::invalid(format!(
                "repository format version {} is not one this vault writes",
                init.repo_version
            )));
        }
        let config = Config {
            repo_version: init.repo_version,
            repo_id: {
                let mut id = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut id);
                Id::from_bytes(id)
            },
            chunker: init.chunker,
            pack_target: init.pack_target,
            compression: init.compression,
            created: Timestamp::now(),
        };
        config.validate()?;
        if backend.exists(layout::CONFIG)? || !backend.list(layout::KEYS)?.is_empty() {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "{}: a repository already exists here; refusing to overwrite it",
                    backend.describe()
                ),
            ));
        }
        let keys = MasterKeys::generate(&mut rand::rngs::OsRng);
        // The key goes first and the config last: a location with a config
        // is a complete repository.
        let key_id = keys::write_key(backend.as_ref(), &keys, password, &init.kdf)?;
        backend.write(layout::CONFIG, sealed_config(&keys, &config))?;
        Self::assemble(backend, keys, key_id, config, options)
    }

    /// Open the repository in `backend` with a password; with
    /// `IndexView::Effective`, bring the index cache up to date.
    pub fn open(
        backend: Arc<dyn Backend>,
        password: &[u8],
        options: &OpenOptions,
    ) -> Result<Repository> {
        SealedRepository::find(backend)?.open(password, options)
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        keys: MasterKeys,
        key_id: Id,
        config: Config,
        options: &OpenOptions,
    ) -> Result<Repository> {
        let index = IndexCache::open(
            options.index_cache_path(&config.repo_id).as_deref(),
            &config.repo_id,
        )?;
        let base_caches = options.base_caches(&config.repo_id);
        Ok(Repository {
            backend,
            keys,
            key_id,
            config,
            index: Mutex::new(index),
            lock_wait: options.lock_wait,
            index_view: options.index,
            base_caches,
            lock_lost: AtomicBool::new(false),
            resync: Mutex::new(()),
            written_index: Mutex::new(Vec::new()),
            marked: Mutex::default(),
        })
    }
}

impl Repository {
    /// The config as stored now (another client may have upgraded it since
    /// this one was opened).
    pub fn stored_config(&self) -> Result<Config> {
        open_config(&self.keys, &read_config(self.backend.as_ref())?)
    }

    /// Replace the config (`upgrade` only; the caller holds the exclusive
    /// lock). Storage replaces the object whole or not at all.
    pub fn rewrite_config(&self, config: &Config) -> Result<()> {
        config.validate()?;
        self.backend
            .write(layout::CONFIG, sealed_config(&self.keys, config))
    }
}

/// `"VLTC" | sealed box (Config)`, its payload stored raw.
fn sealed_config(keys: &MasterKeys, config: &Config) -> Vec<u8> {
    let mut body = vec![];
    body.extend_from_slice(magic::CONFIG);
    body.extend_from_slice(&keys.seal(
        BoxKind::Config,
        None,
        &payload::encode(&config.encode(), 0),
        random_nonce(),
    ));
    body
}

/// The config inside a config object's bytes.
pub(crate) fn open_config(keys: &MasterKeys, bytes: &[u8]) -> Result<Config> {
    let sealed = bytes
        .strip_prefix(magic::CONFIG.as_slice())
        .ok_or_else(|| Error::corrupt("config: wrong magic bytes"))?;
    let plain = keys
        .open(BoxKind::Config, None, sealed)
        .map_err(|e| e.at("config"))?;
    Config::decode(&payload::decode(&plain, payload::MAX_OBJECT_PLAINTEXT)?)
}

/// A repository found in storage, not yet opened: its config is read but
/// still sealed. Finding comes first so that a wrong location is reported
/// before anyone is asked for a password.
pub struct SealedRepository {
    backend: Arc<dyn Backend>,
    config_bytes: Vec<u8>,
}

impl SealedRepository {
    pub fn find(backend: Arc<dyn Backend>) -> Result<SealedRepository> {
        let config_bytes = read_config(backend.as_ref())?;
        Ok(SealedRepository {
            backend,
            config_bytes,
        })
    }

    /// Open with a password; with `IndexView::Effective`, bring the index
    /// cache up to date.
    pub fn open(self, password: &[u8], options: &OpenOptions) -> Result<Repository> {
        let SealedRepository {
            backend,
            config_bytes,
        } = self;
        let (opened, keys) = keys::open_key_for(
            backend.as_ref(),
            password,
            options.cache_dir(),
            &config_bytes,
        )?;
        let config = open_config(&keys, &config_bytes)?;
        let repo = Repository::assemble(backend, keys, opened.id, config, options)?;
        if options.index == IndexView::Effective {
            repo.sync_index()?;
        }
        Ok(repo)
    }
}

/// Open the master keys with a password: the key this host opened with last
/// time first (a note in the cache folder, never trusted beyond the order),
/// then every other key. Keys that fail the checks of `check_before_kdf`
/// are refused without a KDF run; if none opens, the password is wrong.
pub fn open_key(
    backend: &dyn Backend,
    password: &[u8],
    cache_dir: Option<&Path>,
) -> Result<OpenedKey> {
    let config_bytes = read_config(backend)?;
    keys::open_key_for(backend, password, cache_dir, &config_bytes).map(|(opened, _)| opened)
}

/// The config object's bytes. A location without one is no repository, or
/// one that lost its config if it has keys: the only place that says so.
pub(crate) fn read_config(backend: &dyn Backend) -> Result<Vec<u8>> {
    match backend.read_capped(layout::CONFIG, MAX_CONFIG_OBJECT) {
        Ok(b) => Ok(b),
        Err(e) if e.kind() == ErrorKind::NotFound && !backend.list(layout::KEYS)?.is_empty() => {
            Err(Error::corrupt(format!(
                "{}: the config object is missing (the repository has keys)",
                backend.describe()
            )))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::new(
            ErrorKind::NotARepository,
            format!(
                "{}: no vault repository here (no config object)",
                backend.describe()
            ),
        )),
        Err(e) => Err(e),
    }
}
