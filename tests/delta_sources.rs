//! Every source with a parent stores an hour's changes as deltas: a second
//! `snapshot mysql`, `redis`, `sqlite` and `cmd` after about 1% of the rows
//! or keys changed stores deltas (its --json stats say so) and restores to
//! what the source held. Each runs against the real server or program.

use crate::common;

use std::path::Path;
use std::process::Output;

use common::mariadb::{programs, MariaDb, ROOT_PASSWORD};
use common::redis::{binaries, Redis, Reply};
use common::*;
use serde_json::Value;

/// A snapshot's JSON summary, after insisting it stored deltas.
fn stored_deltas(out: &Output, what: &str) -> Value {
    assert_success(out, what);
    let summary = parse_json(out);
    assert!(
        json_u64(&summary, "delta_blobs") > 0 && json_u64(&summary, "delta_saved_bytes") > 0,
        "{what}: the second snapshot stored no deltas: {summary}"
    );
    summary
}

/// Hex text that changes with `version` for the rows `i` it touches.
fn cell(i: u64, version: u64) -> String {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ version.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..6)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            format!("{:016x}", x >> 1)
        })
        .collect()
}

/// About 1% of the rows, spread over the whole range, change each hour.
fn touched(i: u64, hour: u64) -> bool {
    hour > 0 && (i * 2654435761 + hour * 97).is_multiple_of(100)
}

#[test]
fn mysql_hour_is_stored_as_deltas_and_restores() {
    let Some(p) = programs() else {
        return;
    };
    let db = MariaDb::start(&p);
    db.sql(
        "CREATE DATABASE shop; USE shop; \
         CREATE TABLE events (id INT PRIMARY KEY, kind VARCHAR(10), body JSON, note TEXT); \
         INSERT INTO events SELECT seq, ELT(1 + seq % 3, 'view', 'click', 'buy'), \
           JSON_OBJECT('page', CONCAT('/p/', seq % 997), 'ref', MD5(seq)), \
           CONCAT(SHA2(seq, 256), ' ', MD5(seq * 7)) FROM seq_1_to_40000;",
    );
    let v = Vault::init_with(SMALL_CHUNKS);
    let snapshot = || {
        let mut cmd = v.cmd(&["--json", "snapshot", "mysql", "--client"]);
        cmd.arg(&p.client).arg("--dump-program").arg(&p.dump);
        cmd.arg("-S")
            .arg(db.socket())
            .args(["-u", "root", "-D", "shop"]);
        cmd.env("MYSQL_PWD", ROOT_PASSWORD);
        output(cmd)
    };
    assert_success(&snapshot(), "first snapshot mysql");
    db.sql("UPDATE shop.events SET note = CONCAT(note, ' seen'), kind = 'seen' WHERE id % 100 = 7");
    let expected = db.dump("shop");
    let second = stored_deltas(&snapshot(), "second snapshot mysql");
    v.assert_dump_matches(
        json_str(&second, "snapshot"),
        Some(Path::new("shop.sql")),
        &expected[..],
    );
    v.ok(&["check", "--read-data"]);
}

