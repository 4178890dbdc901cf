//! The write pipeline: callers hand in plaintext blobs; worker threads
//! compress and seal them into packs; one uploader thread stores full packs
//! and, every few packs and at the end, an index object naming them.
//!
//! Memory is bounded by the channels: a few queued chunks, the pack being
//! filled and the one being uploaded (a full pack is handed over, not
//! queued: sealing waits for the upload rather than holding a third pack).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, Sender};

use super::{random_nonce, Pick, Repository};
use crate::cache::bases::BaseCache;
use crate::error::{Error, Result};
use crate::format::index::{IndexBlob, IndexBody, IndexPack};
use crate::format::pack::{self, PackEntry};
use crate::format::sealed::BoxKind;
use crate::format::{delta, layout, payload, BlobKind, Id};

/// Packs per index object while a run is going: a killed run loses at most
/// this many packs' worth of reusable data from the index.
const PACKS_PER_INDEX: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteStats {
    pub blobs_added: u64,
    /// Plaintext bytes of the blobs added.
    pub raw_bytes_added: u64,
    /// Bytes those blobs take in packs (compressed and sealed).
    pub stored_bytes_added: u64,
    pub packs_written: u64,
    pub index_objects_written: u64,
    /// Blobs added as deltas against a base, and the bytes that saved
    /// against storing them whole.
    pub delta_blobs: u64,
    pub delta_saved_bytes: u64,
}

struct Job {
    kind: BlobKind,
    id: Id,
    data: Vec<u8>,
    /// A blob this one likely resembles (the parent's at the same place),
    /// and how its base is found from it.
    like: Option<(Id, Pick)>,
}

struct FullPack {
    id: Id,
    bytes: Vec<u8>,
    index: IndexPack,
}

#[derive(Default)]
struct PackBuilder {
    data: Vec<u8>,
    entries: Vec<PackEntry>,
}

#[derive(Default)]
struct Counters {
    blobs: AtomicU64,
    raw: AtomicU64,
    stored: AtomicU64,
    packs: AtomicU64,
    indexes: AtomicU64,
    deltas: AtomicU64,
    saved: AtomicU64,
}

struct Shared {
    repo: Arc<Repository>,
    level: i32,
    packer: Mutex<PackBuilder>,
    error: Mutex<Option<Error>>,
    counters: Counters,
    /// Where delta bases are looked up first, and new data blobs
    /// kept for the next run's deltas (remote repositories).
    bases: OnceLock<BaseCache>,
}

impl Shared {
    fn fail(&self, e: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.get_or_insert(e);
    }

    fn failed(&self) -> bool {
        self.error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// The first failure, as every caller should see it (the original stays
    /// for the next caller: with files read in parallel, several may ask).
    fn first_error(&self) -> Option<Error> {
        let slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().map(|e| Error::new(e.kind(), e.to_string()))
    }

    /// Seal the header onto a filled pack and name it.
    fn finish_pack(&self, builder: PackBuilder) -> FullPack {
        let PackBuilder { mut data, entries } = builder;
        let blob_area = data.len();
        let header = self.repo.keys().seal(
            BoxKind::PackHeader,
            None,
            &payload::encode(&pack::encode_header(&entries), self.level.max(1)),
            random_nonce(),
        );
        data.extend_from_slice(&header);
        data.extend_from_slice(&pack::trailer(header.len() as u32));
        let id = Id::of_object(&data);
        let mut offset = 0u32;
        let blobs = entries
            .iter()
            .map(|e| {
                let b = IndexBlob {
                    kind: e.kind,
                    id: e.id,
                    offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                    base: e.base,
                };
                offset += e.stored_len;
                b
            })
            .collect();
        debug_assert_eq!(offset as usize, blob_area);
        FullPack {
            id,
            index: IndexPack {
                id,
                size: data.len() as u64,
                blobs,
            },
            bytes: data,
        }
    }
}

pub struct BlobWriter {
    shared: Arc<Shared>,
    /// Blobs queued by this run: not yet in the index, but not to be stored twice.
    seen: Mutex<HashSet<(BlobKind, Id)>>,
    /// Skip blobs the index already has (false when repacking: the indexed
    /// copy is the one about to be deleted).
    dedup_against_index: bool,
    jobs: Option<Sender<Job>>,
    uploads: Option<Sender<FullPack>>,
    workers: Vec<JoinHandle<()>>,
    uploader: Option<JoinHandle<()>>,
}

impl BlobWriter {
    /// `level` overrides the repository's compression level for this run.
    pub fn new(repo: Arc<Repository>, level: Option<i32>) -> Self {
        Self::start(repo, level, true)
    }

