//! Two-phase prune through the real binary: backups run beside it, and a
//! backup that deduplicated against packs before they were marked keeps
//! them.

use crate::common;

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use common::held::Held;
use common::prune::*;
use common::*;

fn prune_now(v: &Vault) -> serde_json::Value {
    v.json(&["prune", "--grace", "0", "--max-unused", "0%"])
}

/// Forget one snapshot: delete its object, as forget does.
fn forget(v: &Vault, snapshot: &serde_json::Value) {
    let id = json_str(snapshot, "snapshot");
    let name = v
        .objects("snapshots")
        .into_iter()
        .find(|p| p.to_string_lossy().starts_with(id))
        .unwrap_or_else(|| panic!("no snapshot {id}"));
    std::fs::remove_file(v.repo.join("snapshots").join(name)).unwrap();
}

fn assert_whole(v: &Vault) {
    assert_every_used_blob_is_stored(v);
    let out = v.run(&["check", "--read-data"]);
    assert_success(&out, "check --read-data");
}

#[test]
fn a_backup_beside_a_prune_is_neither_blocked_nor_made_to_wait() {
    let v = Vault::init_with(SMALL_REPO);
    v.snapshot_stdin("s1", Gen::random(1, 200 << 10));
    let repo = open_library(&v);
    let prune_lock = repo.lock_prune("prune").unwrap();
    // No lock wait: a conflict would fail at once with exit 5.
    let mut cmd = v.cmd(&["--json", "snapshot", "--stdin", "--name", "s2"]);
    cmd.env("VAULT_LOCK_WAIT", "0");
    let out = run_with_stdin(cmd, Gen::random(2, 300 << 10));
    assert_success(&out, "a snapshot while prune holds its lock");
    let id = json_str(&parse_json(&out), "snapshot").to_string();
    // Prunes still exclude each other, and an exclusive prune waits for it.
    assert_code(&v.run(&["prune"]), 5, "a second prune");
    assert_code(&v.run(&["prune", "--exclusive"]), 5, "prune --exclusive");
    drop(prune_lock);
    v.assert_dump_matches(&id, None, Gen::random(2, 300 << 10));
}

#[test]
fn a_backup_never_reuses_a_marked_pack() {
    let v = Vault::init_with(SMALL_REPO);
    let old = v.snapshot_stdin("old", Gen::random(1, 300 << 10));
    forget(&v, &old);
    let marked = v.json(&["prune", "--grace", "0"]);
    assert!(json_u64(&marked, "packs_to_mark") > 0, "{marked}");
    assert_eq!(v.objects("marks").len(), 1);
    // The same bytes again: stored anew, not deduplicated against the marks.
    let again = v.snapshot_stdin("new", Gen::random(1, 300 << 10));
    assert!(json_u64(&again, "blobs_added") > 0, "{again}");
    let id = json_str(&again, "snapshot").to_string();
    let deleted = prune_now(&v);
    assert_eq!(
        json_u64(&deleted, "packs_to_delete"),
        json_u64(&marked, "packs_to_mark"),
        "{deleted}"
    );
    assert_eq!(json_u64(&deleted, "packs_resurrected"), 0, "{deleted}");
    assert!(json_u64(&deleted, "bytes_freed") > 0, "{deleted}");
    assert!(v.objects("marks").is_empty(), "{:?}", v.objects("marks"));
    v.assert_dump_matches(&id, None, Gen::random(1, 300 << 10));
    assert_whole(&v);
}

#[test]
fn marked_packs_wait_for_the_grace_period() {
    let v = Vault::init_with(SMALL_REPO);
    let old = v.snapshot_stdin("old", Gen::random(1, 200 << 10));
    forget(&v, &old);
    v.ok(&["prune"]);
    let plan = v.json(&["prune", "--dry-run"]);
    assert_eq!(json_u64(&plan, "packs_to_delete"), 0, "{plan}");
    assert!(json_u64(&plan, "packs_waiting_grace") > 0, "{plan}");
    let packs = v.objects("data").len();
    v.ok(&["prune"]);
    assert_eq!(v.objects("data").len(), packs);
    let out = v.run(&["check"]);
    assert_success(&out, "check with marked packs");
}

/// The race two-phase deletion exists for: a backup that took its lock
/// before prune marked the packs it deduplicates against.
#[test]
fn a_backup_that_predates_the_mark_keeps_the_packs_it_reuses() {
    let v = Vault::init_with(SMALL_REPO);
    let stream = || Gen::random(1, 400 << 10);
    let old = v.snapshot_stdin("old", stream());
    forget(&v, &old);
    let held = Held::start(
        &v,
        &["--json", "snapshot", "--stdin", "--name", "new"],
        stream(),
        64 << 10,
    );
    wait_until("the snapshot's lock", Duration::from_secs(30), || {
        !v.objects("locks").is_empty()
    });
    let marked = prune_now(&v);
    assert!(json_u64(&marked, "packs_to_mark") > 0, "{marked}");
    // Past the grace period, but the backup still runs.
    let waiting = prune_now(&v);
    assert_eq!(json_u64(&waiting, "packs_to_delete"), 0, "{waiting}");
    assert!(json_u64(&waiting, "packs_waiting_backups") > 0, "{waiting}");
    let out = held.finish();
    assert_success(&out, "the snapshot that ran beside prune");
    let id = json_str(&parse_json(&out), "snapshot").to_string();
    let check = v.run(&["--json", "check"]);
    assert_success(&check, "check with a snapshot using marked packs");
    assert!(
        stdout(&check).contains("marked for deletion")
            || stderr(&check).contains("marked for deletion"),
        "check does not say the snapshot uses marked packs: {}{}",
        stdout(&check),
        stderr(&check)
    );
    // Within --max-unused the pack is kept whole, so it is taken back.
    let back = v.json(&["prune", "--grace", "0"]);
    assert!(json_u64(&back, "packs_resurrected") > 0, "{back}");
    v.assert_dump_matches(&id, None, stream());
    assert_whole(&v);
    assert!(v.objects("marks").is_empty(), "{:?}", v.objects("marks"));
}

