//! An open repository: storage, master keys, config and the index cache.
//! Everything above this layer reads and writes through it.

mod chains;
mod keys;
mod lock;
mod marks;
mod objects;
mod open;
mod packs;
mod reader;
mod wal;
mod writer;

use chains::Verify;
pub use chains::{DeltaBase, Pick};
pub use keys::{local_kdf_limit, KeyInfo, OpenedKey};
pub use lock::{
    describe as describe_lock, process_alive, staleness, LockGuard, LockInfo,
    DELETES_PER_LOCK_CHECK, REFRESH_EVERY, STALE_AFTER,
};
pub use objects::{ObjectKind, SnapshotFilter};
pub(crate) use open::open_config;
pub use open::{open_key, IndexView, InitOptions, OpenOptions, SealedRepository};
pub use reader::BlobReader;
pub use wal::{Pushed, WalArchive, WalKeyFile};
pub use writer::{BlobWriter, WriteStats};

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::RngCore;

use crate::cache::{BlobLocation, IndexCache};
use crate::crypto::MasterKeys;
use crate::error::{Error, ErrorKind, Result};
use crate::format::config::Config;
use crate::format::sealed::NONCE_LEN;
use crate::format::{layout, payload, BlobKind, Id};
use crate::storage::Backend;

pub struct Repository {
    backend: Arc<dyn Backend>,
    keys: MasterKeys,
    key_id: Id,
    config: Config,
    index: Mutex<IndexCache>,
    /// How long to wait for a conflicting lock.
    lock_wait: Duration,
    /// Whether the index cache follows the index objects.
    index_view: IndexView,
    /// Set when a lock of this process was lost (`lock.rs`), cleared when
    /// a new one is taken: packs stored meanwhile may already be deleted.
    lock_lost: AtomicBool,
    /// Held while re-syncing the index after a missing pack, so that
    /// readers meeting the same gone pack sync once, not each.
    resync: Mutex<()>,
    /// Index objects this process wrote, with the packs they name.
    written_index: Mutex<Vec<(Id, Vec<Id>)>>,
    /// Packs marked for deletion (`marks.rs`), never deduplicated against.
    marked: Mutex<std::collections::HashSet<Id>>,
    /// Where per-source caches of delta bases go, and their bound.
    base_caches: Option<(std::path::PathBuf, u64)>,
}

pub(crate) fn random_nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

impl Repository {
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The folder of per-source delta base caches and their bound: only
    /// for remote storage, where reading a base back costs a download.
    pub fn base_caches(&self) -> Option<(&std::path::Path, u64)> {
        if self.backend.is_local() {
            return None;
        }
        self.base_caches.as_ref().map(|(d, n)| (d.as_path(), *n))
    }

    pub fn keys(&self) -> &MasterKeys {
        &self.keys
    }

    /// The key object this session opened.
    pub fn key_id(&self) -> Id {
        self.key_id
    }

    pub(crate) fn index(&self) -> MutexGuard<'_, IndexCache> {
        // A panic while holding the lock leaves SQLite consistent (each
        // change is a transaction), so a poisoned lock is still usable.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bring the cache to the effective index (format-spec "Index"): read
    /// the index objects it has not seen, load the entries of those no
    /// present object supersedes, and rebuild it when an object whose
    /// entries it holds is gone or superseded (prune or repair replaced it,
    /// or an old object came back). Deduplication and reads trust the cache,
    /// so it must never name a pack prune may be deleting.
    pub fn sync_index(&self) -> Result<()> {
        let stored: HashSet<Id> = self.list_objects(ObjectKind::Index)?.into_iter().collect();
        let known = self.index().index_objects()?;
        let unread: Vec<Id> = stored
            .iter()
            .filter(|id| !known.contains_key(id))
            .copied()
            .collect();
        self.load_index_objects(&unread, &stored)?;
        let superseded = self.index().superseded(&stored)?;
        let loaded = self.index().loaded_index_objects()?;
        if loaded
            .iter()
            .any(|id| !stored.contains(id) || superseded.contains(id))
        {
            self.index().unload(&stored)?;
            let effective: Vec<Id> = stored.difference(&superseded).copied().collect();
            self.load_index_objects(&effective, &stored)?;
        } else {
            // A process killed between unloading and reloading left effective
            // objects known but not loaded; load them, or their blobs would
            // look lost.
            let unloaded: Vec<Id> = stored
                .difference(&superseded)
                .filter(|id| !loaded.contains(id))
                .copied()
                .collect();
            if !unloaded.is_empty() {
                self.load_index_objects(&unloaded, &stored)?;
            }
        }
        Ok(())
    }

