//! Random access into a file's content: which chunks cover a byte range,
//! and a small cache of decrypted chunks shared by every open file. A
//! chunk being fetched is fetched once: other readers of it wait for that
//! fetch instead of starting their own.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::error::Result;
use crate::format::tree::ChunkRef;
use crate::format::Id;

/// Where each chunk of a file starts: `starts[i]` is the offset of chunk
/// `i`, and the last element is the end of the content.
pub fn chunk_starts(chunks: &[ChunkRef]) -> Vec<u64> {
    let mut starts = Vec::with_capacity(chunks.len() + 1);
    let mut at = 0u64;
    starts.push(0);
    for c in chunks {
        at += u64::from(c.len);
        starts.push(at);
    }
    starts
}

/// The chunks holding bytes `offset..end` (`starts` from `chunk_starts`).
pub fn chunks_covering(starts: &[u64], offset: u64, end: u64) -> Range<usize> {
    let count = starts.len().saturating_sub(1);
    if offset >= end {
        return 0..0;
    }
    // First chunk whose end lies past offset.
    let first = starts[1..].partition_point(|&chunk_end| chunk_end <= offset);
    let last = starts[1..].partition_point(|&chunk_end| chunk_end < end);
    first.min(count)..(last + 1).min(count)
}

#[derive(Debug, Default)]
pub struct Counters {
    /// Chunks read from the repository (cache misses).
    pub fetched: AtomicU64,
    pub fetched_bytes: AtomicU64,
    /// Chunk lookups served from the cache.
    pub hits: AtomicU64,
}

type Fetched = std::result::Result<Arc<Vec<u8>>, String>;

struct Pending {
    done: Mutex<Option<Fetched>>,
    ready: Condvar,
}

enum Slot {
    Ready { data: Arc<Vec<u8>>, used: u64 },
    Loading(Arc<Pending>),
}

struct Slots {
    map: HashMap<Id, Slot>,
    bytes: u64,
    clock: u64,
}

pub struct ChunkCache {
    slots: Mutex<Slots>,
    capacity: u64,
    pub counters: Arc<Counters>,
}

