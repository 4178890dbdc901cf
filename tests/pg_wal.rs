//! `vault wal push` and `fetch` as PostgreSQL's archive_command and
//! restore_command: the contract (durable before exit 0, identical re-push
//! succeeds, a different file under an archived name fails, a missing file
//! is a quiet exit 1), the unlocked key file, a push killed mid-way, and a
//! real PostgreSQL 15 recovered from the archive to a point in time and to
//! the end.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{self, postgres::Postgres, Rng, Vault, BIN};

const SEGMENT: usize = 16 << 20;

/// A segment-sized file: random pages, then zeros (what a segment switched
/// early by archive_timeout looks like).
fn segment_bytes(seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; SEGMENT];
    Rng::new(seed).fill(&mut data[..SEGMENT / 4]);
    data
}

fn write_segment(dir: &Path, name: &str, seed: u64) -> (PathBuf, Vec<u8>) {
    let path = dir.join(name);
    let data = segment_bytes(seed);
    fs::write(&path, &data).unwrap();
    (path, data)
}

pub(crate) fn wal(v: &Vault, args: &[&str]) -> Output {
    let mut all = vec!["wal"];
    all.extend_from_slice(args);
    v.run(&all)
}

fn archived(v: &Vault) -> Vec<String> {
    let mut names: Vec<String> = match fs::read_dir(v.repo.join("wal")) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn push_and_fetch_keep_postgresql_archive_contract() {
    let v = Vault::init();
    let wal_dir = v.dir("pg_wal");
    let name = "000000010000000000000001";
    let (seg, data) = write_segment(&wal_dir, name, 1);

    common::assert_success(&wal(&v, &["push", seg.to_str().unwrap()]), "push");
    assert_eq!(archived(&v), [name]);
    let stored = fs::read(v.repo.join("wal").join(name)).unwrap();
    assert!(
        stored.len() < SEGMENT / 2,
        "the zeros of a segment are compressed ({} bytes stored)",
        stored.len()
    );
    assert!(
        !stored.windows(64).any(|w| w == &data[4096..4160]),
        "the segment is stored encrypted"
    );

    // PostgreSQL pushes again after a crash between push and its own note.
    common::assert_success(&wal(&v, &["push", seg.to_str().unwrap()]), "re-push");

    let dest = v.dir("restore").join("RECOVERYXLOG");
    common::assert_success(&wal(&v, &["fetch", name, dest.to_str().unwrap()]), "fetch");
    assert!(
        fs::read(&dest).unwrap() == data,
        "fetch returns the pushed bytes"
    );

    // Another file under the same name is refused and changes nothing.
    let mut other = data.clone();
    other[100] ^= 1;
    fs::write(&seg, &other).unwrap();
    let out = wal(&v, &["push", seg.to_str().unwrap()]);
    common::assert_code(&out, 1, "conflicting push");
    assert!(
        common::stderr(&out).contains("different contents"),
        "{}",
        common::stderr(&out)
    );
    common::assert_success(
        &wal(&v, &["fetch", name, dest.to_str().unwrap()]),
        "fetch after the refused push",
    );
    assert!(
        fs::read(&dest).unwrap() == data,
        "the archived file is kept"
    );

    // A file past the end of the archive: exit 1, quietly, nothing written.
    let missing = dest.with_file_name("missing");
    let out = wal(
        &v,
        &[
            "fetch",
            "000000010000000000000002",
            missing.to_str().unwrap(),
        ],
    );
    common::assert_code(&out, 1, "fetch of a missing segment");
    assert_eq!(common::stderr(&out), "", "recovery's last fetch is quiet");
    assert!(!missing.exists());

    // Names are PostgreSQL's, nothing else: they become repository paths.
    let stranger = wal_dir.join("config");
    fs::write(&stranger, b"x").unwrap();
    common::assert_code(
        &wal(&v, &["push", stranger.to_str().unwrap()]),
        2,
        "push of a file that is not WAL",
    );
    common::assert_code(
        &wal(&v, &["fetch", "../config", missing.to_str().unwrap()]),
        2,
        "fetch of a path",
    );

    // History files go through the same path.
    let (history, hdata) = {
        let p = wal_dir.join("00000002.history");
        let d = b"1\t0/3000000\tno recovery target specified\n".to_vec();
        fs::write(&p, &d).unwrap();
        (p, d)
    };
    common::assert_success(&wal(&v, &["push", history.to_str().unwrap()]), "history");
    common::assert_success(
        &wal(&v, &["fetch", "00000002.history", dest.to_str().unwrap()]),
        "fetch history",
    );
    assert_eq!(fs::read(&dest).unwrap(), hdata);
}

#[test]
fn key_file_pushes_without_a_password_and_is_owner_only() {
    let v = Vault::init();
    let key = v.path().join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    let mode = fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Never over an existing file.
    assert_ne!(
        common::code(&wal(&v, &["key-file", key.to_str().unwrap()])),
        0
    );

    let wal_dir = v.dir("pg_wal");
    let (seg, data) = write_segment(&wal_dir, "00000001000000000000000A", 2);
    let with_key = |args: &[&str]| {
        let mut all = vec!["wal"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--key-file", key.to_str().unwrap()]);
        common::output(v.cmd_with_password("not the password", &all))
    };
    common::assert_success(&with_key(&["push", seg.to_str().unwrap()]), "push by key");
    let dest = v.dir("out").join("seg");
    common::assert_success(
        &with_key(&["fetch", "00000001000000000000000A", dest.to_str().unwrap()]),
        "fetch by key",
    );
    assert!(fs::read(&dest).unwrap() == data);
    // The password path reads what the key file wrote.
    common::assert_success(
        &wal(
            &v,
            &["fetch", "00000001000000000000000A", dest.to_str().unwrap()],
        ),
        "fetch by password",
    );

    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let out = with_key(&["push", seg.to_str().unwrap()]);
    common::assert_code(&out, 2, "a key file others can read");
    assert!(
        common::stderr(&out).contains("chmod 600"),
        "{}",
        common::stderr(&out)
    );
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();

    // A key file opens the repository it was made for, no other.
    let other = Vault::init();
    let mut c = other.cmd(&[
        "wal",
        "push",
        seg.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    let out = common::output({
        c.env_remove("VAULT_PASSWORD");
        c
    });
    common::assert_code(&out, 6, "a key file of another repository");
    assert!(archived(&other).is_empty());
}

#[test]
fn push_killed_midway_then_retried_loses_and_duplicates_nothing() {
    let v = Vault::init();
    let key = v.path().join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    let wal_dir = v.dir("pg_wal");
    let name = "000000010000000000000003";
    let mut data = vec![0u8; SEGMENT];
    Rng::new(3).fill(&mut data);
    fs::write(wal_dir.join(name), &data).unwrap();
    let push = || {
        v.cmd(&[
            "wal",
            "push",
            wal_dir.join(name).to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ])
    };
    let mut rng = Rng::new(7);
    for _ in 0..6 {
        let mut child = push().spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(150)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        // Killed before the end, or done: either way no torn object.
        if let Ok(stored) = fs::read(v.repo.join("wal").join(name)) {
            let dest = v.path().join("check");
            common::assert_success(
                &wal(&v, &["fetch", name, dest.to_str().unwrap()]),
                &format!("fetch after a push that ended with {status}"),
            );
            assert!(fs::read(&dest).unwrap() == data);
            assert!(stored.len() > SEGMENT);
        }
    }
    // PostgreSQL retries until a push exits 0.
    common::assert_success(&common::output(push()), "retried push");
    assert_eq!(archived(&v), [name], "one object, under its name");
    let dest = v.path().join("final");
    common::assert_success(&wal(&v, &["fetch", name, dest.to_str().unwrap()]), "fetch");
    assert!(fs::read(&dest).unwrap() == data);
}

#[test]
fn push_ahead_stores_ready_segments_and_answers_from_its_notes() {
    let v = Vault::init();
    let key = v.path().join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    let pg_wal = v.dir("pg_wal");
    let status = v.dir("pg_wal/archive_status");
    let spool = v.path().join("spool");
    let names: Vec<String> = (1..=4)
        .map(|i| format!("0000000100000000000000{i:02X}"))
        .collect();
    let mut data = Vec::new();
    for (i, n) in names.iter().enumerate() {
        data.push(write_segment(&pg_wal, n, 10 + i as u64).1);
        fs::write(status.join(format!("{n}.ready")), b"").unwrap();
    }
    let push = |name: &str| {
        common::output(v.cmd(&[
            "wal",
            "push",
            pg_wal.join(name).to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
            "--ahead",
            "2",
            "--spool",
            spool.to_str().unwrap(),
        ]))
    };
    common::assert_success(&push(&names[0]), "push with --ahead 2");
    assert_eq!(archived(&v), names[..3], "its own segment and the next two");
    assert!(spool.join(format!("{}.ok", names[1])).exists());

    // PostgreSQL's next call is answered by the note, which it consumes.
    common::assert_success(&push(&names[1]), "push of a segment pushed ahead");
    assert!(!spool.join(format!("{}.ok", names[1])).exists());

    // A note never vouches for other bytes: the changed file is pushed,
    // and refused by the archive.
    let mut changed = data[2].clone();
    changed[7] ^= 1;
    fs::write(pg_wal.join(&names[2]), &changed).unwrap();
    common::assert_code(&push(&names[2]), 1, "changed file after its note");
    fs::write(pg_wal.join(&names[2]), &data[2]).unwrap();
    common::assert_success(&push(&names[2]), "the original again");

    common::assert_success(&push(&names[3]), "last");
    assert_eq!(archived(&v), names);
    for (n, d) in names.iter().zip(&data) {
        let dest = v.path().join("fetched");
        common::assert_success(&wal(&v, &["fetch", n, dest.to_str().unwrap()]), "fetch");
        assert!(&fs::read(&dest).unwrap() == d, "{n}");
    }
}

#[test]
fn status_and_check_show_the_newest_segment_and_name_a_deleted_one() {
    let v = Vault::init();
    let pg_wal = v.dir("pg_wal");
    for i in 1..=4u64 {
        let (p, _) = write_segment(&pg_wal, &format!("00000001000000000000000{i}"), 20 + i);
        common::assert_success(&wal(&v, &["push", p.to_str().unwrap()]), "push");
    }
    let st = v.json(&["wal", "status"]);
    assert_eq!(st["newest"], "000000010000000000000004");
    assert!(st["newest_age_secs"].as_i64().unwrap() < 600);
    assert_eq!(st["timelines"][0]["segments"], 4);
    assert_eq!(st["timelines"][0]["gaps"].as_array().unwrap().len(), 0);
    v.ok(&["check"]);

    fs::remove_file(v.repo.join("wal/000000010000000000000003")).unwrap();
    let out = wal(&v, &["status"]);
    common::assert_code(&out, 4, "status with a segment missing");
    let err = common::stderr(&out);
    assert!(
        err.contains("000000010000000000000003 to 000000010000000000000003 missing")
            && err.contains("recovery past 0/3000000")
            && err.contains("at or after 0/4000000"),
        "{err}"
    );

    // check finds it too, as damage.
    let out = v.run(&["check"]);
    common::assert_code(&out, 4, "check with a segment missing");
    assert!(
        common::stdout(&out).contains("WAL timeline 1: 000000010000000000000003 to"),
        "{}",
        common::stdout(&out)
    );
}

/// A repository whose config says format 1, as an older vault made it.
fn make_format_1(v: &Vault) {
    let repo = v.library();
    let mut config = repo.config().clone();
    config.repo_version = 1;
    repo.rewrite_config(&config).unwrap();
}

#[test]
fn archiving_into_a_format_1_repository_asks_for_an_upgrade() {
    let v = Vault::init();
    let key = v.path().join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    make_format_1(&v);
    v.ok(&["snapshots"]);
    let (seg, _) = write_segment(&v.dir("pg_wal"), "000000010000000000000001", 5);
    for args in [
        vec!["push", seg.to_str().unwrap()],
        vec![
            "push",
            seg.to_str().unwrap(),
            "--key-file",
            key.to_str().unwrap(),
        ],
        vec!["key-file", v.path().join("other.key").to_str().unwrap()],
    ] {
        let out = wal(&v, &args);
        assert_ne!(common::code(&out), 0, "{args:?}");
        assert!(
            common::stderr(&out).contains("run `vault upgrade` first"),
            "{}",
            common::stderr(&out)
        );
    }
    assert!(archived(&v).is_empty());
}

/// Let the account PostgreSQL runs as use the repository and the key file.
pub(crate) fn share_with_server(v: &Vault, pg: &Postgres, key_dir: &Path) {
    fs::set_permissions(v.path(), fs::Permissions::from_mode(0o755)).unwrap();
    if let Some((uid, gid)) = pg.owner() {
        for p in [&v.repo, &key_dir.to_path_buf()] {
            let out = Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(p)
                .output()
                .unwrap();
            assert!(out.status.success());
        }
    }
}

pub(crate) fn wait_for(what: &str, pg: &Postgres, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}; server log:\n{}",
            pg.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The current segment is switched out and archived.
pub(crate) fn archive_current(pg: &Postgres) {
    let seg = pg.sql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    wait_for("archiving", pg, Duration::from_secs(60), || {
        pg.sql(
            "postgres",
            "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver",
        ) >= seg
    });
}

pub(crate) fn count(pg: &Postgres, filter: &str) -> i64 {
    pg.sql("app", &format!("SELECT count(*) FROM t WHERE {filter}"))
        .parse()
        .unwrap()
}

#[test]
fn postgres_recovers_from_the_archive_to_a_time_and_to_the_end() {
    let v = Vault::init();
    let key_dir = v.dir("key");
    let key = key_dir.join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    let vault_cmd = |verb: &str| {
        format!(
            "{BIN} -q -r {} wal {verb} --key-file {}",
            v.repo.display(),
            key.display()
        )
    };
    let archive = format!("archive_command='{} %p'", vault_cmd("push"));
    let Some(mut pg) = Postgres::start_with(&["archive_mode=on", &archive, "archive_timeout=2"])
    else {
        return;
    };
    share_with_server(&v, &pg, &key_dir);
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, phase text);
         INSERT INTO t SELECT g, 'base' FROM generate_series(1, 1000) g",
    );
    let base = pg.base_backup();
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'before' FROM generate_series(1001, 2000) g;
         INSERT INTO t VALUES (0, 'marker')",
    );
    let target = pg.moment_apart();
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'after' FROM generate_series(2001, 3000) g",
    );
    archive_current(&pg);
    // The last commit: not switched out by hand, only by archive_timeout.
    pg.sql("app", "INSERT INTO t VALUES (-1, 'last')");
    std::thread::sleep(Duration::from_secs(5));
    pg.kill();

    let restore = format!("restore_command = '{} %f %p'\n", vault_cmd("fetch"));
    let recover = |extra: &str| {
        let conf = format!("{restore}{extra}");
        let r = pg.start_from(&base, &[], |dir| {
            fs::write(dir.join("recovery.signal"), b"").unwrap();
            let mut auto = fs::read_to_string(dir.join("postgresql.auto.conf")).unwrap();
            auto.push_str(&conf);
            fs::write(dir.join("postgresql.auto.conf"), auto).unwrap();
        });
        wait_for("the end of recovery", &r, Duration::from_secs(120), || {
            r.sql("postgres", "SELECT pg_is_in_recovery()") == "f"
        });
        r
    };

    let at_t = recover(&format!(
        "recovery_target_time = '{target}'\nrecovery_target_action = 'promote'\n"
    ));
    assert_eq!(count(&at_t, "phase = 'marker'"), 1, "the marker is there");
    assert_eq!(count(&at_t, "phase = 'before'"), 1000);
    assert_eq!(count(&at_t, "phase = 'after'"), 0, "later rows are not");
    assert_eq!(count(&at_t, "phase = 'last'"), 0);
    drop(at_t);

    // To the end: the archive runs out, fetch says so, recovery ends.
    let at_end = recover("");
    assert_eq!(count(&at_end, "phase = 'after'"), 1000);
    assert_eq!(
        count(&at_end, "phase = 'last'"),
        1,
        "a commit older than archive_timeout was archived"
    );
    assert!(
        at_end.log().contains("archive recovery complete")
            || at_end.log().contains("selected new timeline ID"),
        "{}",
        at_end.log()
    );
}
