//! `vault snapshot redis` against a real redis-server: the RDB stored while
//! a client keeps writing loads in a fresh server and holds a consistent
//! set of keys; a refused password or a missing server records nothing.

use crate::common;

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use common::db_snapshots::{assert_nothing_recorded, latest_meta};
use common::redis::{binaries, Redis, Reply};
use common::*;

const SERVER_PASSWORD: &str = "redis secret";
const PRELOADED: u64 = 40_000;

fn value(i: u64) -> String {
    format!("{i:08}-").repeat(24)
}

fn snapshot_redis(v: &Vault, cli: &Path, socket: &Path, password: &str) -> Output {
    let mut cmd = v.cmd(&["--json", "snapshot", "redis", "--redis-cli"]);
    cmd.arg(cli).arg("-s").arg(socket);
    cmd.env("REDISCLI_AUTH", password);
    output(cmd)
}

#[test]
fn rdb_taken_under_writes_restores_a_consistent_prefix() {
    let Some((server, cli)) = binaries() else {
        return;
    };
    let source = Redis::start(&server, SERVER_PASSWORD);
    let mut conn = source.connect();
    for i in 0..PRELOADED {
        conn.send(&["SET", &format!("key:{i}"), &value(i)]);
    }
    for _ in 0..PRELOADED {
        assert_eq!(conn.read(), Reply::Simple("OK".into()));
    }

    // One writer, one key after another: any point-in-time copy holds
    // exactly key:0 .. key:n-1 for some n.
    let written = Arc::new(AtomicU64::new(PRELOADED));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, stop) = (written.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = PRELOADED;
            while !stop.load(Ordering::SeqCst) {
                assert_eq!(
                    conn.cmd(&["SET", &format!("key:{i}"), &value(i)]),
                    Reply::Simple("OK".into())
                );
                i += 1;
                written.store(i, Ordering::SeqCst);
            }
        })
    };
    while written.load(Ordering::SeqCst) < PRELOADED + 100 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    let v = Vault::init();
    let before = written.load(Ordering::SeqCst);
    let out = snapshot_redis(&v, &cli, &source.socket, SERVER_PASSWORD);
    let after = written.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_success(&out, "snapshot redis");
    assert!(
        stderr(&out).is_empty(),
        "redis-cli chatter leaked: {}",
        stderr(&out)
    );
    assert!(
        after > before,
        "the writer made no progress during the snapshot"
    );

    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(json_str(&snaps[0], "source"), "redis");
    let meta = latest_meta(&v);
    let version = &meta["redis_version"];
    assert!(
        version.starts_with(|c: char| c.is_ascii_digit()),
        "recorded version: {version:?}"
    );

    // Restore as documented: the file into a stopped server's folder.
    let restored = v.dir("restored").join("dump.rdb");
    let dumped = v.cmd(&["dump", "latest", "dump.rdb"]).watched_output();
    assert_success(&dumped, "dump latest dump.rdb");
    std::fs::write(&restored, &dumped.stdout).unwrap();
    let fresh = Redis::start_from_rdb(&server, "another", &restored);
    let mut c = fresh.connect();
    let mut ids: Vec<u64> = c
        .keys()
        .iter()
        .map(|k| k.strip_prefix("key:").unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    let n = ids.len() as u64;
    assert!(
        (before..=after).contains(&n),
        "restored {n} keys; the snapshot ran while {before}..{after} were written"
    );
    assert_eq!(
        ids,
        (0..n).collect::<Vec<_>>(),
        "restored keys are not a prefix"
    );
    for i in [0, PRELOADED / 2, n - 1] {
        assert_eq!(
            c.cmd(&["GET", &format!("key:{i}")]),
            Reply::Bulk(Some(value(i).into_bytes()))
        );
    }
}

#[test]
fn refused_password_and_missing_server_record_nothing() {
    let Some((server, cli)) = binaries() else {
        return;
    };
    let source = Redis::start(&server, SERVER_PASSWORD);
    let v = Vault::init();
    let out = snapshot_redis(&v, &cli, &source.socket, "wrong password");
    assert_nothing_recorded(&v, &out, 8, "wrong password", "WRONGPASS");

    let gone = source.socket.clone();
    drop(source);
    let out = snapshot_redis(&v, &cli, &gone, SERVER_PASSWORD);
    assert_nothing_recorded(&v, &out, 8, "server down", "Could not connect");
}

#[test]
fn server_killed_mid_transfer_records_nothing() {
    let Some((server, cli)) = binaries() else {
        return;
    };
    let source = Redis::start(&server, SERVER_PASSWORD);
    let mut conn = source.connect();
    for i in 0..2000u64 {
        conn.send(&["SET", &format!("key:{i}"), &value(i)]);
    }
    for _ in 0..2000 {
        assert_eq!(conn.read(), Reply::Simple("OK".into()));
    }
    // Redis's own test knob: a pause per key written, so the transfer takes
    // seconds (2000 keys x 2 ms) and is surely under way when the server dies.
    assert_eq!(
        conn.cmd(&["CONFIG", "SET", "rdb-key-save-delay", "2000"]),
        Reply::Simple("OK".into())
    );
    let v = Vault::init();
    let mut cmd = v.cmd(&["snapshot", "redis", "--redis-cli"]);
    cmd.arg(&cli).arg("-s").arg(&source.socket);
    cmd.env("REDISCLI_AUTH", SERVER_PASSWORD);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let watchdog = Watchdog::start(&child);
    std::thread::sleep(std::time::Duration::from_millis(2000));
    drop(source);
    let out = child.wait_with_output().unwrap();
    watchdog.stop();
    assert_nothing_recorded(&v, &out, 8, "server killed", "redis-cli");
}
