//! Repositories on a real S3-compatible server (moto), with and without a
//! fault-injecting proxy in front, and `vault copy` between a local folder
//! and S3. Skipped with a message when moto_server is not installed.

use crate::common;

use std::path::Path;
use std::sync::atomic::Ordering;

use common::s3::{FaultProxy, S3Repo, S3Server};
use common::*;
use serde_json::Value;

fn requests(v: &Value) -> &Value {
    v.get("requests")
        .unwrap_or_else(|| panic!("no request counts in {v}"))
}

/// A small tree of files, the same for every call with the same seed.
fn make_files(root: &Path, seed: u64) {
    write_gen(&root.join("big.bin"), Gen::mixed(seed, 3 * MIB));
    write(&root.join("small.txt"), b"hello from the small file\n");
    write(&root.join("sub/empty"), b"");
    write_gen(
        &root.join("sub/medium.bin"),
        Gen::random(seed + 1, 300 << 10),
    );
}

/// Operations every repository must support, run against `r`. Maintenance
/// commands (check, forget, prune) on S3 are one line each here.
fn exercise(r: &S3Repo, src: &Path) {
    let files = r.json(&[os("snapshot".as_bytes()), src.as_os_str()]);
    let reqs = requests(&files);
    assert!(
        json_u64(reqs, "put") > 0,
        "a first snapshot uploads: {files}"
    );
    let target = r.vault.dir("restored");
    r.json(&[
        os(b"restore"),
        os(b"latest"),
        os(b"--target"),
        target.as_os_str(),
    ]);
    assert_same_contents(src, &restored_at(&target, src));
}

#[test]
fn init_snapshot_restore_on_s3() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let r = S3Repo::init(&server, "roundtrip", &server.endpoint());
    assert!(
        server
            .keys("roundtrip", "repo/")
            .iter()
            .any(|k| k == "repo/config"),
        "init stored no config under the prefix"
    );
    let src = r.vault.dir("src");
    make_files(&src, 1);
    exercise(&r, &src);

    // A stream, dumped back byte for byte.
    let first = r.snapshot_stdin("db.sql", Gen::mixed(7, 6 * MIB));
    let dumped = r.dump_to_file("latest", "db.sql");
    assert_file_matches(&dumped, Gen::mixed(7, 6 * MIB));

    // With the local cache an hourly run does not download index objects:
    // it costs the same few reads whatever the repository holds.
    let again = r.snapshot_stdin("db.sql", Gen::mixed(7, 6 * MIB));
    let indexes = server.keys("roundtrip", "repo/index/").len() as u64;
    assert!(
        indexes >= 2,
        "expected several index objects, found {indexes}"
    );
    let cached_gets = json_u64(requests(&again), "get");
    let out = run_with_stdin(
        r.cmd(&[
            "--json",
            "--no-cache",
            "snapshot",
            "--stdin",
            "--name",
            "db.sql",
        ]),
        Gen::mixed(7, 6 * MIB),
    );
    assert_success(&out, "snapshot without cache");
    let uncached_gets = json_u64(requests(&parse_json(&out)), "get");
    assert!(
        uncached_gets >= cached_gets + indexes,
        "without the cache every index object ({indexes}) is read: \
         cached {cached_gets} GETs, uncached {uncached_gets}"
    );
    assert!(
        json_u64(&again, "raw_bytes_added") < json_u64(&first, "raw_bytes_added") / 100,
        "unchanged data was uploaded again: {again}"
    );
    assert_eq!(r.snapshots().len(), 4);

    // The audit, retention and garbage collection work on S3 as on a
    // folder: prune deletes objects, and what is left still checks clean.
    let checked = r.json(&["check", "--read-data"]);
    assert!(
        json_u64(requests(&checked), "get") > 0,
        "check reports the requests it made: {checked}"
    );
    let before = server.keys("roundtrip", "repo/data/").len();
    // One group: only the newest stream survives, so the files snapshot's
    // packs become garbage.
    r.ok(&[
        "forget",
        "--keep-last",
        "1",
        "--group-by",
        "",
        "--prune",
        "--exclusive",
        "--max-unused",
        "0%",
    ]);
    assert_eq!(r.snapshots().len(), 1);
    assert!(
        server.keys("roundtrip", "repo/data/").len() < before,
        "prune deleted no pack on S3"
    );
    r.ok(&["check", "--read-data"]);
    let dumped = r.dump_to_file("latest", "db.sql");
    assert_file_matches(&dumped, Gen::mixed(7, 6 * MIB));
}