#[test]
fn redis_hour_is_stored_as_deltas_and_restores() {
    let Some((server, cli)) = binaries() else {
        return;
    };
    const KEYS: u64 = 20_000;
    let source = Redis::start(&server, "pw");
    let mut conn = source.connect();
    let set_all = |conn: &mut common::redis::RespConn, hour: u64| {
        let ids: Vec<u64> = (0..KEYS)
            .filter(|i| hour == 0 || touched(*i, hour))
            .collect();
        for i in &ids {
            conn.send(&["SET", &format!("key:{i}"), &cell(*i, hour)]);
        }
        for _ in &ids {
            assert_eq!(conn.read(), Reply::Simple("OK".into()));
        }
    };
    let v = Vault::init_with(SMALL_CHUNKS);
    let snapshot = || {
        let mut cmd = v.cmd(&["--json", "snapshot", "redis", "--redis-cli"]);
        cmd.arg(&cli).arg("-s").arg(&source.socket);
        cmd.env("REDISCLI_AUTH", "pw");
        output(cmd)
    };
    set_all(&mut conn, 0);
    assert_success(&snapshot(), "first snapshot redis");
    set_all(&mut conn, 1);
    let second = stored_deltas(&snapshot(), "second snapshot redis");

    let rdb = v.dir("restored").join("dump.rdb");
    let dumped = v
        .cmd(&["dump", json_str(&second, "snapshot"), "dump.rdb"])
        .watched_output();
    assert_success(&dumped, "dump dump.rdb");
    std::fs::write(&rdb, &dumped.stdout).unwrap();
    let fresh = Redis::start_from_rdb(&server, "another", &rdb);
    let mut c = fresh.connect();
    assert_eq!(c.keys().len() as u64, KEYS);
    let changed: Vec<u64> = (0..KEYS).filter(|i| touched(*i, 1)).collect();
    assert!(!changed.is_empty());
    for i in changed.iter().copied().chain([0, KEYS / 2, KEYS - 1]) {
        let hour = u64::from(touched(i, 1));
        assert_eq!(
            c.cmd(&["GET", &format!("key:{i}")]),
            Reply::Bulk(Some(cell(i, hour).into_bytes())),
            "key:{i}"
        );
    }
    v.ok(&["check", "--read-data"]);
}

#[test]
fn sqlite_hour_is_stored_as_deltas_and_restores() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let db = v.dir("app").join("app.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute_batch("CREATE TABLE events(id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
        .unwrap();
    {
        let tx = c.unchecked_transaction().unwrap();
        for i in 0..30_000u64 {
            tx.execute("INSERT INTO events VALUES (?1, ?2)", (i as i64, cell(i, 0)))
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let snapshot = || {
        output(v.cmd(&[
            os(b"--json"),
            os(b"snapshot"),
            os(b"sqlite"),
            db.as_os_str(),
        ]))
    };
    assert_success(&snapshot(), "first snapshot sqlite");
    // Same length: the rows change in place, as most updates do.
    c.execute(
        "UPDATE events SET body = upper(body) WHERE id % 100 = 7",
        (),
    )
    .unwrap();
    let rows = |c: &rusqlite::Connection| -> Vec<(i64, String)> {
        let mut s = c
            .prepare("SELECT id, body FROM events ORDER BY id")
            .unwrap();
        s.query_map((), |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let expected = rows(&c);
    let second = stored_deltas(&snapshot(), "second snapshot sqlite");
    let target = v.dir("restored");
    v.restore(json_str(&second, "snapshot"), &target, &[]);
    let restored = rusqlite::Connection::open(target.join("app.db")).unwrap();
    let ok: String = restored
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
    assert_eq!(rows(&restored), expected);
    v.ok(&["check", "--read-data"]);
}

#[test]
fn command_stream_hour_is_stored_as_deltas_and_restores() {
    let v = Vault::init_with(SMALL_CHUNKS);
    let file = v.path().join("export.tsv");
    let hour = |h: u64| -> Vec<u8> {
        (0..50_000u64)
            .flat_map(|i| {
                let version = if touched(i, h) { h } else { 0 };
                format!("{i}\t{}\n", &cell(i, version)[..40]).into_bytes()
            })
            .collect()
    };
    let snapshot = || {
        output(v.cmd(&[
            os(b"--json"),
            os(b"snapshot"),
            os(b"cmd"),
            os(b"--name"),
            os(b"export.tsv"),
            os(b"--"),
            os(b"cat"),
            file.as_os_str(),
        ]))
    };
    std::fs::write(&file, hour(0)).unwrap();
    assert_success(&snapshot(), "first snapshot cmd");
    std::fs::write(&file, hour(1)).unwrap();
    let second = stored_deltas(&snapshot(), "second snapshot cmd");
    v.assert_dump_matches(
        json_str(&second, "snapshot"),
        Some(Path::new("export.tsv")),
        &hour(1)[..],
    );
    v.ok(&["check", "--read-data"]);
}
