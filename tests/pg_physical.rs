//! `vault snapshot pg --physical` and `vault restore pg --physical`: a base
//! backup of a real PostgreSQL 15 with WAL archived by `vault wal push`,
//! restored to a point in time, to the end of the archive, and again after
//! the restored server promoted onto a new timeline; and the servers a
//! base backup cannot be taken from, refused with one line.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vault::format::pg_base::{BaseBackup, PG_PHYSICAL_SOURCE};

use crate::common::{self, postgres::Postgres, Vault, BIN};
use crate::pg_wal::{archive_current, count, share_with_server, wait_for, wal};

/// A repository with a WAL key file, and the archive settings that push
/// into it with that key.
pub(crate) struct Archive {
    pub(crate) v: Vault,
    pub(crate) key_dir: PathBuf,
    pub(crate) key: PathBuf,
    settings: Vec<String>,
}

impl Archive {
    pub(crate) fn new() -> Archive {
        let v = Vault::init();
        let key_dir = v.dir("key");
        let key = key_dir.join("wal.key");
        common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
        let push = format!(
            "archive_command='{BIN} -q -r {} wal push --key-file {} %p'",
            v.repo.display(),
            key.display()
        );
        Archive {
            v,
            key_dir,
            key,
            settings: vec!["archive_mode=on".into(), push, "archive_timeout=2".into()],
        }
    }

    pub(crate) fn settings(&self) -> Vec<&str> {
        self.settings.iter().map(String::as_str).collect()
    }

    /// A server archiving into the repository (`None`: PostgreSQL is
    /// missing and the test skips).
    pub(crate) fn server(&self) -> Option<Postgres> {
        let pg = Postgres::start_with(&self.settings())?;
        share_with_server(&self.v, &pg, &self.key_dir);
        Some(pg)
    }

    /// A folder for scratch servers the server's account can enter, so a
    /// test sees what is left in it afterwards.
    pub(crate) fn scratch_folder(&self) -> PathBuf {
        let tmp = self.v.dir("tmp");
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o755)).unwrap();
        tmp
    }

    /// `restore pg --physical` of the newest base backup into a new folder.
    pub(crate) fn restore(&self, pg: &Postgres, name: &str, target: &[&str]) -> PathBuf {
        let dir = self.v.dir(name);
        fs::remove_dir(&dir).unwrap();
        let mut args = vec![
            "restore",
            "pg",
            "--physical",
            "latest",
            "--target",
            dir.to_str().unwrap(),
            "--wal-key-file",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(target);
        let out = pg.vault(&self.v, &args).output().unwrap();
        common::assert_success(&out, "restore pg --physical");
        dir
    }
}

/// Start a server on a restored data directory as it is (the restore wrote
/// its recovery settings) and wait for recovery to end.
pub(crate) fn recover(pg: &Postgres, data: &Path, settings: &[&str]) -> Postgres {
    let r = pg.start_from(data, settings, |_| {});
    wait_for("the end of recovery", &r, Duration::from_secs(120), || {
        r.sql("postgres", "SELECT pg_is_in_recovery()") == "f"
    });
    r
}

