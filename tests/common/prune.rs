//! Harness for prune, forget and lock tests: the repository opened through
//! the library to check its index, processes held mid-run while they hold a
//! lock, and waiting for conditions with a deadline.

use std::collections::HashSet;
use std::io::{self, Read};
use std::process::{Child, Stdio};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use vault::format::BlobKind;
use vault::ops::reachable::reachable;
use vault::repo::CacheOptions;
use vault::storage::{Location, OpendalBackend};
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

/// The repository opened through the library, without a cache, so it
/// reads the index objects as they are in storage.
pub fn open_library(v: &Vault) -> Arc<Repository> {
    let backend = Arc::new(OpendalBackend::open(&Location::Local(v.repo.clone()), false).unwrap());
    Arc::new(Repository::open(backend, v.password.as_bytes(), &CacheOptions { dir: None }).unwrap())
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

/// A vault process reading `data` on stdin, held after `first` bytes until
/// the returned sender is used or dropped: it is certainly mid-run (and
/// holding its lock) while held.
pub struct Held {
    child: Option<Child>,
    release: Option<mpsc::Sender<()>>,
    feeder: Option<JoinHandle<()>>,
}

impl Held {
    pub fn start<S: AsRef<std::ffi::OsStr>>(
        v: &Vault,
        args: &[S],
        mut data: impl Read + Send + 'static,
        first: u64,
    ) -> Self {
        let mut child = v
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn vault");
        let mut stdin = child.stdin.take().unwrap();
        let (release, released) = mpsc::channel::<()>();
        let feeder = std::thread::spawn(move || {
            if io::copy(&mut (&mut data).take(first), &mut stdin).is_err() {
                return;
            }
            let _ = released.recv();
            let _ = io::copy(&mut data, &mut stdin);
        });
        Held {
            child: Some(child),
            release: Some(release),
            feeder: Some(feeder),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn release(&mut self) {
        drop(self.release.take());
        if let Some(f) = self.feeder.take() {
            f.join().unwrap();
        }
    }

    /// Let the rest of the input through and wait for the process.
    pub fn finish(mut self) -> std::process::Output {
        let child = self.child.take().unwrap();
        drop(self.release.take());
        let out = child.wait_with_output().unwrap();
        self.release();
        out
    }

    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.release();
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // A failing test must not leave a vault writing into its scratch dir.
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(self.release.take());
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