    /// A writer that stores every blob handed to it once, even those the
    /// index already lists: prune copies still-used blobs out of packs it
    /// is about to delete.
    pub fn for_repack(repo: Arc<Repository>) -> Self {
        Self::start(repo, None, false)
    }

    fn start(repo: Arc<Repository>, level: Option<i32>, dedup_against_index: bool) -> Self {
        let level = level.unwrap_or(repo.config().compression);
        let shared = Arc::new(Shared {
            repo,
            level,
            packer: Mutex::new(PackBuilder::default()),
            error: Mutex::new(None),
            counters: Counters::default(),
            bases: OnceLock::new(),
        });
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (jobs, job_rx) = bounded::<Job>(threads * 2);
        let (uploads, upload_rx) = bounded::<FullPack>(0);
        let workers = (0..threads)
            .map(|_| {
                let shared = shared.clone();
                let rx = job_rx.clone();
                let uploads = uploads.clone();
                std::thread::spawn(move || seal_worker(&shared, rx, uploads))
            })
            .collect();
        let uploader = {
            let shared = shared.clone();
            std::thread::spawn(move || upload_worker(&shared, upload_rx))
        };
        BlobWriter {
            shared,
            seen: Mutex::new(HashSet::new()),
            dedup_against_index,
            jobs: Some(jobs),
            uploads: Some(uploads),
            workers,
            uploader: Some(uploader),
        }
    }

    pub fn repo(&self) -> &Arc<Repository> {
        &self.shared.repo
    }

    /// Take delta bases from `cache` before the repository, and keep this
    /// run's data blobs there for the next. Set before the first blob.
    pub fn cache_bases(&self, cache: BaseCache) {
        let _ = self.shared.bases.set(cache);
    }

    /// The base cache in use, if any.
    pub fn base_cache(&self) -> Option<&BaseCache> {
        self.shared.bases.get()
    }

    /// Store a blob unless the repository (or this run) already has it.
    /// Returns its id at once; the data is stored by the time `finish` returns.
    /// Callable from several threads (files are read in parallel).
    pub fn save(&self, kind: BlobKind, data: Vec<u8>) -> Result<Id> {
        self.save_with(kind, data, |_| None)
    }

    /// `save`, storing the blob as a delta against exactly `base` when
    /// the repository allows its chain and it pays (a repack keeps a
    /// delta's base).
    pub fn save_against(&self, kind: BlobKind, data: Vec<u8>, base: Option<Id>) -> Result<Id> {
        self.save_with(kind, data, |_| base.map(|b| (b, Pick::Exactly)))
    }

    /// `save`, storing the blob as a delta against a link of the chain of
    /// the blob it resembles (`Repository::delta_base`), chosen once its id
    /// is known (ingest aligns a chunk with its parent using the ids it has
    /// seen), when the repository allows deltas and it pays.
    pub fn save_like(
        &self,
        kind: BlobKind,
        data: Vec<u8>,
        like: impl FnOnce(&Id) -> Option<Id>,
    ) -> Result<Id> {
        self.save_with(kind, data, |id| like(id).map(|l| (l, Pick::NewVersion)))
    }

