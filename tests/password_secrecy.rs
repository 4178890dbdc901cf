//! The repository password stays with vault: no program it starts sees it,
//! a failing password command is not quoted, and an empty password is
//! refused from every source.

use crate::common;

use std::fs;

use common::*;

/// What `env` printed inside a `snapshot cmd`, read back from the snapshot.
fn environment_seen_by_a_snapshot_command(v: &Vault, mut cmd: std::process::Command) -> String {
    let out = cmd.watched_output();
    assert_success(&out, "snapshot cmd -- env");
    let out = v.ok(&["dump", "latest", "env"]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn programs_vault_starts_never_see_the_repository_password() {
    let v = Vault::init();
    let seen = environment_seen_by_a_snapshot_command(
        &v,
        v.cmd(&["snapshot", "cmd", "--name", "env", "--", "env"]),
    );
    assert!(seen.contains("HOME="), "env printed nothing useful: {seen}");
    assert!(!seen.contains("VAULT_PASSWORD"), "{seen}");
    assert!(!seen.contains(PASSWORD), "{seen}");

    // The file and command variables name a secret too.
    let pwfile = v.path().join("password");
    fs::write(&pwfile, format!("{PASSWORD}\n")).unwrap();
    let mut cmd = v.cmd(&["snapshot", "cmd", "--name", "env", "--", "env"]);
    cmd.env_remove("VAULT_PASSWORD")
        .env("VAULT_PASSWORD_FILE", &pwfile);
    let seen = environment_seen_by_a_snapshot_command(&v, cmd);
    assert!(!seen.contains("VAULT_PASSWORD"), "{seen}");
    let mut cmd = v.cmd(&["snapshot", "cmd", "--name", "env", "--", "env"]);
    cmd.env_remove("VAULT_PASSWORD")
        .env("VAULT_PASSWORD_COMMAND", format!("echo '{PASSWORD}'"));
    let seen = environment_seen_by_a_snapshot_command(&v, cmd);
    assert!(!seen.contains("VAULT_PASSWORD"), "{seen}");
    assert!(!seen.contains(PASSWORD), "{seen}");
}

#[test]
fn a_failing_password_command_is_not_quoted() {
    let v = Vault::init();
    let mut cmd = v.cmd(&[
        "--password-command",
        "false s3cr3t-token-in-the-command",
        "snapshots",
    ]);
    cmd.env_remove("VAULT_PASSWORD");
    let out = cmd.watched_output();
    assert_code(&out, 1, "a failing password command");
    one_line_error(&out);
    let err = stderr(&out);
    assert!(err.contains("password command 'false ...' failed"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
}

#[test]
fn empty_passwords_are_refused_from_every_source() {
    // init with an empty VAULT_PASSWORD stores nothing.
    let v = Vault::empty();
    let out = v
        .cmd_with_password(
            "",
            &["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"],
        )
        .watched_output();
    assert_code(&out, 1, "init with an empty VAULT_PASSWORD");
    one_line_error(&out);
    assert!(stderr(&out).contains("empty password refused: VAULT_PASSWORD is empty"));
    assert!(!v.repo.join("config").exists());

    // An empty password file, for init and for opening: not "wrong password".
    let empty = v.path().join("empty-password");
    fs::write(&empty, "\n").unwrap();
    for args in [
        &["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"][..],
        &["snapshots"][..],
    ] {
        if args[0] == "snapshots" {
            v.init_here(&[]);
        }
        let mut cmd = v.cmd(&[&["--password-file", empty.to_str().unwrap()][..], args].concat());
        cmd.env_remove("VAULT_PASSWORD");
        let out = cmd.watched_output();
        assert_code(&out, 1, &format!("{args:?} with an empty password file"));
        one_line_error(&out);
        let err = stderr(&out);
        assert!(err.contains("empty password refused"), "{err}");
        assert!(err.contains("empty-password is empty"), "{err}");
    }

    // An empty VAULT_PASSWORD does not open an existing repository either.
    let out = v.cmd_with_password("", &["snapshots"]).watched_output();
    assert_code(&out, 1, "snapshots with an empty VAULT_PASSWORD");
    assert!(stderr(&out).contains("empty password refused"));
}