#[test]
fn injected_server_errors_still_give_a_correct_backup() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::start(server.port);
    let r = S3Repo::new(&server, "flaky", &proxy.endpoint());
    // Every third request fails with 503 SlowDown, every request is slow.
    proxy.faults.fail_every.store(3, Ordering::SeqCst);
    proxy.faults.delay_ms.store(5, Ordering::SeqCst);
    r.init_here(&["--pack-size-mib", "1"]);
    let snap = r.snapshot_stdin("stream", Gen::mixed(21, 12 * MIB));
    assert!(
        json_u64(requests(&snap), "failed") > 0,
        "the run saw no injected failures: {snap}"
    );
    let dumped = r.dump_to_file("latest", "stream");
    assert_file_matches(&dumped, Gen::mixed(21, 12 * MIB));
    r.ok(&["check", "--read-data"]);
    assert!(proxy.faults.injected.load(Ordering::SeqCst) > 10);
}

#[test]
fn server_gone_mid_snapshot_fails_cleanly_and_the_repository_stays_valid() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::start(server.port);
    let r = S3Repo::new(&server, "dying", &proxy.endpoint());
    r.init_here(&["--pack-size-mib", "1"]);
    r.snapshot_stdin("first", Gen::mixed(30, 2 * MIB));

    // The server stops answering after a few more uploads.
    let puts = proxy.faults.puts.load(Ordering::SeqCst);
    proxy
        .faults
        .down_after_puts
        .store(puts + 4, Ordering::SeqCst);
    let mut c = r.cmd(&["--json", "snapshot", "--stdin", "--name", "second"]);
    c.env("VAULT_RETRIES", "2");
    let out = run_with_stdin(c, Gen::mixed(31, 16 * MIB));
    assert_code(&out, 10, "snapshot with the server gone");
    let err = one_line_error(&out);
    assert!(
        err.contains("s3://dying/repo"),
        "error names no backend: {err}"
    );
    assert!(err.contains("cannot reach"), "error gives no reason: {err}");

    // Back up: the interrupted run left no snapshot, the old one restores,
    // and a new run completes.
    proxy.faults.down_after_puts.store(0, Ordering::SeqCst);
    proxy.faults.down.store(false, Ordering::SeqCst);
    assert_eq!(
        r.snapshots().len(),
        1,
        "an interrupted run recorded a snapshot"
    );
    assert_file_matches(&r.dump_to_file("latest", "first"), Gen::mixed(30, 2 * MIB));
    r.snapshot_stdin("second", Gen::mixed(31, 16 * MIB));
    assert_file_matches(
        &r.dump_to_file("latest", "second"),
        Gen::mixed(31, 16 * MIB),
    );
    assert_eq!(r.snapshots().len(), 2);
}

