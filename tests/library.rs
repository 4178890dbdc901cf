//! The library API against real backends: a local folder behind a backend
//! that starts failing writes, and the in-memory backend.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use vault::format::config::ChunkerParams;
use vault::format::keyfile::KdfParams;
use vault::format::BlobKind;
use vault::ingest::stream_set::StreamSet;
use vault::ops::reachable::reachable;
use vault::ops::restore::{restore, RestoreOptions};
use vault::ops::snapshot::{snapshot_files, snapshot_stream, SnapshotOptions};
use vault::ops::walk::{resolve, Resolved};
use vault::progress::Progress;
use vault::repo::{InitOptions, ObjectKind, OpenOptions};
use vault::storage::{Backend, FaultyBackend, Location, OpendalBackend};
use vault::{ErrorKind, Repository};

const PW: &[u8] = b"library password";

fn fast_options() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        },
        pack_target: 1 << 20,
        ..InitOptions::default()
    }
}

fn source_tree(dir: &Path) -> PathBuf {
    let src = dir.join("src");
    write_gen(&src.join("big-1.bin"), Gen::random(1, 3 * MIB));
    write_gen(&src.join("big-2.bin"), Gen::mixed(2, 3 * MIB));
    write(&src.join("small.txt"), b"small\n");
    write(&src.join("sub/empty"), b"");
    std::os::unix::fs::symlink("small.txt", src.join("link")).unwrap();
    src
}

fn restore_all(repo: &Repository, root: &vault::Id, src: &Path, target: &Path) {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        sub_path: Some(std::os::unix::ffi::OsStrExt::as_bytes(src.as_os_str()).to_vec()),
        ..RestoreOptions::default()
    };
    let outcome = restore(repo, root, &opts, &Progress::default()).unwrap();
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(!outcome.damaged);
}

#[test]
fn failing_writes_fail_the_snapshot_cleanly_and_the_repository_recovers() {
    within_limit("the faulty-backend runs", failing_writes_body);
}

fn failing_writes_body() {
    let scratch = tempfile::tempdir().unwrap();
    let src = source_tree(scratch.path());
    let mut failures = 0;
    for allowed in 0u64.. {
        assert!(allowed < 64, "the snapshot never succeeded");
        let dir = scratch.path().join(format!("run-{allowed}"));
        let cache = OpenOptions {
            cache_dir: Some(dir.join("cache")),
            ..OpenOptions::default()
        };
        let location = Location::Local(dir.join("repo"));
        let inner: Arc<dyn Backend> = Arc::new(OpendalBackend::open(&location, true).unwrap());
        Repository::init(inner.clone(), PW, &fast_options(), &cache).unwrap();

        let faulty = Arc::new(FaultyBackend::failing_writes_after(inner.clone(), allowed));
        let repo = Arc::new(Repository::open(faulty, PW, &cache).unwrap());
        let result = snapshot_files(
            &repo,
            std::slice::from_ref(&src),
            &SnapshotOptions::default(),
            &Progress::default(),
        );
        drop(repo);

        // Reopen without faults, whatever happened.
        let repo = Arc::new(Repository::open(inner.clone(), PW, &cache).unwrap());
        let stored = repo.list_objects(ObjectKind::Snapshot).unwrap();
        match result {
            Err(e) => {
                failures += 1;
                assert_eq!(e.kind(), ErrorKind::Io, "run {allowed}: {e:?}");
                assert!(
                    e.to_string().contains("injected failure"),
                    "run {allowed}: {e}"
                );
                assert!(
                    stored.is_empty(),
                    "run {allowed}: a failed snapshot left a snapshot object"
                );
                assert!(repo.snapshots().unwrap().is_empty());
            }
            Ok(outcome) => {
                assert_eq!(stored, vec![outcome.id]);
                assert!(
                    failures >= 3,
                    "a snapshot of 6 MiB in 1 MiB packs needed only {allowed} writes"
                );
                let target = dir.join("restored");
                restore_all(&repo, &outcome.snapshot.root, &src, &target);
                assert_same_contents(&src, &target);
                return;
            }
        }

        // A full snapshot after the failure works and restores exactly.
        let progress = Progress::default();
        let outcome = snapshot_files(
            &repo,
            std::slice::from_ref(&src),
            &SnapshotOptions::default(),
            &progress,
        )
        .unwrap_or_else(|e| panic!("run {allowed}: snapshot after the failure: {e:?}"));
        assert_eq!(outcome.snapshot.summary.files, 4);
        assert_eq!(
            repo.list_objects(ObjectKind::Snapshot).unwrap(),
            vec![outcome.id]
        );
        let target = dir.join("restored");
        restore_all(&repo, &outcome.snapshot.root, &src, &target);
        assert_same_contents(&src, &target);
    }
}

#[test]
fn in_memory_repository_round_trip() {
    within_limit("the in-memory round trip", in_memory_body);
}

