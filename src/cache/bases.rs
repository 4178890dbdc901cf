//! The local cache of delta bases for remote repositories: the sealed boxes
//! of a source's recent data blobs, one file each, so that an hourly
//! snapshot finds its parent's bytes on local disk instead of downloading
//! them. Files hold the boxes exactly as stored in packs (compressed and
//! encrypted, never plaintext); the repository opens and verifies every box
//! it takes from here, so a damaged or deleted cache only costs downloads.
//! The folder is bounded: past its size, the least recently used files go.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::format::Id;

/// What eviction leaves, as a share of the bound: evicting a little more
/// than needed spares a folder listing on every new file.
const EVICT_TO_PERCENT: u64 = 90;

pub struct BaseCache {
    dir: PathBuf,
    bound: u64,
    /// Bytes in the folder as far as this process knows; eviction recounts.
    used: Mutex<u64>,
    /// Files this process wrote or found, and those it found unusable.
    counts: Counts,
}

/// How a run used the cache, for tests and summaries.
#[derive(Debug, Default)]
pub struct Counts {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stored: AtomicU64,
    pub rejected: AtomicU64,
}

impl BaseCache {
    /// The cache in `dir`, holding at most about `bound` bytes. `None` when
    /// the folder cannot be made: the cache is never needed.
    pub fn open(dir: PathBuf, bound: u64) -> Option<BaseCache> {
        if bound == 0 {
            return None;
        }
        fs::create_dir_all(&dir).ok()?;
        let used = listing(&dir).iter().map(|f| f.len).sum();
        Some(BaseCache {
            dir,
            bound,
            used: Mutex::new(used),
            counts: Counts::default(),
        })
    }

    pub fn counts(&self) -> &Counts {
        &self.counts
    }

    fn path(&self, id: &Id) -> PathBuf {
        self.dir.join(id.to_hex())
    }

    /// The box cached for `id`, marked as just used. The caller verifies it.
    pub fn get(&self, id: &Id) -> Option<Vec<u8>> {
        let path = self.path(id);
        match fs::read(&path) {
            Ok(boxed) => {
                self.counts.hits.fetch_add(1, Ordering::Relaxed);
                mark_used(&path);
                Some(boxed)
            }
            Err(_) => {
                self.counts.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A cached box failed verification: drop it so the next run fetches
    /// a good copy.
    pub fn reject(&self, id: &Id) {
        self.counts.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = fs::remove_file(self.path(id));
    }

    /// A blob the parent of the next run will hold is still wanted: keep it
    /// from eviction a while longer (deduplicated chunks are never read, so
    /// nothing else marks them).
    pub fn keep(&self, id: &Id) {
        mark_used(&self.path(id));
    }

    /// Cache the box of `id`. Failures are ignored: the cache is optional.
    pub fn put(&self, id: &Id, boxed: &[u8]) {
        let path = self.path(id);
        if path.exists() {
            mark_used(&path);
            return;
        }
        // Written aside and renamed, so a reader never sees half a box
        // (one that did would only reject it).
        let tmp = self.dir.join(format!(
            "{}.{}.{:?}.tmp",
            id.to_hex(),
            std::process::id(),
            std::thread::current().id()
        ));
        if fs::write(&tmp, boxed).is_err() || fs::rename(&tmp, &path).is_err() {
            let _ = fs::remove_file(&tmp);
            return;
        }
        self.counts.stored.fetch_add(1, Ordering::Relaxed);
        let over = {
            let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
            *used += boxed.len() as u64;
            *used > self.bound
        };
        if over {
            self.evict();
        }
    }

    /// Delete the least recently used files until the folder is back
    /// under its bound. Other processes may share the folder; the listing
    /// is the truth, and a file they delete first is simply gone.
    fn evict(&self) {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        let mut files = listing(&self.dir);
        let mut total: u64 = files.iter().map(|f| f.len).sum();
        let target = self.bound / 100 * EVICT_TO_PERCENT;
        files.sort_unstable_by_key(|f| f.used);
        for f in files {
            if total <= target {
                break;
            }
            if fs::remove_file(&f.path).is_ok() {
                total -= f.len;
            }
        }
        *used = total;
    }
}

struct CachedFile {
    path: PathBuf,
    len: u64,
    used: SystemTime,
}

fn listing(dir: &Path) -> Vec<CachedFile> {
    let Ok(entries) = fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file().then(|| CachedFile {
                path: e.path(),
                len: meta.len(),
                used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            })
        })
        .collect()
}

/// Recency is the file's modification time: it survives the process, and
/// needs no index of its own that could disagree with the folder.
fn mark_used(path: &Path) {
    if let Ok(f) = fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> Id {
        Id::from_bytes([b; 32])
    }

    #[test]
    fn what_is_put_is_got_until_it_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BaseCache::open(dir.path().join("b"), 1 << 20).unwrap();
        assert_eq!(cache.get(&id(1)), None);
        cache.put(&id(1), b"sealed box");
        assert_eq!(cache.get(&id(1)).as_deref(), Some(&b"sealed box"[..]));
        cache.reject(&id(1));
        assert_eq!(cache.get(&id(1)), None);
        let c = cache.counts();
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!((n(&c.hits), n(&c.misses), n(&c.stored)), (1, 2, 1));
    }

    #[test]
    fn past_its_bound_the_least_recently_used_files_go() {
        let dir = tempfile::tempdir().unwrap();
        let cache = BaseCache::open(dir.path().join("b"), 1000).unwrap();
        let old = SystemTime::now() - std::time::Duration::from_secs(3600);
        for b in 0..4u8 {
            cache.put(&id(b), &[b; 240]);
            // Spell out the order of use: file times may be coarse.
            let f = fs::File::options().append(true).open(cache.path(&id(b)));
            f.unwrap()
                .set_modified(old + std::time::Duration::from_secs(u64::from(b)))
                .unwrap();
        }
        cache.keep(&id(0)); // used again: now the newest
        cache.put(&id(9), &[9; 240]);
        let left: Vec<bool> = [0, 1, 2, 3, 9]
            .iter()
            .map(|b| cache.path(&id(*b)).exists())
            .collect();
        // 1200 bytes over a bound of 1000: the two oldest go, down to 900.
        assert_eq!(left, [true, false, false, true, true]);
        let total: u64 = listing(&cache.dir).iter().map(|f| f.len).sum();
        assert!(total <= 1000, "{total}");
    }

    #[test]
    fn a_zero_bound_is_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        assert!(BaseCache::open(dir.path().join("b"), 0).is_none());
    }
}