#[test]
fn base_backup_restores_to_a_time_to_the_end_and_along_a_new_timeline() {
    let a = Archive::new();
    let Some(mut pg) = a.server() else {
        return;
    };
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, phase text);
         INSERT INTO t SELECT g, 'base' FROM generate_series(1, 1000) g;
         CREATE TABLE still (id int, pad text);
         INSERT INTO still SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
    );

    let first = pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    let second = pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    assert!(
        common::json_u64(&second, "raw_bytes_added") * 10
            < common::json_u64(&first, "raw_bytes_added"),
        "unchanged relation files cost nothing the second time: {second}"
    );
    let repo = a.v.library();
    let snaps = repo.snapshots().unwrap();
    let (_, snap) = snaps.last().unwrap();
    assert_eq!(snap.source, PG_PHYSICAL_SOURCE);
    let base = BaseBackup::from_meta(&snap.meta).unwrap().unwrap();
    let sysid = pg.sql(
        "postgres",
        "SELECT system_identifier FROM pg_control_system()",
    );
    assert_eq!(base.system_identifier.to_string(), sysid);
    assert_eq!(base.wal_segment_size, 16 << 20);
    assert_eq!((base.start_timeline, base.stop_timeline), (1, 1));
    assert!(base.start_lsn > 0 && base.start_lsn <= base.stop_lsn);

    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'before' FROM generate_series(1001, 2000) g;
         INSERT INTO t VALUES (0, 'marker')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let target = pg.sql("postgres", "SELECT clock_timestamp()::text");
    let lsn_at_target = pg.sql("postgres", "SELECT pg_current_wal_insert_lsn()::text");
    std::thread::sleep(Duration::from_millis(1100));
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'after' FROM generate_series(2001, 3000) g",
    );
    archive_current(&pg);
    // The last commit: not switched out by hand, only by archive_timeout.
    pg.sql("app", "INSERT INTO t VALUES (-1, 'last')");
    std::thread::sleep(Duration::from_secs(5));
    pg.kill();

    let at_t = a.restore(&pg, "at-t", &["--to-time", &target]);
    let conf = fs::read_to_string(at_t.join("postgresql.auto.conf")).unwrap();
    assert!(
        conf.contains("recovery_target_action = 'promote'"),
        "{conf}"
    );
    assert!(
        !conf.contains(&a.v.password),
        "no password in the data directory"
    );
    assert!(at_t.join("recovery.signal").is_file());
    assert!(
        at_t.join("pg_wal/archive_status").is_dir(),
        "empty folders come back"
    );
    let at_t = recover(&pg, &at_t, &[]);
    assert_eq!(count(&at_t, "phase = 'marker'"), 1, "the marker is there");
    assert_eq!(count(&at_t, "phase = 'before'"), 1000);
    assert_eq!(count(&at_t, "phase = 'after'"), 0, "later rows are not");
    assert_eq!(count(&at_t, "phase = 'last'"), 0);
    drop(at_t);

    // A drill does the same in a throwaway server, checks, and records it.
    let drill_to = |to: [&str; 2], asserts: &[&str]| {
        let mut args = vec![
            "--json",
            "drill",
            "pg",
            "--physical",
            to[0],
            to[1],
            "--wal-key-file",
            a.key.to_str().unwrap(),
            "--assert-db",
            "app",
        ];
        for sql in asserts {
            args.extend(["--assert", sql]);
        }
        pg.vault(&a.v, &args).output().unwrap()
    };
    let drill = |asserts: &[&str]| drill_to(["--to-time", &target], asserts);
    let out = drill(&[
        "(SELECT count(*) FROM t WHERE phase = 'marker') = 1",
        "(SELECT count(*) FROM t WHERE phase = 'after') = 0",
    ]);
    common::assert_success(&out, "drill pg --physical");
    let report = common::parse_json(&out);
    assert_eq!(report["passed"], true, "{report}");
    assert!(common::json_u64(&report, "restore_ms") > 0);
    let checks = report["checks"].as_array().unwrap();
    assert_eq!(
        checks.len(),
        4,
        "restore, recovery and two asserts: {report}"
    );
    let out = drill(&["(SELECT count(*) FROM t WHERE phase = 'after') > 0"]);
    common::assert_code(&out, 9, "a failed assertion fails the drill");
    // The same point named by its WAL position.
    let out = drill_to(
        ["--to-lsn", &lsn_at_target],
        &[
            "(SELECT count(*) FROM t WHERE phase = 'marker') = 1",
            "(SELECT count(*) FROM t WHERE phase = 'after') = 0",
        ],
    );
    common::assert_success(&out, "drill pg --physical --to-lsn");
    assert_eq!(
        a.v.library().drills().unwrap().len(),
        3,
        "every drill is recorded"
    );

    // To the end: what was lost is at most archive_timeout worth, and the
    // server, promoted, archives its new timeline into the same archive.
    let at_end = a.restore(&pg, "at-end", &[]);
    let at_end = recover(&pg, &at_end, &a.settings());
    assert_eq!(count(&at_end, "phase = 'after'"), 1000);
    assert_eq!(
        count(&at_end, "phase = 'last'"),
        1,
        "a commit older than archive_timeout was archived"
    );
    let timeline: u32 = at_end
        .sql(
            "postgres",
            "SELECT timeline_id FROM pg_control_checkpoint()",
        )
        .parse()
        .unwrap();
    assert!(timeline > 1, "promoted onto a new timeline");
    at_end.sql(
        "app",
        "INSERT INTO t SELECT g, 'new timeline' FROM generate_series(5001, 5100) g",
    );
    archive_current(&at_end);
    drop(at_end);

    // The same base backup again, to the end: it follows the new timeline.
    let again = a.restore(&pg, "again", &[]);
    let again = recover(&pg, &again, &[]);
    assert_eq!(count(&again, "phase = 'new timeline'"), 100);
    assert_eq!(count(&again, "phase = 'last'"), 1);
}

