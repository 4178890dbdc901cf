//! Harness for prune, forget and lock tests: the repository opened through
//! the library to check its index, processes held mid-run while they hold a
//! lock, and waiting for conditions with a deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vault::format::BlobKind;
use vault::ops::reachable::reachable;
use vault::Repository;

use super::Vault;

/// Small chunks and packs so that tests with a few MiB of data get many
/// packs, partly shared between snapshots.
pub const SMALL_REPO: &[&str] = &[
    "--pack-size-mib",
    "1",
    "--chunk-min",
    "4096",
    "--chunk-avg",
    "16384",
    "--chunk-max",
    "65536",
];

/// `vault forget` keeping only the newest snapshot of host `old` (the
/// snapshots a test stores as the ones to forget).
pub fn forget_old_host_but_newest(v: &Vault) {
    v.ok(&[
        "forget",
        "--host",
        "old",
        "--group-by",
        "host",
        "--keep-last",
        "1",
    ]);
}

/// The repository opened through the library, without a cache, so it
/// reads the index objects as they are in storage.
pub fn open_library(v: &Vault) -> Arc<Repository> {
    Arc::new(v.library())
}

/// Until `vault check` can be called here: every tree of every snapshot
/// reads, and every blob they reach has an index entry pointing into a
/// pack that exists with the size the index records.
pub fn assert_every_used_blob_is_stored(v: &Vault) {
    let repo = open_library(v);
    let snapshots = repo.snapshots().unwrap();
    let reach = reachable(&repo, snapshots.iter().map(|(_, s)| s.root));
    assert!(
        reach.is_complete(),
        "unreadable trees: {:?}",
        reach.unreadable
    );
    let mut packs = HashSet::new();
    let used = reach
        .trees
        .iter()
        .map(|id| (BlobKind::Tree, *id))
        .chain(reach.data.iter().map(|id| (BlobKind::Data, *id)));
    for (kind, id) in used {
        let loc = repo
            .blob_location(kind, &id)
            .unwrap()
            .unwrap_or_else(|| panic!("{kind:?} blob {} is not in the index", id.short()));
        if packs.insert((loc.pack, loc.pack_size)) {
            let path = vault::format::layout::pack(&loc.pack);
            let size = repo
                .backend()
                .size(&path)
                .unwrap_or_else(|e| panic!("blob {} points into a lost pack: {e}", id.short()));
            assert_eq!(
                size,
                loc.pack_size,
                "pack {} has another size than indexed",
                loc.pack.short()
            );
        }
    }
}

/// Wait until `cond` holds, failing after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