impl ChunkCache {
    /// Keeps up to `capacity` bytes of plaintext chunks.
    pub fn new(capacity: u64) -> Self {
        ChunkCache {
            slots: Mutex::new(Slots {
                map: HashMap::new(),
                bytes: 0,
                clock: 0,
            }),
            capacity,
            counters: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Is the chunk cached or being fetched?
    pub fn has(&self, id: &Id) -> bool {
        self.lock().map.contains_key(id)
    }

    /// The chunk's plaintext, from the cache or from `fetch`. An error is
    /// not cached: the next read tries again.
    pub fn get(&self, id: &Id, fetch: impl FnOnce() -> Result<Vec<u8>>) -> Fetched {
        let pending = {
            let mut slots = self.lock();
            slots.clock += 1;
            let now = slots.clock;
            match slots.map.get_mut(id) {
                Some(Slot::Ready { data, used }) => {
                    *used = now;
                    self.counters.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(data.clone());
                }
                Some(Slot::Loading(p)) => Some(p.clone()),
                None => {
                    slots.map.insert(
                        *id,
                        Slot::Loading(Arc::new(Pending {
                            done: Mutex::new(None),
                            ready: Condvar::new(),
                        })),
                    );
                    None
                }
            }
        };
        if let Some(p) = pending {
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            let mut done = p.done.lock().unwrap_or_else(|e| e.into_inner());
            while done.is_none() {
                done = p.ready.wait(done).unwrap_or_else(|e| e.into_inner());
            }
            return done.clone().unwrap_or_else(|| Err("fetch vanished".into()));
        }
        let result: Fetched = fetch().map(Arc::new).map_err(|e| e.to_string());
        if let Ok(data) = &result {
            self.counters.fetched.fetch_add(1, Ordering::Relaxed);
            self.counters
                .fetched_bytes
                .fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        let mut slots = self.lock();
        let now = slots.clock;
        let waiting = match slots.map.remove(id) {
            Some(Slot::Loading(p)) => Some(p),
            _ => None,
        };
        if let Ok(data) = &result {
            slots.bytes += data.len() as u64;
            slots.map.insert(
                *id,
                Slot::Ready {
                    data: data.clone(),
                    used: now,
                },
            );
            self.evict(&mut slots, id);
        }
        drop(slots);
        if let Some(p) = waiting {
            *p.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(result.clone());
            p.ready.notify_all();
        }
        result
    }

    /// Drop the least recently used chunks (never `keep`) until under
    /// capacity. Scanning is fine: the cache holds tens of chunks.
    fn evict(&self, slots: &mut Slots, keep: &Id) {
        while slots.bytes > self.capacity {
            let oldest = slots
                .map
                .iter()
                .filter_map(|(id, s)| match s {
                    Slot::Ready { used, data } if id != keep => Some((*used, *id, data.len())),
                    _ => None,
                })
                .min();
            let Some((_, id, len)) = oldest else { return };
            slots.map.remove(&id);
            slots.bytes -= len as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(lens: &[u32]) -> Vec<ChunkRef> {
        lens.iter()
            .map(|&len| ChunkRef {
                id: Id::default(),
                len,
            })
            .collect()
    }

    #[test]
    fn ranges_cover_exactly_the_chunks_needed() {
        let starts = chunk_starts(&refs(&[10, 20, 30]));
        assert_eq!(starts, vec![0, 10, 30, 60]);
        assert_eq!(chunks_covering(&starts, 0, 1), 0..1);
        assert_eq!(chunks_covering(&starts, 9, 10), 0..1);
        assert_eq!(chunks_covering(&starts, 9, 11), 0..2);
        assert_eq!(chunks_covering(&starts, 10, 30), 1..2);
        assert_eq!(chunks_covering(&starts, 29, 31), 1..3);
        assert_eq!(chunks_covering(&starts, 0, 60), 0..3);
        assert_eq!(chunks_covering(&starts, 0, 600), 0..3);
        assert_eq!(chunks_covering(&starts, 60, 70), 3..3);
        assert_eq!(chunks_covering(&starts, 5, 5), 0..0);
        assert_eq!(chunks_covering(&[0], 0, 5), 0..0);
    }

    #[test]
    fn cache_fetches_once_and_evicts_the_least_recent() {
        let cache = ChunkCache::new(25);
        let id = |n: u8| Id::from_bytes([n; 32]);
        for n in 0..2 {
            let got = cache.get(&id(n), || Ok(vec![n; 10])).unwrap();
            assert_eq!(*got, vec![n; 10]);
        }
        // A hit refreshes chunk 0, so adding chunk 2 evicts chunk 1.
        cache.get(&id(0), || panic!("chunk 0 is cached")).unwrap();
        cache.get(&id(2), || Ok(vec![2; 10])).unwrap();
        assert!(cache.has(&id(0)) && !cache.has(&id(1)) && cache.has(&id(2)));
        assert_eq!(cache.counters.fetched.load(Ordering::Relaxed), 3);
        assert_eq!(cache.counters.hits.load(Ordering::Relaxed), 1);
        // Errors are not cached.
        assert!(cache
            .get(&id(3), || Err(crate::Error::corrupt("bad")))
            .is_err());
        assert!(!cache.has(&id(3)));
    }

    #[test]
    fn concurrent_readers_of_one_chunk_share_one_fetch() {
        let cache = Arc::new(ChunkCache::new(1 << 20));
        let fetches = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (cache, fetches) = (cache.clone(), fetches.clone());
                std::thread::spawn(move || {
                    cache
                        .get(&Id::default(), || {
                            fetches.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(std::time::Duration::from_millis(50));
                            Ok(vec![1; 100])
                        })
                        .unwrap()
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().len(), 100);
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