#[test]
fn servers_that_cannot_stream_a_base_backup_are_refused_in_one_line() {
    let Some(minimal) = Postgres::start_with(&["wal_level=minimal", "max_wal_senders=0"]) else {
        return;
    };
    let v = Vault::init();
    let out = minimal
        .vault(&v, &["snapshot", "pg", "--physical"])
        .output()
        .unwrap();
    common::assert_code(&out, 8, "wal_level minimal");
    assert!(common::one_line_error(&out).contains("wal_level is minimal"));
    drop(minimal);

    let no_senders = Postgres::start_with(&["max_wal_senders=0"]).unwrap();
    let out = no_senders
        .vault(&v, &["snapshot", "pg", "--physical"])
        .output()
        .unwrap();
    common::assert_code(&out, 8, "max_wal_senders 0");
    assert!(common::one_line_error(&out).contains("max_wal_senders is 0"));
    drop(no_senders);

    let pg = Postgres::start().unwrap();
    pg.sql("postgres", "CREATE ROLE plain LOGIN");
    let out = pg
        .vault(&v, &["snapshot", "pg", "--physical", "-U", "plain"])
        .output()
        .unwrap();
    common::assert_code(&out, 8, "no REPLICATION");
    assert!(common::one_line_error(&out).contains("needs the REPLICATION attribute"));

    // A restore never writes into a folder that holds anything.
    pg.vault_json(&v, &["snapshot", "pg", "--physical"]);
    let key = v.dir("key").join("wal.key");
    common::assert_success(&wal(&v, &["key-file", key.to_str().unwrap()]), "key-file");
    let busy = v.dir("busy");
    fs::write(busy.join("keep"), b"mine").unwrap();
    let out = pg
        .vault(
            &v,
            &[
                "restore",
                "pg",
                "--physical",
                "latest",
                "--target",
                busy.to_str().unwrap(),
                "--wal-key-file",
                key.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    common::assert_code(&out, 2, "non-empty target");
    assert!(common::one_line_error(&out).contains("is not empty"));
    assert_eq!(fs::read(busy.join("keep")).unwrap(), b"mine");
    assert_eq!(fs::read_dir(&busy).unwrap().count(), 1);
}

/// A folder the server's account owns (tablespaces must be), reachable
/// through the scratch area.
fn server_folder(v: &Vault, pg: &Postgres, name: &str) -> PathBuf {
    let dir = v.dir(name);
    fs::set_permissions(v.path(), fs::Permissions::from_mode(0o755)).unwrap();
    chown_for_server(pg, &dir);
    dir
}

fn chown_for_server(pg: &Postgres, dir: &Path) {
    if let Some((uid, gid)) = pg.owner() {
        let out = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(dir)
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}

fn is_empty_or_missing(dir: &Path) -> bool {
    fs::read_dir(dir).map_or(true, |mut d| d.next().is_none())
}

/// A cluster with two tablespaces: backed up (spooled, and the spool
/// removed), restored to a time with each tablespace mapped into a new
/// folder, recovered by a real server; refused in one line when a
/// tablespace would land in a folder that holds anything; and drilled in a
/// throwaway server that never touches the originals.
#[test]
fn tablespaces_are_backed_up_and_restored_where_a_mapping_says() {
    let a = Archive::new();
    let Some(pg) = a.server() else {
        return;
    };
    let fast = server_folder(&a.v, &pg, "fast");
    let slow = server_folder(&a.v, &pg, "slow");
    let tmp = a.scratch_folder();
    pg.createdb("app");
    for (name, dir) in [("fast", &fast), ("slow", &slow)] {
        pg.sql(
            "postgres",
            &format!("CREATE TABLESPACE {name} LOCATION '{}'", dir.display()),
        );
    }
    pg.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, phase text) TABLESPACE fast;
             INSERT INTO t SELECT g, 'base' FROM generate_series(1, 1000) g;
             CREATE TABLE cold (id int, pad text) TABLESPACE slow;
             INSERT INTO cold SELECT g, repeat('y', 100) FROM generate_series(1, 5000) g;
             CREATE INDEX ON cold (id) TABLESPACE fast",
    );
    let out = pg
        .vault(&a.v, &["--json", "snapshot", "pg", "--physical"])
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    common::assert_success(&out, "snapshot pg --physical with tablespaces");
    assert!(is_empty_or_missing(&tmp), "the spool folder is removed");
    let oid = |name: &str| {
        pg.sql(
            "postgres",
            &format!("SELECT oid FROM pg_tablespace WHERE spcname = '{name}'"),
        )
    };
    let id = common::parse_json(&out)["snapshot"]
        .as_str()
        .unwrap()
        .to_string();
    let listing = a.v.run(&["ls", &id, "/tablespaces"]);
    common::assert_success(&listing, "ls /tablespaces");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    for name in ["fast", "slow"] {
        assert!(listing.contains(&oid(name)), "{name}: {listing}");
    }

    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'before' FROM generate_series(1001, 1500) g;
         INSERT INTO t VALUES (0, 'marker')",
    );
    let target = pg.moment_apart();
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'after' FROM generate_series(2001, 2500) g;
         DELETE FROM cold WHERE id > 100",
    );
    archive_current(&pg);

    // The originals hold the live server's files: a restore without a
    // mapping would write into them, and is refused before writing.
    let refused = a.v.dir("refused");
    fs::remove_dir(&refused).unwrap();
    let restore_args = |dir: &Path, extra: &[&str]| {
        let mut args = vec![
            "restore".to_string(),
            "pg".into(),
            "--physical".into(),
            "latest".into(),
            "--target".into(),
            dir.display().to_string(),
            "--wal-key-file".into(),
            a.key.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        pg.vault(&a.v, &args).output().unwrap()
    };
    let fast_to = a.v.dir("fast-restored");
    let map_fast = format!("{}={}", fast.display(), fast_to.display());
    let out = run(restore_args(&refused, &["-T", &map_fast]));
    common::assert_code(&out, 2, "a tablespace onto its live original");
    let e = common::one_line_error(&out);
    assert!(e.contains(&format!("tablespace {}", oid("slow"))), "{e}");
    assert!(e.contains("is not empty"), "{e}");
    assert!(is_empty_or_missing(&refused), "nothing written");
    assert!(is_empty_or_missing(&fast_to), "nothing written");
    let out = run(restore_args(&refused, &["-T", "/no/such/place=/tmp/x"]));
    common::assert_code(&out, 2, "a mapping that names no tablespace");
    assert!(
        common::one_line_error(&out).contains("no tablespace of this backup is at /no/such/place")
    );
    assert!(is_empty_or_missing(&refused), "nothing written");

    // Both mapped, to the time.
    let slow_to = a.v.dir("slow-restored");
    let map_slow = format!("{}={}", slow.display(), slow_to.display());
    let restored = a.v.dir("restored");
    fs::remove_dir(&restored).unwrap();
    let out = run(restore_args(
        &restored,
        &[
            "-T",
            &map_fast,
            "--tablespace-mapping",
            &map_slow,
            "--to-time",
            &target,
        ],
    ));
    common::assert_success(&out, "restore pg --physical -T");
    let map = fs::read_to_string(restored.join("tablespace_map")).unwrap();
    assert!(
        map.contains(&format!("{} {}\n", oid("fast"), fast_to.display())),
        "{map}"
    );
    assert!(
        map.contains(&format!("{} {}\n", oid("slow"), slow_to.display())),
        "{map}"
    );
    chown_for_server(&pg, &fast_to);
    chown_for_server(&pg, &slow_to);
    let live_fast = fs::read_dir(&fast).unwrap().count();
    let at_t = recover(&pg, &restored, &[]);
    assert_eq!(count(&at_t, "phase = 'marker'"), 1, "the marker is there");
    assert_eq!(count(&at_t, "phase = 'before'"), 500);
    assert_eq!(count(&at_t, "phase = 'after'"), 0, "later rows are not");
    assert_eq!(
        at_t.sql("app", "SELECT count(*) FROM cold WHERE id > 100"),
        "4900",
        "the other tablespace as it was at the time"
    );
    assert_eq!(
        at_t.sql(
            "app",
            "SELECT pg_tablespace_location(oid) FROM pg_tablespace WHERE spcname = 'fast'"
        ),
        fast_to.display().to_string(),
        "the restored server uses the mapped folder"
    );
    drop(at_t);
    assert_eq!(fs::read_dir(&fast).unwrap().count(), live_fast);

    // A drill maps every tablespace into its throwaway folder.
    let out = pg
        .vault(
            &a.v,
            &[
                "--json",
                "drill",
                "pg",
                "--physical",
                "--to-time",
                &target,
                "--wal-key-file",
                a.key.to_str().unwrap(),
                "--assert-db",
                "app",
                "--assert",
                "(SELECT count(*) FROM t WHERE phase = 'marker') = 1",
                "--assert",
                "(SELECT count(*) FROM cold) = 5000",
            ],
        )
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    common::assert_success(&out, "drill pg --physical with tablespaces");
    assert_eq!(common::parse_json(&out)["passed"], true);
    assert!(is_empty_or_missing(&tmp), "the scratch server is removed");

    // One tablespace mapped elsewhere: used, then removed with the drill.
    let drill_mapped = |map: &str| {
        pg.vault(
            &a.v,
            &[
                "--json",
                "drill",
                "pg",
                "--physical",
                "--wal-key-file",
                a.key.to_str().unwrap(),
                "--assert-db",
                "app",
                "--assert",
                "(SELECT count(*) FROM cold) = 100",
                "-T",
                map,
            ],
        )
        .env("TMPDIR", &tmp)
        .output()
        .unwrap()
    };
    let elsewhere = a.v.path().join("drill-slow");
    let out = drill_mapped(&format!("{}={}", slow.display(), elsewhere.display()));
    common::assert_success(&out, "drill pg --physical -T");
    assert_eq!(common::parse_json(&out)["passed"], true);
    assert!(!elsewhere.exists(), "the mapped folder is removed");
    assert!(is_empty_or_missing(&tmp), "the scratch server is removed");
    let drills = a.v.library().drills().unwrap().len();
    let out = drill_mapped(&format!("{}={}/inside", slow.display(), fast.display()));
    common::assert_code(&out, 2, "a drill mapped into a live tablespace");
    assert!(common::one_line_error(&out).contains("a drill never writes there"));
    assert_eq!(
        a.v.library().drills().unwrap().len(),
        drills,
        "no drill recorded"
    );
    assert_eq!(fs::read_dir(&fast).unwrap().count(), live_fast);
    pg.sql("app", "INSERT INTO t VALUES (-1, 'live still writes')");
}

