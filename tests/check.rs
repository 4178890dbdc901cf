//! `vault check` and `vault repair` against real repositories with injected
//! faults: for each object kind (config, key, pack, index, tree, snapshot) a
//! flipped byte, a truncation, a deletion and a replacement by another valid
//! object of the same kind. Each is found by the right check level and
//! reported against the snapshots and files it touches; a clean repository
//! raises no alarm; repairs bring back everything that survived.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};

use common::faults::*;
use common::*;
use vault::format::{layout, BlobKind};
use vault::repo::SnapshotFilter;

/// A repository with two snapshots that share no data: `a` of a folder
/// (a large file and two small ones in a subfolder), `b` of a stream.
struct Fixture {
    v: Vault,
    src: PathBuf,
    a: String,
    b: String,
}

fn fixture() -> Fixture {
    let v = Vault::init_with(&["--pack-size-mib", "1"]);
    let src = v.dir("src");
    write_gen(&src.join("big.bin"), Gen::random(1, 3 * MIB));
    write(&src.join("docs/a.txt"), b"alpha\n");
    write(&src.join("docs/b.txt"), b"bravo\n");
    let a = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
    let b = json_str(
        &v.snapshot_stdin("stream", Gen::random(2, MIB + 12345)),
        "snapshot",
    )
    .to_string();
    Fixture { v, src, a, b }
}

impl Fixture {
    /// The pack holding the first chunk of `big.bin` (no trees in it: they
    /// are written after the files).
    fn big_pack(&self) -> PathBuf {
        let chunk = first_chunk(&self.v, &self.a, &self.src.join("big.bin"));
        blob_place(&self.v, BlobKind::Data, &chunk).0
    }

    fn other_pack(&self, not: &Path) -> PathBuf {
        self.v
            .objects("data")
            .into_iter()
            .map(|p| self.v.repo.join("data").join(p))
            .find(|p| p != not)
            .expect("a second pack")
    }

    fn assert_a_damaged_b_untouched(&self, report: &serde_json::Value, path_part: &str) {
        let (damaged, untouched) = damaged_and_untouched(report);
        assert_eq!(damaged, vec![self.a.clone()], "{report:#}");
        assert_eq!(untouched, vec![self.b.clone()], "{report:#}");
        let paths = damaged_paths(report);
        assert!(
            paths.iter().any(|p| p.contains(path_part)),
            "no damaged path contains {path_part}: {report:#}"
        );
    }

    fn assert_clean(&self, args: &[&str]) {
        let (code, report, out) = check_json(&self.v, args);
        assert_eq!(code, 0, "check {args:?}: {} {report:#}", stderr(&out));
        assert_eq!(report["clean"], true);
        let (damaged, mut untouched) = damaged_and_untouched(&report);
        assert!(damaged.is_empty());
        untouched.sort();
        let mut want = vec![self.a.clone(), self.b.clone()];
        want.sort();
        assert_eq!(untouched, want);
    }

