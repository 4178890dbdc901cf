//! What people type out of habit (psql, pg_dump, redis-cli, mariadb and
//! restic spellings, options in any order) either does the work asked or
//! fails loudly: never help printed with exit 0, never a folder backed up
//! in place of a database, never a snapshot other than the one meant.

use crate::common;

use std::ffi::OsStr;
use std::fs;
use std::process::{Command, Output};

use common::postgres::Postgres;
use common::*;

/// `vault ARGS...` with the repository named wherever ARGS put it.
fn vault_in<S: AsRef<OsStr>>(v: &Vault, cwd: &std::path::Path, args: &[S]) -> Command {
    let mut c = Command::new(BIN);
    v.configure(&mut c, &v.password);
    c.current_dir(cwd).args(args);
    c
}

fn repo(v: &Vault) -> String {
    v.repo.display().to_string()
}

#[test]
fn help_with_other_arguments_never_exits_0() {
    let v = Vault::init();
    let src = v.dir("src");
    write(&src.join("f"), b"data");
    let src = src.display().to_string();
    for args in [
        vec!["snapshot", "pg", "--help", "-d", "app"],
        vec!["snapshot", "--help", src.as_str()],
        vec!["snapshot", "files", src.as_str(), "--help"],
        vec!["snapshot", "redis", "-h", "localhost", "--help"],
        vec!["snapshots", "--help", "--tag", "x"],
        vec!["prune", "--dry-run", "--help"],
        vec!["restore", "pg", "latest", "-d", "app", "--help"],
    ] {
        let out = v.run(&args);
        assert_code(&out, 2, &format!("{args:?}"));
        assert!(
            stderr(&out).contains("nothing was done"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(v.snapshots().is_empty(), "help took a snapshot");
    // `-h` is a host wherever a server is involved, and help nowhere.
    for args in [vec!["snapshots", "-h"], vec!["snapshot", "-h"], vec!["-h"]] {
        let out = v.run(&args);
        assert_ne!(code(&out), 0, "{args:?} exited 0");
    }
    // Help alone is still help.
    for args in [
        vec!["--help"],
        vec!["snapshot", "pg", "--help"],
        vec!["help", "snapshot"],
    ] {
        let out = output(vault_in(&v, v.path(), &args));
        assert_success(&out, &format!("{args:?}"));
        assert!(stdout(&out).contains("Usage"), "{args:?}");
    }
}

#[test]
fn source_keyword_is_never_read_as_a_path() {
    let v = Vault::init();
    let cwd = v.dir("work");
    for keyword in ["redis", "pg", "mysql", "sqlite", "cmd", "files"] {
        write(&cwd.join(keyword).join("f"), keyword.as_bytes());
    }
    // A source keyword among options runs that source (here a redis-cli
    // that does not exist fails loudly), whatever folder is around.
    let out = output(vault_in(
        &v,
        &cwd,
        &[
            "snapshot",
            "--tag",
            "x",
            "redis",
            "--redis-cli",
            "/nonexistent/redis-cli",
            "--repo",
            &repo(&v),
        ],
    ));
    assert_code(&out, 8, "snapshot --tag x redis");
    assert!(v.snapshots().is_empty(), "a folder was backed up as redis");
    // A plain path spelled like a keyword after another path is ambiguous.
    let first = cwd.join("files").display().to_string();
    let out = output(vault_in(
        &v,
        &cwd,
        &["--repo", &repo(&v), "snapshot", &first, "redis"],
    ));
    assert_code(&out, 2, "snapshot PATH redis");
    assert!(
        stderr(&out).contains("vault snapshot files"),
        "{}",
        stderr(&out)
    );
    assert!(v.snapshots().is_empty());
    // The unambiguous form stores the folders, with options anywhere.
    let out = output(vault_in(
        &v,
        &cwd,
        &[
            "snapshot",
            "--tag",
            "t",
            "files",
            "redis",
            "pg",
            "--repo",
            &repo(&v),
            "--json",
        ],
    ));
    assert_success(&out, "snapshot files redis pg");
    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 1);
    let paths: Vec<&str> = snaps[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("/redis")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("/pg")), "{paths:?}");
    assert_eq!(snaps[0]["tags"][0], "t");
    // Plain paths still work where they are not keywords.
    let out = output(vault_in(
        &v,
        &cwd,
        &[
            "snapshot",
            "--repo",
            &repo(&v),
            cwd.join("sqlite").to_str().unwrap(),
        ],
    ));
    assert_success(&out, "snapshot PATH");
    assert_eq!(v.snapshots().len(), 2);
}

#[test]
fn retired_host_option_is_refused_not_misread() {
    let v = Vault::init();
    let src = v.dir("src");
    write(&src.join("f"), b"data");
    for args in [
        vec!["snapshot", "files", src.to_str().unwrap(), "--host", "web1"],
        vec!["snapshot", src.to_str().unwrap(), "--host", "web1"],
        vec!["snapshot", "--host", "web1", "pg", "-d", "app"],
        vec![
            "snapshot", "cmd", "--name", "x", "--host", "web1", "--", "true",
        ],
    ] {
        let out = v.run(&args);
        assert_code(&out, 2, &format!("{args:?}"));
        assert!(stderr(&out).contains("--record-host"), "{}", stderr(&out));
    }
    assert!(v.snapshots().is_empty());
    v.ok(&[
        "snapshot",
        "files",
        src.to_str().unwrap(),
        "--record-host",
        "web1",
    ]);
    assert_eq!(v.snapshots()[0]["host"], "web1");
    // Filters keep restic's spelling.
    let listed = v.json(&["snapshots", "--host", "web1"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn database_client_password_options_are_refused_without_echo() {
    let v = Vault::init();
    for args in [
        vec!["snapshot", "mysql", "-u", "root", "-pSECRET1", "--all"],
        vec!["snapshot", "mysql", "-u", "root", "-p", "--all"],
        vec!["snapshot", "redis", "-a", "SECRET1"],
        vec!["snapshot", "pg", "-U", "postgres", "-W", "-d", "app"],
        vec!["restore", "mysql", "latest", "-u", "root", "-pSECRET1"],
    ] {
        let out = v.run(&args);
        assert_code(&out, 2, &format!("{args:?}"));
        let err = stderr(&out);
        assert!(err.contains("no password on the command line"), "{err}");
        assert!(!err.contains("SECRET1"), "the password was echoed: {err}");
    }
    // redis-cli's -n picks one database; an RDB holds them all.
    let out = v.run(&["snapshot", "redis", "-n", "2"]);
    assert_code(&out, 2, "redis -n");
    assert!(v.snapshots().is_empty());
}

#[test]
fn pg_client_short_options_take_the_snapshot() {
    let Some(pg) = Postgres::start() else {
        return;
    };
    pg.createdb("app");
    pg.sql(
        "app",
        "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);",
    );
    let v = Vault::init();
    let sock = pg.socket_dir().display().to_string();
    let count = || v.snapshots().len();
    // psql's spelling, the repository given after the source's options.
    let mut c = vault_in(
        &v,
        v.path(),
        &[
            "snapshot",
            "pg",
            "-h",
            &sock,
            "-U",
            "postgres",
            "-d",
            "app",
            "--repo",
            &repo(&v),
        ],
    );
    c.env_remove("PGHOST").env_remove("PGUSER");
    assert_success(&output(c), "snapshot pg -h SOCKET -U postgres -d app");
    assert_eq!(count(), 1);
    // Global options first, then pg_dump's positional database name.
    let mut c = vault_in(
        &v,
        v.path(),
        &[
            "--repo",
            &repo(&v),
            "snapshot",
            "--tag",
            "x",
            "pg",
            "--host",
            &sock,
            "--username",
            "postgres",
            "app",
        ],
    );
    c.env_remove("PGHOST").env_remove("PGUSER");
    assert_success(&output(c), "snapshot --tag x pg --host SOCKET app");
    assert_eq!(count(), 2);
    assert_eq!(v.snapshots()[1]["tags"][0], "x");
    // A host that does not answer fails loudly and records nothing.
    let mut c = v.cmd(&[
        "snapshot",
        "pg",
        "-h",
        "/nonexistent",
        "-U",
        "postgres",
        "-d",
        "app",
    ]);
    c.env_remove("PGHOST");
    assert_code(&output(c), 8, "snapshot pg -h /nonexistent");
    assert_eq!(count(), 2);

    // `latest` for a pg command is the newest pg snapshot, even when a
    // file snapshot ran after it; the choice is named on stderr.
    let src = v.dir("src");
    write(&src.join("f"), b"data");
    v.ok(&["snapshot", "files", src.to_str().unwrap()]);
    let pg_latest = v.snapshots()[1]["id"].as_str().unwrap().to_string();
    let out = output(pg.vault(
        &v,
        &[
            "restore",
            "pg",
            "latest",
            "-d",
            "copy",
            "--create",
            "--dry-run",
        ],
    ));
    assert_success(&out, "restore pg latest --dry-run after a files snapshot");
    assert!(stderr(&out).contains(&pg_latest[..8]), "{}", stderr(&out));
    assert!(stderr(&out).contains("postgres"), "{}", stderr(&out));
}

fn stdin_snapshot(v: &Vault, name: &str, data: &'static [u8]) -> serde_json::Value {
    let out = run_with_stdin(
        v.cmd(&["--json", "snapshot", "--stdin", "--name", name]),
        data,
    );
    assert_success(&out, "snapshot --stdin");
    parse_json(&out)
}

#[test]
fn latest_resolves_among_snapshots_the_command_can_use() {
    let v = Vault::init();
    let first = stdin_snapshot(&v, "dump.rdb", b"rdb one");
    let second = stdin_snapshot(&v, "dump.rdb", b"rdb two");
    let src = v.dir("src");
    write(&src.join("f"), b"file data");
    v.ok(&["snapshot", "files", src.to_str().unwrap()]);

    // The README's Redis recipe: the newest snapshot holding dump.rdb.
    let out = v.ok(&["dump", "latest", "dump.rdb"]);
    assert_eq!(out.stdout, b"rdb two");
    let short = &json_str(&second, "snapshot")[..8];
    assert!(stderr(&out).contains(short), "{}", stderr(&out));
    // A file path picks the file snapshot.
    let inside = src.join("f");
    let out = v.ok(&["dump", "latest", inside.to_str().unwrap()]);
    assert_eq!(out.stdout, b"file data");
    // A path no snapshot holds says so.
    let out = v.run(&["dump", "latest", "nothing.here"]);
    assert_code(&out, 1, "dump latest of a path nobody holds");
    assert!(one_line_error(&out).contains("nothing.here"));

    // --at: the newest at or before a time.
    let out = v.ok(&[
        "dump",
        "latest",
        "dump.rdb",
        "--at",
        json_str(&first, "time"),
    ]);
    assert_eq!(out.stdout, b"rdb one");
    let out = v.run(&["dump", "latest", "dump.rdb", "--at", "2001-01-01"]);
    assert_code(&out, 1, "--at before every snapshot");
    let out = v.run(&["ls", "latest", "--at", "yesterday-ish"]);
    assert_code(&out, 2, "--at with a bad time");

    // An id of the wrong kind is refused by a command that needs another.
    let out = v.run(&[
        "restore",
        "pg",
        json_str(&first, "snapshot"),
        "-d",
        "x",
        "--dry-run",
    ]);
    assert_code(&out, 2, "restore pg of a stream snapshot");
    // --quiet names nothing.
    let out = v.ok(&["-q", "dump", "latest", "dump.rdb"]);
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    let _ = fs::metadata(&src);
}

#[test]
fn backup_waits_for_prune_lock_and_says_what_it_waits_for() {
    let v = Vault::init();
    let repo = std::sync::Arc::new(v.library());
    let held = repo.lock_exclusive("prune").unwrap();
    // Told not to wait, a backup fails at once with exit 5.
    let out = run_with_stdin(
        v.cmd(&["snapshot", "--lock-wait", "0", "--stdin", "--name", "a"]),
        &b"data"[..],
    );
    assert_code(&out, 5, "snapshot --lock-wait 0 beside prune");
    // By default it waits, says for what, and goes ahead once prune is done.
    let mut child = v
        .cmd(&["snapshot", "--stdin", "--name", "a"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut first_line = Vec::new();
    {
        use std::io::Read;
        let mut byte = [0u8; 1];
        while err.read(&mut byte).unwrap() == 1 && byte[0] != b'\n' {
            first_line.push(byte[0]);
        }
    }
    let line = String::from_utf8_lossy(&first_line).into_owned();
    assert!(line.contains("waiting up to 30m"), "{line}");
    assert!(line.contains("prune (exclusive)"), "{line}");
    drop(held);
    let status = child.wait().unwrap();
    assert!(status.success(), "the waiting backup failed: {status}");
    assert_eq!(v.snapshots().len(), 1);
    let _: Option<Output> = None;
}

#[test]
fn copy_since_and_latest_limit_what_is_copied_again() {
    let from = Vault::init();
    let to = Vault::init();
    let _first = stdin_snapshot(&from, "s", b"one");
    let second = stdin_snapshot(&from, "s", b"two");
    let _third = stdin_snapshot(&from, "s", b"three");
    let target = to.repo.display().to_string();
    from.ok(&["copy", "--to", &target, "--latest"]);
    assert_eq!(to.snapshots().len(), 1, "--latest copies the newest only");
    from.ok(&[
        "copy",
        "--to",
        &target,
        "--since",
        json_str(&second, "time"),
    ]);
    assert_eq!(
        to.snapshots().len(),
        2,
        "--since leaves older snapshots out"
    );
    let out = to.ok(&["dump", "latest", "s"]);
    assert_eq!(out.stdout, b"three");
}