#[test]
fn storage_errors_name_the_backend_and_have_their_own_exit_codes() {
    let Some(server) = S3Server::start() else {
        return;
    };

    let missing = S3Repo::without_bucket("no-such-bucket", &server.endpoint());
    let out = missing.run(&["snapshots"]);
    assert_code(&out, 10, "a missing bucket");
    let err = one_line_error(&out);
    assert!(
        err.contains("s3://no-such-bucket/repo") && err.contains("bucket does not exist"),
        "{err}"
    );

    let proxy = FaultProxy::start(server.port);
    proxy.faults.deny_writes.store(true, Ordering::SeqCst);
    let denied = S3Repo::new(&server, "readonly", &proxy.endpoint());
    let out = denied.run(&["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_code(&out, 11, "writes refused");
    let err = one_line_error(&out);
    assert!(
        err.contains("write") && err.contains("access denied"),
        "{err}"
    );
    assert!(
        server.keys("readonly", "").is_empty(),
        "a refused init left objects behind"
    );

    // Nothing listening at all.
    let nowhere = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let unreachable = S3Repo::without_bucket("any", &format!("http://127.0.0.1:{nowhere}"));
    let mut c = unreachable.cmd(&["snapshots"]);
    c.env("VAULT_RETRIES", "1");
    let out = output(c);
    assert_code(&out, 10, "no server");
    let err = one_line_error(&out);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{nowhere}")),
        "no endpoint named: {err}"
    );
}

#[test]
fn s3_without_credentials_exits_11_before_any_request() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::start(server.port);
    let mut r = S3Repo::new(&server, "nocreds", &proxy.endpoint());
    r.vault
        .env
        .retain(|(k, _)| k != "AWS_ACCESS_KEY_ID" && k != "AWS_SECRET_ACCESS_KEY");
    for args in [
        vec!["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"],
        vec!["snapshots"],
    ] {
        let out = r.run(&args);
        assert_code(&out, 11, &format!("{args:?} without credentials"));
        let err = one_line_error(&out);
        assert!(err.contains("AWS_ACCESS_KEY_ID"), "no hint: {err}");
        assert!(err.contains(&proxy.endpoint()), "no endpoint named: {err}");
    }
    assert_eq!(
        proxy.faults.requests.load(Ordering::SeqCst),
        0,
        "a request was sent without credentials"
    );
    // Keys in a shared credentials file are credentials too.
    let creds = r.vault.path().join("credentials");
    write(
        &creds,
        b"[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n",
    );
    r.vault
        .env
        .retain(|(k, _)| k != "AWS_SHARED_CREDENTIALS_FILE");
    r.vault.env.push((
        "AWS_SHARED_CREDENTIALS_FILE".into(),
        creds.display().to_string(),
    ));
    let out = r.run(&["init", "--kdf-memory-kib", "64", "--kdf-iterations", "1"]);
    assert_success(&out, "init with a shared credentials file");
}

fn password_file(dir: &Path, name: &str, password: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    write(&p, format!("{password}\n").as_bytes());
    p
}