fn in_memory_body() {
    let scratch = tempfile::tempdir().unwrap();
    let src = source_tree(scratch.path());
    let backend: Arc<dyn Backend> =
        Arc::new(OpendalBackend::open(&Location::Memory, true).unwrap());
    let options = InitOptions {
        chunker: ChunkerParams {
            min: 4096,
            avg: 16384,
            max: 65536,
            ..ChunkerParams::default()
        },
        ..fast_options()
    };
    let repo =
        Arc::new(Repository::init(backend.clone(), PW, &options, &OpenOptions::default()).unwrap());

    let files = snapshot_files(
        &repo,
        std::slice::from_ref(&src),
        &SnapshotOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    assert_eq!(files.snapshot.summary.files, 4);
    assert!(files.warnings.is_empty());
    assert!(files.stats.packs_written >= 3, "{:?}", files.stats);
    let stream_data = Gen::mixed(9, 700_000).bytes();
    let stream = snapshot_stream(
        &repo,
        "stream.bin",
        &stream_data[..],
        "stdin",
        &SnapshotOptions {
            tags: vec!["mem".into()],
            ..SnapshotOptions::default()
        },
        &Progress::default(),
    )
    .unwrap();
    drop(repo);

    // Everything lives in the backend: a new session sees it all.
    let repo = Repository::open(backend.clone(), PW, &OpenOptions::default()).unwrap();
    let snaps = repo.snapshots().unwrap();
    let ids: Vec<_> = snaps.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&files.id) && ids.contains(&stream.id));
    assert_eq!(
        repo.load_snapshot(&stream.id).unwrap().tags,
        vec!["mem".to_string()]
    );

    // Nothing was ever deleted, so the two snapshots reach every blob stored.
    let reach = reachable(&repo, [files.snapshot.root, stream.snapshot.root]);
    assert!(reach.is_complete());
    let (mut trees, mut data) = (HashSet::new(), HashSet::new());
    for index in repo.list_objects(ObjectKind::Index).unwrap() {
        for pack in repo.read_index(&index).unwrap().packs {
            for blob in pack.blobs {
                match blob.kind {
                    BlobKind::Tree => trees.insert(blob.id),
                    BlobKind::Data => data.insert(blob.id),
                };
            }
        }
    }
    assert_eq!(reach.trees, trees);
    assert_eq!(reach.data, data);
    assert!(reachable(&repo, [files.snapshot.root]).data.len() < data.len());

    let target = scratch.path().join("restored");
    restore_all(&repo, &files.snapshot.root, &src, &target);
    assert_same_contents(&src, &target);

    let entry = match resolve(&repo, &stream.snapshot.root, b"/stream.bin").unwrap() {
        Resolved::Entry { entry, .. } => entry,
        Resolved::Root(_) => unreachable!(),
    };
    assert!(
        entry.chunks().len() > 10,
        "small chunker settings make many chunks"
    );
    let mut back = Vec::new();
    for c in entry.chunks() {
        back.extend_from_slice(&repo.read_blob(BlobKind::Data, &c.id).unwrap());
    }
    assert!(back == stream_data, "stream read back differs");

    // Wrong password and a second init are refused with their own kinds.
    let err = Repository::open(backend.clone(), b"wrong", &OpenOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::WrongPassword);
    let err = Repository::init(
        backend.clone(),
        PW,
        &fast_options(),
        &OpenOptions::default(),
    )
    .err()
    .unwrap();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    // And an empty memory location is no repository.
    let empty: Arc<dyn Backend> = Arc::new(OpendalBackend::open(&Location::Memory, true).unwrap());
    let err = Repository::open(empty, PW, &OpenOptions::default())
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::NotARepository);
}

/// Any byte stream, with any small chunker settings' boundaries, comes back
/// exactly; storing it again adds no data blobs.
#[test]
fn streams_round_trip_through_a_memory_repository() {
    within_limit("the stream property test", streams_body);
}

