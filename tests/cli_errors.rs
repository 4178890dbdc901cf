//! Failures and their exit codes: wrong passwords, missing repositories,
//! failing source programs, unreadable files, usage errors; and the key
//! management flows that decide which passwords open a repository.

use crate::common;

use std::fs;
use std::io::Read;
use std::path::Path;
use std::process::Command;

use common::*;

#[test]
fn wrong_password_exits_6_with_one_line_and_changes_nothing() {
    let v = Vault::init();
    v.snapshot_stdin("s", Gen::random(1, 1000));
    let before = v.repo_files();
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["key", "list"],
        vec!["dump", "latest"],
    ] {
        let out = v
            .cmd_with_password("not the password", &args)
            .watched_output();
        assert_code(&out, 6, &format!("{args:?} with a wrong password"));
        let line = one_line_error(&out);
        assert!(line.contains("wrong password"), "{line}");
        assert!(out.stdout.is_empty());
    }
    let out = run_with_stdin(
        v.cmd_with_password("not the password", &["snapshot", "--stdin", "--name", "t"]),
        Gen::random(2, 1000),
    );
    assert_code(&out, 6, "snapshot with a wrong password");
    one_line_error(&out);
    assert_eq!(
        v.repo_files(),
        before,
        "a failed open changed the repository"
    );
}

#[test]
fn no_repository_exits_7() {
    let v = Vault::empty();
    // Missing folder, empty folder, folder of unrelated files.
    let out = v.run(&["snapshots"]);
    assert_code(&out, 7, "snapshots in a missing folder");
    assert!(one_line_error(&out).contains("no repository"));
    fs::create_dir(&v.repo).unwrap();
    let out = v.run(&["ls", "latest"]);
    assert_code(&out, 7, "ls in an empty folder");
    one_line_error(&out);
    write(&v.repo.join("notes.txt"), b"not a repository\n");
    let out = run_with_stdin(
        v.cmd(&["snapshot", "--stdin", "--name", "x"]),
        Gen::random(3, 100),
    );
    assert_code(&out, 7, "snapshot into a folder of other files");
    one_line_error(&out);
    assert_eq!(
        listing(&v.repo),
        vec!["notes.txt"],
        "a failed open wrote into the folder"
    );
}

#[test]
fn init_over_an_existing_repository_exits_7_and_leaves_it_unchanged() {
    let v = Vault::init();
    let id = json_str(&v.snapshot_stdin("s", Gen::mixed(4, 300_000)), "snapshot").to_string();
    let before = v.repo_files();
    for password in [PASSWORD, "another password"] {
        let out = v
            .cmd_with_password(
                password,
                &["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"],
            )
            .watched_output();
        assert_code(&out, 7, "init over a repository");
        assert!(one_line_error(&out).contains("already exists"));
        assert_eq!(v.repo_files(), before, "init over a repository changed it");
    }
    // It still opens with its own password, and its data is intact.
    v.assert_dump_matches(&id, None, Gen::mixed(4, 300_000));
    let out = v
        .cmd_with_password("another password", &["snapshots"])
        .watched_output();
    assert_code(&out, 6, "the second init's password");
}

fn snapshot_count(v: &Vault) -> usize {
    v.snapshots().len()
}

#[test]
fn failing_source_program_exits_8_and_records_nothing() {
    let v = Vault::init();
    let good = v.json(&[
        "snapshot",
        "cmd",
        "--name",
        "out.txt",
        "--",
        "sh",
        "-c",
        "printf 'first good run\\n'",
    ]);
    assert_eq!(json_u64(&good, "bytes_read"), 15);
    assert_eq!(snapshot_count(&v), 1);

    let failing: Vec<(&str, Vec<&str>)> = vec![
        // Plenty of output, then a failure: a truncated dump is not a backup.
        (
            "exit status",
            vec!["sh", "-c", "head -c 3000000 /dev/urandom; exit 3"],
        ),
        (
            "killed by a signal",
            vec!["sh", "-c", "head -c 100000 /dev/zero; kill -9 $$"],
        ),
        (
            "terminated",
            vec!["sh", "-c", "printf partial; kill -TERM $$"],
        ),
        ("no output, failure", vec!["false"]),
        (
            "missing program",
            vec!["/nonexistent/program-that-is-not-there"],
        ),
    ];
    for (what, prog) in &failing {
        let mut args = vec!["snapshot", "cmd", "--name", "out.txt", "--"];
        args.extend(prog);
        let out = v.run(&args);
        assert_code(&out, 8, what);
        let err = stderr(&out);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("vault: "), "{what}: {err}");
        assert_eq!(
            snapshot_count(&v),
            1,
            "{what}: a failed program left a snapshot"
        );
    }
    let line = stderr(&v.run(&["snapshot", "cmd", "--name", "o", "--", "sh", "-c", "exit 5"]));
    assert!(line.contains("exited with status 5"), "{line}");
    let line = stderr(&v.run(&[
        "snapshot",
        "cmd",
        "--name",
        "o",
        "--",
        "sh",
        "-c",
        "kill -9 $$",
    ]));
    assert!(line.contains("signal 9"), "{line}");

    // The next good run works, and each snapshot holds its own output.
    let next = v.json(&[
        "snapshot",
        "cmd",
        "--name",
        "out.txt",
        "--",
        "sh",
        "-c",
        "head -c 2000000 /dev/zero",
    ]);
    assert_eq!(json_u64(&next, "bytes_read"), 2_000_000);
    assert_eq!(snapshot_count(&v), 2);
    v.assert_dump_matches(
        json_str(&next, "snapshot"),
        None,
        std::io::repeat(0).take(2_000_000),
    );
    v.assert_dump_matches(json_str(&good, "snapshot"), None, &b"first good run\n"[..]);
    assert_eq!(v.snapshots()[1]["source"], "command");
}

