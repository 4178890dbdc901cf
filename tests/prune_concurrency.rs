//! Backups running while prune deletes the data of forgotten snapshots
//! lose nothing, even when they deduplicate against exactly that data.

use crate::common;

use std::io::Read;
use std::sync::Arc;

use common::prune::*;
use common::*;

const OLD: u64 = 6;
const LEN: u64 = 400 << 10;

/// Old snapshot `n`'s stream.
fn old(n: u64) -> Gen {
    Gen::random(100 + n, LEN)
}

/// A new backup's stream: an old stream (about to be forgotten) followed by
/// new bytes, so it reuses blobs prune wants to delete.
fn new(writer: u64, k: u64) -> impl Read + Send + 'static {
    old((writer * 4 + k) % OLD + 1).chain(Gen::random(1000 + writer * 10 + k, 100 << 10))
}

#[test]
fn snapshots_running_beside_forget_and_prune_lose_nothing() {
    within_limit("concurrent snapshots and prunes", body);
}

fn body() {
    let v = Arc::new(Vault::init_with(SMALL_REPO));
    for n in 1..=OLD {
        let out = run_with_stdin(
            v.cmd(&[
                "snapshot",
                "--stdin",
                "--name",
                &format!("o{n}"),
                "--record-host",
                "old",
            ]),
            old(n),
        );
        assert_success(&out, "old snapshot");
    }
    let writers: Vec<_> = (0..3u64)
        .map(|w| {
            let v = v.clone();
            std::thread::spawn(move || {
                (0..4u64)
                    .map(|k| {
                        let mut cmd = v.cmd(&[
                            "--json",
                            "snapshot",
                            "--stdin",
                            "--name",
                            &format!("w{w}-{k}"),
                        ]);
                        cmd.env("VAULT_LOCK_WAIT", "120");
                        let out = run_with_stdin(cmd, new(w, k));
                        assert_success(&out, &format!("snapshot w{w}-{k}"));
                        (w, k, json_str(&parse_json(&out), "snapshot").to_string())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let pruner = {
        let v = v.clone();
        std::thread::spawn(move || {
            for keep in (1..OLD).rev() {
                let out = v.run(&[
                    "forget",
                    "--host",
                    "old",
                    "--group-by",
                    "host",
                    "--keep-last",
                    &keep.to_string(),
                    "--prune",
                    "--max-unused",
                    "0%",
                    "--lock-wait",
                    "120",
                ]);
                assert_success(&out, &format!("forget --keep-last {keep} --prune"));
            }
        })
    };
    let written: Vec<_> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    pruner.join().unwrap();
    v.ok(&["prune", "--max-unused", "0%"]);

    assert_eq!(written.len(), 12);
    for (w, k, id) in &written {
        v.assert_dump_matches(id, None, new(*w, *k));
    }
    let olds: Vec<_> = v
        .snapshots()
        .into_iter()
        .filter(|s| s["host"] == "old")
        .collect();
    assert_eq!(olds.len(), 1, "{olds:?}");
    v.assert_dump_matches(json_str(&olds[0], "id"), None, old(OLD));
    assert_every_used_blob_is_stored(&v);
    v.ok(&["check"]);
    assert!(
        v.objects("locks").is_empty(),
        "locks left: {:?}",
        v.objects("locks")
    );
}