fn streams_body() {
    let backend: Arc<dyn Backend> =
        Arc::new(OpendalBackend::open(&Location::Memory, true).unwrap());
    let options = InitOptions {
        chunker: ChunkerParams {
            min: 64,
            avg: 256,
            max: 1024,
            ..ChunkerParams::default()
        },
        ..fast_options()
    };
    let repo = Arc::new(Repository::init(backend, PW, &options, &OpenOptions::default()).unwrap());
    let streams = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..20_000),
        (any::<u64>(), 0u64..200_000).prop_map(|(seed, len)| Gen::mixed(seed, len).bytes()),
        (any::<u8>(), 0usize..50_000).prop_map(|(b, len)| vec![b; len]),
    ];
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        ..ProptestConfig::default()
    });
    runner
        .run(&streams, |data| {
            let store = || {
                snapshot_stream(
                    &repo,
                    "s",
                    &data[..],
                    "stdin",
                    &SnapshotOptions::default(),
                    &Progress::default(),
                )
                .unwrap()
            };
            let first = store();
            prop_assert_eq!(first.snapshot.summary.bytes_read, data.len() as u64);
            let entry = match resolve(&repo, &first.snapshot.root, b"s").unwrap() {
                Resolved::Entry { entry, .. } => entry,
                Resolved::Root(_) => unreachable!(),
            };
            prop_assert_eq!(entry.size, data.len() as u64);
            prop_assert_eq!(
                entry.chunks().iter().map(|c| u64::from(c.len)).sum::<u64>(),
                data.len() as u64
            );
            prop_assert!(entry.chunks().iter().all(|c| c.len <= 1024));
            let mut back = Vec::with_capacity(data.len());
            for c in entry.chunks() {
                back.extend_from_slice(&repo.read_blob(BlobKind::Data, &c.id).unwrap());
            }
            prop_assert!(
                back == data,
                "stream of {} bytes came back different",
                data.len()
            );

            let second = store();
            // Only the new snapshot's tree can be new.
            prop_assert!(second.stats.blobs_added <= 1, "{:?}", second.stats);
            prop_assert_eq!(
                second.snapshot.root == first.snapshot.root,
                second.stats.blobs_added == 0
            );
            Ok(())
        })
        .unwrap();
}

#[test]
fn locations_parse_and_a_missing_folder_is_not_a_repository() {
    let scratch = tempfile::tempdir().unwrap();
    let err = OpendalBackend::open(&Location::Local(scratch.path().join("nope")), false)
        .err()
        .unwrap();
    assert_eq!(err.kind(), ErrorKind::NotARepository);
    assert_eq!(Location::parse("memory:").unwrap(), Location::Memory);
    assert_eq!(
        Location::parse("local:/srv/r").unwrap(),
        Location::Local(PathBuf::from("/srv/r"))
    );
    let err = Location::parse("ftp://host/repo").err().unwrap();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
}

/// Streams written by parallel workers become files in folders; a set that
/// is dropped instead of committed records no snapshot.
#[test]
fn stream_sets_build_folders_and_commit_only_when_asked() {
    within_limit("the stream set test", stream_set_body);
}

fn stream_set_body() {
    let backend: Arc<dyn Backend> =
        Arc::new(OpendalBackend::open(&Location::Memory, true).unwrap());
    let repo =
        Arc::new(Repository::init(backend, PW, &fast_options(), &OpenOptions::default()).unwrap());
    let opts = SnapshotOptions::default();
    let streams: Vec<(&str, Vec<u8>)> = vec![
        ("globals.sql", b"CREATE ROLE app;\n".to_vec()),
        ("shop/pre-data.sql", b"CREATE TABLE t ();\n".to_vec()),
        ("shop/data/public.orders", Gen::mixed(3, 2 * MIB).bytes()),
        ("shop/data/public.users", Gen::random(4, 300_000).bytes()),
        ("shop/data/public.empty", Vec::new()),
    ];
    let set = StreamSet::begin(&repo, "postgres", vec![b"shop".to_vec()], &opts).unwrap();
    std::thread::scope(|s| {
        for (path, data) in &streams {
            let set = &set;
            s.spawn(move || set.add(path, &data[..], &Progress::default()).unwrap());
        }
    });
    let err = set.add("shop", &b""[..], &Progress::default()).err();
    assert!(
        err.is_none(),
        "a name can be added; the clash shows at commit"
    );
    let err = set.commit(&opts).err().unwrap();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(repo.snapshots().unwrap().is_empty());

    let set = StreamSet::begin(&repo, "postgres", vec![b"shop".to_vec()], &opts).unwrap();
    for (path, data) in &streams {
        assert_eq!(
            set.add(path, &data[..], &Progress::default()).unwrap(),
            data.len() as u64
        );
    }
    assert_eq!(
        set.add("shop/../x", &b""[..], &Progress::default())
            .err()
            .unwrap()
            .kind(),
        ErrorKind::InvalidInput
    );
    let outcome = set.commit(&opts).unwrap();
    assert_eq!(outcome.snapshot.summary.files, 5);
    assert_eq!(outcome.snapshot.summary.dirs, 2);
    assert_eq!(outcome.snapshot.source, "postgres");
    for (path, data) in &streams {
        let entry = match resolve(&repo, &outcome.snapshot.root, path.as_bytes()).unwrap() {
            Resolved::Entry { entry, .. } => entry,
            Resolved::Root(_) => unreachable!(),
        };
        assert_eq!(entry.size, data.len() as u64, "{path}");
        let mut back = Vec::new();
        for c in entry.chunks() {
            back.extend_from_slice(&repo.read_blob(BlobKind::Data, &c.id).unwrap());
        }
        assert!(&back == data, "{path} reads back differently");
    }
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}