    fn save_with(
        &self,
        kind: BlobKind,
        data: Vec<u8>,
        like: impl FnOnce(&Id) -> Option<(Id, Pick)>,
    ) -> Result<Id> {
        // Lengths are u32 in the index and the pack header (a tree of a
        // folder with tens of millions of entries could exceed that).
        if u32::try_from(data.len() + crate::format::sealed::OVERHEAD + 16).is_err() {
            return Err(Error::invalid(format!(
                "a {kind:?} blob of {} bytes is over the 4 GiB a blob may hold",
                data.len()
            )));
        }
        let id = self.shared.repo.keys().blob_id(&data);
        if let Some(e) = self.shared.first_error() {
            return Err(e);
        }
        // Asked for every blob, stored or not: a chunk the parent shares
        // tells the aligner where the two versions stand.
        let like = like(&id).filter(|(l, _)| kind == BlobKind::Data && *l != id);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if seen.contains(&(kind, id)) {
                return Ok(id);
            }
            if self.dedup_against_index && self.shared.repo.has_blob(kind, &id)? {
                if let Some(cache) = self.shared.bases.get().filter(|_| kind == BlobKind::Data) {
                    cache.keep(&id);
                }
                return Ok(id);
            }
            seen.insert((kind, id));
        }
        let sender = self.jobs.as_ref().expect("jobs channel lives until finish");
        if sender
            .send(Job {
                kind,
                id,
                data,
                like,
            })
            .is_err()
        {
            return Err(self
                .shared
                .first_error()
                .unwrap_or_else(|| Error::invalid("writer stopped")));
        }
        Ok(id)
    }

    pub fn stats(&self) -> WriteStats {
        let c = &self.shared.counters;
        WriteStats {
            blobs_added: c.blobs.load(Ordering::Relaxed),
            raw_bytes_added: c.raw.load(Ordering::Relaxed),
            stored_bytes_added: c.stored.load(Ordering::Relaxed),
            packs_written: c.packs.load(Ordering::Relaxed),
            index_objects_written: c.indexes.load(Ordering::Relaxed),
            delta_blobs: c.deltas.load(Ordering::Relaxed),
            delta_saved_bytes: c.saved.load(Ordering::Relaxed),
        }
    }

    /// Flush everything: seal the last pack, upload it, write the index.
    /// After `Ok`, every blob saved is stored and indexed.
    pub fn finish(mut self) -> Result<WriteStats> {
        self.shutdown();
        match self.shared.first_error() {
            Some(e) => Err(e),
            None => Ok(self.stats()),
        }
    }

    fn shutdown(&mut self) {
        drop(self.jobs.take());
        for w in self.workers.drain(..) {
            if w.join().is_err() {
                self.shared.fail(Error::panicked("a sealing thread"));
            }
        }
        if let Some(uploads) = self.uploads.take() {
            let last =
                std::mem::take(&mut *self.shared.packer.lock().unwrap_or_else(|p| p.into_inner()));
            if !last.entries.is_empty() && !self.shared.failed() {
                let _ = uploads.send(self.shared.finish_pack(last));
            }
        }
        if let Some(u) = self.uploader.take() {
            if u.join().is_err() {
                self.shared.fail(Error::panicked("the upload thread"));
            }
        }
    }
}

