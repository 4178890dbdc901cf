//! A failed PostgreSQL dump is not a backup: bad credentials, an unreachable
//! server, a lock that is not granted and a server killed mid-dump each end
//! with exit code 8, an error naming the cause, and no snapshot.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::postgres::Postgres;
use common::Vault;

fn assert_failed_without_snapshot(v: &Vault, out: &std::process::Output, cause: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "stderr: {stderr}");
    let last = stderr
        .lines()
        .rfind(|l| l.starts_with("vault:"))
        .unwrap_or_default();
    assert!(
        last.contains(cause),
        "error does not name '{cause}': {last}"
    );
    assert!(
        v.snapshots().is_empty(),
        "a failed dump recorded a snapshot"
    );
}

#[test]
fn bad_credentials_unreachable_server_and_lock_conflicts_record_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let v = Vault::init();
    pg.createdb("app");
    pg.sql("app", "CREATE TABLE t (x int); INSERT INTO t VALUES (1)");

    let out = pg
        .vault(&v, &["snapshot", "pg", "-d", "app", "-U", "nobody"])
        .output()
        .unwrap();
    assert_failed_without_snapshot(&v, &out, "\"nobody\" does not exist");

    let out = pg
        .vault(
            &v,
            &["snapshot", "pg", "-d", "app", "--pg-host", "/nonexistent"],
        )
        .output()
        .unwrap();
    assert_failed_without_snapshot(&v, &out, "connection to server");

    let out = pg
        .vault(&v, &["snapshot", "pg", "-d", "missing_db"])
        .output()
        .unwrap();
    assert_failed_without_snapshot(&v, &out, "\"missing_db\" does not exist");

    // Someone holds an exclusive lock (a migration, say) past the timeout.
    let mut holder = pg
        .client("psql", "app")
        .args([
            "-X",
            "-q",
            "-c",
            "BEGIN",
            "-c",
            "LOCK TABLE t IN ACCESS EXCLUSIVE MODE",
            "-c",
            "SELECT pg_sleep(60)",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while pg.sql("app", "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND relation = 't'::regclass") != "1" {
        assert!(Instant::now() < deadline, "the lock holder never got its lock");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = pg
        .vault(
            &v,
            &["snapshot", "pg", "-d", "app", "--lock-wait-timeout", "1s"],
        )
        .output()
        .unwrap();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_failed_without_snapshot(&v, &out, "lock timeout");
}

#[test]
fn server_killed_mid_dump_records_nothing() {
    let Some(mut pg) = Postgres::start() else {
        return;
    };
    let v = Vault::init();
    pg.createdb("big");
    // About 80 MB of COPY text: long enough to be caught mid-dump.
    pg.pgbench("big", &["-i", "-I", "dtg", "-s", "8", "-q"]);
    let mut child = pg
        .vault(&v, &["snapshot", "pg", "-d", "big", "--jobs", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let copying = pg.sql(
            "postgres",
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY %pgbench_accounts%'",
        );
        if copying != "0" {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the dump ended before it could be interrupted"
        );
        assert!(Instant::now() < deadline, "the dump never started copying");
        std::thread::sleep(Duration::from_millis(10));
    }
    pg.kill();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "stderr: {stderr}");
    assert!(
        stderr.contains("no snapshot was recorded") || stderr.contains("psql"),
        "{stderr}"
    );
    assert!(
        v.snapshots().is_empty(),
        "a dump cut short became a snapshot"
    );
    // The repository is sound: the data stored so far is indexed, not lost.
    v.ok(&["snapshots"]);
}