#[test]
fn usage_errors_exit_2() {
    let v = Vault::init();
    let cases: Vec<Vec<&str>> = vec![
        vec!["snapshot"],
        vec!["snapshot", "--stdin"],
        vec!["snapshot", "--stdin", "--name", "a/b"],
        vec!["snapshot", "--no-such-flag"],
        vec!["ls", "not-hex!"],
        vec!["restore", "latest"],
    ];
    for args in cases {
        let out = v.run(&args);
        assert_code(&out, 2, &format!("vault {args:?}"));
        assert!(!stderr(&out).is_empty());
    }
    assert_eq!(snapshot_count(&v), 0);
    // A snapshot that does not exist is a plain failure.
    let out = v.run(&[
        "restore",
        "abcdef",
        "--target",
        v.path().join("t").to_str().unwrap(),
    ]);
    assert_code(&out, 1, "restore of a missing snapshot");
    assert!(one_line_error(&out).contains("abcdef"));
}

fn key_list(v: &Vault, password: &str) -> Vec<serde_json::Value> {
    let out = v
        .cmd_with_password(password, &["--json", "key", "list"])
        .watched_output();
    assert_success(&out, "key list");
    parse_json(&out).as_array().unwrap().clone()
}

fn opens(v: &Vault, password: &str) -> i32 {
    code(
        &v.cmd_with_password(password, &["snapshots"])
            .watched_output(),
    )
}