/// `restore pg --table S.T --to-time T -d DB`: one table brought back into
/// the live database as it was at T, from a base backup and the WAL
/// archive, while every other table keeps its newer rows; the scratch
/// server is gone afterwards, whatever happened.
#[test]
fn one_table_comes_back_as_it_was_at_a_time_and_nothing_else_changes() {
    let a = Archive::new();
    let Some(pg) = a.server() else {
        return;
    };
    // The scratch servers live here, so the test sees they are removed.
    let tmp = a.scratch_folder();
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (id serial PRIMARY KEY, v text);
         INSERT INTO t (v) SELECT 'base ' || g FROM generate_series(1, 500) g;
         CREATE TABLE u (id int, v text);
         INSERT INTO u VALUES (1, 'old');
         CREATE VIEW high AS SELECT id, v FROM t WHERE id > 100",
    );
    pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    pg.sql(
        "app",
        "INSERT INTO t (v) SELECT 'later ' || g FROM generate_series(1, 300) g;
         UPDATE t SET v = 'changed' WHERE id = 7",
    );
    let rows = |table: &str| {
        pg.sql(
            "app",
            &format!("SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM {table}"),
        )
    };
    let t_at_target = rows("t");
    assert!(t_at_target.starts_with("800 "), "{t_at_target}");
    let lsn_at_target = pg.sql("postgres", "SELECT pg_current_wal_insert_lsn()::text");
    let target = pg.moment_apart();
    pg.sql(
        "app",
        "DELETE FROM t WHERE id > 10;
         INSERT INTO u VALUES (2, 'newer'), (3, 'newest')",
    );
    archive_current(&pg);
    let u_now = rows("u");
    assert!(u_now.starts_with("3 "), "{u_now}");

    let restore_to = |table: &str, to: [&str; 2], extra: &[&str]| {
        let mut args = vec![
            "restore",
            "pg",
            "latest",
            "--table",
            table,
            to[0],
            to[1],
            "-d",
            "app",
            "--wal-key-file",
            a.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = pg.vault(&a.v, &args).env("TMPDIR", &tmp).output().unwrap();
        assert_eq!(
            fs::read_dir(&tmp).unwrap().count(),
            0,
            "the scratch server is removed"
        );
        out
    };
    let restore =
        |table: &str, time: &str, extra: &[&str]| restore_to(table, ["--to-time", time], extra);

    // The table exists: refused, and the live database unchanged.
    let out = restore("public.t", &target, &[]);
    common::assert_code(&out, 2, "existing table without --clean");
    assert!(common::one_line_error(&out).contains("use --clean to replace it"));
    assert_eq!(pg.sql("app", "SELECT count(*) FROM t"), "10");

    let out = restore("public.t", &target, &["--clean", "--dry-run"]);
    common::assert_success(&out, "dry run");
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(plan.contains("public.t: replaced"), "{plan}");
    assert!(plan.contains("view public.high"), "{plan}");
    assert_eq!(pg.sql("app", "SELECT count(*) FROM t"), "10");

    let out = restore("public.t", &target, &["--clean"]);
    common::assert_success(&out, "restore pg --table --to-time --clean");
    assert_eq!(rows("t"), t_at_target, "t holds exactly its rows at T");
    assert_eq!(rows("u"), u_now, "u keeps its newer rows");
    assert_eq!(
        pg.sql("app", "SELECT count(*) FROM high"),
        "700",
        "the view on t was re-created"
    );
    // Recovery shows a sequence up to 32 values ahead (they are logged in
    // advance), never behind: the next id is above every restored one.
    let next: u64 = pg
        .sql("app", "INSERT INTO t (v) VALUES ('next') RETURNING id")
        .parse()
        .unwrap();
    assert!(
        (801..=832).contains(&next),
        "the sequence came back with the table: {next}"
    );

    // Dropped in the live database: it comes back without --clean.
    pg.sql("app", "DROP VIEW high; DROP TABLE t");
    let out = restore("public.t", &target, &[]);
    common::assert_success(&out, "restore pg --table --to-time of a dropped table");
    assert_eq!(rows("t"), t_at_target);
    assert_eq!(rows("u"), u_now);

    // The same point named by its WAL position.
    pg.sql("app", "DELETE FROM t WHERE id > 10");
    let out = restore_to("public.t", ["--to-lsn", &lsn_at_target], &["--clean"]);
    common::assert_success(&out, "restore pg --table --to-lsn --clean");
    assert_eq!(rows("t"), t_at_target);
    assert_eq!(rows("u"), u_now);

    let out = restore("public.nosuch", &target, &[]);
    common::assert_code(&out, 1, "table absent at T");
    assert!(common::one_line_error(&out).contains("public.nosuch did not exist in app"));

    // A target the archive does not reach: the scratch server stops, its
    // reason is quoted, and it is removed (checked by `restore`).
    let out = restore("public.t", "2999-01-01 00:00:00+00", &["--clean"]);
    common::assert_code(&out, 8, "target beyond the archive");
    assert!(common::one_line_error(&out).contains("recovering the base backup"));
    assert_eq!(rows("t"), t_at_target, "nothing changed");

    let out = restore("public.t", &target, &["--clean", "-h", "/nonexistent"]);
    common::assert_code(&out, 8, "live server unreachable");
    common::one_line_error(&out);

    let out = restore("public.t", "2001-01-01 00:00:00+00", &["--clean"]);
    common::assert_code(&out, 1, "no base backup before T");
    assert!(common::one_line_error(&out).contains("no physical base backup"));
    assert_eq!(rows("t"), t_at_target, "nothing changed");
}

