//! `vault snapshot sqlite` while another connection keeps inserting: the
//! restored file passes SQLite's integrity check and holds exactly the
//! transactions committed before some instant, in WAL and in rollback
//! journal mode. Nothing is left in the staging folder either way.

use crate::common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use rusqlite::Connection;

const PRELOADED: u64 = 30_000;
const PER_TRANSACTION: u64 = 10;

fn create(db: &Path, journal_mode: &str) {
    let c = Connection::open(db).unwrap();
    let mode: String = c
        .query_row(&format!("PRAGMA journal_mode={journal_mode}"), [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode, journal_mode);
    c.execute_batch(&format!(
        "CREATE TABLE events(id INTEGER PRIMARY KEY, payload BLOB NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {PRELOADED})
         INSERT INTO events SELECT i, randomblob(300) FROM n;"
    ))
    .unwrap();
}

/// Insert `PER_TRANSACTION` rows per transaction until stopped; returns
/// the number of rows committed so far through `committed`.
fn start_writer(
    db: &Path,
    committed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let mut c = Connection::open(&db).unwrap();
        c.busy_timeout(Duration::from_secs(60)).unwrap();
        let mut next = PRELOADED + 1;
        while !stop.load(Ordering::SeqCst) {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .unwrap();
            for id in next..next + PER_TRANSACTION {
                tx.execute(
                    "INSERT INTO events VALUES (?1, randomblob(300))",
                    [id as i64],
                )
                .unwrap();
            }
            tx.commit().unwrap();
            next += PER_TRANSACTION;
            committed.store(next - 1, Ordering::SeqCst);
        }
    })
}

/// Both ways back: `restore sqlite --to FILE` over an old copy and its
/// stale WAL (WAL test), and a plain restore into a folder (the other).
fn restore(v: &Vault, journal_mode: &str) -> Connection {
    if journal_mode == "wal" {
        let target = v.dir("live").join("app.db");
        write(&target, b"an older copy");
        let stale_wal = v.path().join("live/app.db-wal");
        write(&stale_wal, b"frames of the older copy");
        let out = v.run(&[
            "restore".as_ref(),
            "sqlite".as_ref(),
            "latest".as_ref(),
            "--to".as_ref(),
            target.as_os_str(),
            "--force".as_ref(),
        ]);
        assert_success(&out, "restore sqlite --force");
        assert!(
            !stale_wal.exists(),
            "the stale WAL was left beside the restored file"
        );
        return Connection::open(target).unwrap();
    }
    let target = v.dir("restored");
    v.restore("latest", &target, &[]);
    Connection::open(target.join("app.db")).unwrap()
}

fn round_trip_under_writes(journal_mode: &str) {
    let v = Vault::init();
    let db = v.dir("app").join("app.db");
    create(&db, journal_mode);
    let staging = v.dir("staging");

    let committed = Arc::new(AtomicU64::new(PRELOADED));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = start_writer(&db, committed.clone(), stop.clone());
    while committed.load(Ordering::SeqCst) < PRELOADED + 20 * PER_TRANSACTION {
        std::thread::sleep(Duration::from_millis(5));
    }
    let before = committed.load(Ordering::SeqCst);
    let mut args: Vec<std::ffi::OsString> = vec!["--json".into(), "snapshot".into()];
    args.extend(["sqlite".into(), db.clone().into_os_string()]);
    args.extend(["--temp-dir".into(), staging.clone().into_os_string()]);
    let out = v.run(&args);
    // Let the writer commit once more: the snapshot must not have stopped it.
    let after_snapshot = committed.load(Ordering::SeqCst);
    while committed.load(Ordering::SeqCst) == after_snapshot {
        std::thread::sleep(Duration::from_millis(5));
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    assert_success(&out, "snapshot sqlite");
    assert_eq!(
        listing(&staging),
        Vec::<String>::new(),
        "staging left behind"
    );

    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(json_str(&snaps[0], "source"), "sqlite");
    let meta = common::db_snapshots::latest_meta(&v);
    let stored_size: u64 =
        meta["page_size"].parse::<u64>().unwrap() * meta["pages"].parse::<u64>().unwrap();
    assert_eq!(stored_size, json_u64(&snaps[0]["summary"], "bytes_read"));
    assert_eq!(meta["sqlite_version"], rusqlite::version());

    let restored = restore(&v, journal_mode);
    let check: String = restored
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    let (count, min, max): (u64, u64, u64) = restored
        .query_row("SELECT count(*), min(id), max(id) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!((min, max), (1, count), "restored rows are not a prefix");
    assert_eq!(
        (count - PRELOADED) % PER_TRANSACTION,
        0,
        "a transaction was torn"
    );
    assert!(
        (before..=after_snapshot).contains(&count),
        "restored {count} rows; {before}..{after_snapshot} were committed during the snapshot"
    );
}

#[test]
fn wal_database_copied_while_written() {
    round_trip_under_writes("wal");
}

#[test]
fn rollback_journal_database_copied_while_written() {
    round_trip_under_writes("delete");
}

#[test]
fn missing_file_and_non_database_record_nothing() {
    let v = Vault::init();
    let missing = v.path().join("nowhere/app.db");
    let out = v.run(&[
        std::ffi::OsStr::new("snapshot"),
        "sqlite".as_ref(),
        missing.as_os_str(),
    ]);
    assert_code(&out, 1, "snapshot sqlite of a missing file");
    assert!(one_line_error(&out).contains("nowhere/app.db"));
    assert!(!missing.exists(), "a missing database was created");

    let notes = v.dir("docs").join("notes.db");
    write(&notes, &[b'#'; 10_000]);
    let out = v.run(&[
        std::ffi::OsStr::new("snapshot"),
        "sqlite".as_ref(),
        notes.as_os_str(),
    ]);
    assert_code(&out, 8, "snapshot sqlite of a text file");
    assert!(one_line_error(&out).contains("not a database"));
    assert!(v.snapshots().is_empty(), "a snapshot was recorded");
}

#[test]
fn restore_refuses_to_replace_a_database_unless_forced() {
    let v = Vault::init();
    let db = v.dir("app").join("app.db");
    create(&db, "delete");
    let mut args: Vec<std::ffi::OsString> = vec!["snapshot".into(), "sqlite".into()];
    args.push(db.clone().into_os_string());
    v.ok(&args);

    let target = v.dir("live").join("app.db");
    write(&target, b"the live database");
    let restore = |extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec!["restore".into(), "sqlite".into()];
        args.extend([
            "latest".into(),
            "--to".into(),
            target.clone().into_os_string(),
        ]);
        args.extend(extra.iter().map(std::ffi::OsString::from));
        v.run(&args)
    };
    let out = restore(&[]);
    assert_code(&out, 2, "restore sqlite over an existing file");
    assert!(one_line_error(&out).contains("--force"));
    let out = restore(&["--force", "--dry-run"]);
    assert_success(&out, "restore sqlite --force --dry-run");
    assert!(stdout(&out).contains("would replace"), "{}", stdout(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"the live database");
    assert_eq!(listing(&v.path().join("live")), ["app.db"]);

    assert_success(&restore(&["--force"]), "restore sqlite --force");
    v.assert_dump_matches("latest", None, std::fs::File::open(&target).unwrap());
    let rows: u64 = Connection::open(&target)
        .unwrap()
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, PRELOADED);
}