    /// Read `ids` and load the entries of those that no object of `stored`
    /// supersedes, as far as the cache knows (an object read later may
    /// supersede one loaded now; `sync_index` then rebuilds).
    fn load_index_objects(&self, ids: &[Id], stored: &HashSet<Id>) -> Result<()> {
        use rayon::prelude::*;
        // Decrypt in parallel, insert in batches to bound memory.
        for batch in ids.chunks(64) {
            let bodies = batch
                .par_iter()
                .map(|id| Ok((*id, self.read_index(id)?)))
                .collect::<Result<Vec<_>>>()?;
            let mut index = self.index();
            // Supersession first: a batch may hold an object and its successor.
            for (id, body) in &bodies {
                index.add_superseded_index(id, &body.supersedes)?;
            }
            let superseded = index.superseded(stored)?;
            for (id, body) in bodies.iter().filter(|(id, _)| !superseded.contains(id)) {
                index.add_index(Some(id), body)?;
            }
        }
        self.load_marks()
    }

    /// Whether the lock this process held was lost (and no new one taken).
    pub fn lock_lost(&self) -> bool {
        self.lock_lost.load(Ordering::Relaxed)
    }

    /// The index objects whose entries deduplication and reads use now.
    pub fn loaded_index_objects(&self) -> Result<HashSet<Id>> {
        self.index().loaded_index_objects()
    }

    /// How many index objects this process has written so far: a mark for
    /// `verify_index_kept`.
    pub fn index_written_mark(&self) -> usize {
        self.written_index().len()
    }

    fn written_index(&self) -> MutexGuard<'_, Vec<(Id, Vec<Id>)>> {
        self.written_index.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backstop before a backup stores its snapshot, should its lock
    /// have failed to keep prune out: every pack it indexed since `mark` is
    /// still stored. (Index objects it relied on are not compared: two
    /// prunes beside one backup may replace them twice, which a backup cannot
    /// tell from a prune that got past its lock.)
    pub fn verify_index_kept(&self, mark: usize) -> Result<()> {
        let written: Vec<(Id, Vec<Id>)> = self
            .written_index()
            .get(mark..)
            .unwrap_or_default()
            .to_vec();
        use rayon::prelude::*;
        let packs: Vec<Id> = written.into_iter().flat_map(|(_, p)| p).collect();
        let missing = packs
            .par_iter()
            .map(|p| Ok((!self.backend.exists(&layout::pack(p))?).then_some(*p)))
            .collect::<Result<Vec<Option<Id>>>>()?;
        if let Some(p) = missing.into_iter().flatten().next() {
            return Err(Error::new(
                ErrorKind::Locked,
                format!(
                    "pack {} this backup stored was deleted while it ran (a prune despite our lock?); not storing the snapshot",
                    p.short()
                ),
            ));
        }
        Ok(())
    }

    /// Record an index object this process wrote, for `verify_index_kept`.
    pub(crate) fn note_written_index(&self, id: Id, body: &crate::format::index::IndexBody) {
        self.written_index()
            .push((id, body.packs.iter().map(|p| p.id).collect()));
    }

    pub fn read_index(&self, id: &Id) -> Result<crate::format::index::IndexBody> {
        let body = self.read_object(ObjectKind::Index, id)?;
        crate::format::index::IndexBody::decode(&body)
            .map_err(|e| e.at(format!("index {}", id.short())))
    }

    pub fn blob_location(&self, kind: BlobKind, id: &Id) -> Result<Option<BlobLocation>> {
        self.index().lookup(kind, id)
    }

    /// Every pack the index names, with its size.
    pub fn indexed_packs(&self) -> Result<Vec<(Id, u64)>> {
        self.index().packs()
    }

    /// Whether a backup may reuse the stored blob: indexed, and not in a
    /// pack marked for deletion. A delta is reusable only while every link
    /// of its chain is too.
    pub fn has_blob(&self, kind: BlobKind, id: &Id) -> Result<bool> {
        match kind {
            BlobKind::Data => Ok(self.usable_chain(id)?.is_some()),
            BlobKind::Tree => Ok(self
                .index()
                .lookup(kind, id)?
                .is_some_and(|l| !self.is_marked(&l.pack))),
        }
    }

    /// Read, decrypt, decompress and verify one blob.
    pub fn read_blob(&self, kind: BlobKind, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .blob_location(kind, id)?
            .ok_or_else(|| missing_blob(id))?;
        self.read_blob_at(kind, id, &loc)
    }

    /// Read one blob from where `loc` says it is; should its pack be
    /// missing, from where the index says it is now (`relocate`).
    pub fn read_blob_at(&self, kind: BlobKind, id: &Id, loc: &BlobLocation) -> Result<Vec<u8>> {
        let (loc, boxed) = self.read_boxed(kind, id, loc)?;
        self.open_blob_at(kind, id, &loc, &boxed)
    }

