//! Prune killed with SIGKILL at random moments: after every kill, every
//! remaining snapshot restores byte for byte and every blob it uses is
//! indexed in a stored pack; the next prune finishes the job.

use crate::common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::prune::*;
use common::*;

/// Snapshots kept by each round's forget.
const KEEP: usize = 3;
const HALF: u64 = 320 << 10;

/// Stream `n`: the second half of stream `n - 1`, then new bytes, so that
/// packs end up shared between snapshots and forgetting one leaves packs
/// partly used (which prune repacks).
fn stream(n: u64) -> impl Read + Send + 'static {
    Gen::random(n.saturating_sub(1), HALF).chain(Gen::random(n, HALF))
}

fn seed_of(snapshot: &serde_json::Value) -> u64 {
    let name = snapshot["paths"][0].as_str().unwrap();
    name[1..].parse().unwrap()
}

fn assert_repository_whole(v: &Vault, round: u64) {
    let snaps = v.snapshots();
    assert!(!snaps.is_empty(), "round {round}: no snapshots left");
    for s in &snaps {
        v.assert_dump_matches(json_str(s, "id"), None, stream(seed_of(s)));
    }
    assert_every_used_blob_is_stored(v);
    v.ok(&["check"]);
}

/// Whether a prune would still find something to do.
fn work_left(v: &Vault) -> bool {
    let plan = v.json(&["prune", "--exclusive", "--max-unused", "0%", "--dry-run"]);
    ["packs_to_delete", "packs_to_repack", "unindexed_packs"]
        .iter()
        .any(|k| json_u64(&plan, k) > 0)
        || v.objects("index").len() > 2
}

#[test]
fn kill_9_at_random_moments_during_prune_never_loses_a_snapshot() {
    let rounds: u64 = std::env::var("VAULT_PRUNE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let v = Vault::init_with(SMALL_REPO);
    let mut rng = Rng::new(0x5eed);
    for n in 1..=KEEP as u64 {
        v.snapshot_stdin(&format!("s{n}"), stream(n));
    }
    // How long an uninterrupted prune of one round takes, to aim the kills.
    v.snapshot_stdin(&format!("s{}", KEEP + 1), stream(KEEP as u64 + 1));
    v.ok(&["forget", "--group-by", "", "--keep-last", &KEEP.to_string()]);
    let started = Instant::now();
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    let mut full = started.elapsed();
    // Kills are aimed at a window [lo, hi] that moves towards the stretch
    // in which prune changes the repository, whatever the machine's load
    // does to start-up and run times.
    let mut lo = Duration::ZERO;
    let mut kills = 0;
    // Kills after prune changed something and before it was done.
    let mut mid_work = 0;
    for round in 0..rounds {
        let n = KEEP as u64 + 2 + round;
        v.snapshot_stdin(&format!("s{n}"), stream(n));
        v.ok(&["forget", "--group-by", "", "--keep-last", &KEEP.to_string()]);

        let before: Vec<_> = [v.objects("data"), v.objects("index")].concat();
        let mut child = v
            .cmd(&["prune", "--exclusive", "--max-unused", "0%"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let lo_us = lo.min(full).as_micros() as u64;
        let span = (full.as_micros() as u64).saturating_sub(lo_us);
        let delay = Duration::from_micros(lo_us + rng.below(span + 1));
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() >= delay {
                child.kill().unwrap();
                break child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_micros(500));
        };
        if status.signal() == Some(libc::SIGKILL) {
            kills += 1;
            let after: Vec<_> = [v.objects("data"), v.objects("index")].concat();
            let changed = after != before;
            if changed && work_left(&v) {
                mid_work += 1;
            } else if changed {
                // Killed after the work: aim earlier.
                full = delay + (full.saturating_sub(delay)) / 2;
            } else {
                // Killed before it changed anything: aim later.
                lo = lo + (delay.saturating_sub(lo)) / 2;
                full = full.max(delay + delay / 4);
            }
        } else {
            assert!(status.success(), "round {round}: prune failed: {status}");
            // Aim later kills at what a whole prune takes now: the machine
            // may have become busier or quieter since.
            full = started.elapsed();
            lo = lo.min(full / 2);
        }
        assert_repository_whole(&v, round);
    }
    eprintln!(
        "{kills} of {rounds} prunes killed, {mid_work} of them halfway; the last uninterrupted one took {full:?}"
    );
    assert!(
        kills * 3 >= rounds,
        "only {kills} of {rounds} prunes were killed before finishing"
    );
    assert!(
        mid_work * 10 >= rounds,
        "only {mid_work} of {rounds} kills landed while prune was changing the repository"
    );

    // The next prune finishes whatever the killed ones left.
    v.ok(&["prune", "--exclusive", "--max-unused", "0%"]);
    let after = v.json(&["prune", "--exclusive", "--max-unused", "0%", "--dry-run"]);
    for key in ["packs_to_delete", "packs_to_repack", "unindexed_packs"] {
        assert_eq!(
            json_u64(&after, key),
            0,
            "{key} left after a clean prune: {after}"
        );
    }
    assert!(
        v.objects("index").len() <= 2,
        "index objects not merged: {:?}",
        v.objects("index")
    );
    assert_repository_whole(&v, rounds);
    // Killed prunes leave stale locks; unlock clears them.
    v.ok(&["unlock"]);
    assert!(v.objects("locks").is_empty());
}
