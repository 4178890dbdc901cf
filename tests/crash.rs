//! A snapshot killed with SIGKILL at any moment leaves a repository whose
//! earlier snapshots all restore, which records no partial snapshot, and
//! whose next run succeeds and reuses what the killed run stored.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::held::Held;
use common::*;

fn held_snapshot(v: &Vault, name: &str, gen: Gen, first: u64) -> Held {
    Held::start(v, &["snapshot", "--stdin", "--name", name], gen, first)
}

#[test]
fn kill_9_mid_snapshot_keeps_earlier_snapshots_and_the_next_run_reuses_data() {
    const LEN: u64 = 64 * MIB;
    let v = Vault::init_with(&["--pack-size-mib", "1"]);

    // Earlier snapshots: a tree and a stream.
    let src = v.dir("src");
    write_gen(&src.join("a.bin"), Gen::mixed(1, 3 * MIB));
    write(&src.join("dir/b.txt"), b"bee\n");
    write(&src.join("dir/c.txt"), b"");
    let tree = v.snapshot_paths(&[&src]);
    let stream = v.snapshot_stdin("earlier", Gen::mixed(2, 5 * MIB));
    let indexes_before = v.objects("index").len();
    let packs_before = v.objects("data").len();

    // The big run gets 24 MiB and then waits for more input: it is
    // certainly mid-snapshot when killed.
    let mut held = held_snapshot(&v, "big", Gen::random(64, LEN), 24 * MIB);
    let deadline = Instant::now() + Duration::from_secs(60);
    while v.objects("index").len() == indexes_before {
        if let Some(status) = held.try_wait() {
            panic!("snapshot ended on its own ({status}) before it could be killed");
        }
        // Dropping the held run on failure kills it, so it cannot write
        // into the scratch folder while it is removed.
        assert!(
            Instant::now() < deadline,
            "no index object written within 60s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = held.kill9();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status}");
    assert!(
        v.objects("data").len() > packs_before,
        "the killed run stored no pack"
    );

    // No snapshot from the killed run; the earlier ones restore exactly.
    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    let target = v.path().join("tree");
    v.restore(json_str(&tree, "snapshot"), &target, &[]);
    assert_same_tree(&src, &restored_at(&target, &src));
    v.assert_dump_matches(json_str(&stream, "snapshot"), None, Gen::mixed(2, 5 * MIB));

    // The same data again succeeds and stores less than all of it: the
    // indexed packs of the killed run are reused.
    let again = v.snapshot_stdin("big", Gen::random(64, LEN));
    assert_eq!(json_u64(&again, "bytes_read"), LEN);
    let raw = json_u64(&again, "raw_bytes_added");
    assert!(
        raw + 6 * MIB <= LEN,
        "nothing reused after the kill: {again}"
    );
    assert!(json_u64(&again, "bytes_added") < LEN, "{again}");
    v.assert_dump_matches(json_str(&again, "snapshot"), None, Gen::random(64, LEN));
    assert_eq!(v.snapshots().len(), 3);

    // And a tree snapshot after it all is still fine.
    write(&src.join("dir/new.txt"), b"after the crash\n");
    let after = v.snapshot_paths(&[&src]);
    let target = v.path().join("after");
    v.restore(
        &format!("{}:{}", json_str(&after, "snapshot"), src.display()),
        &target,
        &[],
    );
    assert_same_contents(&src, &target);
}

#[test]
fn kill_9_at_many_moments_never_breaks_the_repository() {
    const LEN: u64 = 12 * MIB;
    let v = Vault::init_with(&["--pack-size-mib", "1"]);
    let base = v.snapshot_stdin("s0", Gen::mixed(0, LEN));
    let base_id = json_str(&base, "snapshot").to_string();
    let mut verified = std::collections::HashSet::new();

    // Kill at increasing delays: during start-up, chunking, uploading,
    // index and snapshot writing, or after the end. Each run streams
    // different data under a name that says which.
    for (n, delay_ms) in [0u64, 2, 5, 10, 20, 40, 70, 110, 160, 250, 400]
        .into_iter()
        .enumerate()
    {
        let seed = n as u64 + 1;
        let held = held_snapshot(&v, &format!("s{seed}"), Gen::mixed(seed, LEN), LEN);
        std::thread::sleep(Duration::from_millis(delay_ms));
        let status = held.kill9();
        assert!(
            status.signal() == Some(libc::SIGKILL) || status.success(),
            "run {n}: {status}"
        );

        // Every snapshot listed is complete and reads back as its stream
        // (the first one every time, the others once).
        let snaps = v.snapshots();
        assert!(
            snaps.iter().any(|s| s["id"] == base_id.as_str()),
            "run {n}: the first snapshot is gone"
        );
        v.assert_dump_matches(&base_id, None, Gen::mixed(0, LEN));
        for s in &snaps {
            let id = json_str(s, "id");
            if verified.insert(id.to_string()) {
                v.assert_dump_matches(id, None, Gen::mixed(seed_of(s), LEN));
            }
        }
    }

    // A clean run after all the kills succeeds, and everything restores.
    let last = v.snapshot_stdin("s99", Gen::mixed(99, LEN));
    let snaps = v.snapshots();
    assert!(snaps.len() >= 2);
    for s in &snaps {
        let target = v.path().join(format!("final-{}", json_str(s, "id")));
        v.restore(json_str(s, "id"), &target, &[]);
        let name = s["paths"][0].as_str().unwrap();
        assert_file_matches(&target.join(name), Gen::mixed(seed_of(s), LEN));
    }
    assert!(snaps.iter().any(|s| s["id"] == last["snapshot"]));
}

/// Streams here are named `s<seed>`.
fn seed_of(snapshot: &serde_json::Value) -> u64 {
    let name = snapshot["paths"][0].as_str().unwrap();
    name[1..].parse().unwrap()
}