    fn assert_a_restores(&self) {
        let target = self.v.path().join(format!("restore-{}", rand_suffix()));
        self.v.restore(&self.a, &target, &[]);
        assert_same_contents(&self.src, &restored_at(&target, &self.src));
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn problem_objects(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["object"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_clean_repository_passes_every_level() {
    within_limit("clean checks", || {
        let f = fixture();
        f.assert_clean(&[]);
        f.assert_clean(&["--read-data"]);
        f.assert_clean(&["--read-data-subset", "50%"]);
        let (_, report, _) = check_json(&f.v, &["--read-data"]);
        assert!(
            report["warnings"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
        assert_eq!(
            report["stats"]["packs_read"], report["stats"]["packs"],
            "--read-data reads every pack"
        );
        // The human report says so too, and check wrote nothing.
        let before = f.v.repo_files();
        let out = f.v.ok(&["check"]);
        assert!(stdout(&out).contains("no damage found"));
        assert_eq!(before, f.v.repo_files(), "check changed the repository");
    });
}

#[test]
fn pack_faults() {
    within_limit("pack faults", || {
        for fault in FAULTS {
            let f = fixture();
            let pack = f.big_pack();
            damage_file(&pack, fault, &f.other_pack(&pack));
            let (code, structure, _) = check_json(&f.v, &[]);
            if fault == Fault::Flip {
                // A flipped byte inside a blob leaves sizes and headers
                // intact: only reading the data finds it.
                assert_eq!(code, 0, "{fault:?}: {structure:#}");
            } else {
                assert_eq!(code, 4, "{fault:?}: {structure:#}");
                assert!(problem_objects(&structure).contains(&"pack".into()));
                f.assert_a_damaged_b_untouched(&structure, "big.bin");
            }
            let (code, data, _) = check_json(&f.v, &["--read-data"]);
            assert_eq!(code, 4, "{fault:?} with --read-data: {data:#}");
            f.assert_a_damaged_b_untouched(&data, "big.bin");
            let paths = damaged_paths(&data);
            if fault == Fault::Flip {
                // One flipped byte costs one blob, so one file.
                assert_eq!(paths, vec![f.src.join("big.bin").display().to_string()]);
            }
        }
    });
}

#[test]
fn index_faults_and_repair_index() {
    within_limit("index faults", || {
        for fault in FAULTS {
            let f = fixture();
            let index = index_naming(&f.v, &f.big_pack());
            let other =
                f.v.objects("index")
                    .into_iter()
                    .map(|p| f.v.repo.join("index").join(p))
                    .find(|p| *p != index)
                    .unwrap();
            damage_file(&index, fault, &other);
            let (code, report, _) = check_json(&f.v, &[]);
            assert_eq!(code, 4, "{fault:?}: {report:#}");
            // Everything snapshot a stored is described by that one index
            // object, its root folder included.
            f.assert_a_damaged_b_untouched(&report, "/");
            if fault != Fault::Delete {
                assert!(problem_objects(&report).contains(&"index".into()));
            }
            assert!(
                !report["warnings"].as_array().unwrap().is_empty(),
                "{fault:?}: the packs are now unindexed: {report:#}"
            );

            let plan = f.v.json(&["repair", "index", "--dry-run"]);
            assert!(!plan["newly_indexed_packs"].as_array().unwrap().is_empty());
            assert!(plan["written_index_objects"].as_array().unwrap().is_empty());
            assert_eq!(check_json(&f.v, &[]).0, 4, "a dry run changes nothing");

            f.v.ok(&["repair", "index"]);
            f.assert_clean(&["--read-data"]);
            f.assert_a_restores();
            f.v.assert_dump_matches(&f.b, None, Gen::random(2, MIB + 12345));
        }
    });
}

#[test]
fn tree_faults() {
    within_limit("tree faults", || {
        for fault in FAULTS {
            let f = fixture();
            let docs = folder_tree(&f.v, &f.a, &f.src.join("docs"));
            let (pack, offset, len) = blob_place(&f.v, BlobKind::Tree, &docs);
            let b_root = open_library(&f.v)
                .find_snapshot(&f.b, &SnapshotFilter::default())
                .unwrap()
                .1
                .root;
            match fault {
                Fault::Flip => flip(&pack, offset + len / 2),
                Fault::Truncate => truncate(&pack, offset + len / 2),
                Fault::Delete => rewrite_index(&f.v, |index| {
                    for p in &mut index.packs {
                        p.blobs.retain(|b| b.id != docs || b.kind != BlobKind::Tree);
                    }
                }),
                // The index sends readers of the docs folder to another
                // valid tree (b's root), which must not open in its place.
                Fault::Replace => rewrite_index(&f.v, |index| {
                    for p in &mut index.packs {
                        p.blobs.retain(|b| b.id != docs || b.kind != BlobKind::Tree);
                        for b in &mut p.blobs {
                            if b.kind == BlobKind::Tree && b.id == b_root {
                                b.id = docs;
                            }
                        }
                    }
                }),
            }
            let (code, report, out) = check_json(&f.v, &[]);
            assert_eq!(code, 4, "{fault:?}: {report:#} {}", stderr(&out));
            let (damaged, _) = damaged_and_untouched(&report);
            assert!(damaged.contains(&f.a), "{fault:?}: {report:#}");
            if fault != Fault::Replace {
                f.assert_a_damaged_b_untouched(&report, "docs");
            } else {
                assert!(damaged_paths(&report).iter().any(|p| p.contains("docs")));
            }
            // Truncating the pack also loses whatever followed the tree in
            // it; the other faults touch the tree alone.
            let paths = damaged_paths(&report);
            assert!(
                fault == Fault::Truncate || !paths.iter().any(|p| p.ends_with("big.bin")),
                "{fault:?}: big.bin is intact: {report:#}"
            );
        }
    });
}

#[test]
fn snapshot_faults() {
    within_limit("snapshot faults", || {
        for fault in FAULTS {
            let f = fixture();
            let file = f.v.repo.join(layout::SNAPSHOTS).join(&f.a);
            damage_file(&file, fault, &f.v.repo.join(layout::SNAPSHOTS).join(&f.b));
            let (code, report, _) = check_json(&f.v, &["--read-data"]);
            let (_, untouched) = damaged_and_untouched(&report);
            assert_eq!(untouched, vec![f.b.clone()], "{fault:?}: {report:#}");
            if fault == Fault::Delete {
                // A deleted snapshot is indistinguishable from a forgotten
                // one (format-spec, "Security model"): its data is simply
                // no longer referenced.
                assert_eq!(code, 0, "{report:#}");
                continue;
            }
            assert_eq!(code, 4, "{fault:?}: {report:#}");
            let problem = &report["problems"][0];
            assert_eq!(problem["object"], "snapshot", "{report:#}");
            assert_eq!(problem["id"], f.a.as_str());
        }
    });
}

#[test]
fn config_faults() {
    within_limit("config faults", || {
        let elsewhere = Vault::init();
        for fault in FAULTS {
            let f = fixture();
            damage_file(
                &f.v.repo.join("config"),
                fault,
                &elsewhere.repo.join("config"),
            );
            let (code, _, out) = check_json(&f.v, &[]);
            assert_eq!(code, 4, "{fault:?}: {}", stderr(&out));
            assert!(one_line_error(&out).contains("config"), "{fault:?}");
        }
    });
}

#[test]
fn key_faults() {
    within_limit("key faults", || {
        let elsewhere = Vault::init();
        let foreign = elsewhere.repo.join(&elsewhere.objects("keys")[0]);
        let foreign = elsewhere
            .repo
            .join("keys")
            .join(foreign.file_name().unwrap());
        for fault in FAULTS {
            // The only key: nothing opens, and the error says why.
            let f = fixture();
            let key = f.v.repo.join("keys").join(&f.v.objects("keys")[0]);
            damage_file(&key, fault, &foreign);
            let (code, _, out) = check_json(&f.v, &[]);
            assert_eq!(code, 4, "{fault:?}: {}", stderr(&out));
            assert!(one_line_error(&out).contains("key"), "{fault:?}");

            // A second password's key: the check runs and names it.
            let f = fixture();
            let first = f.v.objects("keys");
            let mut add = f.v.cmd(&["key", "add"]);
            add.env("VAULT_NEW_PASSWORD", "second password");
            assert_success(&add.watched_output(), "key add");
            let second =
                f.v.objects("keys")
                    .into_iter()
                    .find(|k| !first.contains(k))
                    .unwrap();
            let key = f.v.repo.join("keys").join(&second);
            damage_file(&key, fault, &foreign);
            let (code, report, out) = check_json(&f.v, &[]);
            if fault == Fault::Delete {
                // The same as `vault key remove`.
                assert_eq!(code, 0, "{}", stderr(&out));
                continue;
            }
            assert_eq!(code, 4, "{fault:?}: {report:#}");
            assert_eq!(problem_objects(&report), vec!["key".to_string()]);
            assert!(damaged_and_untouched(&report).0.is_empty());
        }
    });
}

#[test]
fn rotation_covers_every_pack_in_n_runs() {
    within_limit("rotation", || {
        let f = fixture();
        // A pack holds up to its 1 MiB target plus one chunk (at most 1 MiB),
        // so over 8 MiB in all guarantees the four packs the test divides.
        f.v.snapshot_stdin("more", Gen::random(3, 4 * MIB));
        let status = f.v.json(&["check", "--status"]);
        let packs = json_u64(&status, "packs");
        assert!(packs >= 4, "{status:#}");
        assert_eq!(json_u64(&status, "never_verified_packs"), packs);
        for run in 1..=4u64 {
            let report =
                f.v.json(&["check", "--read-data-subset", "1/4", "--rotate"]);
            assert_eq!(
                report["stats"]["packs_read"].as_u64().unwrap(),
                packs.div_ceil(4),
                "{report:#}"
            );
            let status = f.v.json(&["check", "--status"]);
            let want_left = packs.saturating_sub(run * packs.div_ceil(4));
            assert_eq!(
                json_u64(&status, "never_verified_packs"),
                want_left,
                "run {run}"
            );
        }
        let status = f.v.json(&["check", "--status", "--days", "1"]);
        assert_eq!(json_u64(&status, "recent_packs"), packs);
        assert_eq!(
            json_u64(&status, "recent_bytes"),
            json_u64(&status, "bytes")
        );
        // One record per run, none lost.
        assert_eq!(f.v.objects("verified").len(), 4);
    });
}

#[test]
fn packs_of_a_killed_backup_are_a_warning_and_repair_index_adopts_them() {
    within_limit("unindexed packs", || {
        let f = fixture();
        // What a backup killed before its index and snapshot leaves: packs
        // no index names and no snapshot uses.
        let b_pack = {
            let repo = open_library(&f.v);
            let root = repo
                .find_snapshot(&f.b, &SnapshotFilter::default())
                .unwrap()
                .1
                .root;
            let loc = repo.blob_location(BlobKind::Tree, &root).unwrap().unwrap();
            f.v.repo.join(layout::pack(&loc.pack))
        };
        let b_index = index_naming(&f.v, &b_pack);
        fs::remove_file(&b_index).unwrap();
        fs::remove_file(f.v.repo.join(layout::SNAPSHOTS).join(&f.b)).unwrap();
        let (code, report, _) = check_json(&f.v, &["--read-data"]);
        assert_eq!(code, 0, "{report:#}");
        let warnings = report["warnings"].as_array().unwrap();
        assert!(!warnings.is_empty());
        assert!(warnings[0].as_str().unwrap().contains("not in any index"));

        let done = f.v.json(&["repair", "index"]);
        assert!(!done["newly_indexed_packs"].as_array().unwrap().is_empty());
        let (code, report, _) = check_json(&f.v, &[]);
        assert_eq!(code, 0);
        assert!(
            report["warnings"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
        f.assert_a_restores();
    });
}

#[test]
fn repaired_snapshots_restore_everything_that_survived() {
    within_limit("repair snapshots", || {
        let f = fixture();
        let big = f.src.join("big.bin");
        let chunk = first_chunk(&f.v, &f.a, &big);
        let (pack, offset, len) = blob_place(&f.v, BlobKind::Data, &chunk);
        flip(&pack, offset + len / 2);

        let plan =
            f.v.json(&["repair", "snapshots", "--read-data", "--dry-run"]);
        assert_eq!(plan["repair"].as_array().unwrap().len(), 1, "{plan:#}");
        assert_eq!(plan["repair"][0]["id"], f.a.as_str());
        assert_eq!(f.v.snapshots().len(), 2, "a dry run writes nothing");

        let done = f.v.json(&["repair", "snapshots", "--read-data"]);
        let repaired = done["written"][0]["repaired"].as_str().unwrap().to_string();
        assert_eq!(f.v.snapshots().len(), 3, "the original is kept");

        // The repaired snapshot references no lost data...
        let (_, report, _) = check_json(&f.v, &["--read-data"]);
        let (damaged, untouched) = damaged_and_untouched(&report);
        assert_eq!(damaged, vec![f.a.clone()]);
        assert!(untouched.contains(&repaired));
        // ...restores every other file intact, and the damaged one at its
        // full size, good bytes in place, reported rather than passed off.
        let target = f.v.path().join("repaired");
        let out =
            f.v.cmd(&["restore", &repaired, "--target"])
                .arg(&target)
                .watched_output();
        assert_code(&out, 4, "restore of a repaired snapshot");
        assert!(stderr(&out).contains("big.bin"));
        let restored = restored_at(&target, &f.src);
        for name in ["docs/a.txt", "docs/b.txt"] {
            assert_eq!(
                fs::read(restored.join(name)).unwrap(),
                fs::read(f.src.join(name)).unwrap()
            );
        }
        let original = fs::read(&big).unwrap();
        let got = fs::read(restored.join("big.bin")).unwrap();
        assert_eq!(got.len(), original.len());
        let first_len = {
            let repo = open_library(&f.v);
            let (_, snap) = repo
                .find_snapshot(&f.a, &SnapshotFilter::default())
                .unwrap();
            match vault::ops::walk::resolve(&repo, &snap.root, big.to_str().unwrap().as_bytes())
                .unwrap()
            {
                vault::ops::walk::Resolved::Entry { entry, .. } => entry.chunks()[0].len as usize,
                _ => unreachable!(),
            }
        };
        assert!(
            got[..first_len].iter().all(|&b| b == 0),
            "lost bytes read as zeros"
        );
        assert_eq!(got[first_len..], original[first_len..]);
        let listing = f.v.json(&["ls", "-R", &repaired]);
        let flagged: Vec<&serde_json::Value> = listing
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["damaged"] == true)
            .collect();
        assert_eq!(flagged.len(), 1, "{listing:#}");

        // A second run does not repair twice; --forget drops the original.
        let again =
            f.v.json(&["repair", "snapshots", "--read-data", "--forget"]);
        assert!(again["written"].as_array().unwrap().is_empty(), "{again:#}");
        assert_eq!(again["forgotten"][0], f.a.as_str());
        let ids: Vec<String> =
            f.v.snapshots()
                .iter()
                .map(|s| s["id"].as_str().unwrap().to_string())
                .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&repaired) && ids.contains(&f.b));
    });
}

#[test]
fn repair_snapshots_waits_for_the_index_to_be_repaired() {
    within_limit("repair snapshots over a lost index", || {
        let f = fixture();
        fs::remove_file(index_naming(&f.v, &f.big_pack())).unwrap();
        let before = f.v.repo_files();
        let out = f.v.run(&["repair", "snapshots"]);
        assert_code(&out, 1, "repair snapshots with packs unindexed");
        assert!(one_line_error(&out).contains("repair index"));
        assert_eq!(before, f.v.repo_files(), "nothing was written");

        f.v.ok(&["repair", "index"]);
        let done = f.v.json(&["repair", "snapshots"]);
        assert!(done["repair"].as_array().unwrap().is_empty(), "{done:#}");
        assert_eq!(f.v.snapshots().len(), 2);
        f.assert_a_restores();
    });
}

#[test]
fn consolidating_verification_records_keeps_a_concurrent_checks_record() {
    use std::collections::HashSet;
    use vault::format::Timestamp;
    use vault::ops::check::rotation::{self, Verifications};

    let f = fixture();
    let repo = open_library(&f.v);
    let packs = repo.list_packs().unwrap();
    assert!(packs.len() >= 2);
    let existing: HashSet<_> = packs.iter().copied().collect();
    let t = |secs| Timestamp { secs, nanos: 0 };
    let none = Verifications::default();
    for (i, pack) in packs.iter().cycle().take(15).enumerate() {
        rotation::record(&repo, &none, &[*pack], t(1000 + i as i64), &existing).unwrap();
    }
    let state = rotation::load(&repo).unwrap();
    assert_eq!(state.records.len(), 15);

    // Another machine's check stores a record after this one read them;
    // this one then folds the 15 it read into its own.
    let theirs = rotation::record(&repo, &none, &[packs[0]], t(5000), &existing).unwrap();
    let ours = rotation::record(&repo, &state, &[packs[1]], t(6000), &existing).unwrap();
    let after = rotation::load(&repo).unwrap();
    let mut records = after.records.clone();
    records.sort();
    let mut want = vec![theirs, ours];
    want.sort();
    assert_eq!(
        records, want,
        "the superseded records are gone, theirs is not"
    );
    assert_eq!(after.last[&packs[0]], t(5000));
    assert_eq!(after.last[&packs[1]], t(6000));
    assert!(
        packs.iter().all(|p| after.last.contains_key(p)),
        "nothing forgotten"
    );
}

#[test]
fn packs_larger_than_a_read_piece_are_verified_piece_by_piece() {
    within_limit("large packs", || {
        // One pack of about 12 MiB: check reads it in several pieces.
        let setup = || {
            let v = Vault::init();
            let src = v.dir("src");
            write_gen(&src.join("big.bin"), Gen::random(7, 12 * MIB));
            write(&src.join("small.txt"), b"small\n");
            let snap = json_str(&v.snapshot_paths(&[&src]), "snapshot").to_string();
            let chunk = first_chunk(&v, &snap, &src.join("big.bin"));
            let pack = blob_place(&v, BlobKind::Data, &chunk).0;
            let size = fs::metadata(&pack).unwrap().len();
            assert!(size > 10 * MIB, "{size}");
            (v, src, pack, size)
        };
        let (v, _, _, _) = setup();
        let (code, report, out) = check_json(&v, &["--read-data"]);
        assert_eq!(code, 0, "{} {report:#}", stderr(&out));
        assert_eq!(report["stats"]["packs_read"], report["stats"]["packs"]);

        // A flipped byte in the middle costs the one blob there.
        let (v, src, pack, size) = setup();
        flip(&pack, size / 2);
        let (code, report, _) = check_json(&v, &["--read-data"]);
        assert_eq!(code, 4, "{report:#}");
        assert!(
            problem_objects(&report).contains(&"pack".into()),
            "{report:#}"
        );
        assert_eq!(
            damaged_paths(&report),
            vec![src.join("big.bin").display().to_string()]
        );

        // A flipped byte in the header (at the end, read in the last
        // piece) is a fault of the pack; every blob still opens.
        let (v, _, pack, size) = setup();
        flip(&pack, size - 12);
        let (code, report, _) = check_json(&v, &["--read-data"]);
        assert_eq!(code, 4, "{report:#}");
        assert!(
            problem_objects(&report).contains(&"pack".into()),
            "{report:#}"
        );
        assert!(damaged_paths(&report).is_empty(), "{report:#}");
    });
}