    /// A blob's sealed box and where it was found.
    fn read_boxed(
        &self,
        kind: BlobKind,
        id: &Id,
        loc: &BlobLocation,
    ) -> Result<(BlobLocation, Vec<u8>)> {
        let read = |loc: &BlobLocation| {
            self.backend.read_range(
                &layout::pack(&loc.pack),
                u64::from(loc.offset),
                u64::from(loc.stored_len),
            )
        };
        match read(loc) {
            Ok(boxed) => Ok((*loc, boxed)),
            Err(e) if e.kind() == ErrorKind::NotFound => match self.relocate(kind, id, loc)? {
                Some(new) => Ok((new, read(&new).map_err(|e| pack_read_error(e, id, &new))?)),
                None => Err(pack_read_error(e, id, loc)),
            },
            Err(e) => Err(pack_read_error(e, id, loc)),
        }
    }

    /// Where a blob lies now that the pack `missing` names turned out to be
    /// gone, or `None` if nowhere else. Readers take no lock, so a prune may
    /// have repacked the blob and deleted the pack since the index was read:
    /// that is not damage. Another reader may already have brought the cache
    /// up to date; if not, this does.
    fn relocate(
        &self,
        kind: BlobKind,
        id: &Id,
        missing: &BlobLocation,
    ) -> Result<Option<BlobLocation>> {
        // check and repair read the index objects themselves.
        if self.index_view == IndexView::Unread {
            return Ok(None);
        }
        let elsewhere = |loc: Option<BlobLocation>| loc.filter(|l| l.pack != missing.pack);
        let _one_at_a_time = self.resync.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(loc) = elsewhere(self.blob_location(kind, id)?) {
            return Ok(Some(loc));
        }
        self.sync_index()?;
        Ok(elsewhere(self.blob_location(kind, id)?))
    }

    /// Open a blob's sealed box read from where `loc` says it is.
    pub(crate) fn open_blob_at(
        &self,
        kind: BlobKind,
        id: &Id,
        loc: &BlobLocation,
        boxed: &[u8],
    ) -> Result<Vec<u8>> {
        if loc.kind != kind {
            return Err(Error::corrupt(format!(
                "{}: index says {:?}, expected {:?}",
                blob_place(id, loc),
                loc.kind,
                kind
            )));
        }
        self.open_blob(kind, id, boxed, loc.raw_len, loc.base.as_ref())
            .map_err(|e| e.at(blob_place(id, loc)))
    }

    /// Decrypt a sealed blob and check that its plaintext hashes to its id.
    /// A delta (`base` given) reads its base first.
    pub fn open_blob(
        &self,
        kind: BlobKind,
        id: &Id,
        boxed: &[u8],
        raw_len: u32,
        base: Option<&Id>,
    ) -> Result<Vec<u8>> {
        let payload_bytes = self.keys.open(kind.box_kind(), Some(id), boxed)?;
        let base_bytes = match base {
            Some(b) => Some(self.read_base(b, Verify::No)?),
            None => None,
        };
        let data =
            payload::decode_with_base(&payload_bytes, raw_len as usize, base_bytes.as_deref())?;
        if data.len() != raw_len as usize || self.keys.blob_id(&data) != *id {
            // The links of a chain were not hashed on their way in (the
            // delta's own id covers them); only now that the result is wrong
            // is it worth finding out whether one of them is to blame.
            if let Some(b) = base {
                self.read_base(b, Verify::Yes)?;
            }
            return Err(Error::new(
                ErrorKind::Corrupt,
                "content does not match its id",
            ));
        }
        Ok(data)
    }

    pub fn read_tree(&self, id: &Id) -> Result<crate::format::tree::Tree> {
        let bytes = self.read_blob(BlobKind::Tree, id)?;
        crate::format::tree::Tree::decode(&bytes).map_err(|e| e.at(format!("tree {}", id.short())))
    }
}

fn blob_place(id: &Id, loc: &BlobLocation) -> String {
    format!("blob {} in pack {}", id.short(), loc.pack.short())
}

/// A blob a snapshot references but the index lacks is damage, not a typo.
pub(crate) fn missing_blob(id: &Id) -> Error {
    Error::corrupt(format!(
        "blob {} is not in the index (lost data)",
        id.short()
    ))
}

/// A pack the index names but storage lacks is damage too; other read
/// failures (network, permissions) stay what they are.
pub(crate) fn pack_read_error(e: Error, id: &Id, loc: &BlobLocation) -> Error {
    let e = if e.kind() == ErrorKind::NotFound {
        Error::corrupt(format!("pack is missing: {e}"))
    } else {
        e
    };
    e.at(blob_place(id, loc))
}

/// A fresh repository in memory with a cheap key, for unit tests.
#[cfg(test)]
pub(crate) fn in_memory() -> Arc<Repository> {
    use crate::format::keyfile::KdfParams;
    use crate::storage::{Location, OpendalBackend};
    let backend = Arc::new(OpendalBackend::open(&Location::Memory, true).unwrap());
    let options = InitOptions {
        kdf: KdfParams {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    Arc::new(Repository::init(backend, b"pw", &options, &OpenOptions::default()).unwrap())
}
