//! Deduplication and reads use the effective index: index objects another
//! present one supersedes (a prune killed before deleting them, or old
//! objects brought back by a storage restore) name packs prune deletes.

use crate::common;

use std::collections::HashSet;
use std::fs;

use common::prune::*;
use common::*;
use vault::format::BlobKind;
use vault::ops::prune::{new_index_bodies, plan_prune, PruneRules};
use vault::repo::BlobReader;

const LEN: u64 = 1 << 20;

/// Stream snapshots `(name, seed, length)` recorded from the host `old`.
fn store_from_old_host(v: &Vault, streams: &[(&str, u64, u64)]) {
    for &(name, seed, len) in streams {
        let out = run_with_stdin(
            v.cmd(&[
                "snapshot",
                "--stdin",
                "--name",
                name,
                "--record-host",
                "old",
            ]),
            Gen::random(seed, len),
        );
        assert_success(&out, name);
    }
}

/// A forgotten snapshot of `Gen::random(1, LEN)` whose packs prune would
/// delete, and a kept one.
fn forgotten_data() -> Vault {
    let v = Vault::init_with(SMALL_REPO);
    store_from_old_host(&v, &[("a", 1, LEN), ("b", 2, 200 << 10)]);
    forget_old_host_but_newest(&v);
    v
}

/// Back up the forgotten data again, then prove that everything reads.
fn back_up_again_and_check(v: &Vault) {
    let again = v.snapshot_stdin("again", Gen::random(1, LEN));
    v.ok(&["check", "--read-data"]);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    v.ok(&["check", "--read-data"]);
    v.assert_dump_matches(json_str(&again, "snapshot"), None, Gen::random(1, LEN));
}

#[test]
fn a_backup_after_prune_was_killed_past_its_new_index_stores_the_data_again() {
    let v = forgotten_data();
    // Prune's steps up to its superseding index, as if killed right after.
    {
        let repo = open_library(&v);
        let rules = PruneRules {
            max_unused: 0.0,
            max_repack_bytes: None,
        };
        let plan = plan_prune(&repo, &rules).unwrap();
        assert!(plan.rewrite_index && !plan.delete.is_empty());
        for body in new_index_bodies(&plan, 50_000) {
            repo.save_index(&body).unwrap();
        }
    }
    back_up_again_and_check(&v);
}

#[test]
fn superseded_index_objects_that_reappear_are_ignored() {
    let v = forgotten_data();
    let saved = v.dir("saved-index");
    let old: Vec<_> = v.objects("index");
    let index = v.repo.join("index");
    for p in &old {
        fs::copy(index.join(p), saved.join(p)).unwrap();
    }
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    // A storage restore brings the superseded objects back.
    for p in &old {
        fs::copy(saved.join(p), index.join(p)).unwrap();
    }
    back_up_again_and_check(&v);
    // And a cache built from scratch sees the same.
    fs::remove_dir_all(&v.cache).unwrap();
    fs::create_dir(&v.cache).unwrap();
    let again = v.snapshot_stdin("fresh-cache", Gen::random(1, LEN));
    v.assert_dump_matches(json_str(&again, "snapshot"), None, Gen::random(1, LEN));
    v.ok(&["check", "--read-data"]);
}

#[test]
fn a_reader_whose_index_predates_a_prune_finds_repacked_blobs() {
    let v = Vault::init_with(SMALL_REPO);
    // `b` shares the start of `a`: once `a` is forgotten, the pack they
    // share is partly unused and prune repacks it.
    store_from_old_host(&v, &[("a", 1, 3 * LEN), ("b", 1, 600 << 10)]);
    let stale = open_library(&v);
    let (_, b) = stale.find_snapshot("latest", &Default::default()).unwrap();
    forget_old_host_but_newest(&v);
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);

    let root = stale.read_tree(&b.root).unwrap();
    let chunks: Vec<_> = root
        .entries
        .iter()
        .flat_map(|e| e.chunks().to_vec())
        .collect();
    let stored: HashSet<String> = v
        .objects("data")
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let gone = chunks
        .iter()
        .filter_map(|c| stale.blob_location(BlobKind::Data, &c.id).ok().flatten())
        .filter(|l| !stored.contains(&l.pack.to_hex()))
        .count();
    // Only this stale reader's cache still points at deleted packs.
    assert!(gone > 0, "prune repacked nothing the reader uses");

    let reader = BlobReader::new(&stale, 4 << 20);
    let mut bytes = Vec::new();
    for c in &chunks {
        bytes.extend(reader.read(BlobKind::Data, &c.id).unwrap());
    }
    assert_eq!(
        compare_streams(Gen::random(1, 600 << 10), &bytes[..]),
        Ok(600 << 10)
    );
}

/// Every SQLite file below `dir`: the index cache of each repository.
fn cache_databases(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = vec![];
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(cache_databases(&path));
        } else if fs::read(&path)
            .map(|b| b.starts_with(b"SQLite format 3"))
            .unwrap_or(false)
        {
            found.push(path);
        }
    }
    found
}

/// A process killed between emptying the cache for a rebuild and loading
/// the effective index again leaves every object known and none loaded;
/// the next command must load them, not report the snapshot's data lost.
#[test]
fn a_cache_left_empty_by_a_killed_rebuild_is_loaded_again() {
    let v = Vault::init_with(SMALL_REPO);
    let id = json_str(&v.snapshot_stdin("a", Gen::random(1, LEN)), "snapshot").to_string();
    let databases = cache_databases(&v.cache);
    assert!(!databases.is_empty(), "no index cache in {:?}", v.cache);
    for db in databases {
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute_batch(
                "DELETE FROM blobs; DELETE FROM packs; UPDATE index_objects SET loaded = 0;",
            )
            .unwrap();
    }
    v.assert_dump_matches(&id, None, Gen::random(1, LEN));
    v.ok(&["prune", "--exclusive", "--max-unused", "0%", "--dry-run"]);
}