/// `restore pg --table S.T --to-lsn L`, L between two base backups: the
/// newer one became consistent after L and cannot stop there, so the
/// older one is recovered, replaying up to L.
#[test]
fn a_table_at_an_lsn_before_the_newest_base_backup_comes_from_the_one_before() {
    let a = Archive::new();
    let Some(pg) = a.server() else {
        return;
    };
    let tmp = a.scratch_folder();
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (id int PRIMARY KEY, v text);
         INSERT INTO t SELECT g, 'first' FROM generate_series(1, 100) g",
    );
    let older = pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'between' FROM generate_series(101, 200) g",
    );
    let rows = || {
        pg.sql(
            "app",
            "SELECT count(*) || ' ' || md5(string_agg(id || ':' || v, ',' ORDER BY id)) FROM t",
        )
    };
    let at_target = rows();
    let lsn = pg.sql("postgres", "SELECT pg_current_wal_insert_lsn()::text");
    pg.sql(
        "app",
        "INSERT INTO t SELECT g, 'after' FROM generate_series(201, 300) g",
    );
    let newer = pg.vault_json(&a.v, &["snapshot", "pg", "--physical"]);
    archive_current(&pg);
    pg.sql("app", "DROP TABLE t");

    let out = pg
        .vault(
            &a.v,
            &[
                "restore",
                "pg",
                "latest",
                "--table",
                "public.t",
                "--to-lsn",
                &lsn,
                "-d",
                "app",
                "--wal-key-file",
                a.key.to_str().unwrap(),
            ],
        )
        .env("TMPDIR", &tmp)
        .output()
        .unwrap();
    common::assert_success(
        &out,
        "restore pg --table --to-lsn before the newest base backup",
    );
    let short = |s: &serde_json::Value| s["snapshot"].as_str().unwrap()[..8].to_string();
    let said = common::stderr(&out);
    assert!(
        said.contains(&format!("using snapshot {}", short(&older))),
        "{said}"
    );
    assert!(!said.contains(&short(&newer)), "{said}");
    assert_eq!(rows(), at_target, "t exactly as it was at the LSN");
    assert!(is_empty_or_missing(&tmp), "the scratch server is removed");

    // Before every base backup: nothing to start from, in one line.
    let out = pg
        .vault(
            &a.v,
            &[
                "restore",
                "pg",
                "latest",
                "--table",
                "public.t",
                "--to-lsn",
                "0/100",
                "-d",
                "app",
                "--clean",
                "--wal-key-file",
                a.key.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap();
    common::assert_code(&out, 1, "an LSN before every base backup");
    assert!(common::one_line_error(&out).contains("consistent at or before LSN 0/100"));
    assert_eq!(rows(), at_target, "nothing changed");
}
