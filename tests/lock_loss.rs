//! A backup whose lock was taken from it (removed, or gone stale while the
//! process was frozen) and a prune ran meanwhile must not store a
//! snapshot, even after its lock refresher wrote a fresh lock.

use crate::common;

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::held::Held;
use common::prune::*;
use common::*;

const OLD: u64 = 3 << 20;

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// Data a forgotten snapshot stored, then new bytes: the backup reuses
/// blobs prune deletes.
fn stream() -> impl Read + Send + 'static {
    Gen::random(1, OLD).chain(Gen::random(2, 2 << 20))
}

#[test]
fn a_backup_that_lost_its_lock_to_unlock_all_and_prune_stores_no_snapshot() {
    let mut v = Vault::init_with(SMALL_REPO);
    run_with_stdin(
        v.cmd(&[
            "snapshot",
            "--stdin",
            "--name",
            "old",
            "--record-host",
            "old",
        ]),
        Gen::random(1, OLD),
    );
    run_with_stdin(
        v.cmd(&[
            "snapshot",
            "--stdin",
            "--name",
            "newer",
            "--record-host",
            "old",
        ]),
        Gen::random(3, 100 << 10),
    );
    // Refresh every second, so a refresh surely falls between the prune
    // and the commit.
    v.env.push(("VAULT_LOCK_REFRESH_SECS".into(), "1".into()));
    let packs_before = v.objects("data").len();
    let held = Held::start(
        &v,
        &["snapshot", "--stdin", "--name", "victim"],
        stream(),
        OLD + (3 << 19),
    );
    v.env.pop();
    wait_until("the backup's packs", Duration::from_secs(60), || {
        v.objects("locks").len() == 1 && v.objects("data").len() > packs_before
    });
    // Frozen, so its refresher cannot write a lock before prune starts.
    signal(held.pid(), "-STOP");
    v.ok(&["unlock", "--all"]);
    forget_old_host_but_newest(&v);
    let pruned = v.json(&["prune", "--exclusive", "--max-unused", "0%"]);
    assert!(json_u64(&pruned, "packs_deleted") > 0, "{pruned}");
    signal(held.pid(), "-CONT");
    // Its refresher writes a new lock: that must not make it trusted again.
    wait_until("the refreshed lock", Duration::from_secs(60), || {
        !v.objects("locks").is_empty()
    });
    let out = held.finish();
    assert_code(&out, 5, "a backup whose lock was removed under it");
    let line = one_line_error(&out);
    assert!(line.contains("removed"), "{line}");
    assert!(
        v.snapshots().iter().all(|s| s["host"] == "old"),
        "a snapshot was stored: {:?}",
        v.snapshots()
    );
    v.ok(&["check", "--read-data"]);
    assert!(v.objects("locks").is_empty(), "{:?}", v.objects("locks"));
}