#[test]
fn key_add_list_remove_and_passwd() {
    let v = Vault::init();
    let snap = json_str(
        &v.snapshot_stdin("data", Gen::mixed(12, 500_000)),
        "snapshot",
    )
    .to_string();
    let first = key_list(&v, PASSWORD);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["current"], true);
    let key1 = first[0]["id"].as_str().unwrap().to_string();

    // Add a second password.
    let out = v
        .cmd(&[
            "key",
            "add",
            "--kdf-memory-kib",
            "64",
            "--kdf-iterations",
            "1",
        ])
        .env("VAULT_NEW_PASSWORD", "second")
        .watched_output();
    assert_success(&out, "key add");
    assert_eq!(opens(&v, "second"), 0);
    assert_eq!(opens(&v, PASSWORD), 0);
    let keys = key_list(&v, "second");
    assert_eq!(keys.len(), 2);
    let current: Vec<_> = keys.iter().filter(|k| k["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let key2 = current[0]["id"].as_str().unwrap().to_string();
    assert_ne!(key1, key2);

    // The key a session opened with cannot be removed.
    let out = v
        .cmd_with_password("second", &["key", "remove", &key2[..10]])
        .watched_output();
    assert_ne!(code(&out), 0, "removing the current key was allowed");
    assert!(one_line_error(&out).contains("refusing"));
    assert_eq!(key_list(&v, PASSWORD).len(), 2);
    assert_eq!(opens(&v, "second"), 0);

    // Another one can: the first password stops working.
    let out = v
        .cmd_with_password("second", &["key", "remove", &key1[..10]])
        .watched_output();
    assert_success(&out, "key remove");
    let out = v
        .cmd_with_password(PASSWORD, &["snapshots"])
        .watched_output();
    assert_code(&out, 6, "the removed key's password");
    one_line_error(&out);

    // passwd: from a file; the old password stops, the new one opens.
    let pwfile = v.path().join("new-password");
    fs::write(&pwfile, "third\n").unwrap();
    let out = v
        .cmd_with_password(
            "second",
            &[
                "key",
                "passwd",
                "--kdf-memory-kib",
                "64",
                "--kdf-iterations",
                "1",
                "--new-password-file",
            ],
        )
        .arg(&pwfile)
        .watched_output();
    assert_success(&out, "key passwd");
    assert_eq!(opens(&v, "second"), 6);
    assert_eq!(opens(&v, "third"), 0);
    let keys = key_list(&v, "third");
    assert_eq!(keys.len(), 1);
    assert_ne!(keys[0]["id"].as_str().unwrap(), key2);

    // The password file and password command work as well as the variable,
    // and the data written under the first password is still readable.
    let out = Command::new(BIN)
        .env_remove("VAULT_PASSWORD")
        .env("VAULT_CACHE_DIR", &v.cache)
        .env("HOME", &v.home)
        .arg("-r")
        .arg(&v.repo)
        .arg("--password-file")
        .arg(&pwfile)
        .args(["dump", &snap])
        .watched_output();
    assert_success(&out, "dump with --password-file");
    assert_eq!(out.stdout, Gen::mixed(12, 500_000).bytes());
    let out = Command::new(BIN)
        .env_remove("VAULT_PASSWORD")
        .env("VAULT_CACHE_DIR", &v.cache)
        .env("HOME", &v.home)
        .arg("-r")
        .arg(&v.repo)
        .args(["--password-command", "echo third", "snapshots"])
        .watched_output();
    assert_success(&out, "snapshots with --password-command");
}

/// Run vault as uid/gid 65534 (so file permissions apply even when the
/// tests run as root). `None` when that is impossible here.
fn unprivileged(v: &Vault, args: &[&str]) -> Option<Command> {
    if !is_root() {
        return Some(v.cmd(args));
    }
    let have_setpriv = Command::new("setpriv")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_setpriv {
        return None;
    }
    let mut c = Command::new("setpriv");
    v.configure(&mut c, PASSWORD);
    c.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--",
        BIN,
        "-r",
    ])
    .arg(&v.repo)
    .args(args);
    Some(c)
}

#[test]
fn unreadable_entries_give_warnings_exit_3_and_the_rest_is_stored() {
    let v = Vault::empty();
    let src = v.dir("src");
    write(&src.join("readable.txt"), b"fine\n");
    write(
        &src.join("sub/also-readable.bin"),
        &Gen::random(9, 100_000).bytes(),
    );
    write(&src.join("secret.txt"), b"you cannot read me\n");
    write(&src.join("locked/hidden.txt"), b"behind a locked folder\n");
    if is_root() {
        // The scratch area must be reachable by the unprivileged user.
        chmod(v.path(), 0o755);
        for d in [&v.home, &v.cache] {
            chown_tree(d, 65534, 65534);
        }
        fs::create_dir(&v.repo).unwrap();
        chown_tree(&v.repo, 65534, 65534);
    }
    chmod(&src.join("secret.txt"), 0o000);
    chmod(&src.join("locked"), 0o000);

    let Some(mut init) = unprivileged(
        &v,
        &["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"],
    ) else {
        eprintln!("SKIPPED unreadable_entries_give_warnings_exit_3_and_the_rest_is_stored: running as root and setpriv (util-linux) is not installed");
        return;
    };
    assert_success(&init.watched_output(), "init as an unprivileged user");

    let src_arg = src.to_str().unwrap();
    let out = unprivileged(&v, &["--json", "snapshot", src_arg])
        .unwrap()
        .watched_output();
    assert_code(&out, 3, "snapshot with unreadable entries");
    let err = stderr(&out);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning: ")).collect();
    assert_eq!(warnings.len(), 2, "{err}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("secret.txt") && w.contains("ermission denied")),
        "{err}"
    );
    assert!(warnings.iter().any(|w| w.contains("locked")), "{err}");
    let summary = parse_json(&out);
    assert_eq!(summary["warnings"].as_array().unwrap().len(), 2);
    assert_eq!(json_u64(&summary, "files"), 2, "{summary}");

    // The snapshot exists and holds everything else (root reads it back).
    let snaps = v.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["summary"]["warnings"], 2);
    let target = v.path().join("restored");
    v.restore(&format!("latest:{src_arg}"), &target, &[]);
    assert_eq!(
        listing(&target),
        vec!["locked/", "readable.txt", "sub/", "sub/also-readable.bin"]
    );
    assert_eq!(fs::read(target.join("readable.txt")).unwrap(), b"fine\n");
    assert_file_matches(
        &target.join("sub/also-readable.bin"),
        Gen::random(9, 100_000),
    );
    assert!(!Path::new(&target.join("secret.txt")).exists());
}