#[test]
fn prune_deletes_stale_tmp_files_and_says_how_many() {
    let v = Vault::init_with(SMALL_REPO);
    let tmp = v.repo.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let (old, fresh) = (tmp.join("left-by-a-kill"), tmp.join("being-written"));
    std::fs::write(&old, b"x").unwrap();
    std::fs::write(&fresh, b"y").unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_days_ago)
        .unwrap();
    let out = v.json(&["prune"]);
    assert_eq!(json_u64(&out, "tmp_files_deleted"), 1, "{out}");
    assert!(!old.exists());
    assert!(fresh.exists(), "a fresh tmp file was deleted");
}

const OLD: u64 = 4;

fn old(n: u64) -> Gen {
    Gen::random(100 + n, 300 << 10)
}

/// A new backup's stream reuses an old one that is being forgotten.
fn new(round: u64, w: u64) -> impl Read + Send + 'static {
    old((round + w) % OLD + 1).chain(Gen::random(1000 + round * 10 + w, 100 << 10))
}

/// Rounds of two backups and a forget-and-prune at once, one of the three
/// killed with SIGKILL at a random moment; after each round the repository
/// checks clean with --read-data and every snapshot restores byte for byte.
#[test]
fn backups_and_prunes_killed_at_random_lose_nothing() {
    within_limit("concurrent backups and killed prunes", rounds);
}

fn rounds() {
    let v = Arc::new(Vault::init_with(SMALL_REPO));
    // Stored, then forgotten: their packs are what prune marks and what
    // the backups deduplicate against.
    for n in 1..=OLD {
        let s = v.snapshot_stdin(&format!("o{n}"), old(n));
        forget(&v, &s);
    }
    let mut rng = Rng::new(17);
    let mut kept: Vec<(serde_json::Value, u64, u64)> = vec![];
    const ROUNDS: u64 = 6;
    for round in 0..ROUNDS {
        let backups: Vec<Held> = (0..2)
            .map(|w| {
                Held::start(
                    &v,
                    &[
                        "--json",
                        "snapshot",
                        "--stdin",
                        "--name",
                        &format!("r{round}w{w}"),
                    ],
                    new(round, w),
                    64 << 10,
                )
            })
            .collect();
        let mut prune = v
            .cmd(&["prune", "--grace", "0", "--max-unused", "0%"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let victim = rng.below(3);
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        if victim == 2 {
            let _ = prune.kill();
        }
        let status = prune.wait().unwrap();
        assert!(
            status.success() || victim == 2,
            "round {round}: prune failed: {status}"
        );
        for (w, b) in backups.into_iter().enumerate() {
            if victim == w as u64 {
                b.kill9();
                continue;
            }
            let out = b.finish();
            assert_success(&out, &format!("round {round}: backup {w}"));
            kept.push((parse_json(&out), round, w as u64));
        }
        // Forget the oldest of the round's predecessors: its packs become
        // candidates that the next round's backups may have reused.
        if kept.len() > 3 {
            let (s, _, _) = kept.remove(0);
            forget(&v, &s);
        }
        let _ = v.run(&["unlock"]);
        let out = v.run(&["prune", "--grace", "0", "--max-unused", "0%"]);
        assert_success(&out, &format!("round {round}: prune after the kill"));
        assert_whole(&v);
        for (s, r, w) in &kept {
            v.assert_dump_matches(json_str(s, "snapshot"), None, new(*r, *w));
        }
    }
}

/// Regression: prune reported 0 B freed while deleting an unindexed pack.
#[test]
fn the_bytes_freed_count_unindexed_packs() {
    for exclusive in [true, false] {
        let v = Vault::init_with(SMALL_REPO);
        let s = v.snapshot_stdin("gone", Gen::random(1, 300 << 10));
        forget(&v, &s);
        for index in v.objects("index") {
            std::fs::remove_file(v.repo.join("index").join(index)).unwrap();
        }
        let packs: u64 = v
            .objects("data")
            .iter()
            .map(|p| {
                std::fs::metadata(v.repo.join("data").join(p))
                    .unwrap()
                    .len()
            })
            .sum();
        assert!(packs > 300 << 10);
        let freed = if exclusive {
            v.json(&["prune", "--exclusive"])
        } else {
            v.ok(&["prune"]);
            prune_now(&v)
        };
        assert_eq!(json_u64(&freed, "bytes_freed"), packs, "{freed}");
        assert!(v.objects("data").is_empty(), "{:?}", v.objects("data"));
    }
}