impl Drop for BlobWriter {
    /// Dropped without `finish` (an error upstream): still index whatever
    /// reached storage, so the next run can reuse it.
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn seal_worker(shared: &Shared, jobs: Receiver<Job>, uploads: Sender<FullPack>) {
    let target = shared.repo.config().pack_target as usize;
    for job in jobs {
        if shared.failed() {
            continue;
        }
        let raw_len = job.data.len() as u32;
        let (encoded, base) = encode_blob(shared, &job);
        let boxed =
            shared
                .repo
                .keys()
                .seal(job.kind.box_kind(), Some(&job.id), &encoded, random_nonce());
        // Deltas too: the next run's chains pass through them.
        if let Some(cache) = shared.bases.get().filter(|_| job.kind == BlobKind::Data) {
            cache.put(&job.id, &boxed);
        }
        let full = {
            let mut packer = shared.packer.lock().unwrap_or_else(|p| p.into_inner());
            packer.entries.push(PackEntry {
                kind: job.kind,
                id: job.id,
                stored_len: boxed.len() as u32,
                raw_len,
                base,
            });
            packer.data.extend_from_slice(&boxed);
            shared.counters.blobs.fetch_add(1, Ordering::Relaxed);
            shared
                .counters
                .raw
                .fetch_add(u64::from(raw_len), Ordering::Relaxed);
            shared
                .counters
                .stored
                .fetch_add(boxed.len() as u64, Ordering::Relaxed);
            (packer.data.len() >= target).then(|| std::mem::take(&mut *packer))
        };
        if let Some(full) = full {
            if uploads.send(shared.finish_pack(full)).is_err() {
                return;
            }
        }
    }
}

/// The blob's payload, as a delta when it has a usable base and the delta
/// is worth it (`delta::worth_it`), else whole. A base that cannot be read
/// only costs the saving: the blob is stored whole.
fn encode_blob(shared: &Shared, job: &Job) -> (Vec<u8>, Option<Id>) {
    let whole = payload::encode(&job.data, shared.level);
    let max_links = shared.repo.config().delta_links();
    let Some(like) = job.like.filter(|_| max_links > 0) else {
        return (whole, None);
    };
    let Some(base) = shared
        .repo
        .delta_base(&like.0, shared.bases.get(), max_links, like.1)
    else {
        return (whole, None);
    };
    // Format 2 readers know only one-link chains, with no generations.
    let generation = (max_links > 1).then_some(base.generation);
    match delta::encode(&job.data, &base.bytes, shared.level, generation) {
        Some(d) if delta::worth_it(d.len(), whole.len()) => {
            let c = &shared.counters;
            c.deltas.fetch_add(1, Ordering::Relaxed);
            c.saved
                .fetch_add((whole.len() - d.len()) as u64, Ordering::Relaxed);
            (d, Some(base.id))
        }
        _ => (whole, None),
    }
}

fn upload_worker(shared: &Shared, packs: Receiver<FullPack>) {
    let mut pending: Vec<IndexPack> = Vec::new();
    let flush = |pending: &mut Vec<IndexPack>| {
        // Without our lock a prune may have deleted these packs as
        // unindexed: an index naming them would name missing packs. Left
        // unindexed, they are garbage for the next prune.
        if pending.is_empty() || shared.repo.lock_lost() {
            return;
        }
        let body = IndexBody {
            supersedes: vec![],
            packs: std::mem::take(pending),
        };
        match shared.repo.save_index(&body) {
            Ok(_) => {
                shared.counters.indexes.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => shared.fail(e.at("write index")),
        }
    };
    for p in packs {
        if shared.failed() {
            continue;
        }
        let size = p.index.size;
        match shared.repo.backend().write(&layout::pack(&p.id), p.bytes) {
            Ok(()) => {
                shared.counters.packs.fetch_add(1, Ordering::Relaxed);
                crate::system::interrupt::note_pack_stored(size);
                pending.push(p.index);
                if pending.len() >= PACKS_PER_INDEX {
                    flush(&mut pending);
                }
            }
            Err(e) => shared.fail(e),
        }
    }
    // Packs that reached storage get indexed even when the run failed.
    flush(&mut pending);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn a_blob_over_4_gib_is_refused_before_it_is_hashed_or_sealed() {
        let writer = BlobWriter::new(crate::repo::in_memory(), None);
        // Zeroed on demand: the pages are never touched when the length is
        // checked first, so the test costs no memory.
        let data = vec![0u8; u32::MAX as usize + 1];
        let err = writer.save(BlobKind::Tree, data).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("over the 4 GiB"), "{err}");
        let stats = writer.finish().unwrap();
        assert_eq!((stats.blobs_added, stats.packs_written), (0, 0));
    }
}