#[test]
fn copy_local_to_s3_to_local_restores_identically_and_repeats_as_no_op() {
    let Some(server) = S3Server::start() else {
        return;
    };
    // Three repositories, three passwords, two chunker settings: every blob
    // must be re-chunked and re-encrypted on the way.
    let local = Vault::init_with(SMALL_CHUNKS);
    let mut remote = S3Repo::new(&server, "offsite", &server.endpoint());
    remote.vault.password = "remote password".into();
    remote.init_here(&[]);
    let mut back = Vault::empty();
    back.password = "restore password".into();
    back.init_here(&[]);
    let dir = local.dir("passwords");
    let local_pw = password_file(&dir, "local", PASSWORD);
    let remote_pw = password_file(&dir, "remote", "remote password");
    let back_pw = password_file(&dir, "back", "restore password");
    let src = local.dir("src");
    make_files(&src, 40);
    local.snapshot_paths(&[&src]);
    local.snapshot_stdin("db.sql", Gen::mixed(41, 5 * MIB));

    let copy = |from: &str, from_pw: &Path, to: &str, to_pw: &Path| -> Value {
        remote.json(&[
            os(b"copy"),
            os(b"--from"),
            os(from.as_bytes()),
            os(b"--from-password-file"),
            from_pw.as_os_str(),
            os(b"--to"),
            os(to.as_bytes()),
            os(b"--to-password-file"),
            to_pw.as_os_str(),
        ])
    };
    let local_repo = local.repo.to_string_lossy().into_owned();
    let back_repo = back.repo.to_string_lossy().into_owned();
    let planned = remote.json(&[
        os(b"copy"),
        os(b"--dry-run"),
        os(b"--from"),
        os(local_repo.as_bytes()),
        os(b"--from-password-file"),
        local_pw.as_os_str(),
        os(b"--to-password-file"),
        remote_pw.as_os_str(),
        os(b"--to"),
        os(remote.url.as_bytes()),
    ]);
    assert_eq!(
        planned["to_copy"].as_array().map(Vec::len),
        Some(2),
        "{planned}"
    );
    assert!(json_u64(&planned, "data_blobs") > 0, "{planned}");
    assert_eq!(
        json_u64(&planned["requests"]["target"], "put"),
        0,
        "a dry run wrote: {planned}"
    );
    assert!(remote.snapshots().is_empty(), "a dry run copied");
    let first = copy(&local_repo, &local_pw, &remote.url, &remote_pw);
    assert_eq!(first["copied"].as_array().map(Vec::len), Some(2), "{first}");

    // Repeated: nothing copied, nothing uploaded.
    let again = copy(&local_repo, &local_pw, &remote.url, &remote_pw);
    assert_eq!(again["copied"].as_array().map(Vec::len), Some(0), "{again}");
    assert_eq!(again["already_copied"].as_array().map(Vec::len), Some(2));
    assert_eq!(json_u64(&again["requests"]["target"], "put"), 0, "{again}");

    // And back down to a third repository.
    let down = copy(&remote.url, &remote_pw, &back_repo, &back_pw);
    assert_eq!(down["copied"].as_array().map(Vec::len), Some(2), "{down}");
    let target = back.dir("restored");
    let src_path = src.to_string_lossy().into_owned();
    back.restore("latest", &target, &["--path", &src_path]);
    assert_same_contents(&src, &restored_at(&target, &src));
    back.assert_dump_matches("latest", None, Gen::mixed(41, 5 * MIB));
}

#[test]
fn an_interrupted_copy_resumes_where_it_stopped() {
    let Some(server) = S3Server::start() else {
        return;
    };
    let proxy = FaultProxy::start(server.port);
    let local = Vault::init();
    let remote = S3Repo::new(&server, "resume", &proxy.endpoint());
    remote.init_here(&["--pack-size-mib", "1"]);
    local.snapshot_stdin("small", Gen::mixed(50, 64 << 10));
    local.snapshot_stdin("large", Gen::random(51, 12 * MIB));
    let local_repo = local.repo.to_string_lossy().into_owned();
    let copy = || {
        let mut c = remote.cmd(&["--json", "copy", "--from", &local_repo, "--to", &remote.url]);
        c.env("VAULT_RETRIES", "1");
        output(c)
    };

    // The small snapshot takes three uploads (pack, index, snapshot); the
    // server dies a few packs into the large one.
    let puts = proxy.faults.puts.load(Ordering::SeqCst);
    proxy
        .faults
        .down_after_puts
        .store(puts + 3 + 4, Ordering::SeqCst);
    let out = copy();
    assert_code(&out, 10, "copy with the target gone");
    proxy.faults.down_after_puts.store(0, Ordering::SeqCst);
    proxy.faults.down.store(false, Ordering::SeqCst);
    assert_eq!(remote.snapshots().len(), 1, "the finished snapshot is kept");

    let out = copy();
    assert_success(&out, "copy resumed");
    let resumed = parse_json(&out);
    assert_eq!(
        resumed["already_copied"].as_array().map(Vec::len),
        Some(1),
        "{resumed}"
    );
    assert_eq!(
        resumed["copied"].as_array().map(Vec::len),
        Some(1),
        "{resumed}"
    );
    assert_file_matches(
        &remote.dump_to_file("latest", "large"),
        Gen::random(51, 12 * MIB),
    );
    let small = remote.snapshots()[0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_file_matches(
        &remote.dump_to_file(&small, "small"),
        Gen::mixed(50, 64 << 10),
    );
}
